"""Library entry points behind the CLI commands (usable from Python directly)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ecgfill.batch import Job, Outcome
from ecgfill.errors import RecordError
from ecgfill.io import read_record, write_record
from ecgfill.record import ECGRecord


def require_usable(record: ECGRecord) -> None:
    """Refuse a single-sample record and records with a lead that holds no finite sample."""
    if record.n_samples < 2:
        raise RecordError(record.source or "?", "record has a single sample; nothing to process")
    for name, row in zip(record.leads, record.signal, strict=True):
        if not np.isfinite(row).any():
            raise RecordError(record.source or "?", f"lead {name} has no finite samples (all NaN)")


def derive_limb_leads(record: ECGRecord) -> ECGRecord:
    """The record with all six limb leads (derived exactly from any two limb leads), leads in
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
    from ecgfill.quality import clinical_warnings

    record = read_record(job.item.path)
    result = derive_limb_leads(record)
    written = write_record(result, job.output, job.fmt) if job.output else []
    return Outcome(
        input=str(job.item.path),
        output=str(Path(written[-1]).with_suffix("")) if written else None,
        status="ok",
        details=record_details(result),
        warnings=result.warnings + clinical_warnings(record),
    )
