"""Benchmark personal calibration: seconds to calibrate on one reference (target <= 1 s).

For each model and reference (synthetic 12-lead records from ``ecgfill.synth``: 10 s at 100 and
500 Hz, and 5 min at 500 Hz, of which the first 2 min are fitted), the time of
:func:`ecgfill.calibrate.prepare` (read excluded: the reference is in memory; resampling to the
record's rate, the model run on the masked reference, the filters and the fits included) plus
the beat-template check on a 10-s 250 Hz record (:func:`ecgfill.calibrate.for_job`); median of
``--repeats`` after one warm-up run.

    .venv/bin/python benchmarks/bench_calibration.py
    .venv/bin/python benchmarks/bench_calibration.py --models unet-i-ii-v4 --repeats 3 --json
"""

from __future__ import annotations

import argparse
import statistics
import time

from _common import finish, machine, print_machine, table

from ecgfill.calibrate import Guard, for_job
from ecgfill.reconstruct import ReconstructSettings, choose_model, reconstruct_record
from ecgfill.synth import SynthParams, synthesize

PATIENT = SynthParams(axis_deg=100.0, heart_rate_bpm=70.0, noise_mv=0.01)
REFERENCES = (("10 s, 100 Hz", 10.0, 100.0), ("10 s, 500 Hz", 10.0, 500.0),
              ("5 min, 500 Hz", 300.0, 500.0))
INPUTS = {"unet-i-ii-v4": ["I", "II", "V4"], "unet-i": ["I"], "vae-ii-v1-v5": ["II", "V1", "V5"],
          "linear-i-ii-v4": ["I", "II", "V4"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="unet-i-ii-v4,unet-i,vae-ii-v1-v5")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    record = synthesize(10.0, 250.0, PATIENT, seed=2)
    rows = []
    for name in args.models.split(","):
        leads = INPUTS.get(name, ["I", "II", "V4"])
        model, _ = choose_model(tuple(leads), ReconstructSettings(model=name))
        reduced = record.select(leads)
        for label, seconds, fs in REFERENCES:
            reference = synthesize(seconds, fs, PATIENT, seed=1)
            reference.source = f"synthetic {label}"
            times = []
            for k in range(args.repeats + 1):
                t0 = time.perf_counter()
                for_job(reference.source, model, reduced, False, reconstruct_record, reference)
                if k:
                    times.append(time.perf_counter() - t0)
            rows.append({"model": name, "reference": label, "seconds_median":
                         round(statistics.median(times), 4), "seconds_max": round(max(times), 4),
                         "target_s": 1.0})
    info = machine()
    print_machine(info)
    print(table([[r["model"], r["reference"], f"{r['seconds_median']:.3f}",
                  f"{r['seconds_max']:.3f}"] for r in rows],
                ["model", "reference", "median s", "max s"]))
    finish({"machine": info, "guard": Guard().__dict__, "rows": rows}, args.json)


if __name__ == "__main__":
    main()
