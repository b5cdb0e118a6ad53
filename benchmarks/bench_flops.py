"""Model size: parameters and FLOPs per second of signal, next to the paper-sized U-Net.

The reference is the hybrid-paper U-Net class (64->512 encoder channels, depth 4, 17.1 M
parameters; ``ecgfill.models.unet.REFERENCE_*``). FLOPs are counted by PyTorch's FlopCounterMode
on one window (2 FLOPs per multiply-add) and divided by the window's seconds. Target: default
model FLOPs / reference FLOPs <= 0.1. Trained model cards found (shipped models,
``$ECGFILL_MODELS``, ``--cards``) are listed with their validation chest-lead r.

    .venv/bin/python benchmarks/bench_flops.py
    .venv/bin/python benchmarks/bench_flops.py --cards /work/runs/*/*.json --json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from _common import finish, machine, print_machine, table

TARGET_RATIO = 0.1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", default="I,II,V4", help="input leads of the default networks")
    parser.add_argument("--fs", type=float, default=100.0)
    parser.add_argument("--window", type=int, default=1000, help="samples per window")
    parser.add_argument("--cards", nargs="*", type=Path, default=[], help="extra model cards")
    parser.add_argument("--json", action="store_true", help="also print all figures as JSON")
    args = parser.parse_args()
    info = machine()
    print_machine(info)
    results: dict[str, Any] = {"machine": info}
    results["defaults"] = default_networks(tuple(args.leads.split(",")), args.fs, args.window)
    results["trained"] = trained_cards(args.cards)
    finish(results, args.json)
    return 0


def default_networks(leads: tuple[str, ...], fs: float, window: int) -> dict[str, Any]:
    """Parameters and FLOPs/s of each family's default config and of the reference U-Net."""
    from ecgfill.leads import STANDARD_LEADS
    from ecgfill.models.base import build_network, count_parameters, flops_per_second
    from ecgfill.models.network_leads import output_leads_for
    from ecgfill.models.unet import reference_flops_per_second, reference_parameters

    outputs = output_leads_for(leads)
    reference = reference_flops_per_second(fs, len(leads), len(outputs), window)
    reference_params = reference_parameters(len(leads), len(outputs))
    rows = [["reference U-Net (paper size)", reference_params, reference / 1e6, 1.0, ""]]
    out: dict[str, Any] = {"reference": {"parameters": reference_params, "flops_per_second": reference}}
    for arch in ("linear", "unet", "vae"):
        card = {"arch": arch, "input_leads": list(leads), "output_leads": list(outputs), "fs": fs,
                "config": {}, "normalization": {"leads": list(STANDARD_LEADS), "mean": [0.0] * 12,
                                                 "std": [1.0] * 12}}
        net = build_network(card)
        flops = flops_per_second(net, len(leads), fs, window)
        ratio = flops / reference
        verdict = "" if arch == "linear" else ("meets" if ratio <= TARGET_RATIO else "MISSES")
        rows.append([f"{arch} (default config)", count_parameters(net), flops / 1e6, ratio, verdict])
        out[arch] = {"parameters": count_parameters(net), "flops_per_second": flops, "ratio": ratio}
    print(f"\ndefault networks, inputs {','.join(leads)} -> {','.join(outputs)}, {fs:g} Hz, "
          f"window {window} (target ratio <= {TARGET_RATIO}):")
    print(table(rows, ["network", "parameters", "MFLOP/s of signal", "ratio to reference", ""]))
    return out


def trained_cards(extra: list[Path]) -> list[dict[str, Any]]:
    """What the cards of trained models record: size, FLOPs ratio, validation chest r."""
    from ecgfill.models import available_models
    from ecgfill.models.base import read_card

    cards = {c["name"]: c for c in available_models()}
    for path in extra:
        card = read_card(path)
        cards.setdefault(card["name"], card)
    rows, out = [], []
    linear_r = {tuple(sorted(c["input_leads"])): c.get("validation", {}).get("r_chest")
                for c in cards.values() if c["arch"] == "linear"}
    for name, card in sorted(cards.items()):
        reference = card.get("reference_unet") or {}
        r_chest = (card.get("validation") or {}).get("r_chest")
        baseline = linear_r.get(tuple(sorted(card["input_leads"])))
        entry = {"name": name, "arch": card["arch"], "parameters": card.get("parameters"),
                 "flops_per_second": card.get("flops_per_second"),
                 "flops_ratio": reference.get("flops_ratio"), "val_r_chest": r_chest,
                 "linear_val_r_chest": baseline}
        out.append(entry)
        rows.append([name, card.get("parameters", "?"),
                     (card.get("flops_per_second") or 0) / 1e6, reference.get("flops_ratio", "?"),
                     r_chest if r_chest is not None else "?",
                     baseline if baseline is not None else "?"])
    if rows:
        print("\ntrained models (from their cards):")
        print(table(rows, ["model", "parameters", "MFLOP/s", "ratio to reference", "val r chest",
                           "linear r chest"]))
    return out


if __name__ == "__main__":
    sys.exit(main())
