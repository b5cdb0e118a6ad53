"""Library entry points behind the CLI commands (usable from Python directly)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ecgfill.batch import Job, Outcome
from ecgfill.errors import RecordError
from ecgfill.io import read_record, write_record
from ecgfill.leads import STANDARD_LEADS
from ecgfill.record import ECGRecord

if TYPE_CHECKING:
    from ecgfill.models import ReconstructionModel


def require_usable(record: ECGRecord) -> None:
    """Refuse records with a lead that holds no finite sample at all."""
    for name, row in zip(record.leads, record.signal, strict=True):
        if not np.isfinite(row).any():
            raise RecordError(record.source or "?", f"lead {name} has no finite samples (all NaN)")


def derive_limb_leads(record: ECGRecord) -> ECGRecord:
    """The record with all six limb leads (derived exactly from two of I, II, III), leads in
    standard order; measured leads are untouched."""
    require_usable(record)
    try:
        return record.with_limb_leads().in_standard_order()
    except ValueError as exc:
        have = ",".join(record.leads)
        raise RecordError(record.source or "?", f"{exc} (record has {have})") from None


def record_details(record: ECGRecord) -> dict[str, object]:
    """The per-record JSON fields every batch command reports."""
    return {
        "leads_measured": record.leads_with("measured"),
        "leads_derived": record.leads_with("derived"),
        "fs": record.fs,
        "n_samples": record.n_samples,
    }


def derive_limb_job(job: Job) -> Outcome:
    """Read, derive the limb leads, write: one ``derive-limb`` record."""
    record = read_record(job.item.path)
    result = derive_limb_leads(record)
    written = write_record(result, job.output, job.fmt) if job.output else []
    return Outcome(
        input=str(job.item.path),
        output=str(Path(written[-1]).with_suffix("")) if written else None,
        status="ok",
        details=record_details(result),
        warnings=result.warnings,
    )


def model_inputs(record: ECGRecord, input_leads: tuple[str, ...]) -> np.ndarray:
    """The model's input leads from ``record`` as float32 ``[n_inputs, samples]`` in mV.

    I and II are derived when the record has two of I, II, III; non-finite samples become 0.
    """
    available = dict(zip(record.leads, record.signal, strict=True))
    if not {"I", "II"} <= available.keys() and len({"I", "II", "III"} & available.keys()) >= 2:
        limb = record.with_limb_leads()
        available.update({n: limb.lead(n) for n in ("I", "II")})
    missing = [n for n in input_leads if n not in available]
    if missing:
        raise RecordError(
            record.source or "?",
            f"model needs leads {','.join(input_leads)}; record lacks {','.join(missing)}",
        )
    x = np.stack([available[n] for n in input_leads]).astype(np.float32)
    return np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)


def predict_at_record_rate(model: ReconstructionModel, x: np.ndarray, fs: float) -> np.ndarray:
    """Run ``model`` on ``x`` ``[n_inputs, samples]`` sampled at ``fs``; output at ``fs`` too."""
    from ecgfill.dsp import resample

    n = x.shape[-1]
    same_rate = abs(fs - model.fs) < 1e-9
    x_model = x if same_rate else resample(x, fs, model.fs)
    y = np.asarray(model.predict(x_model[None])[0], dtype=np.float32)
    if not same_rate:
        y = resample(y, model.fs, fs)
    if y.shape[-1] != n:  # rational resampling can be off by a sample at the end
        y = y[:, :n] if y.shape[-1] > n else np.pad(y, ((0, 0), (0, n - y.shape[-1])), mode="edge")
    return y


def reconstruct_record(record: ECGRecord, model: ReconstructionModel) -> ECGRecord:
    """A complete 12-lead record: measured leads untouched, missing independent leads predicted by
    ``model``, limb leads derived exactly by lead algebra."""
    x = model_inputs(record, tuple(model.input_leads))
    predicted = predict_at_record_rate(model, x, record.fs)
    rows = {n: (record.lead(n), origin) for n, origin in zip(record.leads, record.origins, strict=True)}
    for name, row in zip(model.output_leads, predicted, strict=True):
        rows.setdefault(name, (row, "reconstructed"))
    names = [n for n in STANDARD_LEADS if n in rows]
    partial = ECGRecord(
        signal=np.stack([rows[n][0] for n in names]),
        fs=record.fs,
        leads=tuple(names),
        origins=tuple(rows[n][1] for n in names),
        source=record.source,
        comments=list(record.comments),
        other_channels=record.other_channels,
        warnings=list(record.warnings),
        model=f"{model.name} {model.version}",
    )
    full = partial.with_limb_leads().in_standard_order()
    if not full.is_complete():
        lacking = sorted(set(STANDARD_LEADS) - set(full.leads))
        raise RecordError(record.source or "?", f"model left leads {','.join(lacking)} missing")
    return full
