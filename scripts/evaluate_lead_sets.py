"""Score models over a grid of lead sets on a dataset split, and write the figures into an
any-subset model's card (its ``lead_sets`` grid, which ``--model auto`` reads).

    python scripts/evaluate_lead_sets.py data/ptbxl100hp --split val \
        --model anyset-unet --model linear-any --model auto --out results/lead_sets.json \
        [--card models/anyset-unet.json] [--sets I,II,V4 II ...]

Per lead set and model: per-record Pearson r over the learned leads (mean, bootstrap 95% CI,
records), per learned lead r, MAE in mV; references and outputs are 0.5 Hz high-passed as the
dataset is. ``auto`` is what ``ecgfill reconstruct --model auto`` picks for the set.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from ecgfill.evaluate import EvaluateOptions
from ecgfill.evaluate.report import build_report
from ecgfill.evaluate.run import evaluate_models
from ecgfill.leads import LeadPlan
from ecgfill.reconstruct import ReconstructSettings, choose_model

# The grid: every single lead, common two- and three-lead devices, the frontal plane with
# chest leads, chest leads only. The required sets are all here.
GRID: tuple[str, ...] = (
    "I,II,V4", "II,V1,V5", "I,II,V3", "I",  # the dedicated models' sets
    "II", "I,II", "I,II,V1", "I,II,V2", "II,V5", "II,V1", "I,V2", "V1,V2,V3,V4,V5,V6",
    "III", "aVF", "V1", "V2", "V5", "II,V2", "I,V1", "V1,V5", "III,V4",
    "I,II,V5", "I,II,V6", "I,II,V1,V4", "I,II,V2,V4", "I,II,V1,V5", "II,V1,V3,V5",
    "I,V1,V2,V3,V4,V5,V6",
)
N_BOOT = 1000


def score(dataset: str, split: str, model_name: str, leads: tuple[str, ...]) -> dict | None:
    settings = ReconstructSettings(model=model_name)
    try:
        model, choice = choose_model(leads, settings)
    except Exception as exc:  # a model that cannot serve the set: recorded, not fatal
        return {"error": str(exc)}
    if model is None:
        return None
    [evaluation] = evaluate_models([dataset], [model], EvaluateOptions(features=False),
                                   split=split, input_leads=leads)
    report = build_report(evaluation, n_boot=N_BOOT)
    learned = report["summary"]["learned_leads"]
    per_lead = {lead: round(v["pearson_r"]["mean"], 4) for lead, v in report["leads"].items()
                if v.get("origin") == "reconstructed" and v["pearson_r"]["mean"] is not None}
    return {"model": model.name, "uses": list(model.input_leads),
            "r": round(learned["pearson_r"]["mean"], 4),
            "ci95": [round(x, 4) for x in learned["pearson_r"]["ci95"]],
            "mae_mv": round(learned["mae_mv"]["mean"], 4),
            "records": report["summary"]["n_records"], "r_per_lead": per_lead}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("dataset")
    parser.add_argument("--split", default="val")
    parser.add_argument("--model", action="append", required=True)
    parser.add_argument("--sets", nargs="*", default=list(GRID))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--card", type=Path, help="write the first model's grid into this card")
    args = parser.parse_args()
    results: dict = json.loads(args.out.read_text()) if args.out.is_file() else {}
    for key in args.sets:
        leads = LeadPlan.of(key.split(",")).measured
        for name in args.model:
            if results.get(key, {}).get(name) is not None and name != "auto":
                continue
            began = time.monotonic()
            results.setdefault(key, {})[name] = score(args.dataset, args.split, name, leads)
            entry = results[key][name] or {}
            print(f"{key:>22} {name:>14}: r {entry.get('r')} {entry.get('ci95')} "
                  f"({entry.get('model')}, {time.monotonic() - began:.0f} s)", file=sys.stderr)
            tmp = args.out.with_suffix(".tmp")
            tmp.write_text(json.dumps(results, indent=1) + "\n")
            os.replace(tmp, args.out)
    if args.card:
        card = json.loads(args.card.read_text())
        first = args.model[0]
        card["lead_sets"] = {
            LeadPlan.of(key.split(",")).key: {k: v[first][k] for k in
                                               ("r", "ci95", "mae_mv", "records", "r_per_lead")}
            for key, v in results.items() if (v.get(first) or {}).get("r") is not None}
        card["lead_sets_protocol"] = (
            f"{args.split} split of {Path(args.dataset).name} (PTB-XL fold 9, validation), "
            "per-record Pearson r over the learned leads, references and outputs 0.5 Hz "
            "high-passed; command: " + " ".join(sys.argv))
        args.card.write_text(json.dumps(card, indent=2, allow_nan=False) + "\n")


if __name__ == "__main__":
    main()
