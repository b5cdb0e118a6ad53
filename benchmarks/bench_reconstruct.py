"""Benchmark ``ecgfill reconstruct`` against ``ecgfill derive-limb`` (model cost vs. pure I/O).

Both commands run on the same synthetic records (default: 200 ten-second 500 Hz records with
leads I, II, V4), as whole processes in turn (A B A B ...), and the throughput ratio
reconstruct / derive-limb is taken pair by pair (target >= 0.5). Then:

* per-record fixed cost: each command on a single record (start-up, imports, model loading);
* ``--workers`` 1 and 2: records/s and the peak RSS of every process (main and workers);
* an in-process breakdown of ms/record into read, resample, model, derive, write, other
  (the library's own functions, timed where they are called), and with ``--profile`` the top of
  a cProfile of the reconstruct loop.

    .venv/bin/python benchmarks/bench_reconstruct.py
    .venv/bin/python benchmarks/bench_reconstruct.py --records 20 --repeats 1 --profile
    ECGFILL_MODELS=/work/runs/unet-I-II-V4 .venv/bin/python benchmarks/bench_reconstruct.py --json
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import io
import pstats
import shlex
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from _common import (
    ECGFILL,
    child_env,
    finish,
    machine,
    median,
    paired_runs,
    print_machine,
    run_timed,
    synthetic_records,
    table,
)

TARGET_RATIO = 0.5
STAGES = ("read", "resample", "model", "high band", "derive", "write")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--fs", type=float, default=500.0)
    parser.add_argument("--leads", default="I,II,V4")
    parser.add_argument("--model", default="auto", help="as reconstruct --model (default auto)")
    parser.add_argument("--backend", default="onnx", choices=("onnx", "torch"))
    parser.add_argument("--threads", type=int, help="reconstruct --threads (default: its own)")
    parser.add_argument("--repeats", type=int, default=3, help="paired whole-command runs")
    parser.add_argument("--workers", default="1,2", help="worker counts to time (comma list)")
    parser.add_argument("--ecgfill", default=ECGFILL,
                        help="the ecgfill command to time, e.g. another checkout's (shell words)")
    parser.add_argument("--skip-breakdown", action="store_true", help="whole commands only")
    parser.add_argument("--profile", action="store_true", help="print a cProfile of reconstruct")
    parser.add_argument("--json", action="store_true", help="also print all figures as JSON")
    args = parser.parse_args()
    leads = args.leads.split(",")
    info = machine()
    print_machine(info)
    scratch = Path(tempfile.mkdtemp(prefix="bench-reconstruct-"))
    try:
        inputs = scratch / "in"
        made = time.perf_counter()
        paths = synthetic_records(inputs, args.records, args.seconds, args.fs, leads)
        print(f"{len(paths)} records of {args.seconds:g} s at {args.fs:g} Hz, leads {args.leads} "
              f"(generated in {time.perf_counter() - made:.1f} s)")
        commands = Commands(shlex.split(args.ecgfill), inputs, scratch, args.model, args.backend,
                            args.threads)
        print(f"model: {commands.model_name()} ({args.backend})")
        results: dict[str, Any] = {"machine": info, "records": len(paths), "model": commands.model_name()}
        results["whole"] = whole_commands(commands, args.repeats, len(paths))
        results["fixed"] = fixed_costs(commands, paths[0], args.repeats)
        results["workers"] = worker_scaling(commands, [int(w) for w in args.workers.split(",")],
                                            len(paths))
        if not args.skip_breakdown:
            results["breakdown"] = breakdown(inputs, scratch, args.model, args.backend, args.threads,
                                             args.profile)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    finish(results, args.json)
    return 0


class Commands:
    """The two CLI commands on one input tree, each into a fresh output folder."""

    def __init__(self, ecgfill: list[str], inputs: Path, scratch: Path, model: str, backend: str,
                 threads: int | None) -> None:
        self.ecgfill = ecgfill
        self.inputs, self.scratch, self.model, self.backend = inputs, scratch, model, backend
        self.threads = ["--threads", str(threads)] if threads else []
        self.env = child_env()

    def model_name(self) -> str:
        from ecgfill.io import read_record
        from ecgfill.reconstruct import ReconstructSettings, choose_model

        first = read_record(next(self.inputs.glob("*.hea")))
        model, _ = choose_model(first.leads, ReconstructSettings(model=self.model,
                                                                 backend=self.backend))
        return model.name if model is not None else "none"

    def derive(self, inputs: Path | None = None) -> Any:
        return self._run(["derive-limb", str(inputs or self.inputs)])

    def reconstruct(self, inputs: Path | None = None, workers: int = 1, sample_tree: bool = False,
                    high_band: bool = True) -> Any:
        extra = ["--model", self.model, "--backend", self.backend, "--workers", str(workers),
                 *self.threads, *([] if high_band else ["--no-high-band"])]
        return self._run(["reconstruct", str(inputs or self.inputs), *extra], sample_tree)

    def _run(self, argv: list[str], sample_tree: bool = False) -> Any:
        out = Path(tempfile.mkdtemp(dir=self.scratch, prefix="out-"))
        try:
            return run_timed([*self.ecgfill, argv[0], argv[1], str(out), *argv[2:]], self.env,
                             sample_tree)
        finally:
            shutil.rmtree(out, ignore_errors=True)


def whole_commands(commands: Commands, repeats: int, n: int) -> dict[str, Any]:
    """Both commands on all records, in turn; the ratio of throughputs pair by pair (also for
    ``reconstruct --no-high-band``, side by side)."""
    runs = paired_runs({"derive-limb": commands.derive, "reconstruct": commands.reconstruct,
                        "reconstruct --no-high-band":
                        functools.partial(commands.reconstruct, high_band=False)}, repeats)
    ratios = [d.wall_s / r.wall_s for d, r in zip(runs["derive-limb"], runs["reconstruct"], strict=True)]
    rows, out = [], {}
    for name, series in runs.items():
        wall = median([r.wall_s for r in series])
        cpu = median([r.cpu_s for r in series])
        peak = max(r.peak_rss_mib for r in series)
        rows.append([name, wall, n / wall, 1000 * wall / n, cpu, peak])
        out[name] = {"wall_s": wall, "records_per_s": n / wall, "cpu_s": cpu, "peak_rss_mib": peak,
                     "runs": series}
    print(f"\nwhole commands, {n} records, median of {repeats} paired runs:")
    print(table(rows, ["command", "wall s", "records/s", "ms/record", "cpu s", "peak MiB"]))
    ratio = median(ratios)
    verdict = "meets" if ratio >= TARGET_RATIO else "MISSES"
    print(f"throughput ratio reconstruct / derive-limb: {ratio:.3f} "
          f"(pairs {', '.join(f'{r:.3f}' for r in ratios)}) {verdict} the >= {TARGET_RATIO} target")
    out["ratio"] = ratio
    out["ratios"] = ratios
    without = [d.wall_s / r.wall_s for d, r in zip(runs["derive-limb"],
                                                  runs["reconstruct --no-high-band"], strict=True)]
    print(f"same without the high band: {median(without):.3f} "
          f"(pairs {', '.join(f'{r:.3f}' for r in without)})")
    out["ratio_no_high_band"] = median(without)
    return out


def fixed_costs(commands: Commands, first: Path, repeats: int) -> dict[str, Any]:
    """Each command on one record: what a run costs before the per-record work."""
    one = Path(tempfile.mkdtemp(dir=commands.scratch, prefix="one-"))
    for suffix in (".hea", ".dat"):
        shutil.copy(first.with_suffix(suffix), one)
    runs = paired_runs({"derive-limb": lambda: commands.derive(one),
                        "reconstruct": lambda: commands.reconstruct(one)}, repeats)
    out = {name: median([r.wall_s for r in series]) for name, series in runs.items()}
    print("\none record (start-up, imports, model load): "
          + ", ".join(f"{name} {wall:.2f} s" for name, wall in out.items()))
    return out


def worker_scaling(commands: Commands, workers: list[int], n: int) -> list[dict[str, Any]]:
    """reconstruct with each worker count: records/s and every process's peak RSS."""
    rows, out = [], []
    for count in workers:
        run = commands.reconstruct(workers=count, sample_tree=True)
        peaks = run.process_peaks_mib
        per_worker = max(peaks[1:]) if count > 1 and len(peaks) > 1 else peaks[0] if peaks else 0.0
        rows.append([count, run.wall_s, n / run.wall_s, 1000 * run.wall_s / n, run.cpu_s,
                     " ".join(f"{p:.0f}" for p in peaks)])
        out.append({"workers": count, "wall_s": run.wall_s, "records_per_s": n / run.wall_s,
                    "cpu_s": run.cpu_s, "process_peaks_mib": peaks, "worker_peak_mib": per_worker})
    print("\nreconstruct --workers (one run each; threads per worker = cores / workers):")
    print(table(rows, ["workers", "wall s", "records/s", "ms/record", "cpu s",
                       "peak MiB per process (main first)"]))
    return out


# --------------------------------------------------------------------------------------------
# In-process breakdown


def breakdown(inputs: Path, scratch: Path, model: str, backend: str, threads: int | None,
              profile: bool) -> dict[str, Any]:
    """ms/record per stage for both commands' library code, run in this process."""
    from ecgfill.api import derive_limb_job
    from ecgfill.batch import plan_jobs
    from ecgfill.io.discover import find_records
    from ecgfill.reconstruct import ReconstructSettings, choose_model, reconstruct_job

    settings = ReconstructSettings(model=model, backend=backend, threads=threads)
    items = find_records([str(inputs)])
    load_start = time.perf_counter()
    from ecgfill.io import read_record

    loaded, _ = choose_model(read_record(items[0].path).leads, settings)
    load_s = time.perf_counter() - load_start
    out: dict[str, Any] = {"model_load_s": load_s}
    rows = []
    processes: dict[str, Callable[[Any], Any]] = {
        "derive-limb": derive_limb_job,
        "reconstruct": functools.partial(reconstruct_job, settings),
    }
    for name, process in processes.items():
        target = Path(tempfile.mkdtemp(dir=scratch, prefix=f"inproc-{name}-"))
        warm, _ = plan_jobs(items[:1], target / "warm-up")
        start = time.perf_counter()
        process(warm[0])  # first call pays lazy imports and filter design: reported apart
        out[f"{name}_first_record_s"] = time.perf_counter() - start
        jobs, _ = plan_jobs(items, target / "timed")
        with stage_timers(loaded) as totals:
            start = time.perf_counter()
            run_jobs(name, process, jobs)
            total = time.perf_counter() - start
        per = {stage: 1000 * totals[stage] / len(jobs) for stage in STAGES}
        per["other"] = 1000 * total / len(jobs) - sum(per.values())
        per["total"] = 1000 * total / len(jobs)
        out[name] = per
        rows.append([name, *(per[s] for s in (*STAGES, "other", "total"))])
        if profile and name == "reconstruct":  # a separate pass: the profiler slows what it sees
            profiler = cProfile.Profile()
            jobs, _ = plan_jobs(items, target / "profiled")
            profiler.runcall(run_jobs, name, process, jobs)
            out["profile"] = print_profile(profiler)
        shutil.rmtree(target, ignore_errors=True)
    print(f"\nin-process ms/record ({len(items)} records; not included: model load {load_s:.2f} s, "
          f"first record derive-limb {out['derive-limb_first_record_s']:.2f} s, "
          f"reconstruct {out['reconstruct_first_record_s']:.2f} s):")
    print(table(rows, ["command", *STAGES, "other", "total"]))
    out["ratio"] = out["derive-limb"]["total"] / out["reconstruct"]["total"]
    print(f"in-process throughput ratio reconstruct / derive-limb: {out['ratio']:.3f}")
    return out


def run_jobs(name: str, process: Callable[[Any], Any], jobs: list[Any]) -> None:
    for job in jobs:
        outcome = process(job)
        if outcome.status != "ok":
            raise RuntimeError(f"{name} failed on {job.item.path}: {outcome.error}")


@contextmanager
def stage_timers(model: Any) -> Iterator[dict[str, float]]:
    """Accumulate seconds spent in each stage's library functions while the block runs."""
    from ecgfill import dsp
    from ecgfill.io import wfdb_reader, wfdb_writer
    from ecgfill.models.highband import HighBandModel
    from ecgfill.record import ECGRecord

    totals: dict[str, float] = defaultdict(float)
    targets = [
        (wfdb_reader.WfdbReader, "__init__", "read"),
        (wfdb_reader.WfdbReader, "read", "read"),
        (wfdb_reader.WfdbReader, "verify", "read"),
        (dsp, "resample", "resample"),
        (model, "predict", "model"),
        (HighBandModel, "predict", "high band"),
        (ECGRecord, "with_limb_leads", "derive"),
        (ECGRecord, "in_standard_order", "derive"),
        (wfdb_writer.WfdbWriter, "__init__", "write"),
        (wfdb_writer.WfdbWriter, "write", "write"),
        (wfdb_writer.WfdbWriter, "close", "write"),
    ]
    saved = [(owner, attr, owner.__dict__.get(attr)) for owner, attr, _ in targets]
    for owner, attr, stage in targets:
        setattr(owner, attr, _timed(getattr(owner, attr), stage, totals))
    try:
        yield totals
    finally:
        for owner, attr, original in saved:
            if original is None:
                delattr(owner, attr)  # was inherited or bound: drop the instance/class override
            else:
                setattr(owner, attr, original)


def _timed(function: Callable[..., Any], stage: str, totals: dict[str, float]) -> Callable[..., Any]:
    @functools.wraps(function)
    def timed(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            totals[stage] += time.perf_counter() - start

    return timed


def print_profile(profiler: cProfile.Profile, lines: int = 18) -> str:
    """The top of a profile by own time and by cumulative time (also returned as text)."""
    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text)
    stats.strip_dirs().sort_stats("tottime").print_stats(lines)
    stats.sort_stats("cumulative").print_stats(lines)
    print("\ncProfile of the in-process reconstruct loop:")
    print(text.getvalue())
    return text.getvalue()


if __name__ == "__main__":
    sys.exit(main())
