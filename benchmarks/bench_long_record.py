"""Benchmark ``ecgfill reconstruct`` on long records: peak memory and time against length.

For each length (default 1 h, 6 h, 24 h of 3-lead I, II, V4 at 500 Hz) a synthetic record is
written chunk by chunk under a temporary folder (bounded memory), reconstructed by the CLI as a
child process, and both are deleted before the next length. Peak RSS is the child's
``ru_maxrss`` (target <= 1 GiB for 24 h); time should grow linearly with length, so seconds per
hour of signal should stay flat.

    .venv/bin/python benchmarks/bench_long_record.py
    .venv/bin/python benchmarks/bench_long_record.py --hours 0.1,0.5 --json
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import ECGFILL, child_env, finish, long_record, machine, print_machine, run_timed, table

TARGET_PEAK_MIB = 1024.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", default="1,6,24", help="record lengths in hours (comma list)")
    parser.add_argument("--fs", type=float, default=500.0)
    parser.add_argument("--leads", default="I,II,V4")
    parser.add_argument("--model", default="auto", help="as reconstruct --model (default auto)")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()),
                        help="where the big temporary records go (default: the temp folder)")
    parser.add_argument("--json", action="store_true", help="also print all figures as JSON")
    args = parser.parse_args()
    info = machine()
    print_machine(info)
    rows, out = [], []
    for hours in (float(h) for h in args.hours.split(",")):
        entry = measure(hours, args.fs, args.leads.split(","), args.model, args.workdir)
        out.append(entry)
        rows.append([f"{hours:g}", entry["input_mib"], entry["output_mib"], entry["wall_s"],
                     entry["cpu_s"], entry["s_per_hour"], entry["peak_rss_mib"]])
        print(f"{hours:g} h done: {entry['wall_s']:.1f} s, peak {entry['peak_rss_mib']:.0f} MiB",
              file=sys.stderr)
    print(f"\nreconstruct on one long record ({args.leads} at {args.fs:g} Hz, model {args.model}):")
    print(table(rows, ["hours", "input MiB", "output MiB", "wall s", "cpu s", "s per hour",
                       "peak RSS MiB"]))
    results: dict[str, Any] = {"machine": info, "lengths": out}
    results.update(linearity(out))
    peak = max(e["peak_rss_mib"] for e in out)
    verdict = "meets" if peak <= TARGET_PEAK_MIB else "MISSES"
    print(f"largest peak RSS {peak:.0f} MiB: {verdict} the <= {TARGET_PEAK_MIB:.0f} MiB target")
    finish(results, args.json)
    return 0


def measure(hours: float, fs: float, leads: list[str], model: str, workdir: Path) -> dict[str, Any]:
    """Write one record of ``hours``, reconstruct it, delete both; the figures."""
    scratch = Path(tempfile.mkdtemp(prefix="bench-long-", dir=workdir))
    try:
        start = time.perf_counter()
        header = long_record(scratch / "in" / f"long{round(hours * 3600)}s", hours, fs, leads)
        made_s = time.perf_counter() - start
        input_mib = _size_mib(scratch / "in")
        run = run_timed([ECGFILL, "reconstruct", str(header), str(scratch / "out"),
                         "--model", model], child_env())
        output_mib = _size_mib(scratch / "out")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return {"hours": hours, "generate_s": made_s, "input_mib": input_mib, "output_mib": output_mib,
            "wall_s": run.wall_s, "cpu_s": run.cpu_s, "s_per_hour": run.wall_s / hours,
            "peak_rss_mib": run.peak_rss_mib}


def linearity(lengths: list[dict[str, Any]]) -> dict[str, Any]:
    """Least-squares fit wall = fixed + per_hour * hours, and the worst deviation from it."""
    if len(lengths) < 2:
        return {}
    import numpy as np

    hours = np.array([e["hours"] for e in lengths])
    wall = np.array([e["wall_s"] for e in lengths])
    per_hour, fixed = np.polyfit(hours, wall, 1)
    deviation = float(np.max(np.abs(wall - (fixed + per_hour * hours)) / wall))
    print(f"fit: wall = {fixed:.1f} s + {per_hour:.1f} s per hour of signal "
          f"(largest deviation {100 * deviation:.1f} %)")
    return {"fit_fixed_s": float(fixed), "fit_s_per_hour": float(per_hour),
            "fit_max_relative_deviation": deviation}


def _size_mib(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20


if __name__ == "__main__":
    sys.exit(main())
