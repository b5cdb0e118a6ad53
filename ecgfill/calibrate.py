"""Personal calibration: correct a model's output with a prior 12-lead of the same patient.

A patient's standard 12-lead (the *reference*) carries their own beat morphology and lead
geometry, which a population model can only guess. The reference is masked to the model's input
leads and reconstructed; what the model gets wrong there, beat by beat, is largely the same on
the patient's other records. So for every learned lead the reference's *residual beat* is kept:
the mean over its beats of (true lead − model's prediction) from 250 ms before to 450 ms after
each QRS. On a record, every beat is found on the input leads, aligned (within ±30 ms) to the
reference's input beat, and :data:`STRENGTH` × the residual beat is added to the prediction
there (tapered at the window's ends; where windows overlap, their mean). Strength and guards
were chosen on half of the validation fold's patients (``scripts/calibration_tune.py``); the
correction is fitted and applied at the model's rate, chunk by chunk, so records of any length
and rate are served.

Three guards leave a lead as the model predicts it, each said in the output:

* per lead, when the residual beat does not generalise within the reference itself: built from
  its odd beats and applied to its even ones (and the other way round), it must not lower the
  lead's Pearson r there (:data:`MIN_HELD_OUT_GAIN`);
* per lead and record, when the model's mean predicted beat on the record correlates with its
  mean predicted beat on the reference below :data:`MIN_LEAD_SIMILARITY`: the heart or the
  electrodes changed, and the reference's errors no longer apply;
* per record, when the record's input-lead beat template correlates with the reference's below
  :data:`MIN_SIMILARITY`: the reference looks like another patient or electrode layout.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ecgfill.beats import (
    MIN_BEATS,
    align_beats,
    aligned_beats,
    beat_template,
    detect_beats,
    mean_beat,
    pearson,
    place,
    template_similarity,
    whole_beats,
    window_samples,
)
from ecgfill.errors import RecordError
from ecgfill.leads import LIMB_LEADS
from ecgfill.record import ECGRecord

# Chosen on half of the PTB-XL fold-9 patients with >= 2 records (every other patient; the
# models' residuals on their own training records are too small to choose on) and scored on
# the other half, scripts/calibration_tune.py: strength {0.4, 0.5, 0.6, 0.7} x lead similarity
# {-1, .8, .85, .9, .95} x held-out gain {-1, 0} x record similarity {-1, .5, .8, .9}: the best
# mean gain of unet-i-ii-v4 and unet-i with at most 2 % of patients worse by > 0.03 for each.
STRENGTH = 0.5
MIN_HELD_OUT_GAIN = 0.0
MIN_LEAD_SIMILARITY = 0.9
MIN_SIMILARITY = 0.9
MIN_REFERENCE_SECONDS = 5.0
MAX_REFERENCE_SECONDS = 120.0  # a longer reference is fitted on its first two minutes
# ecgfill.reconstruct.reconstruct_record: (record, model) -> (12-lead record, spread)
Runner = Callable[..., tuple[ECGRecord, Any]]


@dataclass(frozen=True)
class Guard:
    """The strength and the guards' thresholds (defaults: see the constants above)."""

    strength: float = STRENGTH
    min_held_out_gain: float = MIN_HELD_OUT_GAIN
    min_similarity: float = MIN_SIMILARITY
    min_lead_similarity: float = MIN_LEAD_SIMILARITY


def held_out_gain(residual: np.ndarray, own: np.ndarray, truth: np.ndarray, peaks: np.ndarray,
                  fs: float, strength: float) -> float:
    """Mean gain in Pearson r, over the beats' windows, of the prediction ``own`` corrected by
    the residual beat of the reference's odd beats on its even beats, and the other way round."""
    before, after = window_samples(fs)
    gains = []
    for half in (0, 1):
        beat = mean_beat(residual[None], peaks[half::2], fs)
        scored = peaks[1 - half::2]
        if beat is None or scored.size == 0:
            continue
        delta = strength * place(beat[0], scored, own.size, fs)
        mask = np.zeros(own.size, dtype=bool)
        for q in scored:
            mask[max(q - before, 0): q + after] = True
        gains.append(pearson(own[mask] + delta[mask], truth[mask])
                     - pearson(own[mask], truth[mask]))
    return float(np.mean(gains)) if gains else float("nan")


@dataclass
class Calibration:
    """A fitted personal calibration for one model, at the rate :attr:`fs` it was fitted at.

    ``residual_beats`` holds the correction of each calibrated lead and ``predicted_beats`` the
    model's mean beat of that lead on the reference (for the lead guard); a learned lead absent
    from them is left as the model predicts it, for the reason in ``fallback``. ``template`` is
    the reference's input-lead median beat at :attr:`fs` (beats are aligned to it; the record
    guard compares with it). ``record_fs``: the rate of the signals :meth:`correct` is given
    (None: :attr:`fs`). ``applied``, ``lead_similarity`` and ``chunks`` say what :meth:`apply`
    did on the record so far (per lead: chunks corrected, lowest beat similarity)."""

    reference: str
    model: str
    fs: float
    input_leads: tuple[str, ...]
    output_leads: tuple[str, ...]
    guard: Guard
    residual_beats: dict[str, np.ndarray] = field(default_factory=dict)
    predicted_beats: dict[str, np.ndarray] = field(default_factory=dict)
    held_out_gain: dict[str, float] = field(default_factory=dict)
    fallback: dict[str, str] = field(default_factory=dict)
    template: np.ndarray | None = None
    similarity: float | None = None
    notes: list[str] = field(default_factory=list)
    filters: dict[str, Any] | None = None  # the model's input filters, applied by correct()
    record_fs: float | None = None  # the rate correct() works at, when not fs
    applied: dict[str, int] = field(default_factory=dict)
    lead_similarity: dict[str, float] = field(default_factory=dict)
    chunks: int = 0

    @property
    def active(self) -> bool:
        return bool(self.residual_beats)

    @property
    def strength(self) -> float:
        return self.guard.strength

    def fresh(self, **changes: Any) -> Calibration:
        """A copy for a new record: nothing applied yet (``changes`` as for ``replace``)."""
        return replace(self, **{"applied": {}, "lead_similarity": {}, "chunks": 0,
                                "fallback": dict(self.fallback), **changes})

    def apply(self, inputs: np.ndarray, prediction: np.ndarray) -> np.ndarray:
        """The corrected ``prediction`` ``[len(output_leads), T]`` from the input-filtered
        model ``inputs`` ``[len(input_leads), T]`` at :attr:`fs` (NaN stays NaN)."""
        return _added(prediction, self._deltas(inputs, prediction))

    def _deltas(self, inputs: np.ndarray, prediction: np.ndarray) -> dict[int, np.ndarray]:
        """The correction ``[T]`` (float64) of each output lead that passes the lead guard, by
        its row, from input-filtered ``inputs`` and the ``prediction`` at :attr:`fs`; what was
        done is counted in :attr:`applied` and :attr:`lead_similarity`."""
        if not self.residual_beats:
            return {}
        self.chunks += 1
        x = np.nan_to_num(np.asarray(inputs, dtype=np.float64))
        y = np.nan_to_num(np.asarray(prediction, dtype=np.float64))
        peaks = aligned_beats(x, self.fs, self.template)
        beats = mean_beat(y, peaks, self.fs)
        deltas = {}
        for k, name in enumerate(self.output_leads):
            residual = self.residual_beats.get(name)
            if residual is None:
                continue
            sim = pearson(beats[k], self.predicted_beats[name]) if beats is not None else np.nan
            if np.isfinite(sim):  # the lowest over the chunks with beats
                self.lead_similarity[name] = min(sim, self.lead_similarity.get(name, np.inf))
            else:
                self.lead_similarity.setdefault(name, np.nan)
            if sim >= self.guard.min_lead_similarity:
                self.applied[name] = self.applied.get(name, 0) + 1
                deltas[k] = self.strength * place(residual, peaks, x.shape[-1], self.fs)
        return deltas

    def correct(self, inputs: np.ndarray, prediction: np.ndarray) -> np.ndarray:
        """:meth:`apply` to the model's raw ``inputs`` (gaps bridged), filtered here as the
        model's inputs are, both at :attr:`record_fs`. At another rate than :attr:`fs` the
        inputs and the prediction are resampled to :attr:`fs` (as the model's inputs are), the
        correction is computed there and added, resampled to :attr:`record_fs`, to the
        prediction."""
        from ecgfill.dsp import apply_filters, fit_length, resample

        if not self.residual_beats:
            return np.asarray(prediction, dtype=np.float32)
        fs = self.record_fs or self.fs
        if abs(fs - self.fs) < 1e-9:
            return self.apply(apply_filters(inputs, self.fs, self.filters), prediction)
        n = np.shape(prediction)[-1]
        x = apply_filters(resample(np.nan_to_num(np.asarray(inputs, dtype=np.float64)), fs,
                                   self.fs), self.fs, self.filters)
        y = resample(np.nan_to_num(np.asarray(prediction, dtype=np.float64)), fs, self.fs)
        return _added(prediction, {
            k: fit_length(np.asarray(resample(delta[None], self.fs, fs), dtype=np.float64)[0], n)
            for k, delta in self._deltas(x, y).items()})

    def for_record(self, inputs: np.ndarray, similarity: float | None = None) -> Calibration:
        """This calibration for a new record, checked against the record's input-filtered model
        ``inputs``: when its beat template is unlike the reference's (another patient or
        electrode layout), a copy that corrects nothing, every lead falling back with the
        reason. ``similarity``: the template similarity when already known."""
        if not self.residual_beats:
            return self.fresh()
        if similarity is None:
            similarity = template_similarity(self.template, beat_template(inputs, self.fs),
                                             self.fs)
        if similarity is not None and similarity >= self.guard.min_similarity:
            return self.fresh(similarity=similarity)
        why = ("no beats found to compare the record with the reference" if similarity is None
               else f"record's beats unlike the reference's (r {similarity:.2f} < "
                    f"{self.guard.min_similarity:g}): another patient or electrode layout?")
        return self.fresh(residual_beats={}, predicted_beats={}, similarity=similarity,
                          fallback={**self.fallback, **dict.fromkeys(self.residual_beats, why)})

    def outcome(self) -> tuple[list[str], dict[str, str]]:
        """The leads calibrated and those left alone with why, as far as :meth:`apply` has
        gone (before any chunk: the leads with a residual beat)."""
        fallback = dict(self.fallback)
        if not self.chunks:
            return [n for n in self.output_leads if n in self.residual_beats], fallback
        done = [n for n in self.output_leads if self.applied.get(n)]
        for name in self.residual_beats:
            if not self.applied.get(name):
                sim = self.lead_similarity.get(name, np.nan)
                fallback[name] = (
                    "fewer than 3 whole beats found in the record" if not np.isfinite(sim)
                    else f"the model's beats on the record unlike those on the reference "
                         f"(r {sim:.2f} < {self.guard.min_lead_similarity:g}): the heart or the "
                         "electrodes changed?")
        return done, fallback

    def summary(self) -> dict[str, Any]:
        """What the JSON says: reference, strength, calibrated leads, fallbacks and why."""
        done, fallback = self.outcome()
        partly = {n: f"{self.applied.get(n, 0)} of {self.chunks} chunks" for n in done
                  if 0 < self.applied.get(n, 0) < self.chunks}
        return {
            "reference": self.reference,
            "model": self.model,
            "method": "residual beat",
            "strength": self.strength,
            "leads_calibrated": done,
            "leads_calibrated_partly": partly,
            "fell_back": bool(fallback),
            "fallback": fallback,
            "held_out_gain": {k: round(v, 4) for k, v in self.held_out_gain.items()},
            "similarity": None if self.similarity is None else round(self.similarity, 4),
            "lead_similarity": {k: round(v, 4) for k, v in self.lead_similarity.items()
                                if np.isfinite(v)},
        }

    def comment(self) -> str:
        """One header comment line saying how the record was calibrated."""
        done, fallback = self.outcome()
        text = (f"personal calibration: reference {self.reference}, residual beat x "
                f"{self.strength:g}, leads calibrated: {','.join(done) or 'none'}")
        if fallback:
            text += f"; guard fell back for {','.join(fallback)} ({next(iter(fallback.values()))})"
        return text

    def warnings(self) -> list[str]:
        """One warning per distinct fallback reason (never a silent fallback)."""
        reasons: dict[str, list[str]] = {}
        for lead, why in self.outcome()[1].items():
            reasons.setdefault(why, []).append(lead)
        return [f"calibration not applied to {','.join(leads)}: {why}"
                for why, leads in reasons.items()]


def _added(prediction: np.ndarray, deltas: dict[int, np.ndarray]) -> np.ndarray:
    """``prediction`` (float32) with ``deltas`` (row -> ``[T]``) added in float64."""
    out = np.array(prediction, dtype=np.float32)
    for k, delta in deltas.items():
        out[k] = (np.asarray(prediction[k], dtype=np.float64) + delta).astype(np.float32)
    return out


def fit(reference: str, model: str, fs: float, inputs: np.ndarray, prediction: np.ndarray,
        truth: dict[str, np.ndarray], input_leads: tuple[str, ...],
        output_leads: tuple[str, ...], guard: Guard = Guard()) -> Calibration:
    """A calibration from a reference already masked and reconstructed: its input-filtered model
    ``inputs`` ``[n_in, T]``, the model's ``prediction`` ``[len(output_leads), T]`` and the
    reference's true (input-filtered) leads ``truth`` (lead -> ``[T]``; a learned lead absent
    there is not calibrated). Beats with a non-finite sample are left out of a lead's fit."""
    cal = Calibration(reference, model, fs, tuple(input_leads), tuple(output_leads), guard)
    x = np.nan_to_num(np.asarray(inputs, dtype=np.float64))
    detected = detect_beats(x, fs)  # aligned to their own median beat, then averaged again
    peaks = align_beats(x, detected, fs, mean_beat(x, detected, fs, np.median))
    cal.template = mean_beat(x, peaks, fs, np.median)
    peaks = whole_beats(peaks, x.shape[-1], fs)
    before, after = window_samples(fs)
    finite_inputs = np.isfinite(np.asarray(inputs, dtype=np.float64)).all(axis=0)
    for k, name in enumerate(output_leads):
        if name not in truth:
            cal.fallback[name] = "the reference lacks this lead"
            continue
        own = np.asarray(prediction[k], dtype=np.float64)
        target = np.asarray(truth[name], dtype=np.float64)
        ok = finite_inputs & np.isfinite(own) & np.isfinite(target)
        good = np.array([q for q in peaks if ok[q - before: q + after].all()], dtype=np.int64)
        if cal.template is None or good.size < MIN_BEATS:
            cal.fallback[name] = "fewer than 3 whole beats with valid samples in the reference"
            continue
        own, target = np.nan_to_num(own), np.nan_to_num(target)
        residual = target - own
        gain = held_out_gain(residual, own, target, good, fs, guard.strength)
        cal.held_out_gain[name] = gain
        if not gain >= guard.min_held_out_gain:
            cal.fallback[name] = (f"the correction does not generalise within the reference "
                                  f"(held-out r gain {gain:+.3f})")
            continue
        cal.residual_beats[name] = mean_beat(residual[None], good, fs)[0]
        cal.predicted_beats[name] = mean_beat(own[None], good, fs)[0]
    return cal


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
    """``record`` (reconstructed with ``calibration``) with the calibration's header comment,
    notes and warnings added."""
    if calibration is not None:
        record.comments.append(calibration.comment())
        record.warnings.extend(w for w in calibration.notes + calibration.warnings()
                               if w not in record.warnings)
    return record
