"""Writing the dataset: rows to ``signals.npy`` in input order as parallel workers finish
them, ``manifest.csv``, ``stats.json`` (per-lead moments of the train split) and
``dataset.json``, all built in a hidden sibling directory that is renamed into place at the end.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from itertools import islice
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from ecgfill import __version__, console
from ecgfill.errors import EcgfillError, UsageError
from ecgfill.leads import STANDARD_LEADS
from ecgfill.preprocess.config import EXCLUDED, SPLITS
from ecgfill.preprocess.record import ProcessedRecord, RecordSettings, process_record
from ecgfill.preprocess.splits import SplitRow

T = TypeVar("T")
R = TypeVar("R")

MANIFEST_COLUMNS: tuple[str, ...] = (
    "id", "source", "patient_id", "split", "fs_original", "n_valid", "flags", "index",
    "exclude_reason", "strat_fold",
)
PIPELINE = ("read", "interpolate short NaN gaps", "derive limb leads", "resample", "highpass",
            "crop or zero-pad")


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


@dataclass
class Entry:
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


def index_of(entry: Entry) -> int:
    return -1 if entry.index is None else entry.index


def write_signals(
    path: Path, entries: list[Entry], settings: RecordSettings, workers: int
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


def counts_of(entries: list[Entry]) -> dict[str, Any]:
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


def dataset_info(
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


def write_manifest(path: Path, entries: list[Entry]) -> None:
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


def write_json(path: Path, obj: dict[str, Any]) -> None:
    path.write_text(json.dumps(obj, indent=2, allow_nan=False) + "\n", encoding="utf-8")


def check_output_dir(output_dir: Path, record_paths: Sequence[Path], overwrite: bool) -> None:
    if output_dir.exists() and not output_dir.is_dir():
        raise UsageError(f"{output_dir}: output path exists and is not a directory")
    if output_dir.is_dir() and any(output_dir.iterdir()) and not overwrite:
        raise UsageError(f"{output_dir}: output directory is not empty (use --overwrite)")
    target = output_dir.resolve()
    for path in record_paths:
        if target in path.resolve().parents:
            raise UsageError(f"{output_dir}: output directory contains input record {path}")


@contextmanager
def partial_dir(output_dir: Path) -> Iterator[Path]:
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
