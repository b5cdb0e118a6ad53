"""Benchmark personal calibration: seconds to calibrate on one reference (target <= 1 s).

For each model and case (a synthetic 12-lead reference from ``ecgfill.synth``: 10 s at 100 and
500 Hz, 5 min at 500 Hz, of which the first 2 min are fitted; and the reduced record it
calibrates, 10 s at 100, 250 or 500 Hz), the time of :func:`ecgfill.calibrate.for_job`: the
reference is in memory (read excluded); bringing it to the model's rate, the model run on the
masked reference, the filters, the fits and the beat-template check on the record included.
Wall and CPU seconds (this process, all threads), median of ``--repeats`` after one warm-up
run. On a shared machine the wall time also counts waiting for a core; the CPU time does not.

``--baseline REV`` times ``ecgfill/calibrate.py`` as it was at git revision ``REV`` in the same
run, interleaved with the current one (same machine state), and gives the largest difference
between the two calibrations' weights (0 up to rounding where the fit is unchanged).

    .venv/bin/python benchmarks/bench_calibration.py
    .venv/bin/python benchmarks/bench_calibration.py --models unet-i-ii-v4 --baseline HEAD --json
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import time
from types import ModuleType
from typing import Any

import numpy as np
from _common import REPO, finish, machine, print_machine, table

from ecgfill import calibrate
from ecgfill.reconstruct import ReconstructSettings, choose_model, reconstruct_record
from ecgfill.synth import SynthParams, synthesize

PATIENT = SynthParams(axis_deg=100.0, heart_rate_bpm=70.0, noise_mv=0.01)
# (reference label, reference seconds, reference Hz, record Hz)
CASES = (("10 s, 100 Hz", 10.0, 100.0, 100.0), ("10 s, 100 Hz", 10.0, 100.0, 250.0),
         ("10 s, 500 Hz", 10.0, 500.0, 250.0), ("5 min, 500 Hz", 300.0, 500.0, 250.0),
         ("10 s, 500 Hz", 10.0, 500.0, 500.0), ("5 min, 500 Hz", 300.0, 500.0, 500.0))
INPUTS = {"unet-i-ii-v4": ["I", "II", "V4"], "unet-i": ["I"], "vae-ii-v1-v5": ["II", "V1", "V5"],
          "linear-i-ii-v4": ["I", "II", "V4"]}


def baseline_module(rev: str) -> ModuleType:
    """``ecgfill/calibrate.py`` at git revision ``rev``, imported under another name."""
    source = subprocess.run(["git", "show", f"{rev}:ecgfill/calibrate.py"], cwd=REPO,
                            check=True, capture_output=True, text=True).stdout
    spec = importlib.util.spec_from_loader("ecgfill._calibrate_baseline", loader=None)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    exec(compile(source, f"{rev}:ecgfill/calibrate.py", "exec"), module.__dict__)
    return module


def timed(module: ModuleType, model: Any, record: Any, reference: Any) -> tuple[float, float, Any]:
    """Wall and CPU seconds of one calibration with ``module``, and the calibration."""
    t0, c0 = time.perf_counter(), time.process_time()
    cal, _ = module.for_job(reference.source, model, record, False, reconstruct_record, reference)
    return time.perf_counter() - t0, time.process_time() - c0, cal


def weight_difference(a: Any, b: Any) -> float | None:
    """Largest absolute difference between two calibrations' weights (None: different leads)."""
    if a is None or b is None or set(a.weights) != set(b.weights):
        return None
    return max((float(np.abs(a.weights[n] - b.weights[n]).max()) for n in a.weights),
               default=0.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="unet-i-ii-v4,unet-i,vae-ii-v1-v5")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--baseline", metavar="REV", help="also time calibrate.py at REV")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    versions = {"now": calibrate}
    if args.baseline:
        versions = {args.baseline: baseline_module(args.baseline), **versions}
    rows = []
    for name in args.models.split(","):
        leads = INPUTS.get(name, ["I", "II", "V4"])
        model, _ = choose_model(tuple(leads), ReconstructSettings(model=name))
        for label, seconds, ref_fs, record_fs in CASES:
            record = synthesize(10.0, record_fs, PATIENT, seed=2).select(leads)
            reference = synthesize(seconds, ref_fs, PATIENT, seed=1)
            reference.source = f"synthetic {label}"
            walls: dict[str, list[float]] = {v: [] for v in versions}
            cpus: dict[str, list[float]] = {v: [] for v in versions}
            cals: dict[str, Any] = {}
            for k in range(args.repeats + 1):
                for version, module in versions.items():  # interleaved: same machine state
                    wall, cpu, cals[version] = timed(module, model, record, reference)
                    if k:
                        walls[version].append(wall)
                        cpus[version].append(cpu)
            for version in versions:
                rows.append({
                    "model": name, "reference": label, "record_hz": record_fs,
                    "version": version, "wall_s_median": round(statistics.median(walls[version]), 4),
                    "wall_s_max": round(max(walls[version]), 4),
                    "cpu_s_median": round(statistics.median(cpus[version]), 4),
                    "weights_max_diff": (weight_difference(cals[version], cals["now"])
                                         if version != "now" else None),
                    "target_s": 1.0})
    info = machine()
    print_machine(info)
    print(table([[r["model"], r["reference"], f"{r['record_hz']:g}", r["version"],
                  f"{r['wall_s_median']:.3f}", f"{r['wall_s_max']:.3f}", f"{r['cpu_s_median']:.3f}",
                  "" if r["weights_max_diff"] is None else f"{r['weights_max_diff']:.1e}"]
                 for r in rows],
                ["model", "reference", "record Hz", "version", "wall s", "max wall s", "CPU s",
                 "max |Δw|"]))
    finish({"machine": info, "guard": calibrate.Guard().__dict__, "rows": rows}, args.json)


if __name__ == "__main__":
    main()
