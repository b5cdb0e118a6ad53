"""The two ways to evaluate: reconstruct masked references with a model, or compare two folders.

1. :func:`evaluate_models` masks complete references (record files, or a ``preprocess`` dataset
   split) to a model's input leads, reconstructs them and scores the result against the truth.
   Several models are run on the same records, so that they can be compared pairwise.
2. :func:`evaluate_folders` matches reference records with already reconstructed ones (by path
   relative to their folders, else by record name) and scores the leads whose origin in the
   reconstructed record is ``reconstructed`` or ``derived``.

Scoring is honest: measured input leads are never scored; a learned lead is one the model
predicted; a derived lead is a limb lead computed from at least one predicted lead and is
reported apart; a limb lead computed from measured leads only is exact and not scored.
"""

from __future__ import annotations

import contextlib
import functools
import heapq
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from ecgfill.dsp import Highpass, highpass_in
from ecgfill.errors import EcgfillError, RecordError, UsageError
from ecgfill.evaluate.features import FEATURES, compare_global, compare_leads, detect_r_peaks
from ecgfill.evaluate.metrics import SIGNAL_METRICS, signal_metrics
from ecgfill.leads import INDEPENDENT_LEADS, LIMB_LEADS, STANDARD_LEADS
from ecgfill.record import ECGRecord

if TYPE_CHECKING:
    from ecgfill.models import ReconstructionModel

LeadRole = Literal["input", "learned", "derived", "exact"]
SCORED_ROLES: tuple[LeadRole, ...] = ("learned", "derived")
GLOBAL_ROW = "global"
LENGTH_SLACK = 0.01  # reconstruction may differ in length by 1 % (resampling), then is cropped
DATASET_BATCH_SAMPLES = 1 << 18  # samples per lead per batched model call on a dataset
DATASET_FILES = ("signals.npy", "manifest.csv", "dataset.json")


@dataclass
class RecordScore:
    """One record scored against its reference.

    ``roles`` gives every standard lead's role; ``metrics[lead][metric]`` covers the scored
    (learned and derived) leads; ``features[row][feature]`` is ``(truth, reconstruction)`` for
    each scored lead and the ``"global"`` row (all 12 leads delineated together);
    ``beats[row]`` is ``(matched, missed, extra)``.
    """

    name: str
    fs: float
    n_samples: int
    roles: dict[str, LeadRole]
    metrics: dict[str, dict[str, float]]
    features: dict[str, dict[str, tuple[float, float]]] = field(default_factory=dict)
    beats: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    model: str | None = None

    def leads_with(self, *roles: LeadRole) -> list[str]:
        return [n for n in STANDARD_LEADS if self.roles.get(n) in roles]

    @property
    def input_leads(self) -> tuple[str, ...]:
        return tuple(self.leads_with("input"))

    def mean_over(self, leads: Iterable[str], metric: str) -> float:
        """Mean of ``metric`` over ``leads`` of this record (NaN-skipping; NaN if none)."""
        values = np.array([self.metrics[n][metric] for n in leads if n in self.metrics])
        finite = values[np.isfinite(values)]
        return float(finite.mean()) if finite.size else float("nan")


@dataclass
class Evaluation:
    """Scores of one model (or one folder of reconstructions) over a set of references.

    ``kept`` holds ``(truth, reconstruction)`` of the records picked for plots.
    """

    mode: Literal["records", "dataset", "folders"]
    reference: str
    scores: list[RecordScore] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)
    model: str | None = None
    input_leads: tuple[str, ...] | None = None
    split: str | None = None
    kept: dict[str, tuple[ECGRecord, ECGRecord]] = field(default_factory=dict)
    # The high-pass the references went through before scoring (the models' input filter), or None
    reference_highpass: dict[str, Any] | None = None


@dataclass
class EvaluateOptions:
    """What to measure and keep: ``features`` on/off, at most ``limit`` references, and the
    signals of the ``keep_worst`` records with the lowest learned-lead r plus ``keep_names``.
    ``observe(model_index, name, truth, reconstruction)`` sees every scored record (both as 12
    standard leads, origins kept), e.g. the diagnostic collector."""

    features: bool = True
    limit: int | None = None
    keep_worst: int = 0
    keep_names: frozenset[str] = frozenset()
    progress: Callable[[int], None] | None = None
    high_band: bool = True  # add the high band at rates above the model's, as reconstruct does
    observe: Callable[[int, str, ECGRecord, ECGRecord], None] | None = None


# ------------------------------------------------------------------------------------------
# Roles and scoring


def lead_roles(record: ECGRecord) -> dict[str, LeadRole]:
    """Role of each lead of a reconstructed record, from its origins.

    A derived limb lead is exact when two of I, II, III were measured (it is then a function of
    measured leads only); otherwise it depends on a predicted lead and counts as derived.
    """
    measured = set(record.leads_with("measured"))
    exact = len(measured & {"I", "II", "III"}) >= 2
    roles: dict[str, LeadRole] = {}
    for name, origin in zip(record.leads, record.origins, strict=True):
        if origin == "measured":
            roles[name] = "input"
        elif origin == "reconstructed":
            roles[name] = "learned"
        else:
            roles[name] = "exact" if exact else "derived"
    return roles


def complete_reference(record: ECGRecord, where: object) -> ECGRecord:
    """The 12 standard leads of a reference (limb leads derived when two of I/II/III exist)."""
    lacking = [n for n in INDEPENDENT_LEADS[2:] if n not in record.leads]
    if len(set(record.leads) & set(LIMB_LEADS[:3])) < 2:
        lacking = ["I/II", *lacking]
    if lacking:
        raise RecordError(
            where, f"reference is not a complete ECG: lacks {','.join(lacking)} "
            "(needs I, II (or two of I, II, III) and V1-V6)"
        )
    full = record.with_limb_leads().select(STANDARD_LEADS)
    return replace(full, origins=("measured",) * len(STANDARD_LEADS))


def _as_twelve(record: ECGRecord, where: object) -> ECGRecord:
    if not record.is_complete():
        with contextlib.suppress(ValueError):  # fewer than two limb leads: reported below
            record = record.with_limb_leads()
    if not record.is_complete():
        lacking = [n for n in STANDARD_LEADS if n not in record.leads]
        raise RecordError(where, f"reconstruction lacks leads {','.join(lacking)}")
    return record.select(STANDARD_LEADS)


def _aligned(truth: ECGRecord, recon: ECGRecord, where: object) -> np.ndarray:
    """The reconstruction's signal at the truth's rate and length."""
    signal = recon.signal
    if abs(recon.fs - truth.fs) > 1e-6:
        from ecgfill.dsp import resample

        signal = resample(signal, recon.fs, truth.fs)
    n, m = truth.n_samples, signal.shape[1]
    if abs(n - m) > max(2, LENGTH_SLACK * n):
        raise RecordError(
            where, f"reconstruction has {m} samples at {truth.fs:g} Hz, reference has {n}"
        )
    if m < n:
        signal = np.pad(signal, ((0, 0), (0, n - m)), mode="edge")
    return signal[:, :n]


def score_record(
    name: str, truth: ECGRecord, recon: ECGRecord, *, features: bool = True
) -> RecordScore:
    """Score ``recon`` (origins say which leads were reconstructed) against ``truth``.

    Both are completed to the 12 standard leads; the reconstruction is resampled to the truth's
    rate when they differ. Raises RecordError when nothing is left to score.
    """
    truth12 = complete_reference(truth, name)
    recon12 = _as_twelve(recon, name)
    roles = lead_roles(recon12)
    scored = [n for n in STANDARD_LEADS if roles[n] in SCORED_ROLES]
    if not scored:
        raise RecordError(
            name, "no reconstructed or derived leads to score (no ecgfill provenance in header?)"
        )
    fs = truth12.fs
    recon_signal = _aligned(truth12, recon12, name)
    idx = [STANDARD_LEADS.index(n) for n in scored]
    t, y = truth12.signal[idx], recon_signal[idx]
    finite = np.isfinite(t).all(axis=0) & np.isfinite(y).all(axis=0)
    if not finite.all():
        t, y = t[:, finite], y[:, finite]
    beats = detect_r_peaks(truth12.signal, fs)
    values = signal_metrics(t, y, fs, _shift_peaks(beats, finite))
    metrics = {lead: {m: float(values[m][k]) for m in SIGNAL_METRICS} for k, lead in
               enumerate(scored)}
    score = RecordScore(
        name=name, fs=fs, n_samples=truth12.n_samples, roles=roles, metrics=metrics,
        model=recon.model,
    )
    if features:
        _add_features(score, truth12.signal, recon_signal, scored, fs)
    return score


def _shift_peaks(peaks: np.ndarray, finite: np.ndarray) -> np.ndarray:
    """Beat positions in the signal with non-finite samples removed (beats inside gaps go)."""
    if finite.all():
        return peaks
    kept_index = np.cumsum(finite) - 1
    return kept_index[peaks[finite[peaks]]]


def _add_features(
    score: RecordScore, truth: np.ndarray, recon: np.ndarray, scored: list[str], fs: float
) -> None:
    idx = [STANDARD_LEADS.index(n) for n in scored]
    t, y = np.nan_to_num(truth), np.nan_to_num(recon)
    for comparison in (compare_global(t, y, fs), compare_leads(t[idx], y[idx], fs, scored)):
        for k, row in enumerate(comparison.leads):
            score.features[row] = {
                f: (float(comparison.truth[f][k]), float(comparison.recon[f][k])) for f in FEATURES
            }
            score.beats[row] = (
                int(comparison.matched[k]), int(comparison.missed[k]), int(comparison.extra[k])
            )


# ------------------------------------------------------------------------------------------
# Keeping a few records for plots


class _Keeper:
    """The ``worst`` records with the lowest mean learned-lead r, plus records named in
    ``names``, with their signals (for plots)."""

    def __init__(self, worst: int, names: frozenset[str]) -> None:
        self.worst, self.names = worst, names
        self._heap: list[tuple[float, int, str, ECGRecord, ECGRecord]] = []
        self.named: dict[str, tuple[ECGRecord, ECGRecord]] = {}
        self._count = 0

    def offer(self, score: RecordScore, truth: ECGRecord, recon: ECGRecord) -> None:
        if score.name in self.names or Path(score.name).name in self.names:
            self.named[score.name] = (truth, recon)
        if self.worst <= 0:
            return
        r = score.mean_over(score.leads_with("learned", "derived"), "pearson_r")
        badness = -r if np.isfinite(r) else float("inf")
        self._count += 1
        item = (badness, self._count, score.name, truth, recon)
        if len(self._heap) < self.worst:
            heapq.heappush(self._heap, item)
        elif badness > self._heap[0][0]:
            heapq.heapreplace(self._heap, item)

    def kept(self) -> dict[str, tuple[ECGRecord, ECGRecord]]:
        worst = sorted(self._heap, key=lambda item: (-item[0], item[1]))
        return {name: (t, r) for _, _, name, t, r in worst} | self.named


# ------------------------------------------------------------------------------------------
# Mode 1: models on masked references


def is_dataset_dir(path: str | Path) -> bool:
    """True when ``path`` is a ``preprocess`` dataset directory."""
    p = Path(path)
    return p.is_dir() and all((p / name).is_file() for name in DATASET_FILES)


def masked_input(truth: ECGRecord, input_leads: Sequence[str]) -> ECGRecord:
    """The reference reduced to ``input_leads``, all of them marked measured."""
    masked = truth.select(tuple(input_leads))
    return replace(masked, origins=("measured",) * len(masked.leads), comments=[], model=None)


def reconstruct_with(record: ECGRecord, model: Any, high_band: bool = True) -> ECGRecord:
    """``record`` completed by ``model`` exactly as ``ecgfill reconstruct`` does it (with the
    high band above the model's rate unless ``high_band`` is False)."""
    from ecgfill.reconstruct import high_band_for, reconstruct_record

    result = reconstruct_record(record, model,
                                high_band=high_band_for(record.fs, model, high_band))
    return result[0] if isinstance(result, tuple) else result


def model_label(model: ReconstructionModel) -> str:
    version = str(getattr(model, "version", "") or "")
    return f"{model.name} {version}".strip()


def evaluate_models(
    references: Sequence[str],
    models: Sequence[ReconstructionModel],
    options: EvaluateOptions | None = None,
    *,
    split: str | None = None,
    reconstruct: Callable[[ECGRecord, Any], ECGRecord] | None = None,
    input_leads: Sequence[str] | None = None,
) -> list[Evaluation]:
    """Evaluate each model on the same references (record paths/folders, or one dataset dir).

    References are masked to ``input_leads`` (default: the models' input leads, which must
    then agree); every model must be able to take them (``model.bind``). ``split`` (train,
    val or test) selects the dataset samples and is required for a dataset. ``reconstruct`` defaults to
    :func:`reconstruct_with`, the code path ``ecgfill reconstruct`` uses.
    """
    options = options or EvaluateOptions()
    if not models:
        raise UsageError("no model to evaluate")
    if input_leads is None:
        inputs = {tuple(sorted(m.input_leads)) for m in models}
        if len(inputs) > 1:
            raise UsageError("models to compare must take the same input leads")
        input_leads = tuple(models[0].input_leads)
    leads = tuple(input_leads)
    highpass = _shared_highpass(models)
    reconstruct = reconstruct or functools.partial(reconstruct_with,
                                                   high_band=options.high_band)
    datasets = [r for r in references if is_dataset_dir(r)]
    if datasets:
        if len(references) > 1:
            raise UsageError("give one dataset directory, or record files and folders, not both")
        if split is None:
            raise UsageError("a dataset directory needs --split (train, val or test)")
        evaluations = _evaluate_dataset(Path(datasets[0]), models, split, options, reconstruct,
                                        leads)
    else:
        if split is not None:
            raise UsageError("--split applies to a preprocess dataset directory only")
        evaluations = _evaluate_records(references, models, options, reconstruct, highpass,
                                        leads)
    for evaluation in evaluations:
        evaluation.reference_highpass = highpass.to_dict() if highpass else None
    return evaluations


def _shared_highpass(models: Sequence[Any]) -> Highpass | None:
    """The input high-pass all ``models`` were trained with (None for none); they must agree,
    since the references are filtered the same way before scoring."""
    if len({_highpass_of(m) for m in models}) > 1:
        described = "; ".join(f"{m.name}: {_describe_highpass(_highpass_of(m))}" for m in models)
        raise UsageError(f"models to compare must share their input filter ({described})")
    return _highpass_of(models[0])


def _highpass_of(model: Any) -> Highpass | None:
    return highpass_in(getattr(model, "input_filters", None))


def _describe_highpass(highpass: Highpass | None) -> str:
    return f"{highpass.cutoff_hz:g} Hz high-pass" if highpass else "no high-pass"


def _new_evaluations(
    mode: Literal["records", "dataset"], reference: str, models: Sequence[Any], split: str | None,
    input_leads: tuple[str, ...],
) -> list[Evaluation]:
    return [
        Evaluation(mode=mode, reference=reference, model=model_label(m),
                   input_leads=input_leads, split=split)
        for m in models
    ]


def _score_all(
    evaluations: list[Evaluation],
    keepers: list[_Keeper],
    name: str,
    truth: ECGRecord,
    reconstructions: Iterator[ECGRecord],
    options: EvaluateOptions,
) -> None:
    """Score one reference against each model's reconstruction; failures go per evaluation."""
    for k, (evaluation, keeper) in enumerate(zip(evaluations, keepers, strict=True)):
        try:
            recon = next(reconstructions)
            score = score_record(name, truth, recon, features=options.features)
        except EcgfillError as exc:
            evaluation.failures.append((name, _problem(exc)))
            continue
        evaluation.scores.append(score)
        keeper.offer(score, truth, recon)
        if options.observe:
            options.observe(k, name, truth, recon)


def _filtered(record: ECGRecord, highpass: Highpass) -> ECGRecord:
    bad = ~np.isfinite(record.signal)
    signal = highpass.apply(np.where(bad, 0.0, record.signal), record.fs)
    signal[bad] = np.nan  # gaps stay gaps (scored as such)
    return replace(record, signal=signal)


def _problem(exc: EcgfillError) -> str:
    return exc.problem if isinstance(exc, RecordError) else str(exc)


def _evaluate_records(
    references: Sequence[str],
    models: Sequence[Any],
    options: EvaluateOptions,
    reconstruct: Callable[[ECGRecord, Any], ECGRecord],
    highpass: Highpass | None,
    input_leads: tuple[str, ...],
) -> list[Evaluation]:
    """Mode 1 on record files. With ``highpass`` (the models' input filter) every reference is
    filtered so first, all leads alike: the models predict no baseline wander, so it is not
    scored, and the measured inputs then carry none either."""
    from ecgfill.io import read_record
    from ecgfill.io.discover import find_records

    evaluations = _new_evaluations("records", ", ".join(references), models, None, input_leads)
    keepers = [_Keeper(options.keep_worst, options.keep_names) for _ in models]
    items = find_records(list(references))
    for item in items[: options.limit] if options.limit else items:
        name = item.relative().as_posix()
        try:
            if item.error:
                raise RecordError(item.path, item.error)
            truth = complete_reference(read_record(item.path), item.path)
            if highpass:
                truth = _filtered(truth, highpass)
            masked = masked_input(truth, input_leads)
        except EcgfillError as exc:
            for evaluation in evaluations:
                evaluation.failures.append((name, _problem(exc)))
            continue
        finally:
            if options.progress:
                options.progress(1)
        reconstructions = (reconstruct(masked, m) for m in models)
        _score_all(evaluations, keepers, name, truth, reconstructions, options)
    for evaluation, keeper in zip(evaluations, keepers, strict=True):
        evaluation.kept = keeper.kept()
    return evaluations


class _Replay:
    """A model stand-in that returns a prediction already made in a batch, so that a dataset
    sample goes through exactly the assembly ``reconstruct_record`` applies to a file."""

    def __init__(self, model: Any, prediction: np.ndarray) -> None:
        self.name, self.version = model.name, getattr(model, "version", "")
        self.input_leads, self.output_leads = model.input_leads, model.output_leads
        self.fs = model.fs
        self._prediction = prediction

    def predict(self, x: np.ndarray, **_: Any) -> np.ndarray:
        return self._prediction[None]


def _evaluate_dataset(
    path: Path,
    models: Sequence[Any],
    split: str,
    options: EvaluateOptions,
    reconstruct: Callable[[ECGRecord, Any], ECGRecord],
    input_leads: tuple[str, ...],
) -> list[Evaluation]:
    from ecgfill.train.data import open_dataset

    ds = open_dataset(path)
    dataset_highpass = highpass_in(ds.meta.get("filters"))
    for m in models:
        if abs(m.fs - ds.fs) > 1e-6:
            raise UsageError(
                f"model {m.name} runs at {m.fs:g} Hz but dataset {path} is at {ds.fs:g} Hz"
            )
        if _highpass_of(m) != dataset_highpass:
            raise UsageError(
                f"model {m.name} was trained with {_describe_highpass(_highpass_of(m))} but "
                f"dataset {path} has {_describe_highpass(dataset_highpass)}; preprocess it with "
                "the model's filter (ecgfill preprocess --highpass) or evaluate record files"
            )
    indices = ds.indices(split)
    indices = indices[ds.n_valid[indices] > 0]
    if indices.size == 0:
        available = sorted({s for s in ds.split.tolist() if s != "excluded"})
        raise UsageError(
            f"{path}: no valid samples in split {split!r} (splits present: {', '.join(available)})"
        )
    if options.limit:
        indices = indices[: options.limit]
    evaluations = _new_evaluations("dataset", str(path), models, split, input_leads)
    keepers = [_Keeper(options.keep_worst, options.keep_names) for _ in models]
    for batch, length in _length_batches(indices, ds.n_valid):
        truth_batch = np.asarray(ds.signals[batch][:, :, :length], dtype=np.float32)
        predictions = [np.asarray(m.predict(truth_batch[:, [STANDARD_LEADS.index(n)
                                                             for n in m.input_leads]]),
                                  dtype=np.float32) for m in models]
        for k, index in enumerate(batch):
            name = ds.manifest[int(index)].get("id") or str(int(index))
            truth = ECGRecord(truth_batch[k], ds.fs, STANDARD_LEADS, source=name)
            masked = masked_input(truth, input_leads)
            reconstructions = (
                reconstruct(masked, _Replay(m, p[k])) for m, p in zip(models, predictions,
                                                                        strict=True)
            )
            _score_all(evaluations, keepers, name, truth, reconstructions, options)
            if options.progress:
                options.progress(1)
    for evaluation, keeper in zip(evaluations, keepers, strict=True):
        evaluation.kept = keeper.kept()
    return evaluations


def _length_batches(indices: np.ndarray, n_valid: np.ndarray) -> Iterator[tuple[np.ndarray, int]]:
    """Dataset rows grouped by valid length (so no padding is predicted), in batches that keep
    each model call near ``DATASET_BATCH_SAMPLES`` samples per lead; in index order."""
    lengths = n_valid[indices]
    for length in np.unique(lengths):
        rows = indices[lengths == length]
        size = max(1, DATASET_BATCH_SAMPLES // int(length))
        for start in range(0, rows.size, size):
            yield rows[start : start + size], int(length)


# ------------------------------------------------------------------------------------------
# Mode 2: two folders


def match_records(references: Sequence[Any], reconstructed: Sequence[Any]) -> list[tuple[Any, Any]]:
    """Pair each reference :class:`~ecgfill.io.discover.RecordInput` with its reconstruction:
    same path relative to the folder, else the same record name when that name is unique in
    both lists. Unmatched references pair with None."""
    by_path = {r.relative().as_posix(): r for r in reconstructed}
    names: dict[str, list[Any]] = {}
    for r in reconstructed:
        names.setdefault(r.relative().name, []).append(r)
    ref_names: dict[str, int] = {}
    for r in references:
        ref_names[r.relative().name] = ref_names.get(r.relative().name, 0) + 1
    pairs = []
    for ref in references:
        rel = ref.relative()
        match = by_path.get(rel.as_posix())
        if match is None and ref_names[rel.name] == 1 and len(names.get(rel.name, [])) == 1:
            match = names[rel.name][0]
        pairs.append((ref, match))
    return pairs


def evaluate_folders(
    references: Sequence[str], reconstructed_dir: str | Path, options: EvaluateOptions | None = None
) -> Evaluation:
    """Score the records under ``reconstructed_dir`` against the matching references."""
    from ecgfill.io import read_record
    from ecgfill.io.discover import find_records

    options = options or EvaluateOptions()
    recon_dir = Path(reconstructed_dir)
    if not recon_dir.is_dir():
        raise UsageError(f"{recon_dir}: --reconstructed must be a directory")
    ref_items = find_records(list(references))
    recon_items = [r for r in find_records([str(recon_dir)]) if not r.error]
    evaluation = Evaluation(mode="folders", reference=", ".join(references))
    keeper = _Keeper(options.keep_worst, options.keep_names)
    pairs = match_records([r for r in ref_items if not r.error], recon_items)
    evaluation.failures.extend((r.relative().as_posix(), r.error) for r in ref_items if r.error)
    for ref, rec in pairs[: options.limit] if options.limit else pairs:
        name = ref.relative().as_posix()
        try:
            if rec is None:
                raise RecordError(ref.path, f"no reconstruction of it in {recon_dir}")
            truth = read_record(ref.path)
            recon = read_record(rec.path)
            score = score_record(name, truth, recon, features=options.features)
        except EcgfillError as exc:
            evaluation.failures.append((name, _problem(exc)))
        else:
            evaluation.scores.append(score)
            truth12, recon12 = complete_reference(truth, name), _as_twelve(recon, name)
            keeper.offer(score, truth12, recon12)
            if options.observe:
                options.observe(0, name, truth12, recon12)
        finally:
            if options.progress:
                options.progress(1)
    evaluation.kept = keeper.kept()
    models = sorted({s.model for s in evaluation.scores if s.model})
    evaluation.model = "; ".join(models) or None
    input_sets = {s.input_leads for s in evaluation.scores}
    evaluation.input_leads = input_sets.pop() if len(input_sets) == 1 else None
    return evaluation

