"""Personal calibration: correct a model's output with a prior 12-lead of the same patient.

A patient's standard 12-lead (the *reference*) carries their own lead geometry, which a
population model can only guess. The reference is masked to the model's input leads and
reconstructed; for every learned lead a linear correction of the model's output is fitted on it:

    corrected_j(t) = prediction_j(t) + sum_f w_jf * feature_f(t)

where the features are the model's prediction of lead j and the (input-filtered) input leads,
each read at a few small lags (0, ±10, ±20 ms). Features are scaled to unit RMS and the weights
are a ridge fit shrunk toward "no correction" (w = 0) by :data:`STRENGTH`, chosen on the
training folds (``scripts/calibration_tune.py``). The correction is linear and time-invariant,
so it applies chunk by chunk to records of any length.

The correction is fitted and computed at the model's rate (100 Hz for the shipped models),
where the model itself runs: the reference is brought to that rate, and for a record at
another rate :meth:`Calibration.correct` takes the record's inputs and the prediction to the
model's rate, computes the correction there and adds it, resampled, to the prediction at the
record's rate. So what is applied is what was fitted, whatever the two rates, and the cost of
the fit does not grow with the record's or the reference's rate.

Two guards fall back to the uncalibrated output, each said in the output:

* per lead, when the correction does not generalise within the reference itself: it is fitted
  on one half of the reference and scored on the other (both ways); a lead whose held-out
  Pearson r does not gain at least :data:`MIN_HELD_OUT_GAIN` is left uncalibrated;
* per record, when the record's input-lead beat template (median beat) correlates with the
  reference's below :data:`MIN_SIMILARITY`: the reference looks like another patient or
  another electrode layout.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ecgfill.errors import RecordError
from ecgfill.leads import LIMB_LEADS
from ecgfill.record import ECGRecord

LAG_STEPS = (-2, -1, 0, 1, 2)  # feature lags, in steps of LAG_STEP_SECONDS
LAG_STEP_SECONDS = 0.01
# Chosen on PTB-XL folds 1-8 (patients with >= 2 records), scripts/calibration_tune.py.
# 400 patients, grid strength {1, 3, 10} x held-out gain {-1, 0, .005, .01, .02} x similarity
# {-1, .5, .6, .7, .8, .9}: the best mean gain of unet-i-ii-v4 and unet-i with at most 2 % of
# patients worse by > 0.03 for each.
STRENGTH = 1.0
MIN_HELD_OUT_GAIN = 0.0
MIN_SIMILARITY = 0.9
CROSS_LEADS = False  # whether a lead's correction also reads the other learned leads
MIN_REFERENCE_SECONDS = 5.0
MAX_REFERENCE_SECONDS = 120.0  # a longer reference is fitted on its first two minutes
TEMPLATE_WINDOW_S = (-0.25, 0.45)  # median beat around each detected QRS
TEMPLATE_MAX_SHIFT_S = 0.04
MIN_BEATS = 3
# ecgfill.reconstruct.reconstruct_record: (record, model) -> (12-lead record, spread)
Runner = Callable[..., tuple[ECGRecord, Any]]


@dataclass(frozen=True)
class Guard:
    """The guard's thresholds and the ridge strength (defaults: chosen on training folds)."""

    strength: float = STRENGTH
    min_held_out_gain: float = MIN_HELD_OUT_GAIN
    min_similarity: float = MIN_SIMILARITY


# --------------------------------------------------------------------------------------------
# The fit


def lags(fs: float) -> tuple[int, ...]:
    """Feature lags in samples at ``fs`` (distinct, ascending)."""
    return tuple(sorted({int(round(k * LAG_STEP_SECONDS * fs)) for k in LAG_STEPS}))


def _shifted(x: np.ndarray, lag: int) -> np.ndarray:
    """``x[..., t - lag]`` with the edge sample repeated."""
    idx = np.clip(np.arange(x.shape[-1]) - lag, 0, x.shape[-1] - 1)
    return x[..., idx]


def design(inputs: np.ndarray, own: np.ndarray, lag_set: tuple[int, ...]) -> np.ndarray:
    """``[features, T]``: the prediction ``own`` ``[T]`` (or ``[k, T]``: the lead's own first)
    and each input ``[n_in, T]`` at each lag."""
    own = own[None] if own.ndim == 1 else own
    rows = np.concatenate([own, inputs]).astype(np.float64)
    return np.concatenate([_shifted(rows, lag) for lag in lag_set])


def _rows(prediction: np.ndarray, k: int) -> np.ndarray:
    """The predictions a lead's correction reads: its own (first), then, with
    :data:`CROSS_LEADS`, the other learned leads'."""
    order = [k, *(j for j in range(len(prediction)) if j != k)] if CROSS_LEADS else [k]
    return np.asarray(prediction, dtype=np.float64)[order]


def _weighted(w: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``w @ x`` for weights ``[F]`` and features ``[F, T]``. The products here (this and the
    Gram matrix in :func:`ridge`) are small, and numpy's einsum runs them on one thread:
    as ``@`` they go to OpenBLAS, whose threads wait on each other on a busy machine (a 2-min
    100 Hz fit took seconds with 2 busy cores, milliseconds on one thread)."""
    return np.einsum("f,ft->t", w, x)


def ridge(x: np.ndarray, target: np.ndarray, strength: float) -> np.ndarray:
    """Weights ``[features]`` of the ridge fit of ``target`` ``[T]`` on ``x`` ``[F, T]``, with the
    features scaled to unit RMS and the penalty ``strength`` in those units (0: least squares)."""
    scale = np.sqrt(np.mean(x * x, axis=1)) + 1e-9
    xs = x / scale[:, None]
    gram = np.einsum("ft,gt->fg", xs, xs) / x.shape[1]
    rhs = np.einsum("ft,t->f", xs, target) / x.shape[1]
    w = np.linalg.solve(gram + (strength + 1e-9) * np.eye(len(scale)), rhs)
    return w / scale


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    den = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / den) if den > 0 else float("nan")


def held_out_gain(x: np.ndarray, own: np.ndarray, truth: np.ndarray, strength: float) -> float:
    """Mean gain in Pearson r of the corrected over the uncorrected prediction on each half of
    the reference when the correction is fitted on the other half."""
    half = truth.size // 2
    gains = []
    for fit, test in ((slice(0, half), slice(half, None)), (slice(half, None), slice(0, half))):
        w = ridge(x[:, fit], truth[fit] - own[fit], strength)
        corrected = own[test] + _weighted(w, x[:, test])
        gains.append(pearson(corrected, truth[test]) - pearson(own[test], truth[test]))
    return float(np.mean(gains))


@dataclass
class Calibration:
    """A fitted personal calibration for one model, at the rate :attr:`fs` it was fitted at.

    ``weights`` holds the correction of each calibrated lead (a learned lead absent from it
    is left as the model predicts it, for the reason in ``fallback``); ``template`` is the
    reference's input-lead median beat at :attr:`fs`, for :meth:`for_record`'s similarity
    guard. ``record_fs``: the rate of the signals :meth:`correct` is given (None: :attr:`fs`)."""

    reference: str
    model: str
    fs: float
    input_leads: tuple[str, ...]
    output_leads: tuple[str, ...]
    guard: Guard
    weights: dict[str, np.ndarray] = field(default_factory=dict)
    held_out_gain: dict[str, float] = field(default_factory=dict)
    fallback: dict[str, str] = field(default_factory=dict)
    template: np.ndarray | None = None
    similarity: float | None = None
    notes: list[str] = field(default_factory=list)
    filters: dict[str, Any] | None = None  # the model's input filters, applied by correct()
    record_fs: float | None = None  # the rate correct() works at, when not fs

    @property
    def active(self) -> bool:
        return bool(self.weights)

    def apply(self, inputs: np.ndarray, prediction: np.ndarray) -> np.ndarray:
        """The corrected ``prediction`` ``[len(output_leads), T]`` from the input-filtered
        model ``inputs`` ``[len(input_leads), T]`` at :attr:`fs` (NaN stays NaN)."""
        out = np.array(prediction, dtype=np.float32)
        for k, delta in self._deltas(inputs, prediction).items():
            out[k] = (np.asarray(prediction[k], dtype=np.float64) + delta).astype(np.float32)
        return out

    def _deltas(self, inputs: np.ndarray, prediction: np.ndarray) -> dict[int, np.ndarray]:
        """The correction ``[T]`` (float64) of each calibrated output lead, by its row, from
        input-filtered ``inputs`` and the ``prediction`` at :attr:`fs`."""
        if not self.weights:
            return {}
        lag_set = lags(self.fs)
        finite_inputs = np.nan_to_num(np.asarray(inputs, dtype=np.float64))
        deltas = {}
        for k, name in enumerate(self.output_leads):
            w = self.weights.get(name)
            if w is not None:
                deltas[k] = _weighted(w, design(finite_inputs, np.nan_to_num(_rows(prediction, k)),
                                                lag_set))
        return deltas

    def correct(self, inputs: np.ndarray, prediction: np.ndarray) -> np.ndarray:
        """:meth:`apply` to the model's raw ``inputs`` (gaps bridged), filtered here as the
        model's inputs are, both at :attr:`record_fs`. At another rate than :attr:`fs` the
        inputs and the prediction are resampled to :attr:`fs` (as the model's inputs are), the
        correction is computed there and added, resampled to :attr:`record_fs`, to the
        prediction."""
        from ecgfill.dsp import apply_filters, resample

        if not self.weights:
            return np.asarray(prediction, dtype=np.float32)
        fs = self.record_fs or self.fs
        if abs(fs - self.fs) < 1e-9:
            return self.apply(apply_filters(inputs, self.fs, self.filters), prediction)
        n = np.shape(prediction)[-1]
        x = apply_filters(resample(np.nan_to_num(np.asarray(inputs, dtype=np.float64)), fs,
                                   self.fs), self.fs, self.filters)
        y = resample(np.nan_to_num(np.asarray(prediction, dtype=np.float64)), fs, self.fs)
        out = np.array(prediction, dtype=np.float32)
        for k, delta in self._deltas(x, y).items():
            up = np.asarray(resample(delta[None], self.fs, fs), dtype=np.float64)[0]
            up = up[:n] if up.size >= n else np.pad(up, (0, n - up.size), mode="edge")
            out[k] = (np.asarray(prediction[k], dtype=np.float64) + up).astype(np.float32)
        return out

    def for_record(self, inputs: np.ndarray, similarity: float | None = None) -> Calibration:
        """This calibration checked against a record's input-filtered model ``inputs``: when its
        beat template is unlike the reference's (another patient or electrode layout), a copy
        that corrects nothing, every lead falling back with the reason. ``similarity``: the
        template similarity when already known."""
        if not self.weights:
            return self
        if similarity is None:
            similarity = template_similarity(self.template, beat_template(inputs, self.fs),
                                             self.fs)
        if similarity is not None and similarity >= self.guard.min_similarity:
            return replace(self, similarity=similarity)
        why = ("no beats found to compare the record with the reference" if similarity is None
               else f"record's beats unlike the reference's (r {similarity:.2f} < "
                    f"{self.guard.min_similarity:g}): another patient or electrode layout?")
        return replace(self, weights={}, similarity=similarity,
                       fallback={**self.fallback, **dict.fromkeys(self.weights, why)})

    def summary(self) -> dict[str, Any]:
        """What the JSON says: reference, strength, calibrated leads, fallbacks and why."""
        return {
            "reference": self.reference,
            "model": self.model,
            "strength": self.strength,
            "leads_calibrated": [n for n in self.output_leads if n in self.weights],
            "fell_back": bool(self.fallback),
            "fallback": dict(self.fallback),
            "held_out_gain": {k: round(v, 4) for k, v in self.held_out_gain.items()},
            "similarity": None if self.similarity is None else round(self.similarity, 4),
        }

    @property
    def strength(self) -> float:
        return self.guard.strength

    def comment(self) -> str:
        """One header comment line saying how the record was calibrated."""
        done = [n for n in self.output_leads if n in self.weights]
        text = (f"personal calibration: reference {self.reference}, ridge strength "
                f"{self.strength:g}, leads calibrated: {','.join(done) or 'none'}")
        if self.fallback:
            text += f"; guard fell back for {','.join(self.fallback)} ({next(iter(self.fallback.values()))})"
        return text

    def warnings(self) -> list[str]:
        """One warning per distinct fallback reason (never a silent fallback)."""
        reasons: dict[str, list[str]] = {}
        for lead, why in self.fallback.items():
            reasons.setdefault(why, []).append(lead)
        return [f"calibration not applied to {','.join(leads)}: {why}"
                for why, leads in reasons.items()]


def fit(reference: str, model: str, fs: float, inputs: np.ndarray, prediction: np.ndarray,
        truth: Mapping[str, np.ndarray], input_leads: tuple[str, ...],
        output_leads: tuple[str, ...], guard: Guard = Guard()) -> Calibration:
    """A calibration from a reference already masked and reconstructed: its input-filtered model
    ``inputs`` ``[n_in, T]``, the model's ``prediction`` ``[len(output_leads), T]`` and the
    reference's true (input-filtered) leads ``truth`` (lead -> ``[T]``; a learned lead absent
    there is not calibrated). Samples where anything is non-finite are left out of the fit."""
    cal = Calibration(reference, model, fs, tuple(input_leads), tuple(output_leads), guard)
    lag_set = lags(fs)
    edge = max(abs(v) for v in lag_set)
    inputs = np.asarray(inputs, dtype=np.float64)
    ok_inputs = np.isfinite(inputs).all(axis=0)
    cal.template = beat_template(inputs, fs)
    for k, name in enumerate(output_leads):
        if name not in truth:
            cal.fallback[name] = "the reference lacks this lead"
            continue
        own = np.asarray(prediction[k], dtype=np.float64)
        target = np.asarray(truth[name], dtype=np.float64)
        rows = _rows(prediction, k)
        ok = ok_inputs & np.isfinite(rows).all(axis=0) & np.isfinite(target)
        ok[:edge], ok[ok.size - edge:] = False, False
        if ok.sum() < MIN_REFERENCE_SECONDS * fs:
            cal.fallback[name] = "too few valid reference samples"
            continue
        x = design(np.nan_to_num(inputs), np.nan_to_num(rows), lag_set)[:, ok]
        gain = held_out_gain(x, own[ok], target[ok], guard.strength)
        cal.held_out_gain[name] = gain
        if not gain >= guard.min_held_out_gain:
            cal.fallback[name] = (f"the correction does not generalise within the reference "
                                  f"(held-out r gain {gain:+.3f})")
            continue
        cal.weights[name] = ridge(x, target[ok] - own[ok], guard.strength)
    return cal


# --------------------------------------------------------------------------------------------
# The similarity guard


def beat_template(inputs: np.ndarray, fs: float) -> np.ndarray | None:
    """The median beat ``[n_in, window]`` of the input leads around each detected QRS, or None
    with fewer than :data:`MIN_BEATS` whole beats."""
    from ecgfill.evaluate.features import detect_r_peaks

    x = np.nan_to_num(np.asarray(inputs, dtype=np.float64))
    before, after = (int(round(abs(s) * fs)) for s in TEMPLATE_WINDOW_S)
    peaks = detect_r_peaks(x, fs)
    peaks = peaks[(peaks >= before) & (peaks + after <= x.shape[-1])]
    if peaks.size < MIN_BEATS:
        return None
    return np.median(np.stack([x[:, p - before: p + after] for p in peaks]), axis=0)


def template_similarity(a: np.ndarray | None, b: np.ndarray | None, fs: float) -> float | None:
    """Mean over the input leads of the Pearson r between two beat templates, at the best
    common alignment within ±40 ms; None when either is missing. Each lead counts alike, so a
    swapped or reversed electrode shows even beside a larger lead."""
    if a is None or b is None or a.shape != b.shape:
        return None
    most = int(round(TEMPLATE_MAX_SHIFT_S * fs))
    n = a.shape[-1]
    best = -1.0
    for shift in range(-most, most + 1):
        lo, hi = max(0, shift), min(n, n + shift)
        rs = [pearson(x[lo:hi], y[lo - shift: hi - shift]) for x, y in zip(a, b, strict=True)]
        r = float(np.nanmean(rs)) if np.isfinite(rs).any() else float("nan")
        best = max(best, r) if np.isfinite(r) else best
    return best


# --------------------------------------------------------------------------------------------
# References from files


def check_reference(reference: ECGRecord, needed: tuple[str, ...], learned: tuple[str, ...]
                    ) -> list[str]:
    """RecordError (one line) when ``reference`` cannot calibrate: it is itself reconstructed
    (an ecgfill origin in its header), shorter than :data:`MIN_REFERENCE_SECONDS`, or lacks a
    lead in ``needed`` or every lead in ``learned``. Returns the learned leads it lacks."""
    where = f"reference {reference.source or '?'}"
    rebuilt = [n for n, o in zip(reference.leads, reference.origins, strict=True)
               if o == "reconstructed"]
    if rebuilt or reference.model:
        leads = f" (leads {','.join(rebuilt)})" if rebuilt else ""
        raise RecordError(where, f"is itself reconstructed{leads} by {reference.model or 'a model'}; "
                          "calibrate with a measured 12-lead")
    if reference.seconds < MIN_REFERENCE_SECONDS:
        raise RecordError(where, f"is {reference.seconds:.1f} s long; calibration needs at least "
                          f"{MIN_REFERENCE_SECONDS:g} s")
    have = set(reference.leads)
    if len(have & set(LIMB_LEADS)) >= 2:
        have |= set(LIMB_LEADS)
    lacking = [n for n in needed if n not in have]
    if lacking:
        raise RecordError(where, f"lacks lead(s) {','.join(lacking)}, which calibration needs "
                          f"(the model's inputs {','.join(needed)})")
    absent = [n for n in learned if n not in have]
    if learned and len(absent) == len(learned):
        raise RecordError(where, f"has none of the leads to calibrate ({','.join(learned)})")
    return absent


def prepare(reference: ECGRecord, model: Any, run: Runner, guard: Guard = Guard()
            ) -> Calibration:
    """The calibration of ``model`` (bound to a record's leads) at the model's rate from a
    12-lead ``reference`` of the same patient (any rate: resampled to the model's), masked to
    the model's inputs and reconstructed by ``run``
    (:func:`ecgfill.reconstruct.reconstruct_record`, passed in so that this module does not
    import it). RecordError for a reference that cannot calibrate (:func:`check_reference`).
    A reference longer than :data:`MAX_REFERENCE_SECONDS` is cut (with a second to spare for
    the resampling filter) before it is resampled."""
    from ecgfill.dsp import resample

    needed, learned = tuple(model.input_leads), tuple(model.output_leads)
    absent = check_reference(reference, needed, learned)
    fs = float(model.fs)
    notes = []
    if reference.n_samples > int(MAX_REFERENCE_SECONDS * reference.fs):
        notes.append(f"calibration fitted on the reference's first {MAX_REFERENCE_SECONDS:g} s")
        spare = int((MAX_REFERENCE_SECONDS + 1.0) * reference.fs)
        reference = replace(reference, signal=reference.signal[:, :spare])
    full = _with_limb(reference)
    full = full.select([n for n in full.leads if n in needed or n in learned])  # the leads used
    if abs(full.fs - fs) > 1e-9:
        notes.append(f"calibration reference resampled from {full.fs:g} Hz to {fs:g} Hz "
                     "(the model's rate)")
        full = replace(full, signal=resample(full.signal, full.fs, fs), fs=fs)
    limit = int(MAX_REFERENCE_SECONDS * fs)
    if full.n_samples > limit:
        full = replace(full, signal=full.signal[:, :limit])
    masked = replace(full.select(list(needed)), comments=[], warnings=[])
    prediction = _leads(run(masked, model)[0], learned)
    filters = getattr(model, "input_filters", None)
    present = tuple(n for n in learned if n not in absent)
    truth = _filtered(_leads(full, present), fs, filters)
    cal = fit(reference.source or "?", f"{model.name} {model.version}".strip(), fs,
              _filtered(_leads(full, needed), fs, filters), prediction,
              dict(zip(present, truth, strict=True)), needed, learned, guard)
    cal.notes, cal.filters = notes, filters
    return cal


def _with_limb(record: ECGRecord) -> ECGRecord:
    """``record`` with all six limb leads when it has two (else as it is)."""
    return record.with_limb_leads() if len(set(record.leads) & set(LIMB_LEADS)) >= 2 else record


def _leads(record: ECGRecord, names: tuple[str, ...]) -> np.ndarray:
    return np.stack([record.lead(n) for n in names]).astype(np.float64)


def _filtered(x: np.ndarray, fs: float, filters: dict[str, Any] | None) -> np.ndarray:
    """The model's input filters applied to ``x`` ``[rows, T]``; non-finite samples stay NaN."""
    from ecgfill.dsp import apply_filters

    finite = np.isfinite(x)
    out = np.asarray(apply_filters(np.where(finite, x, 0.0), fs, filters), dtype=np.float64)
    out[~finite] = np.nan
    return out


def read_reference(path: str) -> ECGRecord:
    """The reference record at ``path`` (RecordError naming it when unreadable)."""
    from ecgfill.io import read_record

    record = read_record(path)
    record.source = str(path)
    return record


_PREPARED: dict[tuple[str, str, float], Calibration] = {}


def reference_for(path: str | Path, calibrate_with: str | None,
                  calibration_map: tuple[tuple[str, str], ...]) -> str | None:
    """The reference for the input record at ``path``: ``calibrate_with``, else its row of the
    calibration map (inputs compared as resolved paths), else None."""
    if calibrate_with:
        return calibrate_with
    here = _record_key(path)
    return next((ref for given, ref in calibration_map if _record_key(given) == here), None)


def _record_key(path: str | Path) -> str:
    """A record's path without the extension of its header or data file, resolved."""
    resolved = Path(path).resolve()
    known = {".hea", ".dat", ".mat", ".edf", ".bdf", ".rec"}
    return str(resolved.with_suffix("") if resolved.suffix.lower() in known else resolved)


def job_calibration(settings: Any, path: str, model: Any, first: ECGRecord,
                    notes: list[str], run: Runner) -> Calibration | None:
    """The calibration for one ``reconstruct`` record at ``path`` (``settings``: its
    ``calibrate_with`` and ``calibration_map``; ``first``: its first chunk; ``run``: as for
    :func:`prepare`), notes for the user added to ``notes``; None without a reference."""
    reference = reference_for(path, settings.calibrate_with, settings.calibration_map)
    calibration, more = for_job(reference, model, first, bool(settings.calibration_map), run)
    notes.extend(more)
    return calibration


def for_job(reference: str | None, model: Any, first: ECGRecord, mapped: bool, run: Runner,
            record: ECGRecord | None = None) -> tuple[Calibration | None, list[str]]:
    """The calibration for one record (``first``: its first chunk, as the model reads it) from
    the ``reference`` path, prepared once per reference, model and rate and checked against the
    record's beats; and notes for the user. RecordError for a reference that cannot
    calibrate. ``record``: the reference already read (then not cached)."""
    if reference is None:
        return None, (["no reference for this record in --calibration-map: not calibrated"]
                      if mapped else [])
    if model is None:
        return None, [f"calibration with {reference} not needed: no lead is reconstructed"]
    key = (str(Path(reference).resolve()), f"{model.name} {model.version}", float(model.fs))
    if record is not None:
        _PREPARED.pop(key, None)
    if key not in _PREPARED:
        _PREPARED[key] = prepare(record or read_reference(reference), model, run)
    prepared = _PREPARED[key]
    checked = prepared.for_record(_model_inputs(first, model, prepared))
    checked = replace(checked, record_fs=float(first.fs))
    return checked, checked.notes + checked.warnings()


def _model_inputs(record: ECGRecord, model: Any, calibration: Calibration) -> np.ndarray:
    """``record``'s inputs of ``model`` as the calibration compares them: at its rate, filtered
    as the model's inputs are, gaps as 0."""
    from ecgfill.dsp import resample

    x = _leads(_with_limb(record), tuple(model.input_leads))
    if abs(record.fs - calibration.fs) > 1e-9:
        x = resample(np.nan_to_num(x), record.fs, calibration.fs)
    return np.nan_to_num(_filtered(x, calibration.fs, calibration.filters))


def read_calibration_map(path: str | Path) -> tuple[tuple[str, str], ...]:
    """``(input, reference)`` pairs from a CSV with columns ``input,reference`` (paths relative
    to the CSV), inputs resolved; ValueError with what is wrong."""
    import csv

    folder = Path(path).resolve().parent
    try:
        with open(path, newline="") as fh:
            rows = list(csv.DictReader(fh))
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror or exc}") from None
    if not rows or not {"input", "reference"} <= set(rows[0]):
        raise ValueError(f"{path} needs the columns input,reference")
    pairs = []
    for k, row in enumerate(rows, start=2):
        given, ref = (row.get("input") or "").strip(), (row.get("reference") or "").strip()
        if not given or not ref:
            raise ValueError(f"{path} line {k}: empty input or reference")
        pairs.append((str((folder / given).resolve()), str(folder / ref)))
    return tuple(pairs)


def calibration_options(calibrate_with: str | None, calibration_map: str | None
                        ) -> dict[str, Any]:
    """``ReconstructSettings`` fields from ``--calibrate-with`` and ``--calibration-map``;
    UsageError (exit 2, before any record is read) when both are given, a file is missing, the
    map is malformed, or the one reference is reconstructed or too short."""
    from ecgfill.errors import EcgfillError, UsageError

    if calibrate_with and calibration_map:
        raise UsageError("--calibrate-with and --calibration-map cannot be used together")
    if calibration_map:
        try:
            return {"calibration_map": read_calibration_map(calibration_map)}
        except ValueError as exc:
            raise UsageError(f"--calibration-map: {exc}") from None
    if not calibrate_with:
        return {}
    try:
        check_reference(read_reference(calibrate_with), (), ())
    except EcgfillError as exc:
        raise UsageError(f"--calibrate-with: {exc}") from None
    return {"calibrate_with": calibrate_with}


def record_calibration(record: ECGRecord, model: Any, reference: ECGRecord | str | Path,
                       run: Runner) -> Calibration | None:
    """The calibration of ``model`` for an in-memory ``record`` from ``reference`` (a record or
    a path; the Python API's ``reference=``; ``run`` as for :func:`prepare`); None when no
    model is needed. RecordError for a reference that cannot calibrate."""
    if model is None:
        return None
    ref = reference if isinstance(reference, ECGRecord) else read_reference(str(reference))
    calibration, notes = for_job(ref.source or "reference", model, record, False, run, ref)
    if calibration is not None:
        calibration.notes = notes
    return calibration


def annotate(record: ECGRecord, calibration: Calibration | None) -> ECGRecord:
    """``record`` with the calibration's header comment and warnings added."""
    if calibration is not None:
        record.comments.append(calibration.comment())
        record.warnings.extend(w for w in calibration.notes if w not in record.warnings)
    return record
