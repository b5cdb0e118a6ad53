"""Turn folders of ECG records into one reproducible training dataset (``ecgfill preprocess``).

Dataset layout (``OUTPUT_DIR/``):

``signals.npy``
    float32 ``[N, 12, T]`` in mV, leads in :data:`ecgfill.leads.STANDARD_LEADS` order, resampled
    to ``fs`` and cropped to ``T = round(seconds * fs)``; zero past each record's ``n_valid``.
``manifest.csv``
    One row per input record, excluded ones too: :data:`MANIFEST_COLUMNS`. ``split`` is train,
    val, test or excluded; ``index`` is the row in signals.npy (empty when excluded); ``flags``
    are ``;``-joined quality flags (``nan_ratio:0.0012``, ``flat:V1,V2``, ``clipped:II``,
    ``short:4.2s``); ``exclude_reason`` is ``code: detail``.
``stats.json``
    Per-lead mean and std (mV) over the valid samples of the train split.
``dataset.json``
    ecgfill version, command line, fs, seconds, the filters applied (inference applies the same
    through :func:`ecgfill.dsp.apply_filters`), counts and how the splits were made.

Each record is read, short NaN gaps are interpolated, missing limb leads derived, the first
``seconds`` (plus a margin so no edge falls inside the kept part) resampled to ``fs``, optionally
high-passed, and cropped or zero-padded to ``T``. Records are processed in sorted order (in
parallel, results consumed in order) so the same inputs give the same bytes. The dataset is
built in a hidden sibling directory and renamed into place at the end.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import re
import shlex
import shutil
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from functools import partial
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, TypeVar

import numpy as np

from ecgfill import __version__, console
from ecgfill.dsp import RESAMPLE_METHODS, Highpass, fill_gaps, resample, resampled_length
from ecgfill.errors import EcgfillError, RecordError, UsageError
from ecgfill.io.names import ptbxl_ecg_id
from ecgfill.leads import CHEST_LEADS, LIMB_LEADS, STANDARD_LEADS
from ecgfill.quality import clipped_level, is_flat

if TYPE_CHECKING:
    from ecgfill.io.discover import RecordInput

T = TypeVar("T")
R = TypeVar("R")

SPLITS: tuple[str, ...] = ("train", "val", "test")
EXCLUDED = "excluded"
MANIFEST_COLUMNS: tuple[str, ...] = (
    "id", "source", "patient_id", "split", "fs_original", "n_valid", "flags", "index",
    "exclude_reason", "strat_fold",
)
MAX_GAP_MS = 50.0  # NaN runs up to this long are interpolated; longer ones exclude the record
MIN_SECONDS = 5.0  # records shorter than this are flagged "short"
EDGE_MARGIN_S = 1.0  # extra input kept past ``seconds`` so resampling has real right context
PIPELINE = ("read", "interpolate short NaN gaps", "derive limb leads", "resample", "highpass",
            "crop or zero-pad")
_PATIENT_COMMENT = re.compile(
    r"^\s*#?\s*(?:patient|subject)[\s_-]*(?:id)?\s*[:=]\s*(\S+)\s*$", re.IGNORECASE
)


# --------------------------------------------------------------------------- configuration


def parse_folds(text: str) -> frozenset[int]:
    """Fold numbers from ``"1-8"``, ``"9"``, ``"1,3,5-7"`` or ``""`` (none)."""
    folds: set[int] = set()
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        match = re.fullmatch(r"(\d+)(?:\s*-\s*(\d+))?", part)
        if not match:
            raise ValueError(f"bad fold list {text!r} (expected e.g. 1-8 or 1,2,3)")
        low, high = int(match[1]), int(match[2] or match[1])
        if high < low:
            raise ValueError(f"bad fold range {part!r}")
        folds.update(range(low, high + 1))
    return frozenset(folds)


@dataclass(frozen=True)
class FoldSplits:
    """Which ``strat_fold`` values go to train, val and test (disjoint)."""

    train: frozenset[int] = frozenset(range(1, 9))
    val: frozenset[int] = frozenset({9})
    test: frozenset[int] = frozenset({10})

    def __post_init__(self) -> None:
        for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
            common = getattr(self, a) & getattr(self, b)
            if common:
                folds = ",".join(map(str, sorted(common)))
                raise UsageError(f"fold {folds} is in both the {a} and the {b} folds")
        if not (self.train or self.val or self.test):
            raise UsageError("no folds given for any split")

    def split_of(self, fold: int) -> str | None:
        return next((s for s in SPLITS if fold in getattr(self, s)), None)

    def fractions(self) -> dict[str, float]:
        """Share of each split for records without a fold: in proportion to its fold count."""
        total = len(self.train) + len(self.val) + len(self.test)
        return {s: len(getattr(self, s)) / total for s in SPLITS}

    def to_dict(self) -> dict[str, list[int]]:
        return {f"{s}_folds": sorted(getattr(self, s)) for s in SPLITS}


@dataclass(frozen=True)
class PreprocessConfig:
    """Options of ``ecgfill preprocess``; ``fs=None`` keeps the most common input rate."""

    fs: float | None = None
    seconds: float = 10.0
    splits_csv: Path | None = None
    folds: FoldSplits = field(default_factory=FoldSplits)
    workers: int = 1
    highpass_hz: float | None = None
    resample_method: str = "polyphase"
    overwrite: bool = False
    max_gap_ms: float = MAX_GAP_MS
    min_seconds: float = MIN_SECONDS

    def __post_init__(self) -> None:
        if self.fs is not None and not (math.isfinite(self.fs) and self.fs > 0):
            raise UsageError(f"--fs must be a positive rate in Hz, not {self.fs}")
        if not (math.isfinite(self.seconds) and self.seconds > 0):
            raise UsageError(f"--seconds must be positive, not {self.seconds}")
        if self.resample_method not in RESAMPLE_METHODS:
            raise UsageError(f"--resample must be one of {', '.join(RESAMPLE_METHODS)}")
        if self.workers < 1:
            raise UsageError("--workers must be at least 1")
        if self.highpass_hz is not None and not self.highpass_hz > 0:
            raise UsageError(f"--highpass must be a positive cutoff in Hz, not {self.highpass_hz}")

    def command_line(self, inputs: Sequence[str], output_dir: str | Path) -> str:
        """The ``ecgfill preprocess`` call that gives this output; --workers and --overwrite are
        left out because they do not change a byte of it."""
        options = [
            *(["--fs", f"{self.fs:g}"] if self.fs else []),
            "--seconds", f"{self.seconds:g}",
            *(["--splits", str(self.splits_csv)] if self.splits_csv else []),
            *(["--highpass", f"{self.highpass_hz:g}"] if self.highpass_hz else []),
            "--resample", self.resample_method,
        ]
        if self.splits_csv:
            for split in SPLITS:
                folds = sorted(getattr(self.folds, split))
                options += [f"--{split}-folds", ",".join(map(str, folds))]
        return shlex.join(["ecgfill", "preprocess", *inputs, str(output_dir), *options])


# --------------------------------------------------------------------------- one record


@dataclass(frozen=True)
class RecordSettings:
    """What a worker needs to turn one record into one dataset row."""

    fs: float
    n_samples: int
    seconds: float
    resample_method: str
    highpass: Highpass | None
    max_gap_ms: float
    min_seconds: float


@dataclass
class ProcessedRecord:
    """One record's row (``signal`` ``[12, T]``) or why it is left out (``exclusion``)."""

    signal: np.ndarray | None = None
    n_valid: int = 0
    fs_original: float | None = None
    flags: tuple[str, ...] = ()
    exclusion: tuple[str, str] | None = None  # (code, detail)
    unreadable: bool = False  # the record could not be read at all (an error, not a rule)
    header_patient_id: str | None = None

    @property
    def exclude_reason(self) -> str:
        return f"{self.exclusion[0]}: {self.exclusion[1]}" if self.exclusion else ""


def process_record(path: str, settings: RecordSettings) -> ProcessedRecord:
    """Read and conform one record; never raises for a bad record.

    Only the first ``seconds`` plus a margin are read, so long (e.g. 24-hour) records cost no
    more than short ones; checksums are verified when that is the whole record.
    """
    from ecgfill.io import open_record

    try:
        with open_record(path) as reader:
            total = reader.n_samples
            needed = min(total, math.ceil((settings.seconds + _margin_s(settings)) * reader.fs))
            record = reader.read(0, needed)
            if needed == total:
                reader.verify()
    except RecordError as exc:
        return ProcessedRecord(exclusion=("unreadable", exc.problem), unreadable=True)
    except Exception as exc:  # a reader bug must not stop the batch
        detail = f"internal error ({type(exc).__name__}: {_first_line(exc)})"
        return ProcessedRecord(exclusion=("unreadable", detail), unreadable=True)
    out = ProcessedRecord(
        fs_original=record.fs,
        flags=quality_flags(record.signal, record.leads, record.fs, settings.min_seconds, total),
        header_patient_id=patient_id_from_comments(record.comments),
    )
    repaired, out.exclusion = repair_gaps(record.signal, record.leads, record.fs, settings.max_gap_ms)
    if out.exclusion:
        return out
    try:
        full = replace(record, signal=repaired).with_limb_leads()
    except ValueError:
        limb = ", ".join(n for n in record.leads if n in LIMB_LEADS) or "none"
        out.exclusion = ("missing_limb_leads", f"needs two limb leads, has {limb}")
        return out
    missing = [n for n in CHEST_LEADS if n not in full.leads]
    if missing:
        out.exclusion = ("missing_chest_leads", ", ".join(missing))
        return out
    out.signal, out.n_valid = conform(full.select(STANDARD_LEADS).signal, record.fs, total, settings)
    return out


def _margin_s(settings: RecordSettings) -> float:
    """Input kept past ``seconds`` so resampling and filtering see real data at the crop."""
    return EDGE_MARGIN_S + (3.0 / settings.highpass.cutoff_hz if settings.highpass else 0.0)


def conform(
    x: np.ndarray, fs_in: float, total: int, settings: RecordSettings
) -> tuple[np.ndarray, int]:
    """Resample ``[12, n]`` (the first samples of a ``total``-sample record) to the dataset rate,
    filter, crop or zero-pad; returns (row, n_valid)."""
    keep = min(x.shape[1], math.ceil((settings.seconds + _margin_s(settings)) * fs_in))
    y = resample(x[:, :keep], fs_in, settings.fs, method=settings.resample_method)
    if settings.highpass:
        y = settings.highpass.apply(y, settings.fs)
    n_valid = min(settings.n_samples, resampled_length(total, fs_in, settings.fs), y.shape[1])
    row = np.zeros((x.shape[0], settings.n_samples), dtype=np.float32)
    row[:, :n_valid] = y[:, :n_valid]
    return row, n_valid


def repair_gaps(
    signal: np.ndarray, leads: Sequence[str], fs: float, max_gap_ms: float
) -> tuple[np.ndarray, tuple[str, str] | None]:
    """Interpolate NaN runs up to ``max_gap_ms``; an exclusion when a lead has a longer one."""
    max_gap = int(math.floor(max_gap_ms * fs / 1000.0 + 1e-9))
    out = np.asarray(signal, dtype=np.float32)
    if np.isfinite(out).all():
        return out, None
    rows = []
    for name, row in zip(leads, out, strict=True):
        if not np.isfinite(row).any():
            return out, ("no_signal", f"lead {name} has no finite samples")
        filled, longest = fill_gaps(row, max_gap)
        if longest > max_gap:
            gap_ms = 1000.0 * longest / fs
            return out, ("nan_gap", f"lead {name} misses {gap_ms:.0f} ms (limit {max_gap_ms:g} ms)")
        rows.append(filled)
    return np.stack(rows), None


def quality_flags(
    signal: np.ndarray,
    leads: Sequence[str],
    fs: float,
    min_seconds: float = MIN_SECONDS,
    total_samples: int | None = None,
) -> tuple[str, ...]:
    """Flags for the measured leads: NaN ratio, flat leads, clipping at the rails, too short.

    ``signal`` may be the first part of a record of ``total_samples`` (for the length check).
    """
    flags: list[str] = []
    finite = np.isfinite(signal)
    nan_ratio = 1.0 - float(finite.mean()) if signal.size else 0.0
    if nan_ratio > 0:
        flags.append(f"nan_ratio:{nan_ratio:.4f}")
    flat, clipped = [], []
    for name, row, ok in zip(leads, signal, finite, strict=True):
        if not ok.any():
            continue
        if is_flat(row):
            flat.append(name)
        elif clipped_level(row, fs) is not None:
            clipped.append(name)
    if flat:
        flags.append("flat:" + ",".join(flat))
    if clipped:
        flags.append("clipped:" + ",".join(clipped))
    seconds = (signal.shape[-1] if total_samples is None else total_samples) / fs
    if seconds < min_seconds:
        flags.append(f"short:{seconds:.1f}s")
    return tuple(flags)


def patient_id_from_comments(comments: Sequence[str]) -> str | None:
    """A patient id from header comments such as ``patient_id: 15709`` or ``#Patient: 12``."""
    for line in comments:
        match = _PATIENT_COMMENT.match(line)
        if match:
            return _normalise_id(match[1])
    return None


def _normalise_id(value: str) -> str | None:
    """``"15709.0"`` -> ``"15709"``; empty and NaN -> None."""
    text = value.strip()
    if not text or text.lower() in {"nan", "none", "unknown"}:
        return None
    if re.fullmatch(r"\d+\.0*", text):
        return text.split(".")[0]
    return text


# --------------------------------------------------------------------------- splits


@dataclass(frozen=True)
class SplitRow:
    """What a splits CSV says about one record."""

    patient_id: str | None
    strat_fold: int | None


class SplitTable:
    """A splits CSV (``patient_id``, optional ``strat_fold``) indexed for record lookup.

    Rows match a record by ``filename_lr``/``filename_hr``/``record`` as a suffix of its path
    (without extension), or by ``ecg_id`` against the record name (see
    :func:`~ecgfill.io.names.ptbxl_ecg_id`).
    """

    KEY_COLUMNS = ("filename_lr", "filename_hr", "record")

    def __init__(self, path: Path) -> None:
        self.path = path
        self.by_path: dict[str, SplitRow] = {}
        self.by_ecg_id: dict[int, SplitRow] = {}
        try:
            with path.open(newline="", encoding="utf-8-sig") as handle:
                reader = csv.DictReader(handle)
                columns = set(reader.fieldnames or ())
                if not columns & {*self.KEY_COLUMNS, "ecg_id"}:
                    raise UsageError(
                        f"{path}: splits CSV needs an ecg_id, filename_lr, filename_hr or record "
                        "column to match records"
                    )
                self.has_folds = "strat_fold" in columns
                for line, row in enumerate(reader, start=2):
                    self._add(row, line)
        except OSError as exc:
            raise UsageError(f"{path}: cannot read splits CSV ({exc.strerror or exc})") from None
        except (csv.Error, UnicodeDecodeError) as exc:
            raise UsageError(f"{path}: not a readable CSV ({_first_line(exc)})") from None

    def _add(self, row: dict[str, str | None], line: int) -> None:
        fold_text = (row.get("strat_fold") or "").strip()
        try:
            fold = int(float(fold_text)) if fold_text else None
        except ValueError:
            raise UsageError(f"{self.path}:{line}: strat_fold {fold_text!r} is not a number") from None
        entry = SplitRow(_normalise_id(row.get("patient_id") or ""), fold)
        for column in self.KEY_COLUMNS:
            key = _path_key(row.get(column) or "")
            if key:
                self.by_path[key] = entry
        ecg_id = (row.get("ecg_id") or "").strip()
        if ecg_id:
            try:
                self.by_ecg_id[int(float(ecg_id))] = entry
            except ValueError:
                raise UsageError(f"{self.path}:{line}: ecg_id {ecg_id!r} is not a number") from None

    def lookup(self, record_path: Path) -> SplitRow | None:
        parts = record_path.with_suffix("").parts
        for k in range(len(parts), 0, -1):
            found = self.by_path.get("/".join(parts[-k:]))
            if found:
                return found
        ecg_id = ptbxl_ecg_id(record_path)
        return self.by_ecg_id.get(ecg_id) if ecg_id is not None else None


def _path_key(value: str) -> str:
    text = value.strip().replace("\\", "/")
    while text.startswith("./"):
        text = text[2:]
    return str(Path(text).with_suffix("")) if text else ""


def hash_split(key: str, fractions: dict[str, float]) -> str:
    """A stable split for ``key``: SHA-256 mapped to [0, 1) and cut by ``fractions``."""
    value = int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big") / 2.0**64
    edge = 0.0
    for split in SPLITS:
        edge += fractions[split]
        if value < edge:
            return split
    return next(s for s in reversed(SPLITS) if fractions[s] > 0)


@dataclass
class SplitCandidate:
    """The split-relevant facts of one included record."""

    record_id: str
    patient_id: str | None
    strat_fold: int | None


def assign_splits(
    candidates: Sequence[SplitCandidate], folds: FoldSplits
) -> tuple[list[str], dict[str, Any]]:
    """Train/val/test per record; a patient never spans two splits.

    By ``strat_fold`` when known, else by a hash of the patient id, else of the record id. A
    patient whose records still land in different splits goes wholly to the most held-out one
    (test over val over train), so nothing of a test patient is trained on.
    """
    fractions = folds.fractions()
    splits: list[str] = []
    methods: Counter[str] = Counter()
    for cand in candidates:
        if cand.strat_fold is not None:
            split = folds.split_of(cand.strat_fold)
            if split is None:
                raise ValueError(f"{cand.record_id}: fold {cand.strat_fold} is in no split")
            methods["strat_fold"] += 1
        elif cand.patient_id is not None:
            split = hash_split("patient:" + cand.patient_id, fractions)
            methods["patient_id_hash"] += 1
        else:
            split = hash_split("record:" + cand.record_id, fractions)
            methods["record_hash"] += 1
        splits.append(split)
    rank = {s: i for i, s in enumerate(SPLITS)}
    strictest: dict[str, str] = {}
    for cand, split in zip(candidates, splits, strict=True):
        if cand.patient_id is not None:
            current = strictest.get(cand.patient_id, split)
            strictest[cand.patient_id] = max(current, split, key=rank.__getitem__)
    moved = 0
    for i, cand in enumerate(candidates):
        if cand.patient_id is not None and strictest[cand.patient_id] != splits[i]:
            splits[i] = strictest[cand.patient_id]
            moved += 1
    info = {
        "by": dict(sorted(methods.items())),
        **folds.to_dict(),
        "hash_fractions": fractions,
        "moved_to_keep_patients_together": moved,
    }
    return splits, info


# --------------------------------------------------------------------------- statistics


@dataclass
class LeadMoments:
    """Per-lead count, mean and sum of squared deviations; merged exactly (Chan et al.)."""

    count: int = 0
    mean: np.ndarray = field(default_factory=lambda: np.zeros(len(STANDARD_LEADS)))
    m2: np.ndarray = field(default_factory=lambda: np.zeros(len(STANDARD_LEADS)))

    @classmethod
    def of(cls, valid: np.ndarray) -> LeadMoments:
        data = valid.astype(np.float64)
        mean = data.mean(axis=1) if data.shape[1] else np.zeros(data.shape[0])
        return cls(data.shape[1], mean, ((data - mean[:, None]) ** 2).sum(axis=1))

    def merge(self, other: LeadMoments) -> LeadMoments:
        total = self.count + other.count
        if other.count == 0:
            return self
        if self.count == 0:
            return other
        delta = other.mean - self.mean
        mean = self.mean + delta * (other.count / total)
        m2 = self.m2 + other.m2 + delta**2 * (self.count * other.count / total)
        return LeadMoments(total, mean, m2)

    def to_json(self) -> dict[str, Any]:
        has = self.count > 0
        std = np.sqrt(self.m2 / self.count) if has else None
        return {
            "leads": list(STANDARD_LEADS),
            "mean": [float(v) for v in self.mean] if has else [None] * len(STANDARD_LEADS),
            "std": [float(v) for v in std] if std is not None else [None] * len(STANDARD_LEADS),
            "split": "train",
            "n_samples_per_lead": self.count,
        }


# --------------------------------------------------------------------------- the run


@dataclass
class PreprocessSummary:
    """What a run produced (the command prints it)."""

    output: Path
    fs: float
    n_samples: int
    counts: dict[str, Any]
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return {
            "output": str(self.output),
            "fs": self.fs,
            "samples": self.n_samples,
            **{k: v for k, v in self.counts.items() if not isinstance(v, dict)},
            "elapsed_s": round(self.seconds, 3),
        }


@dataclass
class _Entry:
    """Everything the manifest needs about one input record."""

    record_id: str
    source: Path
    csv_row: SplitRow | None
    result: ProcessedRecord = field(default_factory=ProcessedRecord)
    index: int | None = None
    moments: LeadMoments | None = None
    split: str = EXCLUDED

    @property
    def patient_id(self) -> str | None:
        from_csv = self.csv_row.patient_id if self.csv_row else None
        return from_csv or self.result.header_patient_id

    @property
    def strat_fold(self) -> int | None:
        return self.csv_row.strat_fold if self.csv_row else None


def preprocess(
    inputs: Sequence[str],
    output_dir: str | Path,
    config: PreprocessConfig | None = None,
    command: str | None = None,
) -> PreprocessSummary:
    """Build the dataset in ``output_dir`` from ``inputs`` (files, directories, globs, ``-``).

    ``command`` is recorded in dataset.json (default: the equivalent ``ecgfill preprocess``
    call). Per-record problems are one error line on stderr and an excluded manifest row;
    problems with the inputs or options raise :class:`~ecgfill.errors.UsageError`.
    """
    from ecgfill.io.discover import find_records

    config = config or PreprocessConfig()
    command = command or config.command_line(inputs, output_dir)
    started = time.perf_counter()
    output_dir = Path(output_dir)
    found = find_records(list(inputs))
    for bad in (item for item in found if item.error):
        console.error(f"{bad.path}: {bad.error}")
    items = [item for item in found if not item.error]
    if not items:
        raise UsageError("no ECG records found in the inputs")
    _check_output_dir(output_dir, [item.path for item in items], config.overwrite)
    table = SplitTable(config.splits_csv) if config.splits_csv else None
    entries = [
        _Entry(record_id, item.path, table.lookup(item.path) if table else None)
        for record_id, item in zip(_record_ids(items), items, strict=True)
    ]
    fs = config.fs or most_common_rate([item.path for item in items])
    settings = RecordSettings(
        fs=fs,
        n_samples=round(config.seconds * fs),
        seconds=config.seconds,
        resample_method=config.resample_method,
        highpass=Highpass(config.highpass_hz) if config.highpass_hz else None,
        max_gap_ms=config.max_gap_ms,
        min_seconds=config.min_seconds,
    )
    if settings.n_samples < 1:
        raise UsageError(f"--seconds {config.seconds} gives no sample at {fs:g} Hz")
    if settings.highpass and not settings.highpass.cutoff_hz < fs / 2:
        raise UsageError(f"--highpass {settings.highpass.cutoff_hz:g} Hz is not below fs/2")
    to_read = _apply_fold_exclusions(entries, config.folds)
    with _partial_dir(output_dir) as tmp:
        _write_signals(tmp / "signals.npy", to_read, settings, config.workers)
        split_info = _split_entries(entries, config.folds, table)
        counts = _counts(entries)
        _write_manifest(tmp / "manifest.csv", entries)
        moments = LeadMoments()
        for entry in sorted((e for e in entries if e.split == "train"), key=_index_of):
            moments = moments.merge(entry.moments or LeadMoments())
        _write_json(tmp / "stats.json", moments.to_json())
        _write_json(tmp / "dataset.json", _dataset_info(command, settings, counts, split_info))
    return PreprocessSummary(output_dir, fs, settings.n_samples, counts, time.perf_counter() - started)


def _index_of(entry: _Entry) -> int:
    return -1 if entry.index is None else entry.index


def _apply_fold_exclusions(entries: list[_Entry], folds: FoldSplits) -> list[_Entry]:
    """Exclude records whose CSV fold is in no split (they are not read); the rest to read."""
    to_read = []
    for entry in entries:
        fold = entry.strat_fold
        if fold is not None and folds.split_of(fold) is None:
            detail = f"strat_fold {fold} is in none of the train, val or test folds"
            entry.result = ProcessedRecord(exclusion=("fold_not_selected", detail))
        else:
            to_read.append(entry)
    return to_read


def _write_signals(
    path: Path, entries: list[_Entry], settings: RecordSettings, workers: int
) -> None:
    """Process ``entries`` in order, writing included rows to ``path`` as they arrive."""
    shape = (max(len(entries), 1), len(STANDARD_LEADS), settings.n_samples)
    signals = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=shape)
    n_rows = 0
    work = partial(process_record, settings=settings)
    with console.progress("Preprocessing", len(entries)) as advance:
        results = ordered_map(work, [str(e.source) for e in entries], workers)
        for entry, result in zip(entries, results, strict=True):
            if result.unreadable:
                console.error(f"{entry.source}: {result.exclusion[1] if result.exclusion else ''}")
            if result.signal is not None and result.exclusion is None:
                signals[n_rows] = result.signal
                entry.index = n_rows
                entry.moments = LeadMoments.of(result.signal[:, : result.n_valid])
                n_rows += 1
            result.signal = None  # the row lives in the memmap now
            entry.result = result
            advance()
    signals.flush()
    del signals
    shrink_npy_rows(path, n_rows)


def _split_entries(
    entries: list[_Entry], folds: FoldSplits, table: SplitTable | None
) -> dict[str, Any]:
    included = [e for e in entries if e.index is not None]
    candidates = [SplitCandidate(e.record_id, e.patient_id, e.strat_fold) for e in included]
    splits, info = assign_splits(candidates, folds)
    for entry, split in zip(included, splits, strict=True):
        entry.split = split
    info["csv"] = str(table.path) if table else None
    info["not_in_csv"] = sum(1 for e in included if table and e.csv_row is None)
    return info


def _counts(entries: list[_Entry]) -> dict[str, Any]:
    splits = Counter(e.split for e in entries)
    reasons = Counter(e.result.exclusion[0] for e in entries if e.result.exclusion)
    flags = Counter(f.split(":")[0] for e in entries for f in e.result.flags)
    rates = Counter(f"{e.result.fs_original:g}" for e in entries if e.result.fs_original)
    return {
        "records": len(entries),
        "included": sum(splits[s] for s in SPLITS),
        **{s: splits[s] for s in SPLITS},
        "excluded": splits[EXCLUDED],
        "unreadable": reasons["unreadable"],
        "exclude_reasons": dict(sorted(reasons.items())),
        "flags": dict(sorted(flags.items())),
        "fs_original": dict(sorted(rates.items(), key=lambda kv: float(kv[0]))),
    }


def _dataset_info(
    command: str, settings: RecordSettings, counts: dict[str, Any], split_info: dict[str, Any]
) -> dict[str, Any]:
    return {
        "ecgfill_version": __version__,
        "command": command,
        "fs": settings.fs,
        "seconds": settings.seconds,
        "samples": settings.n_samples,
        "leads": list(STANDARD_LEADS),
        "signals": "float32 [N, 12, samples] mV, zero past n_valid",
        "filters": {
            "highpass": settings.highpass.to_dict() if settings.highpass else None,
            "resample": {
                "method": settings.resample_method,
                "antialias": "Kaiser FIR, 80 dB stopband from the lower Nyquist frequency"
                if settings.resample_method == "polyphase"
                else None,
            },
            "nan_gap_max_ms": settings.max_gap_ms,
            "order": list(PIPELINE),
        },
        "counts": counts,
        "splits": split_info,
    }


def _write_manifest(path: Path, entries: list[_Entry]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(MANIFEST_COLUMNS)
        for e in entries:
            r = e.result
            writer.writerow([
                e.record_id,
                str(e.source),
                e.patient_id or "",
                e.split,
                f"{r.fs_original:g}" if r.fs_original else "",
                r.n_valid if e.index is not None else "",
                ";".join(r.flags),
                "" if e.index is None else e.index,
                r.exclude_reason,
                "" if e.strat_fold is None else e.strat_fold,
            ])


def _write_json(path: Path, obj: dict[str, Any]) -> None:
    path.write_text(json.dumps(obj, indent=2, allow_nan=False) + "\n", encoding="utf-8")


# --------------------------------------------------------------------------- helpers


def most_common_rate(paths: Sequence[Path]) -> float:
    """The most frequent sampling rate among the records' headers (the higher one on a tie)."""
    rates = Counter(r for r in map(probe_fs, paths) if r is not None)
    if not rates:
        raise UsageError("cannot tell the sampling rate of any input record; give --fs")
    return max(rates.items(), key=lambda kv: (kv[1], kv[0]))[0]


def probe_fs(path: Path) -> float | None:
    """A record's sampling rate from its header alone (WFDB ``.hea`` or EDF/BDF); None if unknown."""
    try:
        if path.suffix.lower() == ".hea":
            return _wfdb_header_fs(path.read_text(encoding="latin-1"))
        with path.open("rb") as handle:
            return _edf_header_fs(handle.read(256), handle)
    except (OSError, ValueError):
        return None


def _wfdb_header_fs(text: str) -> float | None:
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            fields = line.split()
            if len(fields) < 3:
                return 250.0  # the WFDB default
            match = re.match(r"[0-9.eE+-]+", fields[2])
            return float(match[0]) if match else None
    return None


def _edf_header_fs(head: bytes, handle: BinaryIO) -> float | None:
    if len(head) < 256:
        return None
    duration = float(head[244:252].decode("ascii").strip() or "nan")
    n_signals = int(head[252:256].decode("ascii").strip())
    rest = handle.read(n_signals * 256)
    labels = [rest[16 * i : 16 * i + 16].decode("latin-1").strip() for i in range(n_signals)]
    offset = n_signals * 216
    per_record = [int(rest[offset + 8 * i : offset + 8 * i + 8].decode("ascii").strip() or 0)
                  for i in range(n_signals)]
    rates = Counter(n / duration for label, n in zip(labels, per_record, strict=True)
                    if n > 0 and "annotation" not in label.lower())
    if not rates or not duration > 0:
        return None
    return max(rates.items(), key=lambda kv: (kv[1], kv[0]))[0]


def _record_ids(items: Sequence[RecordInput]) -> list[str]:
    """Unique ids: the path below the input root without suffix (root name prefixed on clashes)."""
    ids = [item.relative().as_posix() for item in items]
    clashes = {i for i, n in Counter(ids).items() if n > 1}
    ids = [f"{item.root.name}/{rid}" if rid in clashes else rid
           for rid, item in zip(ids, items, strict=True)]
    seen: Counter[str] = Counter()
    unique = []
    for rid in ids:
        seen[rid] += 1
        unique.append(rid if seen[rid] == 1 else f"{rid}#{seen[rid]}")
    return unique


def _check_output_dir(output_dir: Path, record_paths: Sequence[Path], overwrite: bool) -> None:
    if output_dir.exists() and not output_dir.is_dir():
        raise UsageError(f"{output_dir}: output path exists and is not a directory")
    if output_dir.is_dir() and any(output_dir.iterdir()) and not overwrite:
        raise UsageError(f"{output_dir}: output directory is not empty (use --overwrite)")
    target = output_dir.resolve()
    for path in record_paths:
        if target in path.resolve().parents:
            raise UsageError(f"{output_dir}: output directory contains input record {path}")


@contextmanager
def _partial_dir(output_dir: Path) -> Iterator[Path]:
    """A hidden sibling directory to build in, renamed to ``output_dir`` on success only."""
    parent = output_dir.resolve().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp = parent / f".{output_dir.name}.partial-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
    except OSError as exc:
        raise EcgfillError(f"{output_dir}: cannot create output ({exc.strerror or exc})") from None
    try:
        yield tmp
        _publish(tmp, output_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _publish(tmp: Path, output_dir: Path) -> None:
    old = None
    if output_dir.is_dir():
        if any(output_dir.iterdir()):
            old = output_dir.with_name(f".{output_dir.name}.old-{os.getpid()}")
            output_dir.rename(old)
        else:
            output_dir.rmdir()
    tmp.rename(output_dir)
    if old is not None:
        shutil.rmtree(old)


def shrink_npy_rows(path: Path, n_rows: int) -> None:
    """Cut an ``.npy`` array to its first ``n_rows`` rows in place (header rewritten, file cut).

    The new header keeps the old header's length (padded with spaces, as the format allows), so
    the data need not move.
    """
    with path.open("r+b") as handle:
        version = np.lib.format.read_magic(handle)
        read_header = {
            (1, 0): np.lib.format.read_array_header_1_0,
            (2, 0): np.lib.format.read_array_header_2_0,
        }[version]
        shape, fortran, dtype = read_header(handle)
        offset = handle.tell()
        if fortran or n_rows > shape[0]:
            raise ValueError(f"cannot shrink {shape} to {n_rows} rows")
        new_shape = (n_rows, *shape[1:])
        text = repr({"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False,
                     "shape": new_shape})
        prefix = np.lib.format.magic(*version)
        size_bytes = 2 if version == (1, 0) else 4
        room = offset - len(prefix) - size_bytes
        if len(text) + 1 > room:
            raise ValueError("new .npy header does not fit")
        header = (text + " " * (room - len(text) - 1) + "\n").encode("latin-1")
        handle.seek(len(prefix) + size_bytes)
        handle.write(header)
        handle.truncate(offset + int(np.prod(new_shape)) * dtype.itemsize)


def ordered_map(
    func: Callable[[T], R], items: Sequence[T], workers: int, chunk: int = 16, ahead: int = 4
) -> Iterator[R]:
    """``map(func, items)`` over ``workers`` processes, results in input order.

    At most ``workers * ahead`` chunks are in flight, so memory stays bounded however many
    items there are. ``workers == 1`` runs in this process.
    """
    if workers <= 1 or len(items) <= chunk:
        yield from map(func, items)
        return
    from concurrent.futures import ProcessPoolExecutor

    chunks = iter([items[i : i + chunk] for i in range(0, len(items), chunk)])
    pool = ProcessPoolExecutor(max_workers=workers)
    try:
        pending: deque[Future[list[R]]] = deque(
            pool.submit(_map_chunk, func, c) for c in islice(chunks, workers * ahead)
        )
        while pending:
            done = pending.popleft().result()
            nxt = next(chunks, None)
            if nxt is not None:
                pending.append(pool.submit(_map_chunk, func, nxt))
            yield from done
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _map_chunk(func: Callable[[T], R], chunk: Sequence[T]) -> list[R]:
    return [func(item) for item in chunk]


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
