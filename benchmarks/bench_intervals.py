"""Benchmark what ``reconstruct --interval`` adds to the time per record (target: at most 50%).

In process, steady state (models loaded): the library's job function (``reconstruct_job``, what
each worker runs: read, resample, model, derive, write) on the same synthetic records in turn
(A B C A B C ...): *bare* (no interval code at all: the model's calibration hidden), *plain*
(no ``--interval``; ``expected_r`` is still computed) and *interval* (``--interval 0.9``: the
band records written too). The added share is the median over the rounds of
(interval - bare) / bare, per model; plain's is shown too. Then the whole commands once each way
(start-up and model loading included).

    .venv/bin/python benchmarks/bench_intervals.py
    .venv/bin/python benchmarks/bench_intervals.py --models unet-i-ii-v4 linear-i --records 50 --json
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from _common import (
    ECGFILL,
    child_env,
    finish,
    machine,
    median,
    print_machine,
    run_timed,
    synthetic_records,
    table,
)

TARGET = 0.5


def per_record(settings: Any, paths: list[Path], out: Path, bare: bool = False) -> float:
    """Seconds per record of ``reconstruct_job`` over ``paths`` (outputs overwritten); ``bare``:
    with the models' interval calibration hidden (no interval code runs)."""
    from ecgfill import intervals
    from ecgfill.batch import Job
    from ecgfill.errors import ModelError
    from ecgfill.io.discover import RecordInput
    from ecgfill.reconstruct import reconstruct_job

    def hidden(card: Any, plan: Any) -> Any:
        raise ModelError("hidden")

    original = intervals.PlanCalibration.of
    if bare:
        intervals.PlanCalibration.of = hidden  # type: ignore[method-assign]
    start = time.perf_counter()
    for path in paths:
        outcome = reconstruct_job(settings, Job(RecordInput(path, path.parent),
                                                out / path.stem))
        assert outcome.status == "ok", outcome.error
    seconds = (time.perf_counter() - start) / len(paths)
    intervals.PlanCalibration.of = original  # type: ignore[method-assign]
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["unet-i-ii-v4", "linear-i-ii-v4",
                                                         "linear-any"])
    parser.add_argument("--records", type=int, default=40)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--fs", type=float, default=500.0)
    parser.add_argument("--leads", default="I,II,V4")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    from ecgfill.reconstruct import ReconstructSettings

    info = machine()
    print_machine(info)
    work = Path(tempfile.mkdtemp(prefix="bench-intervals-"))
    results: dict[str, Any] = {"machine": info, "records": args.records,
                               "seconds": args.seconds, "fs": args.fs, "leads": args.leads,
                               "models": {}}
    try:
        paths = synthetic_records(work / "in", args.records, args.seconds, args.fs,
                                  args.leads.split(","))
        rows = []
        for name in args.models:
            plain = ReconstructSettings(model=name, threads=args.threads)
            banded = replace(plain, interval=0.9)
            per_record(plain, paths[:2], work / "warm")  # load the model, warm caches
            per_record(banded, paths[:2], work / "warm")
            rounds = []
            for _ in range(args.repeats):
                rounds.append((per_record(plain, paths, work / "a", bare=True),
                               per_record(plain, paths, work / "b"),
                               per_record(banded, paths, work / "c")))
            added = median([(c - a) / a for a, _, c in rounds])
            added_plain = median([(b - a) / a for a, b, _ in rounds])
            entry = {f"ms_per_record_{k}": round(1000 * median([r[i] for r in rounds]), 2)
                     for i, k in enumerate(("bare", "plain", "interval"))}
            entry.update(added=round(added, 3), added_plain=round(added_plain, 3),
                         rounds=[[round(x * 1000, 2) for x in r] for r in rounds])
            results["models"][name] = entry
            rows.append([name, entry["ms_per_record_bare"], entry["ms_per_record_plain"],
                         entry["ms_per_record_interval"], f"{100 * added_plain:+.0f}%",
                         f"{100 * added:+.0f}%", "yes" if added <= TARGET else "no"])
        print(table(rows, ["model", "bare ms", "plain ms", "--interval ms", "plain added",
                           "--interval added", "<= +50%"]))
        name = args.models[0]
        whole = {}
        for label, extra in (("plain", []), ("interval", ["--interval", "0.9"])):
            shutil.rmtree(work / "cmd", ignore_errors=True)
            run = run_timed([ECGFILL, "reconstruct", str(work / "in"), str(work / "cmd"),
                             "--model", name, "--threads", str(args.threads), *extra],
                            env=child_env())
            whole[label] = round(run.wall_s, 3)
        whole["added"] = round(whole["interval"] / whole["plain"] - 1, 3)
        results["whole_command"] = {"model": name, **whole}
        print(f"whole command, {name}, {args.records} records: {whole['plain']} s, with "
              f"--interval {whole['interval']} s ({100 * whole['added']:+.0f}%)")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print_machine(machine())
    finish(results, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
