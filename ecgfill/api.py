"""The library's front door: the typed functions behind the CLI commands.

Read and write records (:func:`read_record`, :func:`write_record`), reconstruct a record
(:func:`reconstruct`) or a NumPy array ``[leads, samples]`` in mV with lead names
(:func:`reconstruct_array`), derive the limb leads (:func:`derive_limb_leads`), evaluate models
or reconstructions against references (:func:`evaluate`), list the installed models
(:func:`list_models`) and describe a record (:func:`describe_record`). Problems are raised as
:mod:`ecgfill.errors` exceptions with one line of text.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ecgfill.batch import Job, Outcome
from ecgfill.errors import RecordError, UsageError
from ecgfill.io import read_record, write_record
from ecgfill.record import ECGRecord, require_usable

if TYPE_CHECKING:
    from ecgfill.evaluate.run import EvaluateOptions, Evaluation
    from ecgfill.models import ReconstructionModel

__all__ = [
    "ECGRecord", "derive_limb_leads", "describe_record", "evaluate", "evaluation_models",
    "lead_names", "list_models", "read_record", "reconstruct", "reconstruct_array",
    "record_from_array", "write_record",
]


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
    matches the SHA-256 in its card; the high-band model last (its r: of the 47.5-150 Hz band
    alone)."""
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
    return out + _high_band_models(verify)


def _high_band_models(verify: bool) -> list[dict[str, object]]:
    """The installed high-band models (:mod:`ecgfill.models.highband`), as list_models rows."""
    import json

    from ecgfill.errors import ModelError
    from ecgfill.models.highband import HighBandModel, card_paths
    from ecgfill.models.registry import model_dirs

    rows: list[dict[str, object]] = []
    for path in card_paths(model_dirs()):
        card = json.loads(path.read_text())
        sha_ok: bool | None = None
        if verify:
            try:
                HighBandModel.load(path)
                sha_ok = True
            except ModelError:
                sha_ok = False
        low, top = card.get("bandwidth_hz") or (None, None)
        rows.append({
            "name": card["name"], "version": card.get("version"),
            "family": f"high band {low:g}-{top:g} Hz (linear any-subset)",
            "input_leads": "any", "fs": card["fs"], "parameters": 0,
            "validation_r": {key: entry.get("r_mean") for key, entry in
                             ((card.get("validation") or {}).get("lead_sets") or {}).items()},
            "sha256_ok": sha_ok, "card": str(path),
        })
    return rows


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


def lead_names(leads: str | Sequence[str], what: str = "leads") -> tuple[str, ...]:
    """Canonical names of ``leads`` (``"I,II,V4"`` or a sequence; aliases such as ``D1``, ``C4``,
    ``ECG II`` accepted); UsageError naming ``what`` on an unknown or repeated lead."""
    from ecgfill.io.names import parse_lead_list

    try:
        return parse_lead_list(leads if isinstance(leads, str) else ",".join(leads))
    except ValueError as exc:
        raise UsageError(f"{what}: {exc}") from None


def record_from_array(signal: np.ndarray, leads: Sequence[str], fs: float,
                      source: str = "array") -> ECGRecord:
    """An :class:`ECGRecord` from a float array ``[leads, samples]`` in mV and one name per
    row, built as the readers build one (:func:`ecgfill.io.channels.build_record`): names
    normalised (``D1``, ``C4``, ``ECG II``, ``avf`` ...; an inverted ``-aVR`` is flipped back),
    leads in standard order, measured, with the readers' quality warnings. A single lead may
    be a 1-D array. UsageError (one line) when the array looks transposed (``[samples,
    leads]``), when its rows and the names do not match, or on an unknown lead name."""
    from ecgfill.io.channels import ChannelSet, build_record
    from ecgfill.io.names import normalize_lead_name

    names = [leads] if isinstance(leads, str) else list(leads)
    try:
        data = np.asarray(signal, dtype=np.float64)
    except (TypeError, ValueError):
        raise UsageError(f"{source}: signal is not a numeric array") from None
    if data.ndim == 1 and len(names) == 1:
        data = data[np.newaxis]
    _check_shape(data.shape, len(names), source)
    unknown = [name for name in names if normalize_lead_name(str(name)) is None]
    if unknown:
        raise UsageError(f"{source}: unknown lead name {str(unknown[0])!r} (expected I, II, III, "
                         "aVR, aVL, aVF, V1-V6 or an alias such as D1, C4, ECG II)")
    if not np.isfinite(fs) or fs <= 0:
        raise UsageError(f"{source}: sampling rate must be a positive number of Hz, not {fs!r}")
    channels = ChannelSet(signal=data, labels=[str(n) for n in names],
                          units=["mV"] * len(names), fs=float(fs))
    record = build_record(channels, source, [])
    require_usable(record, dead_ok=True)
    return record


def _check_shape(shape: tuple[int, ...], n_leads: int, source: str) -> None:
    """Refuse a signal that is not ``[leads, samples]`` for ``n_leads`` names, saying when it
    looks transposed."""
    if len(shape) != 2:
        raise UsageError(f"{source}: signal has shape {shape}; expected a 2-D array "
                         f"[leads, samples] with {n_leads} rows")
    rows, columns = shape
    if rows == n_leads:
        return
    if columns == n_leads:
        raise UsageError(f"{source}: signal of shape {shape} looks transposed ({n_leads} lead "
                         f"names match its columns); expected [leads, samples], e.g. signal.T")
    raise UsageError(f"{source}: signal has {rows} rows but {n_leads} lead names were given; "
                     "expected one name per row of [leads, samples]")


def reconstruct_array(signal: np.ndarray, leads: Sequence[str], fs: float, model: str = "auto",
                      backend: str = "onnx",
                      reference: ECGRecord | str | Path | None = None) -> ECGRecord:
    """:func:`reconstruct` for a NumPy array: ``signal`` ``[leads, samples]`` in mV with one
    name per row (aliases accepted, see :func:`record_from_array`) at ``fs`` Hz. Returns the
    12-lead :class:`ECGRecord` (``.signal`` float32 ``[12, samples]`` in mV, ``.leads`` in
    standard order, ``.origins`` measured / derived / reconstructed); measured rows come back
    unchanged (as float32)."""
    return reconstruct(record_from_array(signal, leads, fs), model=model, backend=backend,
                       reference=reference)


def evaluation_models(
    model: str | None = "auto", input_leads: str | Sequence[str] | None = None,
    compare: str | None = None, backend: str = "onnx", device: str = "cpu",
) -> tuple[list[ReconstructionModel], tuple[str, ...]]:
    """The model to evaluate (and the one to ``compare`` it with), each bound to
    ``input_leads`` by the choice ``ecgfill reconstruct`` makes, and the input leads (standard
    order; default: the model's). UsageError naming the ``ecgfill evaluate`` option."""
    from ecgfill.leads import LEAD_INDEX

    leads = None if input_leads is None else lead_names(input_leads, "--input-leads")
    if leads is not None:
        leads = tuple(sorted(leads, key=LEAD_INDEX.__getitem__))  # standard order
    primary = _load(model or "auto", leads, backend, device, "--model")
    if leads is None:
        leads = tuple(primary.input_leads)
    models = [primary]
    if compare is not None:
        models.append(_load(compare, leads, backend, device, "--compare"))
    return models, leads


def _load(name: str, leads: tuple[str, ...] | None, backend: str, device: str,
          flag: str) -> ReconstructionModel:
    from ecgfill.errors import ModelError
    from ecgfill.reconstruct import ReconstructSettings, choose_model, get_model

    settings = ReconstructSettings(model=name, backend=backend, device=device)
    try:
        if leads is None:
            if name == "auto":
                raise UsageError(f"{flag} auto needs --input-leads (e.g. --input-leads I,II,V4)")
            loaded = get_model(name, settings)
            if loaded.input_leads == "any":
                raise UsageError(f"{flag}: {loaded.name} serves any lead set; give --input-leads")
            return loaded
        loaded, _ = choose_model(leads, settings)
    except ModelError as exc:
        raise UsageError(f"{flag}: {exc}") from None
    if loaded is None:
        raise UsageError(f"{flag}: --input-leads {','.join(leads)} give all 12 leads; nothing "
                         "to reconstruct")
    return loaded


def evaluate(
    references: Sequence[str | Path],
    model: str | None = None,
    *,
    input_leads: str | Sequence[str] | None = None,
    compare: str | None = None,
    reconstructed: str | Path | None = None,
    split: str | None = None,
    backend: str = "onnx",
    device: str = "cpu",
    options: EvaluateOptions | None = None,
) -> list[Evaluation]:
    """Score reconstructions against complete 12-lead ``references`` (record files, folders,
    globs, or one ``ecgfill preprocess`` dataset with ``split``), as ``ecgfill evaluate`` does.

    Either ``model`` (None: "auto", which needs ``input_leads``) reconstructs the references
    masked to ``input_leads`` (default: the model's), with ``compare`` a second model run on
    the same records; or ``reconstructed``, a folder of reconstructions, is matched with the
    references. Returns one :class:`~ecgfill.evaluate.run.Evaluation` per model (the compared
    one second); :func:`ecgfill.evaluate.report.build_report` turns them into the report.
    UsageError (naming the ``ecgfill evaluate`` option) on conflicting arguments."""
    from ecgfill.evaluate.run import evaluate_folders, evaluate_models

    refs = [str(r) for r in references]
    if reconstructed is not None:
        given = [flag for flag, value in (("--model", model), ("--input-leads", input_leads),
                                          ("--compare", compare), ("--split", split)) if value]
        if given:
            raise UsageError(f"{', '.join(given)} cannot be used with --reconstructed")
        return [evaluate_folders(refs, reconstructed, options)]
    models, leads = evaluation_models(model, input_leads, compare, backend, device)
    return evaluate_models(refs, models, options, split=split, input_leads=leads)
