"""Reconstruction: a reduced-lead record in, a complete 12-lead record out.

Measured leads are never altered; a model predicts only the missing independent leads (I, II,
V1-V6); limb leads follow by lead algebra. Long records stream through in overlapping chunks so
memory stays bounded whatever the length.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from ecgfill.batch import Job, Outcome
from ecgfill.blend import SeamBlender, chunk_windows
from ecgfill.errors import ModelError, RecordError
from ecgfill.leads import INDEPENDENT_LEADS, LIMB_LEADS, STANDARD_LEADS, LeadPlan
from ecgfill.models.choice import Choice
from ecgfill.record import ECGRecord, require_usable

if TYPE_CHECKING:
    from ecgfill.calibrate import Calibration
    from ecgfill.models import ReconstructionModel
    from ecgfill.models.highband import HighBandModel

CHUNK_SECONDS = 300.0  # records longer than one chunk are streamed
CONTEXT_SECONDS = 8.0  # signal read on each side of a chunk so seams see full context
FADE_SECONDS = 2.0  # predictions of consecutive chunks are cross-faded over this after a seam
# A gap in a model's input leaves its predictions NaN this far on each side (a VAE's: see
# gap_reach). Measured on synthetic records at 100 and 250 Hz, gaps of 0.2-1 s bridged for the
# input filter and 0 for the model: outside the masked span no shipped model's prediction moves
# by more than 5 µV (at 1 s from the gap unet-i's still moved by 38 µV).
GAP_CONTEXT_SECONDS = 2.0


@dataclass(frozen=True)
class ReconstructSettings:
    """Options of one ``reconstruct`` run (picklable, shared with worker processes)."""

    model: str = "auto"
    leads: tuple[str, ...] | None = None
    backend: str = "onnx"
    device: str = "cpu"
    threads: int | None = None
    force: bool = False
    interval: float | None = None  # --interval level: write <name>_lower/_upper (ecgfill.bands)
    channel_map: tuple[tuple[str, str], ...] = ()  # device channel -> standard lead
    calibrate_with: str | None = None  # a 12-lead of the same patient (ecgfill.calibrate)
    calibration_map: tuple[tuple[str, str], ...] = ()  # (input, reference) pairs
    high_band: bool = True  # add the high band above the model's rate (ecgfill.models.highband)


_MODEL_CACHE: dict[tuple[str, str, str, int | None], Any] = {}
_AUTO_CHOICE: dict[str, Choice] = {}


def get_model(name: str, settings: ReconstructSettings) -> Any:
    """Load a model (or an any-subset runner) once per process."""
    from ecgfill.models import load_model

    key = (name, settings.backend, settings.device, settings.threads)
    if key not in _MODEL_CACHE:
        _MODEL_CACHE[key] = load_model(
            name, backend=settings.backend, device=settings.device, threads=settings.threads
        )
    return _MODEL_CACHE[key]


TORCH_HINT = "pip install torch, or pip install 'ecgfill[train]'"


def high_band_for(fs: float, model: ReconstructionModel | None,
                  wanted: bool = True) -> HighBandModel | None:
    """The installed high-band model when ``wanted`` and a record at ``fs`` has band above
    what ``model`` carries; else None."""
    if not wanted or model is None:
        return None
    from ecgfill.models.highband import installed

    high = installed()
    return high if high is not None and high.applies(fs, model.fs) else None


def backend_problem(backend: str, device: str) -> str | None:
    """Why ``backend`` cannot run on ``device`` in this environment (one line with what to
    install), or None. Nothing is loaded and no CUDA context is created."""
    if backend == "torch":
        try:
            import torch
        except ImportError:
            return f"--backend torch needs PyTorch, which is not installed ({TORCH_HINT})"
        if device.startswith("cuda") and not torch.cuda.is_available():
            return ("--device cuda: PyTorch sees no CUDA device (a CUDA build of PyTorch and an "
                    "NVIDIA driver are needed; or use --device cpu)")
        return None
    try:
        import onnxruntime
    except ImportError:
        return "--backend onnx needs onnxruntime, which is not installed (pip install onnxruntime)"
    if device.startswith("cuda") and "CUDAExecutionProvider" not in (
            onnxruntime.get_available_providers()):
        return ("--device cuda: this onnxruntime has no CUDA provider (pip uninstall onnxruntime "
                "&& pip install onnxruntime-gpu; or --backend torch, or --device cpu)")
    return None


def check_setup(settings: ReconstructSettings, workers: int = 1) -> None:
    """Fail once, before any record is read, when no record could be reconstructed: the
    backend or device is missing (:func:`backend_problem`), the installed high-band model is
    broken, the named model cannot be loaded, or, for ``--model auto``, no installed model loads
    with this backend. UsageError, one line.

    The model is loaded with the requested device only when this process reconstructs
    (``workers == 1``, and it stays cached); before worker processes fork it is loaded on the
    CPU, since a CUDA context does not survive a fork.
    """
    from ecgfill.errors import UsageError
    from ecgfill.models import installed_cards

    problem = backend_problem(settings.backend, settings.device)
    if problem:
        raise UsageError(problem)
    if settings.high_band:
        from ecgfill.models.highband import installed

        try:
            installed()
        except ModelError as exc:
            raise UsageError(f"high band: {exc} (--no-high-band to go without)") from None
    trial = settings if workers == 1 else replace(settings, device="cpu")
    if settings.model != "auto":
        try:
            get_model(settings.model, trial)
        except ModelError as exc:
            raise UsageError(f"--model: {exc}") from None
        return
    first_error = None
    for card in sorted(installed_cards(), key=lambda c: str(c["name"])):
        try:
            get_model(str(card["name"]), trial)
            return
        except ModelError as exc:
            first_error = first_error or exc
    if first_error is not None:
        raise UsageError(f"--model auto: no installed model loads with --backend "
                         f"{settings.backend} ({first_error})")


def auto_choice(plan: LeadPlan) -> Choice:
    """``--model auto`` for a lead plan (cached per lead set); ModelError when no installed
    model serves it."""
    from ecgfill.models import installed_cards
    from ecgfill.models.choice import choose

    if plan.key not in _AUTO_CHOICE:
        _AUTO_CHOICE[plan.key] = choose(plan, installed_cards())
    return replace(_AUTO_CHOICE[plan.key], plan=plan)


def choose_model(leads: tuple[str, ...], settings: ReconstructSettings) -> tuple[
        ReconstructionModel | None, Choice]:
    """The model for a record's measured ``leads``: ``settings.model`` bound to them, or the
    ``auto`` choice; None when all 8 independent leads are measured. ModelError otherwise."""
    try:
        plan = LeadPlan.of(leads)
    except ValueError as exc:
        raise ModelError(str(exc)) from None
    if settings.model == "auto":
        choice = auto_choice(plan)
        if choice.model is None:
            return None, choice
        return get_model(choice.model, settings).bind(choice.uses), choice
    model = get_model(settings.model, settings).bind(plan.measured)
    return model, Choice(plan, model.name, tuple(model.input_leads))


def model_inputs(record: ECGRecord, input_leads: tuple[str, ...], fill: bool = True) -> np.ndarray:
    """The leads ``input_leads`` from ``record`` as float32 ``[n_inputs, samples]`` in mV.

    Limb leads are derived when the record has two limb leads; non-finite samples become 0
    (kept as NaN with ``fill=False``).
    """
    available = dict(zip(record.leads, record.signal, strict=True))
    if len(set(LIMB_LEADS) & available.keys()) >= 2:
        limb = record.with_limb_leads()
        available.update({n: limb.lead(n) for n in LIMB_LEADS})
    missing = [n for n in input_leads if n not in available]
    if missing:
        raise RecordError(
            record.source or "?",
            f"model needs leads {','.join(input_leads)}; record lacks {','.join(missing)}",
        )
    x = np.stack([available[n] for n in input_leads]).astype(np.float32)
    return np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0) if fill else x


def short_gap_samples(fs: float) -> int:
    """The longest gap (samples at ``fs``) interpolated rather than left without data: the
    limit ``preprocess`` interpolates the training data's gaps up to (``MAX_GAP_MS``)."""
    from ecgfill.preprocess import MAX_GAP_MS
    from ecgfill.quality import gap_samples

    return gap_samples(MAX_GAP_MS, fs)


def bridge_gaps(x: np.ndarray, short_gap: int) -> tuple[np.ndarray, np.ndarray]:
    """A model's input without gaps, and where it had gaps it must not predict across.

    Gaps (non-finite runs) up to ``short_gap`` samples are interpolated linearly, as
    ``preprocess`` does for the training data: the model predicts across them. Longer gaps are
    bridged linearly too, only so that the input filters see no step (a zero-filled gap in a
    signal with an offset would be smeared over seconds by the high-pass); they are returned as
    ``blank`` ``[n_inputs, samples]``, to be set to 0 in the filtered input
    (:func:`predict_at_record_rate`) and to mask the predictions (:func:`gap_reach`).
    """
    from ecgfill.dsp import fill_gaps

    out = np.array(x, dtype=np.float32)
    blank = np.zeros(out.shape, dtype=bool)
    for i, row in enumerate(out):
        finite = np.isfinite(row)
        if finite.all():
            continue
        if not finite.any():
            out[i], blank[i] = 0.0, True
            continue
        short, _ = fill_gaps(row, short_gap)
        blank[i] = ~np.isfinite(short)
        out[i], _ = fill_gaps(short, row.size)
    return out, blank


def gap_reach(model: ReconstructionModel, blank: np.ndarray, fs: float) -> np.ndarray:
    """``[samples]`` at ``fs``: the predictions that depend on a gap of the model's input
    (``blank`` from :func:`bridge_gaps`). A network with self-attention (the VAE) sees its
    whole window: every prediction a window holding the gap takes part in
    (:func:`ecgfill.blend.window_reach`). Any other model: within :data:`GAP_CONTEXT_SECONDS`
    of the gap, or the span its linear path reads if longer."""
    from ecgfill.blend import window_reach
    from ecgfill.dsp import resampled_length, true_runs

    marked = blank.any(axis=0)
    config = (getattr(model, "card", None) or {}).get("config") or {}
    if config.get("heads") and marked.any():
        n_model = resampled_length(marked.size, fs, model.fs)
        reach = window_reach(_at_rate(marked, fs, model.fs, n_model), model.window)
        return _at_rate(reach, model.fs, fs, marked.size)
    context = int(np.ceil(max(GAP_CONTEXT_SECONDS, float(config.get("lag_seconds") or 0)) * fs))
    mask = np.zeros(marked.size, dtype=bool)
    for start, stop in true_runs(marked):
        mask[max(0, start - context) : stop + context] = True
    return mask


def predict_at_record_rate(
    model: ReconstructionModel, x: np.ndarray, fs: float, samples: int = 0,
    blank: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Run ``model`` on ``x`` ``[n_inputs, samples]`` sampled at ``fs``; outputs at ``fs`` too.

    The inputs go through the filters the model was trained with (a baseline-wander high-pass
    for the shipped models), so predictions carry no baseline wander; the measured leads
    themselves are never filtered. ``blank`` (``[n_inputs, samples]``, from
    :func:`bridge_gaps`) marks input samples that hold no data: the model sees 0 there, the
    filtered signal's baseline. Returns the prediction and, when ``samples`` > 1 (VAE models),
    its per-sample spread.
    """
    from ecgfill.dsp import apply_filters, fit_length, resample

    n = x.shape[-1]
    same_rate = abs(fs - model.fs) < 1e-9
    x_model = x if same_rate else resample(x, fs, model.fs)
    x_model = apply_filters(x_model, model.fs, getattr(model, "input_filters", None))
    if blank is not None and blank.any():
        x_model = x_model.copy()
        x_model[_at_rate(blank, fs, model.fs, x_model.shape[-1])] = 0.0
    spread = None
    if samples > 1:
        mean, std = model.predict(x_model[None], samples=samples)
        y, spread = np.asarray(mean[0], np.float32), np.asarray(std[0], np.float32)
    else:
        y = np.asarray(model.predict(x_model[None])[0], dtype=np.float32)
    outs = [y] if spread is None else [y, spread]
    if not same_rate:
        outs = [resample(o, model.fs, fs) for o in outs]
    outs = [fit_length(o, n) for o in outs]
    return outs[0], (outs[1] if spread is not None else None)


def _at_rate(mask: np.ndarray, fs: float, fs_out: float, n_out: int) -> np.ndarray:
    """A boolean ``[..., samples]`` mask at ``fs`` taken at ``n_out`` samples of ``fs_out``:
    an output sample is marked when the input sample nearest to it, or either neighbour, is."""
    if abs(fs - fs_out) < 1e-9 and mask.shape[-1] == n_out:
        return mask
    nearest = np.rint(np.arange(n_out) * (fs / fs_out)).astype(np.int64)
    last = mask.shape[-1] - 1
    return (mask[..., np.clip(nearest - 1, 0, last)] | mask[..., np.clip(nearest, 0, last)]
            | mask[..., np.clip(nearest + 1, 0, last)])


def reconstruct_record(
    record: ECGRecord, model: ReconstructionModel | None, samples: int = 0,
    calibration: Calibration | None = None, high_band: HighBandModel | None = None,
) -> tuple[ECGRecord, np.ndarray | None]:
    """A complete 12-lead record: measured leads untouched, missing independent leads predicted by
    ``model`` (None when all 8 are measured), limb leads derived exactly. Also returns the
    predictions' spread (VAE, samples > 1).

    Gaps are not invented: where the measured leads are NaN, every lead computed from them is
    NaN too. Derived limb leads are by arithmetic. Predictions are NaN within the model's
    context (:func:`gap_reach`: 2 s, a VAE's windows) of a gap in any of its inputs,
    and wherever a measured lead the predictions are corrected to (:meth:`LeadPlan.complete`)
    is NaN. Gaps up to :func:`short_gap_samples` (50 ms) are the exception: they are
    interpolated in the model's input, as in its training data, and predicted across.
    ``calibration`` (:mod:`ecgfill.calibrate`) corrects the predictions for the patient;
    ``high_band`` (:mod:`ecgfill.models.highband`, from :func:`high_band_for`) adds what lies
    above the model's band at the record's rate, predicted from all measured leads.
    """
    plan = LeadPlan.of(record.leads)
    predicted: dict[str, np.ndarray] = {}
    spread = None
    if model is not None:
        raw = model_inputs(record, tuple(model.input_leads), fill=False)
        x, blank = bridge_gaps(raw, short_gap_samples(record.fs))
        y, spread = predict_at_record_rate(model, x, record.fs, samples, blank)
        if calibration is not None:
            y = calibration.correct(x, y)
        if high_band is not None:  # from all measured leads (the model's inputs when equal)
            measured = x if tuple(model.input_leads) == plan.inputs else bridge_gaps(
                model_inputs(record, plan.inputs, fill=False), short_gap_samples(record.fs))[0]
            y = y + high_band.predict(measured, record.fs, plan, model.output_leads)
        invalid = gap_reach(model, blank, record.fs) | _uncorrectable(record, plan)
        if invalid.any():
            y[:, invalid] = np.nan
            if spread is not None:
                spread[:, invalid] = np.nan
        predicted = dict(zip(model.output_leads, y, strict=True))
    elif not plan.is_complete:
        raise RecordError(record.source or "?", f"leads {plan.key} need a model")
    full = complete_record(record, plan, predicted)
    if model is not None:
        full.model = f"{model.name} {model.version}"
        if high_band is not None:
            from ecgfill.models.highband import band_top_hz

            full.model += (f" + {high_band.name} {high_band.version} (high band "
                           f"{high_band.bandwidth_hz[0]:g}-{band_top_hz(record.fs):g} Hz)")
    return full, spread


def _uncorrectable(record: ECGRecord, plan: LeadPlan) -> np.ndarray:
    """``[samples]``: True where a measured quantity the predictions are corrected to is NaN
    (the single limb lead other than I or II that fixes one frontal degree of freedom)."""
    weights = np.abs(plan.lift[[INDEPENDENT_LEADS.index(n) for n in plan.predicted]])
    coupled = tuple(n for j, n in enumerate(plan.inputs) if weights[:, j].max(initial=0) > 1e-9)
    if not coupled:
        return np.zeros(record.n_samples, dtype=bool)
    return ~np.isfinite(model_inputs(record, coupled, fill=False)).all(axis=0)


def complete_record(record: ECGRecord, plan: LeadPlan,
                    predicted: dict[str, np.ndarray]) -> ECGRecord:
    """The 12 leads from a record's measured leads and a model's predictions: predictions
    corrected to agree with every measurement (:meth:`LeadPlan.complete`), measured leads
    copied bit-exactly, the other limb leads derived from I and II."""
    independent = plan.complete(model_inputs(record, plan.inputs), predicted)
    rows = {n: (record.lead(n), o) for n, o in zip(record.leads, record.origins, strict=True)}
    for name in plan.predicted:
        rows[name] = (independent[INDEPENDENT_LEADS.index(name)].astype(np.float32),
                      "reconstructed")
    names = [n for n in STANDARD_LEADS if n in rows]
    partial = replace(
        record,
        signal=np.stack([rows[n][0] for n in names]),
        leads=tuple(names),
        origins=tuple(rows[n][1] for n in names),
        comments=list(record.comments),
        warnings=list(record.warnings),
    )
    full = partial.with_limb_leads().in_standard_order()
    if not full.is_complete():
        lacking = sorted(set(STANDARD_LEADS) - set(full.leads))
        raise RecordError(record.source or "?", f"leads {','.join(lacking)} left missing")
    return full


@dataclass
class RecordPlan:
    """How one record is served: the model (None: none needed, or copied through), the leads
    that count as measured (None: all), the choice behind it, notes for the user, and the
    dead leads (no usable signal) left out of the measured ones, with why."""

    model: ReconstructionModel | None
    view: tuple[str, ...] | None
    choice: Choice | None = None
    copy_through: bool = False
    notes: list[str] = field(default_factory=list)
    unused: tuple[str, ...] = ()
    dead: dict[str, str] = field(default_factory=dict)


def dead_leads(reader: Any, windows: list[tuple[int, int, int, int]],
               first: ECGRecord) -> dict[str, str]:
    """The record's leads without usable signal over the whole record -> why: no finite
    sample, or flat (the one flat rule, :data:`ecgfill.quality.FLAT_MV`). ``first`` is the
    first chunk as read; later chunks are read only while some lead still looks dead."""
    from ecgfill.quality import FLAT_MV, flat_text

    low = np.full(len(first.leads), np.inf)
    high = -low
    for k, (_, _, keep_lo, keep_hi) in enumerate(windows):
        signal = first.signal if k == 0 else reader.read(keep_lo, keep_hi).signal
        finite = np.isfinite(signal)
        low = np.minimum(low, np.where(finite, signal, np.inf).min(axis=1))
        high = np.maximum(high, np.where(finite, signal, -np.inf).max(axis=1))
        if (high - low >= FLAT_MV).all():
            return {}
    return {name: "has no finite samples" if lo > hi else flat_text(hi - lo)
            for name, lo, hi in zip(first.leads, low, high, strict=True) if not hi - lo >= FLAT_MV}


def plan_record(first: ECGRecord, settings: ReconstructSettings,
                dead: dict[str, str] | None = None) -> RecordPlan:
    """Decide the model and which leads count as measured, from the record's first chunk.
    ``dead`` (:func:`dead_leads`): leads that count as not measured; the record is planned
    from the others, and fails only when none is left."""
    where = first.source or "?"
    view = settings.leads
    if view is not None:
        missing = [n for n in view if n not in first.leads]
        if missing:
            raise RecordError(where, f"--leads names {','.join(missing)}, not in record")
    leads = view or first.leads
    unused = (*first.other_channels, *(n for n in first.leads if n not in leads))
    dead = {n: why for n, why in (dead or {}).items() if n in leads}
    if dead:
        leads = view = tuple(n for n in leads if n not in dead)
        if not leads:
            raise RecordError(where, f"no usable lead: {_dead_text(dead)}")
    if set(leads) >= set(STANDARD_LEADS) and not settings.force:
        return RecordPlan(None, view, copy_through=True, unused=unused, notes=[
            "record already has 12 leads; copied through (--force reconstructs)"])
    if set(leads) >= set(STANDARD_LEADS) and settings.model == "auto":
        raise RecordError(where, "--force on a 12-lead record needs --model or --leads")
    if view is None and set(leads) >= set(STANDARD_LEADS):
        # --force: only what the model takes counts as measured
        loaded = get_model(settings.model, settings)
        if loaded.input_leads == "any":
            raise RecordError(where, f"--force with the any-subset model {loaded.name} needs "
                              "--leads (which leads count as measured)")
        view, leads = tuple(loaded.input_leads), tuple(loaded.input_leads)
    try:
        model, choice = choose_model(tuple(leads), settings)
    except ModelError as exc:
        because = f" ({_dead_text(dead)}: not usable)" if dead else ""
        raise RecordError(where, f"{exc}{because}") from None
    return RecordPlan(model, view, choice, unused=unused, dead=dead)


def _dead_text(dead: dict[str, str]) -> str:
    return "; ".join(f"lead {name} {why}" for name, why in dead.items())


def reconstruct_job(settings: ReconstructSettings, job: Job) -> Outcome:
    """Reconstruct one input record into its output record, streaming long records in chunks.

    Dead leads (:func:`dead_leads`) count as not measured. The warnings cover the whole
    record (:class:`~ecgfill.quality.QualityScan` over every chunk's kept part), with
    durations and times in seconds of the record."""
    import time

    from ecgfill.bands import Bands
    from ecgfill.calibrate import job_calibration
    from ecgfill.io import open_record, open_writer
    from ecgfill.preprocess import MAX_GAP_MS
    from ecgfill.quality import QualityScan, quality_warnings

    t0 = time.perf_counter()
    assert job.output is not None
    with open_record(job.item.path, dict(settings.channel_map)) as reader:
        fs, n = reader.fs, reader.n_samples
        windows = chunk_windows(n, max(1, int(CHUNK_SECONDS * fs)), int(CONTEXT_SECONDS * fs))
        first = reader.read(*windows[0][:2])
        require_usable(first, dead_ok=True)
        plan = plan_record(first, settings, dead_leads(reader, windows, first))
        model, view, notes = plan.model, plan.view, plan.notes
        calibration = job_calibration(settings, str(job.item.path), model, first, notes,
                                      reconstruct_record)
        high = high_band_for(fs, model, settings.high_band)
        scan = QualityScan(first.leads, fs, n, MAX_GAP_MS)
        bands = Bands(job.output, job.fmt, n, settings.interval, model,
                      plan.choice.plan.measured if plan.choice else None, str(job.item.path))
        with open_writer(job.output, job.fmt, n) as out, bands:
            seams = SeamBlender(int(FADE_SECONDS * fs))
            for k, (lo, hi, keep_lo, keep_hi) in enumerate(windows):
                rec = first if k == 0 else reader.read(lo, hi)
                keep = slice(keep_lo - lo, keep_hi - lo)
                scan.add(rec.signal[:, keep])
                if view is not None:
                    rec = rec.select(list(view))
                if plan.unused:
                    rec.comments.append(f"unused channels: {', '.join(plan.unused)}")
                if not plan.copy_through:
                    rec, _ = reconstruct_record(rec, model, calibration=calibration,
                                                high_band=high)
                if calibration is not None:  # after the chunk: says what was applied
                    rec.comments.append(calibration.comment())
                piece = _slice(rec, keep)
                predicted = [i for i, o in enumerate(rec.origins) if o != "measured"]
                piece.signal = seams.blend("signal", piece.signal, rec.signal, predicted, keep_hi - lo)
                out.write(piece)
                bands.write(rec, keep, seams, keep_hi - lo, piece)
            reader.verify()
        final = out.template
    if calibration is not None:  # the lead guard decides chunk by chunk
        notes.extend(w for w in calibration.warnings() if w not in notes)
    used = view or first.leads
    first_chunk_only = set(quality_warnings(first.signal, first.leads))  # now for the record
    warnings = [w for w in final.warnings if w not in first_chunk_only]
    warnings += scan.reader_warnings(tuple(n for n in first.leads if n not in plan.dead),
                                     gaps=used if model is not None else ())
    band = None
    if model is not None:
        from ecgfill.models.highband import reconstructed_band

        band = reconstructed_band(fs, model.fs, getattr(model, "input_filters", None),
                                  high is not None)
    warnings += scan.clinical_warnings(model.fs if model else None, used,
                                       band[1] if band else None)
    origins = dict(zip(final.leads, final.origins, strict=True))
    warnings += [f"lead {name} {why} over the whole record: not used as measured, "
                 f"{origins.get(name, 'left out')} instead" for name, why in plan.dead.items()]
    return Outcome(
        input=str(job.item.path),
        output=str(job.output),
        status="ok",
        details={
            "model": f"{model.name} {model.version}" if model else None,
            "model_leads": list(model.input_leads) if model else [],
            "lead_set": plan.choice.plan.key if plan.choice else None,
            "model_validation_r": plan.choice.figure if plan.choice else None,
            "unused_channels": list(plan.unused),
            "leads_measured": final.leads_with("measured"),
            "leads_derived": final.leads_with("derived"),
            "leads_reconstructed": final.leads_with("reconstructed"),
            "fs": fs,
            "bandwidth_hz": band,
            "high_band_model": f"{high.name} {high.version}" if high else None,
            "n_samples": n,
            "seconds": round(time.perf_counter() - t0, 4),
            "calibration": calibration.summary() if calibration is not None else None,
            **bands.summary(),
        },
        warnings=list(dict.fromkeys(warnings + notes)),
    )


def _slice(record: ECGRecord, keep: slice) -> ECGRecord:
    return replace(record, signal=record.signal[:, keep], warnings=record.warnings)
