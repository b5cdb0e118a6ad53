"""Coverage of the prediction intervals at the records' own rate (e.g. 500 Hz), on complete
12-lead references the calibration never saw.

    python scripts/external_interval_coverage.py REF... --model unet-i-ii-v4 --leads I,II,V4 \
        [--levels 0.8 0.9 0.95] [--json out.json]
    python scripts/external_interval_coverage.py --ptbxl500-heldout /work/data/ptbxl100hp ...

Each reference is masked to ``--leads``, reconstructed as ``ecgfill reconstruct`` does (the
100 Hz models resampled in and out, the high band added unless ``--no-high-band``), and its
bands computed at its rate; the truth and the reconstruction are both taken through the model's
input high-pass (0.5 Hz: the band the models reconstruct and the intervals bound; a limb lead
derived from a measured lead keeps that lead's raw wander, which is not reconstruction error).
``--ptbxl500-heldout DATASET`` adds the PTB-XL 500 Hz originals of fold 9 whose patients are in
the held-out half of the calibration split (the calibration used their 100 Hz versions' other
half only). Per level: coverage over all learned-lead samples, per lead, in QRS and elsewhere,
and the mean width.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np

from ecgfill.dsp import apply_filters
from ecgfill.evaluate.coverage import qrs_mask
from ecgfill.evaluate.run import complete_reference
from ecgfill.intervals import PlanCalibration, RecordIntervals
from ecgfill.io import discover, read_record
from ecgfill.leads import STANDARD_LEADS, LeadPlan
from ecgfill.reconstruct import (
    ReconstructSettings,
    choose_model,
    high_band_for,
    reconstruct_record,
)

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def heldout_ptbxl500(dataset: str) -> list[Path]:
    """PTB-XL 500 Hz fold-9 records of the calibration's held-out patients."""
    from ecgfill.intervals_fit import halves
    from ecgfill.train.data import open_dataset

    ds = open_dataset(dataset)
    idx = ds.indices("val")
    idx = idx[ds.n_valid[idx] == ds.n_samples]
    _, test = halves(ds, idx)
    held = {ds.manifest[i]["patient_id"] for i in idx[test]}
    out = []
    with open(SHARED / "ptb-xl" / "ptbxl500_folds.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            if row["strat_fold"] == "9" and str(row["patient_id"]) in held:
                out.append(SHARED / "ptb-xl" / (row["filename_hr"] + ".hea"))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("refs", nargs="*")
    parser.add_argument("--model", required=True)
    parser.add_argument("--leads", required=True)
    parser.add_argument("--levels", nargs="+", type=float, default=[0.8, 0.9, 0.95])
    parser.add_argument("--ptbxl500-heldout", metavar="DATASET")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--no-high-band", action="store_true",
                        help="leave out the high band above 47.5 Hz (as reconstruct --no-high-band)")
    args = parser.parse_args()
    paths = [i.path for i in discover.find_records(args.refs) if not i.error] if args.refs else []
    if args.ptbxl500_heldout:
        paths += heldout_ptbxl500(args.ptbxl500_heldout)
    leads = LeadPlan.of(args.leads.split(",")).measured
    model, _ = choose_model(leads, ReconstructSettings(model=args.model))
    calibration = PlanCalibration.of(model.card, LeadPlan.of(leads))
    names = list(calibration.leads)
    rows = [STANDARD_LEADS.index(n) for n in names]
    k = len(args.levels)
    inside, inside_q, width = np.zeros((k, len(names))), np.zeros((k, len(names))), np.zeros(
        (k, len(names)))
    n, n_q, used, rates = np.zeros(len(names)), np.zeros(len(names)), 0, set()
    for path in paths:
        try:
            ref = complete_reference(read_record(path), path).in_standard_order()
        except Exception as exc:  # not a complete 12-lead: left out, said
            print(f"{path}: left out ({exc})", file=sys.stderr)
            continue
        if ref.warnings and any("flat" in w for w in ref.warnings):
            print(f"{path}: left out (a flat lead)", file=sys.stderr)
            continue
        rec, _ = reconstruct_record(ref.select(list(leads)), model, high_band=high_band_for(
            ref.fs, model, not args.no_high_band))
        rec = rec.in_standard_order()
        # both in the band the intervals bound: a limb lead derived from a measured one carries
        # that lead's raw wander below 0.5 Hz, which is measured, not reconstruction error
        truth = apply_filters(np.nan_to_num(ref.signal), ref.fs, model.input_filters)[rows]
        out = rec.signal[rows]
        out = np.where(np.isfinite(out), apply_filters(np.nan_to_num(out), ref.fs,
                                                       model.input_filters), np.nan)
        qrs = qrs_mask(ref.signal[None], ref.fs)[0]
        res = np.abs(truth - out)
        ok = np.isfinite(res)
        n += ok.sum(1)
        n_q += (ok & qrs).sum(1)
        for j, level in enumerate(args.levels):
            tracker = RecordIntervals(calibration, model, level)
            half = tracker.chunk(rec, slice(0, rec.n_samples))[rows]
            hit = (res <= half) & ok
            inside[j] += hit.sum(1)
            inside_q[j] += (hit & qrs).sum(1)
            width[j] += np.where(ok, 2 * half, 0).sum(1)
        used += 1
        rates.add(ref.fs)
    report = {"model": model.name, "leads": ",".join(leads), "records": used,
              "rates_hz": sorted(rates), "band": "0.5 Hz high-passed", "levels": {}}
    for j, level in enumerate(args.levels):
        report["levels"][f"{level:g}"] = {
            "coverage": round(float(inside[j].sum() / n.sum()), 4),
            "coverage_qrs": round(float(inside_q[j].sum() / n_q.sum()), 4),
            "coverage_other": round(float((inside[j] - inside_q[j]).sum() / (n - n_q).sum()), 4),
            "mean_width_mv": round(float(width[j].sum() / n.sum()), 4),
            "per_lead": {name: {"coverage": round(float(inside[j, i] / n[i]), 4),
                                "mean_width_mv": round(float(width[j, i] / n[i]), 4)}
                         for i, name in enumerate(names)}}
    print(json.dumps(report, indent=1))
    if args.json:
        results = json.loads(args.json.read_text()) if args.json.is_file() else {}
        results.setdefault(model.name, {})[report["leads"] + (
            " ptbxl500-heldout" if args.ptbxl500_heldout else "")] = report
        args.json.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
