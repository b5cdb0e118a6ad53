"""Reading a ``preprocess`` dataset directory and turning it into training batches.

A dataset directory holds ``signals.npy`` (float32 ``[N, 12, T]`` mV, standard lead order, zero
padded past each record's ``n_valid``), ``manifest.csv`` (one row per input record with its split;
``index`` gives its row in signals.npy, empty for excluded records; without an ``index`` column
rows map to signals.npy in order), ``stats.json`` (per-lead mean and SD of the train split) and
``dataset.json`` (rate, length, filters, ...).
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ecgfill import __version__
from ecgfill.errors import EcgfillError
from ecgfill.leads import LEAD_INDEX, STANDARD_LEADS
from ecgfill.synth import synthesize_batch
from ecgfill.train.augment import (
    AugmentConfig,
    add_baseline_wander,
    add_noise,
    random_offsets,
    scale_amplitude,
    star_resample,
)

REQUIRED_COLUMNS = ("id", "source", "patient_id", "split", "n_valid")
SPLITS = ("train", "val", "test", "excluded")


@dataclass
class Dataset:
    """An opened dataset directory; ``signals`` is a read-only memory map."""

    path: Path
    signals: np.ndarray
    manifest: list[dict[str, str]]
    fs: float
    stats: dict[str, Any]
    meta: dict[str, Any]
    n_valid: np.ndarray
    split: np.ndarray

    @property
    def n_samples(self) -> int:
        return int(self.signals.shape[-1])

    def indices(self, split: str) -> np.ndarray:
        return np.flatnonzero(self.split == split)

    def lead_stats(self) -> dict[str, tuple[float, float]]:
        return {n: (float(m), float(s)) for n, m, s in
                zip(self.stats["leads"], self.stats["mean"], self.stats["std"], strict=True)}

    def sources(self, split: str = "train") -> dict[str, int]:
        return dict(Counter(self.manifest[i]["source"] for i in self.indices(split)))

    def fingerprint(self) -> str:
        """SHA-256 over the manifest, stats and dataset description, plus the signal shape."""
        digest = hashlib.sha256()
        for name in ("manifest.csv", "stats.json", "dataset.json"):
            digest.update((self.path / name).read_bytes())
        digest.update(repr(tuple(self.signals.shape)).encode())
        return digest.hexdigest()


def _fail(path: Path, problem: str) -> EcgfillError:
    return EcgfillError(f"{path}: {problem}")


def open_dataset(path: Path | str) -> Dataset:
    """Open and check a dataset directory; EcgfillError naming the file on any problem."""
    path = Path(path)
    if not path.is_dir():
        raise _fail(path, "dataset directory not found")
    for name in ("signals.npy", "manifest.csv", "stats.json", "dataset.json"):
        if not (path / name).is_file():
            raise _fail(path / name, "missing (run `ecgfill preprocess` to build the dataset)")
    try:
        signals = np.load(path / "signals.npy", mmap_mode="r")
    except (OSError, ValueError) as exc:
        raise _fail(path / "signals.npy", f"cannot read ({exc})") from None
    if signals.ndim != 3 or signals.shape[1] != len(STANDARD_LEADS) or signals.dtype != np.float32:
        raise _fail(path / "signals.npy", f"expected float32 [N, 12, T], got {signals.dtype} "
                                          f"{list(signals.shape)}")
    try:
        stats = json.loads((path / "stats.json").read_text())
        meta = json.loads((path / "dataset.json").read_text())
    except (OSError, ValueError) as exc:
        raise _fail(path, f"cannot read stats.json/dataset.json ({exc})") from None
    if tuple(stats.get("leads", ())) != STANDARD_LEADS or any(
        len(stats.get(k, ())) != len(STANDARD_LEADS) for k in ("mean", "std")
    ):
        raise _fail(path / "stats.json", "needs leads (the 12 standard leads), mean and std")
    if not all(isinstance(v, int | float) for v in [*stats["mean"], *stats["std"]]) or \
            min(stats["std"]) <= 0:
        raise _fail(path / "stats.json", "needs a number for every lead, and every SD > 0")
    if not isinstance(meta.get("fs"), int | float) or meta["fs"] <= 0:
        raise _fail(path / "dataset.json", "needs a positive sampling rate 'fs'")
    manifest = _manifest_by_row(path / "manifest.csv", signals.shape[0])
    try:
        n_valid = np.array([int(float(r["n_valid"])) for r in manifest], dtype=np.int64)
    except ValueError:
        raise _fail(path / "manifest.csv", "n_valid must be whole numbers") from None
    split = np.array([r["split"] for r in manifest])
    unknown = set(split.tolist()) - set(SPLITS)
    if unknown:
        raise _fail(path / "manifest.csv", f"unknown split values {sorted(unknown)}")
    return Dataset(path=path, signals=signals, manifest=manifest, fs=float(meta["fs"]),
                   stats=stats, meta=meta, n_valid=np.clip(n_valid, 0, signals.shape[-1]),
                   split=split)


def _manifest_by_row(path: Path, n_records: int) -> list[dict[str, str]]:
    """The manifest rows of the records in signals.npy, in signals.npy order."""
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise _fail(path, f"lacks columns {', '.join(missing)}")
        rows = list(reader)
    if "index" in (reader.fieldnames or []):
        try:
            indexed = {int(r["index"]): r for r in rows if r["index"].strip()}
        except ValueError:
            raise _fail(path, "index must be whole numbers") from None
        if sorted(indexed) != list(range(len(indexed))):
            raise _fail(path, "index is not 0..N-1 without gaps")
        rows = [indexed[i] for i in range(len(indexed))]
    if len(rows) != n_records:
        raise _fail(path, f"describes {len(rows)} rows of signals.npy, which has {n_records}")
    return rows


@dataclass(frozen=True)
class BatchSpec:
    """Which leads feed the model and which it predicts, and the training window."""

    input_leads: tuple[str, ...]
    output_leads: tuple[str, ...]
    window: int
    multiple: int

    @property
    def input_index(self) -> list[int]:
        return [LEAD_INDEX[n] for n in self.input_leads]

    @property
    def output_index(self) -> list[int]:
        return [LEAD_INDEX[n] for n in self.output_leads]


def default_window(n_samples: int, multiple: int, fs: float, seconds: float | None) -> int:
    """Training window in samples: ``seconds`` (or the whole record), rounded down to the
    network's multiple."""
    wanted = n_samples if seconds is None else round(seconds * fs)
    window = (wanted // multiple) * multiple
    if window < multiple:
        raise EcgfillError(f"window of {wanted} samples is shorter than the network's "
                           f"multiple {multiple}")
    return window


def read_records(ds: Dataset, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Records ``[b, 12, T]`` (in the order of ``idx``) and their valid lengths."""
    order = np.argsort(idx)
    data = np.empty((len(idx), *ds.signals.shape[1:]), dtype=np.float32)
    data[order] = ds.signals[idx[order]]
    return data, ds.n_valid[idx]


def train_batch(
    ds: Dataset, idx: np.ndarray, spec: BatchSpec, augment: AugmentConfig,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One augmented training batch: inputs ``[b, n_in, W]``, targets ``[b, n_out, W]`` (mV)
    and the valid mask ``[b, W]``."""
    records, n_valid = read_records(ds, idx)
    records, n_valid = star_resample(records, n_valid, augment.star, ds.fs, rng)
    window = spec.window
    if records.shape[-1] < window:
        records = np.pad(records, ((0, 0), (0, 0), (0, window - records.shape[-1])))
    offsets = (random_offsets(n_valid, window, rng) if augment.crop
               else np.zeros(len(idx), dtype=np.int64))
    rows = offsets[:, None] + np.arange(window)
    crops = np.take_along_axis(records, rows[:, None, :], axis=2)
    mask = rows < n_valid[:, None]
    crops = scale_amplitude(crops * mask[:, None, :], augment.scale, rng)
    x = crops[:, spec.input_index]
    x = add_noise(add_baseline_wander(x, augment.wander, ds.fs, rng), augment.noise, rng)
    return x.astype(np.float32), crops[:, spec.output_index].astype(np.float32), mask


def full_batches(
    ds: Dataset, indices: np.ndarray, spec: BatchSpec, batch_size: int
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Whole records (zero-padded to the network's multiple) with their valid masks, for
    validation and the ridge fit."""
    length = -(-ds.n_samples // spec.multiple) * spec.multiple
    for lo in range(0, len(indices), batch_size):
        records, n_valid = read_records(ds, indices[lo:lo + batch_size])
        if length != records.shape[-1]:
            records = np.pad(records, ((0, 0), (0, 0), (0, length - records.shape[-1])))
        mask = np.arange(length)[None, :] < n_valid[:, None]
        yield records[:, spec.input_index], records[:, spec.output_index], mask


def write_synthetic_dataset(
    path: Path | str, n_records: int, seconds: float, fs: float, seed: int = 0,
    splits: tuple[float, float] = (0.7, 0.15),
) -> Path:
    """A dataset directory in ``preprocess`` layout from :func:`ecgfill.synth.synthesize_batch`
    (train/val/test fractions ``splits[0]``, ``splits[1]``, rest), for demos and tests. Every
    fifth record is shortened to three quarters of its length to exercise ``n_valid``."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    signals = synthesize_batch(n_records, seconds, fs, seed)
    length = signals.shape[-1]
    n_valid = np.full(n_records, length)
    n_valid[::5] = length * 3 // 4
    for i in range(0, n_records, 5):
        signals[i, :, n_valid[i]:] = 0.0
    n_train, n_val = int(n_records * splits[0]), int(n_records * splits[1])
    split = ["train"] * n_train + ["val"] * n_val + ["test"] * (n_records - n_train - n_val)
    np.save(path / "signals.npy", signals)
    with open(path / "manifest.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow([*REQUIRED_COLUMNS, "fs_original", "flags", "index"])
        for i in range(n_records):
            writer.writerow([f"synth{i:05d}", "synth", f"p{i}", split[i], n_valid[i], fs, "", i])
    train = signals[:n_train]
    valid = np.arange(length)[None, :] < n_valid[:n_train, None]
    values = train.transpose(1, 0, 2)[:, valid]  # [12, valid samples]
    stats = {"leads": list(STANDARD_LEADS), "mean": values.mean(axis=1).tolist(),
             "std": values.std(axis=1).tolist(), "split": "train"}
    (path / "stats.json").write_text(json.dumps(stats) + "\n")
    meta = {"ecgfill_version": __version__, "command": "write_synthetic_dataset", "fs": fs,
            "seconds": seconds, "samples": length, "filters": {"highpass": None},
            "counts": {"records": n_records, "train": n_train, "val": n_val,
                       "test": n_records - n_train - n_val}}
    (path / "dataset.json").write_text(json.dumps(meta) + "\n")
    return path
