"""Calibrate a model's prediction intervals and expected r, write them into its card, and report
honest coverage on records the calibration never saw.

    python scripts/calibrate_intervals.py /work/data/ptbxl100hp MODEL [MODEL...] \
        [--split val] [--sets I,II,V4 II ...] [--out results/intervals.json] [--dry-run]

The split's records (PTB-XL fold 9, the validation fold) are divided by patient into two halves
(a stable permutation of the patient ids): the calibration is fitted on the first half and
written into ``models/<MODEL>.json`` under ``intervals``; coverage, widths and the expected-r
Spearman correlation are measured on the second half (patient-disjoint) and stored beside it
(``intervals.validation``) and in ``--out``. References and reconstructions are 0.5 Hz
high-passed, as the dataset is. A dedicated model is calibrated for its own lead set (also its
fallback); an any-subset model for each lead set of ``--sets`` (default: a subset of its grid),
with a fallback per lead pooled over them. The model is chosen, bound and completed exactly as
``ecgfill reconstruct`` does.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from ecgfill.intervals_fit import ANY_SETS, calibrate_dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("dataset")
    parser.add_argument("models", nargs="+")
    parser.add_argument("--split", default="val")
    parser.add_argument("--sets", nargs="*", default=list(ANY_SETS))
    parser.add_argument("--out", type=Path, default=Path("results/intervals.json"))
    parser.add_argument("--limit", type=int, help="use the first N records (a quick check)")
    parser.add_argument("--dry-run", action="store_true", help="do not write the cards")
    args = parser.parse_args()
    results = json.loads(args.out.read_text()) if args.out.is_file() else {}
    for name in args.models:  # one model at a time: its results are kept as soon as it is done
        results.update(calibrate_dataset(
            args.dataset, [name], args.split, args.sets, args.limit, not args.dry_run,
            "python " + " ".join(sys.argv)))
        args.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.out.with_suffix(".tmp")
        tmp.write_text(json.dumps(results, indent=1) + "\n")
        os.replace(tmp, args.out)


if __name__ == "__main__":
    main()
