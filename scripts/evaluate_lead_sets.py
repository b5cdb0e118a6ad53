"""Score models over a grid of lead sets on a dataset split, and write the figures into an
any-subset model's card (its ``lead_sets`` grid, which ``--model auto`` reads).

    python scripts/evaluate_lead_sets.py data/ptbxl100hp --split val \
        --model anyset-unet --model linear-any --model auto --out results/lead_sets.json \
        [--card models/anyset-unet.json] [--sets I,II,V4 II ...]

Per lead set and model: per-record Pearson r over the learned leads (mean over records of the
per-record mean, percentile-bootstrap 95% CI over records, records), per learned lead r, MAE in
mV; references and outputs are 0.5 Hz high-passed as the dataset is. The model is chosen and
bound exactly as ``ecgfill reconstruct`` does (``choose_model``) and its outputs are completed
by the lead plan (``LeadPlan.complete``); the scoring is vectorised (``ecgfill evaluate`` gives
the same r, with clinical features, far more slowly). ``auto`` is what ``--model auto`` picks.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from ecgfill.evaluate.metrics import signal_metrics, summarize
from ecgfill.leads import INDEPENDENT_LEADS, STANDARD_LEADS, LeadPlan
from ecgfill.reconstruct import ReconstructSettings, choose_model
from ecgfill.train.data import open_dataset

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


def score(truth: np.ndarray, model_name: str, leads: tuple[str, ...]) -> dict | None:
    """Figures of ``model_name`` on records ``truth`` ``[N, 12, T]`` masked to ``leads``."""
    try:
        model, _ = choose_model(leads, ReconstructSettings(model=model_name))
    except Exception as exc:  # a model that cannot serve the set: recorded, not fatal
        return {"error": str(exc)}
    if model is None:
        return None
    plan = LeadPlan.of(leads)
    rows = [STANDARD_LEADS.index(n) for n in model.input_leads]
    predicted = np.concatenate([model.predict(truth[lo:lo + 256, rows])
                                for lo in range(0, len(truth), 256)])
    independent = plan.complete(truth[:, [STANDARD_LEADS.index(n) for n in plan.inputs]],
                                dict(zip(model.output_leads, predicted.transpose(1, 0, 2),
                                         strict=True)))
    learned = list(plan.predicted)
    cols = [INDEPENDENT_LEADS.index(n) for n in learned]
    y = independent[:, cols]
    t = truth[:, [STANDARD_LEADS.index(n) for n in learned]].astype(np.float64)
    flat_shape = (-1, t.shape[-1])  # every (record, lead) row through the one metric definition
    metrics = signal_metrics(t.reshape(flat_shape), y.reshape(flat_shape), model.fs)
    r = metrics["pearson_r"].reshape(t.shape[:2])  # [N, leads]
    per_record = np.nanmean(r, axis=1)
    stats = summarize(per_record, n_boot=N_BOOT)
    return {"model": model.name, "uses": list(model.input_leads), "r": round(stats["mean"], 4),
            "ci95": [round(x, 4) for x in stats["ci95"]],
            "mae_mv": round(float(metrics["mae_mv"].mean()), 4), "records": int(stats["n"]),
            "r_per_lead": {n: round(float(np.nanmean(r[:, k])), 4) for k, n in enumerate(learned)}}


def portable_command(args: argparse.Namespace) -> str:
    """This script's command line with the dataset as ``data/<name>`` (no machine paths)."""
    models = " ".join(f"--model {m}" for m in args.model)
    card = f" --card models/{args.card.name}" if args.card else ""
    return (f"python scripts/evaluate_lead_sets.py data/{Path(args.dataset).name} --split "
            f"{args.split} {models} --out results/{args.out.name}{card}")


def markdown(results: dict, models: list[str]) -> str:
    """Lead set x model: mean r [95% CI] (the model ``auto`` chose in brackets)."""
    lines = ["| lead set | " + " | ".join(models) + " |", "|---|" + "---|" * len(models)]
    for key, entry in results.items():
        cells = []
        for name in models:
            e = entry.get(name) or {}
            if e.get("r") is None:
                cells.append("")
                continue
            cell = f"{e['r']:.3f} [{e['ci95'][0]:.3f}, {e['ci95'][1]:.3f}]"
            cells.append(cell + (f" (`{e['model']}`)" if name in ("auto", "dedicated") else ""))
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("dataset")
    parser.add_argument("--split", default="val")
    parser.add_argument("--model", action="append", required=True)
    parser.add_argument("--sets", nargs="*", default=list(GRID))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--card", type=Path, help="write the first model's grid into this card")
    parser.add_argument("--markdown", action="store_true",
                        help="print the results as a Markdown table (lead set x model) and exit")
    args = parser.parse_args()
    if args.markdown:
        print(markdown(json.loads(args.out.read_text()), args.model))
        return
    results: dict = json.loads(args.out.read_text()) if args.out.is_file() else {}
    ds = open_dataset(args.dataset)
    idx = ds.indices(args.split)
    idx = idx[ds.n_valid[idx] == ds.n_samples]  # whole records (all of PTB-XL's)
    truth = np.asarray(ds.signals[idx], dtype=np.float32)
    for key in args.sets:
        leads = LeadPlan.of(key.split(",")).measured
        for name in args.model:
            if results.get(key, {}).get(name) is not None and name != "auto":
                continue
            began = time.monotonic()
            results.setdefault(key, {})[name] = score(truth, name, leads)
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
            "high-passed; command: " + portable_command(args))
        args.card.write_text(json.dumps(card, indent=2, allow_nan=False) + "\n")


if __name__ == "__main__":
    main()
