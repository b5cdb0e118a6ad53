"""Choose the personal-calibration ridge strength and guard thresholds on the TRAINING folds.

Patients with >= 2 records in the dataset's train split (PTB-XL folds 1-8), earliest record
(record-id order) as reference. For each model and grid point: mean learned-lead r gain over
patients and the share of patients worse by > 0.03; the chosen point maximises the mean gain
over the models among points with every model's worse share <= --max-worse.

    nice -n 19 .venv/bin/python scripts/calibration_tune.py /work/data/ptbxl100hp \
        --models unet-i-ii-v4,unet-i --patients 600
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

import numpy as np

from ecgfill.calibrate import Guard
from ecgfill.evaluate.calibration import WORSE_BY, dataset_patients, patient_gains
from ecgfill.models import load_model


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("dataset", type=Path)
    parser.add_argument("--models", default="unet-i-ii-v4,unet-i")
    parser.add_argument("--patients", type=int, default=600)
    parser.add_argument("--strengths", default="0.03,0.1,0.3,1")
    parser.add_argument("--similarities", default="-1,0.6,0.75,0.85")
    parser.add_argument("--held-out", default="-1,0,0.01")
    parser.add_argument("--max-worse", type=float, default=0.02)
    args = parser.parse_args()
    floats = lambda text: [float(v) for v in text.split(",")]  # noqa: E731
    grid = list(itertools.product(floats(args.strengths), floats(args.held_out),
                                  floats(args.similarities)))
    results: dict[tuple[float, ...], dict[str, tuple[float, float]]] = {g: {} for g in grid}
    for name in args.models.split(","):
        model = load_model(name, threads=1)
        t0 = time.time()
        patients = dataset_patients(args.dataset, "train", model)
        rng = np.random.default_rng(0)
        keep = rng.choice(len(patients), min(args.patients, len(patients)), replace=False)
        patients = [patients[i] for i in sorted(keep)]
        print(f"{name}: {len(patients)} train patients ({time.time() - t0:.0f} s)", flush=True)
        for point in grid:
            rows = patient_gains(patients, model, model.fs, Guard(*point))
            gains = np.array([r["gain"] for r in rows])
            results[point][name] = (float(gains.mean()), float((gains < -WORSE_BY).mean()))
            print(f"  strength {point[0]:g} held-out {point[1]:g} similarity {point[2]:g}: "
                  f"gain {gains.mean():+.4f} worse {100 * (gains < -WORSE_BY).mean():.1f}%",
                  flush=True)
    ok = [g for g in grid if all(w <= args.max_worse for _, w in results[g].values())]
    best = max(ok or grid, key=lambda g: np.mean([m for m, _ in results[g].values()]))
    print(json.dumps({"chosen": dict(zip(("strength", "min_held_out_gain", "min_similarity"),
                                         best, strict=True)),
                      "figures": {k: {"gain": v[0], "worse_share": v[1]}
                                  for k, v in results[best].items()}}, indent=1))


if __name__ == "__main__":
    main()
