"""``evaluate --calibration same-patient``: score personal calibration on patients with several
records.

For each patient with at least two records, the earliest (in record-id order: PTB-XL's ecg_id,
since record dates are not in the data) is the reference; the others are masked to the model's
input leads, reconstructed with and without the calibration fitted on the reference, and scored
on their learned leads (per-record Pearson r, mean over learned leads). A patient's gain is the
mean over its scored records; the report gives the mean gain with a bootstrap CI over patients
and how many patients got worse by more than :data:`WORSE_BY`. As a check of the guard, every
patient is also calibrated with the next patient's reference (``other_patient``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ecgfill.beats import beat_template, pearson, template_similarity
from ecgfill.calibrate import Guard, fit
from ecgfill.errors import UsageError
from ecgfill.leads import INDEPENDENT_LEADS, STANDARD_LEADS, LeadPlan

WORSE_BY = 0.03
BATCH = 256
PROTOCOL = ("same patient: calibrate on the patient's earliest record (record-id order), score "
            "the others; learned-lead per-record Pearson r; signals 0.5 Hz high-passed as the "
            "models were trained")


@dataclass
class Recording:
    """One record as the model sees it: input-filtered ``inputs``, the ``prediction`` of the
    model's output leads, the true ``independent`` leads (I, II, V1-V6) and the inputs' beat
    template."""

    name: str
    inputs: np.ndarray
    prediction: np.ndarray
    independent: np.ndarray
    template: np.ndarray | None


@dataclass
class Patient:
    pid: str
    records: list[Recording]  # earliest first


def dataset_patients(path: Path, split: str, model: Any, limit: int | None = None
                     ) -> list[Patient]:
    """The patients of a ``preprocess`` dataset's ``split`` with at least two valid records,
    each record predicted by ``model`` (which must run at the dataset's rate and filter)."""
    from ecgfill.train.data import open_dataset

    ds = open_dataset(path)
    if abs(model.fs - ds.fs) > 1e-6:
        raise UsageError(f"model {model.name} runs at {model.fs:g} Hz but dataset {path} is at "
                         f"{ds.fs:g} Hz")
    rows = [int(i) for i in ds.indices(split) if ds.n_valid[int(i)] > 0]
    groups: dict[str, list[int]] = {}
    for i in rows:
        pid = str(ds.manifest[i].get("patient_id") or "")
        if pid:
            groups.setdefault(pid, []).append(i)
    if not groups:
        raise UsageError(f"{path}: split {split!r} has no records with a patient_id")
    order = sorted((sorted(v, key=lambda i: str(ds.manifest[i].get("id"))), p)
                   for p, v in groups.items() if len(v) >= 2)
    if limit:
        order = order[:limit]
    wanted = sorted(i for members, _ in order for i in members)
    rec = dict(_predict_rows(ds, wanted, model))
    return [Patient(pid, [rec[i] for i in members]) for members, pid in order]


def record_patients(references: Sequence[str], model: Any, limit: int | None = None
                    ) -> tuple[list[Patient], list[tuple[str, str]]]:
    """The patients (patient id from header comments, e.g. ``patient_id: 15709``) with at least
    two complete records among ``references`` (files, folders, globs), each resampled to the
    model's rate, input-filtered as the model's inputs are, and predicted; records within a
    patient in path order. Also the records that could not be used, with why."""
    from ecgfill.dsp import apply_filters, resample
    from ecgfill.errors import EcgfillError
    from ecgfill.evaluate.run import complete_reference
    from ecgfill.io import read_record
    from ecgfill.io.discover import find_records
    from ecgfill.preprocess.splits import patient_id_from_comments

    groups: dict[str, list[Recording]] = {}
    skipped: list[tuple[str, str]] = []
    columns = [STANDARD_LEADS.index(n) for n in model.input_leads]
    independent = [STANDARD_LEADS.index(n) for n in INDEPENDENT_LEADS]
    for item in find_records(list(references)):
        if item.error:
            skipped.append((str(item.path), item.error))
            continue
        try:
            record = read_record(item.path)
            pid = patient_id_from_comments(record.comments)
            if pid is None:
                skipped.append((str(item.path), "no patient id in the header comments"))
                continue
            full = complete_reference(record, item.path).signal
        except EcgfillError as exc:
            skipped.append((str(item.path), str(exc)))
            continue
        if abs(record.fs - model.fs) > 1e-9:
            full = resample(full, record.fs, model.fs)
        signal = apply_filters(np.nan_to_num(full), model.fs, model.input_filters)
        prediction = np.asarray(model.predict(signal[None, columns])[0], dtype=np.float32)
        groups.setdefault(pid, []).append(Recording(
            str(item.path), signal[columns], prediction, signal[independent],
            beat_template(signal[columns], model.fs)))
    patients = [Patient(pid, recs) for pid, recs in sorted(groups.items()) if len(recs) >= 2]
    return patients[:limit] if limit else patients, skipped


def _predict_rows(ds: Any, rows: list[int], model: Any) -> Iterator[tuple[int, Recording]]:
    columns = [STANDARD_LEADS.index(n) for n in model.input_leads]
    independent = [STANDARD_LEADS.index(n) for n in INDEPENDENT_LEADS]
    for start in range(0, len(rows), BATCH):
        batch = rows[start: start + BATCH]
        signals = np.asarray(ds.signals[batch], dtype=np.float32)
        n = int(ds.n_valid[batch].min())
        signals = signals[:, :, :n]
        prediction = np.asarray(model.predict(signals[:, columns]), dtype=np.float32)
        for k, i in enumerate(batch):
            inputs = signals[k, columns]
            yield i, Recording(str(ds.manifest[i].get("id")), inputs, prediction[k],
                               signals[k, independent], beat_template(inputs, ds.fs))


def patient_gains(patients: Sequence[Patient], model: Any, fs: float, guard: Guard,
                  other: bool = False) -> list[dict[str, Any]]:
    """Per patient: mean learned-lead r of its non-reference records without and with the
    calibration fitted on its earliest record (``other``: on the next patient's earliest)."""
    plan = LeadPlan.of(model.input_leads)
    learned = [INDEPENDENT_LEADS.index(n) for n in plan.predicted]
    out_leads = tuple(model.output_leads)
    rows = []
    for p, patient in enumerate(patients):
        ref = patients[(p + 1) % len(patients)].records[0] if other else patient.records[0]
        truth = {n: ref.independent[INDEPENDENT_LEADS.index(n)] for n in out_leads}
        cal = fit(ref.name, model.name, fs, ref.inputs, ref.prediction, truth,
                  tuple(model.input_leads), out_leads, guard)
        before, after, fell = [], [], 0
        for target in patient.records[1:]:
            checked = cal.for_record(target.inputs, template_similarity(
                cal.template, target.template, fs))
            corrected = checked.apply(target.inputs, target.prediction)
            fell += len(checked.outcome()[1])
            for pred, scores in ((target.prediction, before), (corrected, after)):
                full = plan.complete(target.inputs, dict(zip(out_leads, pred, strict=True)))
                scores.append(np.nanmean([pearson(full[j], target.independent[j])
                                          for j in learned]))
        rows.append({"patient": patient.pid, "records": len(before),
                     "uncalibrated": float(np.mean(before)), "calibrated": float(np.mean(after)),
                     "gain": float(np.mean(after) - np.mean(before)),
                     "leads_fallen_back": fell / (len(before) * len(out_leads))})
    return rows


def summarize_gains(rows: Sequence[dict[str, Any]], n_boot: int, seed: int) -> dict[str, Any]:
    """Mean uncalibrated and calibrated r, the gain with its bootstrap CI over patients, and
    the patients worse (better) by more than :data:`WORSE_BY`."""
    from ecgfill.evaluate.metrics import summarize

    gains = np.array([r["gain"] for r in rows])
    worse = int((gains < -WORSE_BY).sum())
    return {
        "patients": len(rows),
        "records_scored": int(sum(r["records"] for r in rows)),
        "uncalibrated_r": summarize([r["uncalibrated"] for r in rows], n_boot, seed),
        "calibrated_r": summarize([r["calibrated"] for r in rows], n_boot, seed),
        "gain": summarize(gains, n_boot, seed),
        "worse": worse,
        "worse_share": worse / len(rows) if rows else None,
        "better": int((gains > WORSE_BY).sum()),
        "lead_fallback_share": float(np.mean([r["leads_fallen_back"] for r in rows]))
        if rows else None,
    }


def same_patient_report(references: Sequence[str], split: str | None, model: Any,
                        guard: Guard = Guard(), n_boot: int = 1000, seed: int = 0,
                        limit: int | None = None) -> dict[str, Any]:
    """The ``evaluate --calibration same-patient`` report for a ``preprocess`` dataset's split
    (one dataset directory and ``split``) or for record files with patient ids."""
    from ecgfill import console
    from ecgfill.evaluate.run import is_dataset_dir

    skipped: list[tuple[str, str]] = []
    if len(references) == 1 and is_dataset_dir(references[0]):
        if split is None:
            raise UsageError("--calibration same-patient on a dataset needs --split (e.g. val)")
        patients = dataset_patients(Path(references[0]), split, model, limit)
    else:
        if split is not None:
            raise UsageError("--split needs one preprocess dataset directory")
        patients, skipped = record_patients(references, model, limit)
        for where, why in skipped:
            console.warn(f"{where}: not used: {why}")
    path = ", ".join(references)
    if not patients:
        raise UsageError(f"{path}: no patient has two or more usable records")
    same = patient_gains(patients, model, model.fs, guard)
    other = patient_gains(patients, model, model.fs, guard, other=True)
    return {
        "mode": "calibration-same-patient",
        "protocol": PROTOCOL,
        "references": path,
        "split": split,
        "model": f"{model.name} {getattr(model, 'version', '')}".strip(),
        "input_leads": list(model.input_leads),
        "learned_leads": list(LeadPlan.of(model.input_leads).predicted),
        "guard": {"strength": guard.strength, "min_held_out_gain": guard.min_held_out_gain,
                  "min_similarity": guard.min_similarity},
        "worse_by": WORSE_BY,
        "same_patient": summarize_gains(same, n_boot, seed),
        "other_patient": summarize_gains(other, n_boot, seed),
        "per_patient": same,
        "not_used": [{"record": w, "why": y} for w, y in skipped],
    }


def print_calibration_report(report: dict[str, Any]) -> None:
    """The report as a rich table on stderr."""
    from rich.table import Table

    from ecgfill import console

    table = Table(title=f"Personal calibration, {report['model']} "
                        f"({','.join(report['input_leads'])}), split {report['split']} "
                        "(0.5 Hz high-passed)")
    for column in ("reference", "patients", "uncalibrated r", "calibrated r",
                   "gain [95% CI]", f"worse > {report['worse_by']}", "leads fallen back"):
        table.add_column(column)
    for key, label in (("same_patient", "same patient"), ("other_patient", "other patient")):
        block = report[key]
        gain, ci = block["gain"]["mean"], block["gain"]["ci95"]
        table.add_row(
            label, str(block["patients"]), f"{block['uncalibrated_r']['mean']:.3f}",
            f"{block['calibrated_r']['mean']:.3f}",
            f"{gain:+.3f}" + (f" [{ci[0]:+.3f}, {ci[1]:+.3f}]" if ci else ""),
            f"{block['worse']} ({100 * block['worse_share']:.1f}%)",
            f"{100 * block['lead_fallback_share']:.0f}%")
    console.stderr.print(table)


MODES = ("same-patient",)


def calibration_command(mode: str, references: Sequence[str], model: Any, split: str | None,
                        n_boot: int, seed: int, limit: int | None, json_output: bool,
                        conflicts: Sequence[str] = ()) -> None:
    """``evaluate --calibration MODE``: the report as a table on stderr and, with
    ``json_output``, one JSON object on stdout. ``conflicts``: options given that it cannot
    be combined with (a usage error)."""
    from ecgfill import console

    if mode not in MODES:
        raise UsageError(f"--calibration must be {' or '.join(MODES)}, not {mode!r}")
    if conflicts:
        raise UsageError(f"--calibration cannot be used with {', '.join(conflicts)}")
    report = same_patient_report(references, split, model, n_boot=n_boot, seed=seed,
                                 limit=limit)
    print_calibration_report(report)
    if json_output:
        from ecgfill.evaluate.metrics import json_safe

        console.emit_json(json_safe(report))
