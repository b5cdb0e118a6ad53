"""One record to one dataset row: read the first ``seconds`` (through :mod:`ecgfill.io`),
interpolate short NaN gaps, derive missing limb leads, resample, high-pass, crop or zero-pad, and
flag quality problems. Never raises for a bad record: it is excluded with the reason.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from ecgfill.dsp import Highpass, fill_gaps, resample, resampled_length
from ecgfill.errors import RecordError, first_line
from ecgfill.io import open_record
from ecgfill.leads import CHEST_LEADS, LIMB_LEADS, STANDARD_LEADS
from ecgfill.preprocess.config import MIN_SECONDS
from ecgfill.preprocess.splits import patient_id_from_comments
from ecgfill.quality import clipped_level, is_flat

EDGE_MARGIN_S = 1.0  # extra input kept past ``seconds`` so resampling has real right context


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
        detail = f"internal error ({type(exc).__name__}: {first_line(exc)})"
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
