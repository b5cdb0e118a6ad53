"""Library entry points behind the CLI commands (usable from Python directly)."""

from __future__ import annotations

from pathlib import Path

from ecgfill.batch import Job, Outcome
from ecgfill.errors import RecordError
from ecgfill.io import read_record, write_record
from ecgfill.record import ECGRecord, require_usable


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


INFO_CHUNK_SAMPLES = 1 << 22  # samples per lead read at a time by describe_record


def describe_record(path: str | Path) -> dict[str, object]:
    """What ``ecgfill info`` shows about one record (like WFDB's ``wfdbdesc``): its leads with
    their origins and the header's gain, baseline, units and storage, the rate, length and
    start, the checksum status, the channels that are no ECG lead, the model and the warnings.

    The whole record is read (in chunks, bounded memory), so the checksums are verified; an
    unreadable or corrupt record raises :class:`~ecgfill.errors.RecordError`.
    """
    from ecgfill.io import open_record
    from ecgfill.io.names import normalize_lead_name
    from ecgfill.quality import MIN_SECONDS, clinical_warnings

    with open_record(path) as reader:
        n = reader.n_samples
        first: ECGRecord | None = None
        warnings: list[str] = []
        for start in range(0, n, INFO_CHUNK_SAMPLES):
            chunk = reader.read(start, min(n, start + INFO_CHUNK_SAMPLES))
            first = first or chunk
            clinical = clinical_warnings(chunk) if start == 0 or chunk.seconds >= MIN_SECONDS else []
            warnings += [w for w in chunk.warnings + clinical if w not in warnings]
        reader.verify()
        checksums = reader.checksum_status()
        channels = reader.channels()
    assert first is not None
    origins = dict(zip(first.leads, first.origins, strict=True))
    leads = []
    for channel in channels:
        found = normalize_lead_name(str(channel["label"]))
        if found is not None and found[0] in origins:
            leads.append({"lead": found[0], "origin": origins[found[0]], **channel})
    leads.sort(key=lambda item: first.leads.index(str(item["lead"])))
    start_time = first.start.isoformat() if first.start is not None else None
    return {
        "input": str(path),
        "fs": first.fs,
        "n_samples": n,
        "seconds": round(n / first.fs, 6),
        "start": start_time,
        "leads": leads,
        "model": first.model,
        "checksums": checksums,
        "unused_channels": list(first.other_channels),
        "comments": list(first.comments),
        "warnings": warnings,
    }


def list_models(verify: bool = True) -> list[dict[str, object]]:
    """The installed reconstruction models: name, family, input leads (or "any"), rate,
    parameters, validation r per lead set, where the card is and whether every weight file
    matches the SHA-256 in its card."""
    from pathlib import Path

    from ecgfill.errors import ModelError
    from ecgfill.models import installed_cards
    from ecgfill.models.base import verify_sha256
    from ecgfill.models.choice import is_any_subset, lead_set_figures

    out: list[dict[str, object]] = []
    for card in sorted(installed_cards(), key=lambda c: str(c["name"])):
        sha_ok: bool | None = None
        if verify:
            folder = Path(str(card["card_path"])).parent
            try:
                for file_name in card.get("sha256") or {}:
                    verify_sha256(card, folder / file_name)
                sha_ok = bool(card.get("sha256"))
            except ModelError:
                sha_ok = False
        family = str(card["arch"])
        if is_any_subset(card):
            family += f" ({(card.get('config') or {}).get('core', 'unet')} core)"
        out.append({
            "name": card["name"],
            "version": card.get("version"),
            "family": family,
            "input_leads": "any" if is_any_subset(card) else list(card["input_leads"]),
            "fs": card["fs"],
            "parameters": card.get("parameters"),
            "validation_r": {key: entry.get("r") for key, entry in lead_set_figures(card).items()},
            "sha256_ok": sha_ok,
            "card": card["card_path"],
        })
    return out


def reconstruct(record: ECGRecord, model: str = "auto", backend: str = "onnx",
                reference: ECGRecord | str | Path | None = None) -> ECGRecord:
    """The complete 12-lead record for ``record`` (any combination of measured leads):
    ``model`` "auto" picks as ``ecgfill reconstruct`` does (no model when all 8 independent
    leads are measured), or a model name or path. Measured leads are returned bit-exactly.
    ``reference``: a 12-lead record (or its path) of the same patient, for personal
    calibration (:mod:`ecgfill.calibrate`; said in the result's comments and warnings)."""
    from ecgfill.errors import ModelError
    from ecgfill.reconstruct import ReconstructSettings, choose_model, reconstruct_record

    try:
        chosen, _ = choose_model(record.leads, ReconstructSettings(model=model, backend=backend))
    except ModelError as exc:
        raise RecordError(record.source or "?", str(exc)) from None
    if reference is None:
        return reconstruct_record(record, chosen)[0]
    from ecgfill.calibrate import annotate, record_calibration

    calibration = record_calibration(record, chosen, reference, reconstruct_record)
    return annotate(reconstruct_record(record, chosen, calibration=calibration)[0], calibration)
