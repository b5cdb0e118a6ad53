"""Benchmark ``ecgfill preprocess`` on PTB-XL: all 100 Hz FLAC records with their folds.

The target (issue 3) is at most 5 minutes for the 19,601 records on a 2-core machine.

    .venv/bin/python benchmarks/bench_preprocess.py                      # full run, temp output
    .venv/bin/python benchmarks/bench_preprocess.py --output /work/data/ptbxl100
    .venv/bin/python benchmarks/bench_preprocess.py --limit 500 --profile  # where the time goes

Prints the wall time (discovery, reading, resampling and writing included) and records/s.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import shutil
import sys
import tempfile
import time
from pathlib import Path

from ecgfill.preprocess import PreprocessConfig, preprocess

SHARED = Path(os.environ.get("ECGFILL_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
BUDGET_S = 300.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=Path, default=SHARED / "ptb-xl" / "records100")
    parser.add_argument("--splits", type=Path, default=SHARED / "ptb-xl" / "ptbxl_folds.csv")
    parser.add_argument("--output", type=Path, help="keep the dataset here (default: temporary)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--fs", type=float, help="target rate (default: most common input rate)")
    parser.add_argument("--limit", type=int, help="only the first N records (sorted)")
    parser.add_argument("--profile", action="store_true", help="cProfile a one-worker run")
    args = parser.parse_args()
    if not args.records.is_dir():
        print(f"no records at {args.records}; set ECGFILL_SHARED_DATA", file=sys.stderr)
        return 2
    inputs = [str(args.records)]
    if args.limit:
        inputs = [str(p) for p in sorted(args.records.rglob("*.hea"))[: args.limit]]
    workers = 1 if args.profile else args.workers
    scratch = None if args.output else Path(tempfile.mkdtemp(prefix="bench-preprocess-"))
    output = args.output or scratch / "dataset"
    config = PreprocessConfig(
        fs=args.fs, splits_csv=args.splits, workers=workers, overwrite=bool(args.output)
    )
    profiler = cProfile.Profile() if args.profile else None
    try:
        start = time.perf_counter()
        if profiler:
            profiler.enable()
        summary = preprocess(inputs, output, config)
        if profiler:
            profiler.disable()
        elapsed = time.perf_counter() - start
    finally:
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)
    counts = summary.counts
    print(
        f"{counts['records']} records ({counts['train']} train, {counts['val']} val, "
        f"{counts['test']} test, {counts['excluded']} excluded) at {summary.fs:g} Hz, "
        f"{workers} worker(s): {elapsed:.1f} s total, {counts['records'] / elapsed:.1f} records/s"
    )
    if profiler:
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
    full_set = not args.limit
    if full_set and elapsed > BUDGET_S:
        print(f"SLOW: over the {BUDGET_S:.0f} s budget", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
