"""Choose the personal-calibration strength and guard thresholds (ecgfill.calibrate).

Patients with >= 2 records in a split of a ``preprocess`` dataset (0.5 Hz high-passed as the
models were trained), earliest record (record-id order: ecg_id, the data hold no dates) as
reference, the others scored. The models' residuals on their own training records are smaller
than on new ones, so the choice is made on the validation split's patients (PTB-XL fold 9), on
one half of them by patient (``--half 0``), and the other half (``--half 1``) scores it. For
each model and strength one pass records, per scored record and learned lead, Pearson r without
and with the calibration, the lead's held-out gain within the reference, the lead's beat
similarity and the record's input-template similarity; the guard thresholds are then applied to
those. The chosen point maximises the mean gain over the models among points where every model
has at most --max-worse of patients worse by more than 0.03.

    nice -n 19 .venv/bin/python scripts/calibration_tune.py data/ptbxl100hp --split val --half 0
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

import numpy as np

from ecgfill.beats import pearson, template_similarity
from ecgfill.calibrate import Guard, fit
from ecgfill.evaluate.calibration import WORSE_BY, dataset_patients
from ecgfill.leads import INDEPENDENT_LEADS
from ecgfill.models import load_model


def per_lead(patients: list, model: object, strength: float) -> list[list[np.ndarray]]:
    """Per patient, per scored record: ``[5, leads]`` rows r uncalibrated, r calibrated,
    held-out gain, lead similarity, record similarity (no guard: every lead corrected)."""
    out_leads = tuple(model.output_leads)
    rows = [INDEPENDENT_LEADS.index(n) for n in out_leads]
    open_guard = Guard(strength, -np.inf, -np.inf, -np.inf)
    result = []
    for patient in patients:
        ref = patient.records[0]
        truth = {n: ref.independent[j] for n, j in zip(out_leads, rows, strict=True)}
        cal = fit(ref.name, model.name, model.fs, ref.inputs, ref.prediction, truth,
                  tuple(model.input_leads), out_leads, open_guard)
        records = []
        for target in patient.records[1:]:
            checked = cal.for_record(target.inputs)
            corrected = checked.apply(target.inputs, target.prediction)
            sim = template_similarity(cal.template, target.template, model.fs)
            records.append(np.array([
                [pearson(target.prediction[k], target.independent[j]) for k, j in enumerate(rows)],
                [pearson(corrected[k], target.independent[j]) for k, j in enumerate(rows)],
                [cal.held_out_gain.get(n, -np.inf) for n in out_leads],
                [checked.lead_similarity.get(n, -np.inf) for n in out_leads],
                [-np.inf if sim is None else sim] * len(out_leads)]))
        result.append(records)
    return result


def score(table: list[list[np.ndarray]], thresholds: tuple[float, float, float]
          ) -> tuple[float, float]:
    """Mean gain over patients and the share worse by more than WORSE_BY."""
    held_out, lead_sim, similarity = thresholds
    gains = []
    for records in table:
        g = []
        for r in records:
            use = (r[2] >= held_out) & (np.nan_to_num(r[3], nan=-np.inf) >= lead_sim) & (r[4] >= similarity)
            g.append(np.nanmean(np.where(use, r[1], r[0])) - np.nanmean(r[0]))
        gains.append(np.mean(g))
    gains_a = np.array(gains)
    return float(gains_a.mean()), float((gains_a < -WORSE_BY).mean())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("dataset", type=Path)
    parser.add_argument("--split", default="val")
    parser.add_argument("--half", type=int, choices=(0, 1), default=None,
                        help="every other patient (by patient order) from this one; default all")
    parser.add_argument("--models", default="unet-i-ii-v4,unet-i")
    parser.add_argument("--strengths", default="0.4,0.5,0.6,0.7")
    parser.add_argument("--lead-similarities", default="-1,0.8,0.85,0.9,0.95")
    parser.add_argument("--held-out", default="-1,0")
    parser.add_argument("--similarities", default="-1,0.5,0.8,0.9")
    parser.add_argument("--max-worse", type=float, default=0.02)
    parser.add_argument("--choose", default=None, help="score only this strength,held-out,"
                        "lead-similarity,similarity point")
    args = parser.parse_args()
    floats = lambda text: [float(v) for v in text.split(",")]  # noqa: E731
    thresholds = list(itertools.product(floats(args.held_out), floats(args.lead_similarities),
                                        floats(args.similarities)))
    strengths = floats(args.strengths)
    if args.choose:
        point = floats(args.choose)
        strengths, thresholds = [point[0]], [tuple(point[1:])]
    results: dict[tuple[float, ...], dict[str, tuple[float, float]]] = {}
    for name in args.models.split(","):
        model = load_model(name, threads=1)
        t0 = time.time()
        patients = dataset_patients(args.dataset, args.split, model)
        if args.half is not None:
            patients = patients[args.half::2]
        print(f"{name}: {len(patients)} {args.split} patients ({time.time() - t0:.0f} s)",
              flush=True)
        for strength in strengths:
            table = per_lead(patients, model, strength)
            for point in thresholds:
                gain, worse = score(table, point)
                results.setdefault((strength, *point), {})[name] = (gain, worse)
                print(f"  strength {strength:g} held-out {point[0]:g} lead similarity "
                      f"{point[1]:g} similarity {point[2]:g}: gain {gain:+.4f} "
                      f"worse {100 * worse:.1f}%", flush=True)
    ok = [g for g, v in results.items() if all(w <= args.max_worse for _, w in v.values())]
    best = max(ok or results, key=lambda g: np.mean([m for m, _ in results[g].values()]))
    keys = ("strength", "min_held_out_gain", "min_lead_similarity", "min_similarity")
    print(json.dumps({"chosen": dict(zip(keys, best, strict=True)),
                      "figures": {k: {"gain": v[0], "worse_share": v[1]}
                                  for k, v in results[best].items()}}, indent=1))


if __name__ == "__main__":
    main()
