"""Choose the personal-calibration ridge strength and guard thresholds on the TRAINING folds.

Patients with >= 2 records in the dataset's train split (PTB-XL folds 1-8; 0.5 Hz high-passed
as the models were trained), earliest record (record-id order: ecg_id, the data hold no dates)
as reference, the others scored. For each model and ridge strength one pass records, per
scored record and learned lead, Pearson r without and with the calibration, the lead's held-out
gain within the reference and the beat-template similarity; the guard thresholds are then
applied to those. The chosen point maximises the mean gain over the models among points where
every model has at most --max-worse of patients worse by more than 0.03.

    nice -n 19 .venv/bin/python scripts/calibration_tune.py data/ptbxl100hp \
        --models unet-i-ii-v4,unet-i --patients 400
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

import numpy as np

from ecgfill.calibrate import Guard, fit, pearson, template_similarity
from ecgfill.evaluate.calibration import WORSE_BY, dataset_patients
from ecgfill.leads import INDEPENDENT_LEADS
from ecgfill.models import load_model


def per_lead(patients: list, model: object, strength: float) -> list[list[np.ndarray]]:
    """Per patient, per scored record: ``[4, leads]`` rows r uncalibrated, r calibrated,
    held-out gain, similarity (every lead calibrated: no guard)."""
    out_leads = tuple(model.output_leads)
    rows = [INDEPENDENT_LEADS.index(n) for n in out_leads]
    open_guard = Guard(strength, -np.inf, -np.inf)
    result = []
    for patient in patients:
        ref = patient.records[0]
        truth = {n: ref.independent[j] for n, j in zip(out_leads, rows, strict=True)}
        cal = fit(ref.name, model.name, model.fs, ref.inputs, ref.prediction, truth,
                  tuple(model.input_leads), out_leads, open_guard)
        records = []
        for target in patient.records[1:]:
            corrected = cal.apply(target.inputs, target.prediction)
            sim = template_similarity(ref.template, target.template, model.fs)
            records.append(np.array([
                [pearson(target.prediction[k], target.independent[j]) for k, j in enumerate(rows)],
                [pearson(corrected[k], target.independent[j]) for k, j in enumerate(rows)],
                [cal.held_out_gain.get(n, -np.inf) for n in out_leads],
                [-np.inf if sim is None else sim] * len(out_leads)]))
        result.append(records)
    return result


def score(table: list[list[np.ndarray]], held_out: float, similarity: float) -> tuple[float, float]:
    gains = []
    for records in table:
        g = []
        for r in records:
            use = (r[2] >= held_out) & (r[3] >= similarity)
            g.append(np.nanmean(np.where(use, r[1], r[0])) - np.nanmean(r[0]))
        gains.append(np.mean(g))
    gains_a = np.array(gains)
    return float(gains_a.mean()), float((gains_a < -WORSE_BY).mean())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("dataset", type=Path)
    parser.add_argument("--models", default="unet-i-ii-v4,unet-i")
    parser.add_argument("--patients", type=int, default=400)
    parser.add_argument("--strengths", default="0.3,1,3,10")
    parser.add_argument("--similarities", default="-1,0.5,0.6,0.7,0.8,0.9")
    parser.add_argument("--held-out", default="-1,0,0.005,0.01,0.02")
    parser.add_argument("--max-worse", type=float, default=0.02)
    args = parser.parse_args()
    floats = lambda text: [float(v) for v in text.split(",")]  # noqa: E731
    thresholds = list(itertools.product(floats(args.held_out), floats(args.similarities)))
    results: dict[tuple[float, ...], dict[str, tuple[float, float]]] = {}
    for name in args.models.split(","):
        model = load_model(name, threads=1)
        t0 = time.time()
        patients = dataset_patients(args.dataset, "train", model)
        keep = np.random.default_rng(0).choice(len(patients), min(args.patients, len(patients)),
                                               replace=False)
        patients = [patients[i] for i in sorted(keep)]
        print(f"{name}: {len(patients)} train patients ({time.time() - t0:.0f} s)", flush=True)
        for strength in floats(args.strengths):
            table = per_lead(patients, model, strength)
            for held_out, similarity in thresholds:
                gain, worse = score(table, held_out, similarity)
                results.setdefault((strength, held_out, similarity), {})[name] = (gain, worse)
                print(f"  strength {strength:g} held-out {held_out:g} similarity "
                      f"{similarity:g}: gain {gain:+.4f} worse {100 * worse:.1f}%", flush=True)
    ok = [g for g, v in results.items() if all(w <= args.max_worse for _, w in v.values())]
    best = max(ok or results, key=lambda g: np.mean([m for m, _ in results[g].values()]))
    print(json.dumps({"chosen": dict(zip(("strength", "min_held_out_gain", "min_similarity"),
                                         best, strict=True)),
                      "figures": {k: {"gain": v[0], "worse_share": v[1]}
                                  for k, v in results[best].items()}}, indent=1))


if __name__ == "__main__":
    main()
