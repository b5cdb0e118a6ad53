"""The ``ecgfill preprocess`` run: find the records, pick the rate, read and conform them in
order, assign the splits and write the dataset (:mod:`ecgfill.preprocess.dataset`).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ecgfill import console
from ecgfill.dsp import Highpass
from ecgfill.errors import UsageError
from ecgfill.io import probe_fs
from ecgfill.io.discover import RecordInput, find_records
from ecgfill.preprocess.config import FoldSplits, PreprocessConfig
from ecgfill.preprocess.dataset import (
    Entry,
    LeadMoments,
    check_output_dir,
    counts_of,
    dataset_info,
    index_of,
    partial_dir,
    write_json,
    write_manifest,
    write_signals,
)
from ecgfill.preprocess.record import ProcessedRecord, RecordSettings
from ecgfill.preprocess.splits import SplitCandidate, SplitTable, assign_splits


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
    check_output_dir(output_dir, [item.path for item in items], config.overwrite)
    table = SplitTable(config.splits_csv) if config.splits_csv else None
    entries = [
        Entry(record_id, item.path, table.lookup(item.path) if table else None)
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
    with partial_dir(output_dir) as tmp:
        write_signals(tmp / "signals.npy", to_read, settings, config.workers)
        split_info = _split_entries(entries, config.folds, table)
        counts = counts_of(entries)
        write_manifest(tmp / "manifest.csv", entries)
        moments = LeadMoments()
        for entry in sorted((e for e in entries if e.split == "train"), key=index_of):
            moments = moments.merge(entry.moments or LeadMoments())
        write_json(tmp / "stats.json", moments.to_json())
        write_json(tmp / "dataset.json", dataset_info(command, settings, counts, split_info))
    return PreprocessSummary(output_dir, fs, settings.n_samples, counts, time.perf_counter() - started)


def _apply_fold_exclusions(entries: list[Entry], folds: FoldSplits) -> list[Entry]:
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


def _split_entries(
    entries: list[Entry], folds: FoldSplits, table: SplitTable | None
) -> dict[str, Any]:
    included = [e for e in entries if e.index is not None]
    candidates = [SplitCandidate(e.record_id, e.patient_id, e.strat_fold) for e in included]
    splits, info = assign_splits(candidates, folds)
    for entry, split in zip(included, splits, strict=True):
        entry.split = split
    info["csv"] = str(table.path) if table else None
    info["not_in_csv"] = sum(1 for e in included if table and e.csv_row is None)
    return info


def most_common_rate(paths: Sequence[Path]) -> float:
    """The most frequent sampling rate among the records' headers (the higher one on a tie)."""
    rates = Counter(r for r in map(probe_fs, paths) if r is not None)
    if not rates:
        raise UsageError("cannot tell the sampling rate of any input record; give --fs")
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
