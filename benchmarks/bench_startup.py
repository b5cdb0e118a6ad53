"""Benchmark CLI start-up: ``ecgfill --help`` wall time (target <= 0.5 s) and what it imports.

Each command runs ``--runs`` times as a child process (after one unmeasured warm-up that fills
the file cache); the median is the figure. ``python -X importtime`` then lists the slowest
imports behind ``import ecgfill.cli``.

    .venv/bin/python benchmarks/bench_startup.py
    .venv/bin/python benchmarks/bench_startup.py --runs 20 --json
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from typing import Any

from _common import ECGFILL, child_env, finish, machine, median, print_machine, run_timed, table

TARGET_S = 0.5
COMMANDS = {
    "ecgfill --help": [ECGFILL, "--help"],
    "ecgfill --version": [ECGFILL, "--version"],
    "ecgfill reconstruct --help": [ECGFILL, "reconstruct", "--help"],
    "python -c 'import ecgfill.cli'": [sys.executable, "-c", "import ecgfill.cli"],
    "python -c pass": [sys.executable, "-c", "pass"],
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--imports", type=int, default=12, help="slowest imports to list")
    parser.add_argument("--json", action="store_true", help="also print all figures as JSON")
    args = parser.parse_args()
    info = machine()
    print_machine(info)
    env = child_env()
    rows, timings = [], {}
    for name, argv in COMMANDS.items():
        run_timed(argv, env)  # warm-up
        walls = [run_timed(argv, env).wall_s for _ in range(args.runs)]
        timings[name] = {"median_s": median(walls), "min_s": min(walls), "max_s": max(walls)}
        rows.append([name, median(walls), min(walls), max(walls)])
    print(f"\nstart-up wall time, {args.runs} runs each:")
    print(table(rows, ["command", "median s", "min s", "max s"]))
    help_s = timings["ecgfill --help"]["median_s"]
    verdict = "meets" if help_s <= TARGET_S else "MISSES"
    print(f"ecgfill --help: {help_s:.3f} s {verdict} the <= {TARGET_S} s target")
    slowest = import_times(args.imports, env)
    print("\nslowest imports of 'import ecgfill.cli' (cumulative, python -X importtime):")
    print(table([[m.ljust(40), us / 1000] for m, us in slowest], ["module", "ms"]))
    results: dict[str, Any] = {"machine": info, "timings": timings, "slowest_imports_ms":
                               {m.strip(): us / 1000 for m, us in slowest}}
    finish(results, args.json)
    return 0


def import_times(count: int, env: dict[str, str]) -> list[tuple[str, int]]:
    """The ``count`` imports with the largest cumulative time (microseconds), any depth; each
    name is indented by its nesting depth."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", "import ecgfill.cli"],
                          env=env, capture_output=True, text=True, check=True)
    pattern = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \| ( *)(\S+)")
    found = []
    for line in done.stderr.splitlines():
        match = pattern.match(line)
        if match:
            found.append((" " * len(match.group(3)) + match.group(4), int(match.group(2))))
    return sorted(found, key=lambda item: -item[1])[:count]

if __name__ == "__main__":
    sys.exit(main())
