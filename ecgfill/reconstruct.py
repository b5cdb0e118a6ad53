"""Reconstruction: a reduced-lead record in, a complete 12-lead record out.

Measured leads are never altered; a model predicts only the missing independent leads (I, II,
V1-V6); limb leads follow by lead algebra. Long records stream through in overlapping chunks so
memory stays bounded whatever the length.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ecgfill.batch import Job, Outcome
from ecgfill.blend import SeamBlender, chunk_windows
from ecgfill.errors import ModelError, RecordError
from ecgfill.leads import INDEPENDENT_LEADS, LIMB_LEADS, STANDARD_LEADS, LeadPlan
from ecgfill.models.choice import Choice
from ecgfill.record import ECGRecord

if TYPE_CHECKING:
    from ecgfill.models import ReconstructionModel

CHUNK_SECONDS = 300.0  # records longer than one chunk are streamed
CONTEXT_SECONDS = 8.0  # signal read on each side of a chunk so seams see full context
FADE_SECONDS = 2.0  # predictions of consecutive chunks are cross-faded over this after a seam


@dataclass(frozen=True)
class ReconstructSettings:
    """Options of one ``reconstruct`` run (picklable, shared with worker processes)."""

    model: str = "auto"
    leads: tuple[str, ...] | None = None
    backend: str = "onnx"
    device: str = "cpu"
    threads: int | None = None
    force: bool = False
    uncertainty_samples: int = 0
    channel_map: tuple[tuple[str, str], ...] = ()  # device channel -> standard lead


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
    backend or device is missing (:func:`backend_problem`), the named model cannot be loaded,
    or, for ``--model auto``, no installed model loads with this backend. UsageError, one line.

    The model is loaded with the requested device only when this process reconstructs
    (``workers == 1``, and it stays cached); before worker processes fork it is loaded on the
    CPU, since a CUDA context does not survive a fork.
    """
    from ecgfill.errors import UsageError
    from ecgfill.models import installed_cards

    problem = backend_problem(settings.backend, settings.device)
    if problem:
        raise UsageError(problem)
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


def model_inputs(record: ECGRecord, input_leads: tuple[str, ...]) -> np.ndarray:
    """The leads ``input_leads`` from ``record`` as float32 ``[n_inputs, samples]`` in mV.

    Limb leads are derived when the record has two limb leads; non-finite samples become 0.
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
    return np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)


def predict_at_record_rate(
    model: ReconstructionModel, x: np.ndarray, fs: float, samples: int = 0
) -> tuple[np.ndarray, np.ndarray | None]:
    """Run ``model`` on ``x`` ``[n_inputs, samples]`` sampled at ``fs``; outputs at ``fs`` too.

    The inputs go through the filters the model was trained with (a baseline-wander high-pass
    for the shipped models), so predictions carry no baseline wander; the measured leads
    themselves are never filtered. Returns the prediction and, when ``samples`` > 1 (VAE
    models), its per-sample spread.
    """
    from ecgfill.dsp import apply_filters, resample

    n = x.shape[-1]
    same_rate = abs(fs - model.fs) < 1e-9
    x_model = x if same_rate else resample(x, fs, model.fs)
    x_model = apply_filters(x_model, model.fs, getattr(model, "input_filters", None))
    spread = None
    if samples > 1:
        mean, std = model.predict(x_model[None], samples=samples)
        y, spread = np.asarray(mean[0], np.float32), np.asarray(std[0], np.float32)
    else:
        y = np.asarray(model.predict(x_model[None])[0], dtype=np.float32)
    outs = [y] if spread is None else [y, spread]
    if not same_rate:
        outs = [resample(o, model.fs, fs) for o in outs]
    outs = [_fit_length(o, n) for o in outs]
    return outs[0], (outs[1] if spread is not None else None)


def _fit_length(y: np.ndarray, n: int) -> np.ndarray:
    """Trim or edge-pad the last axis to ``n`` (rational resampling can be a sample off)."""
    if y.shape[-1] == n:
        return y
    return y[:, :n] if y.shape[-1] > n else np.pad(y, ((0, 0), (0, n - y.shape[-1])), mode="edge")


def reconstruct_record(
    record: ECGRecord, model: ReconstructionModel | None, samples: int = 0
) -> tuple[ECGRecord, np.ndarray | None]:
    """A complete 12-lead record: measured leads untouched, missing independent leads predicted by
    ``model`` (None when all 8 are measured), limb leads derived exactly. Also returns the
    predictions' spread (VAE, samples > 1)."""
    plan = LeadPlan.of(record.leads)
    predicted: dict[str, np.ndarray] = {}
    spread = None
    if model is not None:
        x = model_inputs(record, tuple(model.input_leads))
        y, spread = predict_at_record_rate(model, x, record.fs, samples)
        predicted = dict(zip(model.output_leads, y, strict=True))
    elif not plan.is_complete:
        raise RecordError(record.source or "?", f"leads {plan.key} need a model")
    full = complete_record(record, plan, predicted)
    if model is not None:
        full.model = f"{model.name} {model.version}"
    return full, spread


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
    that count as measured (None: all), the choice behind it, notes for the user."""

    model: ReconstructionModel | None
    view: tuple[str, ...] | None
    choice: Choice | None = None
    copy_through: bool = False
    notes: list[str] = field(default_factory=list)
    unused: tuple[str, ...] = ()


def plan_record(first: ECGRecord, settings: ReconstructSettings) -> RecordPlan:
    """Decide the model and which leads count as measured, from the record's first chunk."""
    where = first.source or "?"
    view = settings.leads
    if view is not None:
        missing = [n for n in view if n not in first.leads]
        if missing:
            raise RecordError(where, f"--leads names {','.join(missing)}, not in record")
    leads = view or first.leads
    unused = (*first.other_channels, *(n for n in first.leads if n not in leads))
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
        raise RecordError(where, str(exc)) from None
    return RecordPlan(model, view, choice, unused=unused)


def reconstruct_job(settings: ReconstructSettings, job: Job) -> Outcome:
    """Reconstruct one input record into its output record, streaming long records in chunks."""
    import time

    from ecgfill.api import require_usable
    from ecgfill.io import open_record, open_writer
    from ecgfill.quality import clinical_warnings

    t0 = time.perf_counter()
    assert job.output is not None
    with open_record(job.item.path, dict(settings.channel_map)) as reader:
        fs, n = reader.fs, reader.n_samples
        windows = chunk_windows(n, max(1, int(CHUNK_SECONDS * fs)), int(CONTEXT_SECONDS * fs))
        first = reader.read(*windows[0][:2])
        plan = plan_record(first, settings)
        model, view, notes = plan.model, plan.view, plan.notes
        samples = settings.uncertainty_samples if model is not None else 0
        if samples > 1 and not model.stochastic:
            notes.append(f"model {model.name} is deterministic: no spread written "
                         "(--uncertainty needs a vae)")
            samples = 0
        spread_base = Path(str(job.output) + "_spread")
        side_writer = _maybe_writer(spread_base, job.fmt, n, samples)
        with open_writer(job.output, job.fmt, n) as out, side_writer as side:
            seams = SeamBlender(int(FADE_SECONDS * fs))
            for k, (lo, hi, keep_lo, keep_hi) in enumerate(windows):
                rec = first if k == 0 else reader.read(lo, hi)
                if view is not None:
                    rec = rec.select(list(view))
                if plan.unused:
                    rec.comments.append(f"unused channels: {', '.join(plan.unused)}")
                if k == 0:
                    require_usable(rec)
                    notes.extend(clinical_warnings(rec, model.fs if model else None))
                spread = None
                if not plan.copy_through:
                    rec, spread = reconstruct_record(rec, model, samples)
                keep = slice(keep_lo - lo, keep_hi - lo)
                piece = _slice(rec, keep)
                predicted = [i for i, o in enumerate(rec.origins) if o != "measured"]
                piece.signal = seams.blend("signal", piece.signal, rec.signal, predicted, keep_hi - lo)
                out.write(piece)
                if side is not None and spread is not None:
                    rows = list(range(spread.shape[0]))
                    kept = seams.blend("spread", spread[:, keep], spread, rows, keep_hi - lo)
                    side.write(_spread_record(rec, model, kept))
            reader.verify()
        final = out.template
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
            "n_samples": n,
            "seconds": round(time.perf_counter() - t0, 4),
        },
        warnings=final.warnings + notes,
    )


def _slice(record: ECGRecord, keep: slice) -> ECGRecord:
    return replace(record, signal=record.signal[:, keep], warnings=record.warnings)


def _maybe_writer(base: Path, fmt: str, n: int, samples: int) -> Any:
    from contextlib import nullcontext

    from ecgfill.io import open_writer

    return open_writer(base, fmt, n) if samples > 1 else nullcontext(None)


def _spread_record(record: ECGRecord, model: ReconstructionModel, spread: np.ndarray) -> ECGRecord:
    """Sidecar ``<name>_spread``: per-sample spread (std over VAE samples) of the predicted leads."""
    return ECGRecord(
        signal=spread,
        fs=record.fs,
        leads=tuple(model.output_leads),
        origins=("reconstructed",) * len(model.output_leads),
        comments=[f"per-sample spread (std over samples) of {model.name}, mV"],
        model=f"{model.name} {model.version}",
    )
