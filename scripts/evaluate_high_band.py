"""Score reconstructions with and without the high band, per model and lead set, at the
records' own rate (the issue-18 table).

    python scripts/evaluate_high_band.py --refs ptbxl500-val --out results/high_band.json
    python scripts/evaluate_high_band.py --refs external --out results/high_band_external.json

``--refs``: ``ptbxl500-val`` = the PTB-XL 500 Hz originals of fold 9 (the validation fold),
``ptbxl100-val`` = their 100 Hz twins, ``external`` = the 500 Hz Challenge records (CPSC 2018,
Georgia, Chapman, Ningbo), or record paths. Per model and lead set, the learned-lead figures of
``ecgfill evaluate`` (references 0.5 Hz high-passed as the models' inputs): whole-band Pearson r,
the 40-150 Hz band's r, reconstructed ÷ true energy 50-150 Hz (mean and median over records),
QRS amplitude ratio; ``before`` without the high band (``--no-high-band``), ``after`` with it.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

from ecgfill.evaluate.report import summary_report
from ecgfill.evaluate.run import EvaluateOptions, evaluate_models
from ecgfill.reconstruct import ReconstructSettings, choose_model

SHARE = Path(__file__).resolve().parents[2] / "shared" / "data"
CASES: tuple[tuple[str, str], ...] = (
    ("unet-i-ii-v4", "I,II,V4"), ("unet-i-ii-v3", "I,II,V3"), ("vae-ii-v1-v5", "II,V1,V5"),
    ("unet-i", "I"), ("anyset-unet", "I,II,V4"), ("anyset-unet", "I,II,V3"),
    ("anyset-unet", "II,V5"), ("anyset-unet", "I,II"),
)
METRICS = ("pearson_r", "high_band_r", "high_energy_ratio", "amp_ratio")


def references(which: list[str]) -> list[str]:
    """Record paths for the named reference sets (or the paths given)."""
    if which == ["ptbxl500-val"] or which == ["ptbxl100-val"]:
        with open(SHARE / "ptb-xl" / "ptbxl500_folds.csv", newline="") as f:
            rows = [r for r in csv.DictReader(f) if r["strat_fold"] == "9"]
        if which == ["ptbxl500-val"]:
            return [str(SHARE / "ptb-xl" / r["filename_hr"]) + ".hea" for r in rows]
        return [str(SHARE / "ptb-xl" / r["filename_hr"].replace("records500", "records100")
                    .replace("_hr", "_lr")) + ".hea" for r in rows]
    if which == ["external"]:
        return [str(SHARE / name) for name in ("cpsc2018", "cpsc2018-extra", "georgia",
                                               "chapman", "ningbo")]
    return which


def score(refs: list[str], model_name: str, leads: str, high_band: bool) -> dict:
    input_leads = tuple(leads.split(","))
    model, _ = choose_model(input_leads, ReconstructSettings(model=model_name))
    options = EvaluateOptions(features=False, high_band=high_band)
    evaluation = evaluate_models(refs, [model], options, input_leads=input_leads)[0]
    summary = summary_report(evaluation, n_boot=1000, seed=0)
    learned = summary["learned_leads"] or {}
    return {"n_records": summary["n_records"], "n_failed": summary["n_failed"],
            **{m: learned.get(m) for m in METRICS}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--refs", nargs="+", default=["ptbxl500-val"])
    parser.add_argument("--out", required=True)
    parser.add_argument("--cases", nargs="*", help="MODEL:LEADS (default: the issue's table)")
    args = parser.parse_args()
    refs = references(args.refs)
    cases = [tuple(c.split(":")) for c in args.cases] if args.cases else CASES
    table = []
    for model_name, leads in cases:
        row = {"model": model_name, "leads": leads,
               "before": score(refs, model_name, leads, high_band=False),
               "after": score(refs, model_name, leads, high_band=True)}
        table.append(row)
        fmt = {k: (round(v["mean"], 3) if v and v.get("mean") is not None else None)
               for k, v in row["after"].items() if k in METRICS}
        print(model_name, leads, "before", {k: (round(v["mean"], 3) if v and v.get("mean")
                                             is not None else None)
                                            for k, v in row["before"].items() if k in METRICS},
              "after", fmt, file=sys.stderr, flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"refs": args.refs, "table": table}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
