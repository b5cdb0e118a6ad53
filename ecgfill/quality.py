"""What is wrong with a signal, in one place: the one definition of a flat lead
(:func:`is_flat`) and of a clipped one (:func:`clipped_level`), used by the readers, the
warnings of ``reconstruct``/``derive-limb`` and the flags of ``preprocess`` alike.

The readers report NaN samples and flat leads (:func:`quality_warnings`, in ``record.warnings``);
:func:`clinical_warnings` looks at the signal itself: clipping at the recorder's limits, leads
that are flat (electrode off) for seconds, strong baseline wander, amplitudes no heart produces
(usually wrong units), records too short to hold a heartbeat, and a sampling rate far from the
model's.
"""

from __future__ import annotations

import numpy as np

from ecgfill.dsp import true_runs
from ecgfill.record import ECGRecord

AMPLITUDE_LIMIT_MV = 10.0  # beyond this from the baseline, a sample is not cardiac
FLAT_MV = 0.02  # peak-to-peak below 20 µV: no ECG (an electrode is off or the lead is zeroed)
FLAT_BLOCK_SECONDS = 0.5  # flatness is judged on blocks this long ...
FLAT_STRETCH_SECONDS = 2.0  # ... and reported when it lasts this long (no pause is this long)
WANDER_LIMIT_MV = 1.5  # baseline excursion within one window: ST levels are lost in it
WANDER_WINDOW_SECONDS = 10.0
BASELINE_RATE_HZ = 50.0  # the baseline is estimated on a signal averaged down to about this rate
BASELINE_MEDIANS_SECONDS = (0.2, 0.6)  # two median filters: remove QRS, then P and T waves
CLIP_MIN_SECONDS = 0.02  # a plateau at the extreme this long (and at least 4 samples) ...
CLIP_MIN_SAMPLES = 4
CLIP_PILE_UP = 2.0  # ... holding more samples than the band just inside it
CLIP_BAND = 0.02  # that band: the top (or bottom) 2 % of the lead's range
CLIP_EXCURSION = 0.25  # the extreme lies at least this share of the range from the median
CLIP_MIN_LEVEL_MV = 1.0  # and at least this far: no recorder's limit lies closer to the baseline
CLIP_EDGE_SECONDS = 0.5  # left out at both ends, where recorders often hold the last value
MIN_SECONDS = 2.0  # shorter records may not hold two heartbeats
FS_FACTOR = 2.0  # a record rate beyond this factor from the model's is worth a warning


def is_flat(row: np.ndarray) -> bool:
    """True when the lead's finite samples span less than :data:`FLAT_MV` (False without any)."""
    finite = row[np.isfinite(row)]
    return bool(finite.size) and float(finite.max() - finite.min()) < FLAT_MV


def flat_warning(name: str, row: np.ndarray) -> str:
    finite = row[np.isfinite(row)]
    span = float(finite.max() - finite.min())
    return f"lead {name} is flat (peak-to-peak {1000 * span:.0f} µV): electrode off?"


def quality_warnings(signal: np.ndarray, leads: tuple[str, ...] | list[str]) -> list[str]:
    """Per-lead problems every reader reports: NaN samples, all-NaN and flat leads."""
    out: list[str] = []
    for name, row in zip(leads, signal, strict=True):
        nan = int(np.count_nonzero(~np.isfinite(row)))
        if row.size and nan == row.size:
            out.append(f"lead {name} has no finite samples")
            continue
        if nan:
            out.append(f"lead {name} has {nan} non-finite samples ({100 * nan / row.size:.1f}%)")
        if is_flat(row):
            out.append(flat_warning(name, row))
    return out


def clinical_warnings(record: ECGRecord, model_fs: float | None = None) -> list[str]:
    """Clinically relevant warnings about ``record``, one line each, without those the reader
    already put in ``record.warnings``. ``model_fs`` adds a check of the sampling rate."""
    out: list[str] = []
    if record.seconds < MIN_SECONDS:
        out.append(
            f"record lasts only {record.seconds:.2f} s: too short to hold two heartbeats"
        )
    for name, row in zip(record.leads, record.signal, strict=True):
        out.extend(_lead_warnings(name, row.astype(np.float64), record.fs))
    if model_fs is not None:
        out.extend(_rate_warnings(record.fs, model_fs))
    return [w for w in out if w not in record.warnings]


def _lead_warnings(name: str, row: np.ndarray, fs: float) -> list[str]:
    finite = row[np.isfinite(row)]
    if finite.size < 2:
        return []
    if is_flat(row):  # the readers report it too (the same words, so it is not repeated)
        return [flat_warning(name, row)]
    out = []
    flat_seconds = _flat_seconds(row, fs)
    if flat_seconds >= FLAT_STRETCH_SECONDS:
        out.append(f"lead {name} is flat for {flat_seconds:.1f} s of {row.size / fs:.1f} s: "
                   "electrode off?")
    clipped = clipped_level(row, fs)
    if clipped is not None:
        level, count = clipped
        out.append(f"lead {name} looks clipped at {level:.3g} mV ({count} samples held at the "
                   "limit): peaks are cut off and amplitudes unreliable")
    baseline = _baseline(np.where(np.isfinite(row), row, float(np.median(finite))), fs)
    wander = _largest_wander(baseline, fs)
    if wander > WANDER_LIMIT_MV:
        out.append(f"lead {name} has strong baseline wander ({wander:.1f} mV within "
                   f"{WANDER_WINDOW_SECONDS:g} s): ST levels are unreliable")
    amplitude = float(np.nanmax(np.abs(row - baseline)))
    if amplitude > AMPLITUDE_LIMIT_MV:
        out.append(f"lead {name} reaches {amplitude:.1f} mV from its baseline, beyond what a "
                   "heart produces (wrong units in the file, or an artefact?)")
    return out


def _flat_seconds(row: np.ndarray, fs: float) -> float:
    """Longest run of consecutive flat blocks, in seconds (blocks without data never count)."""
    block = max(1, round(FLAT_BLOCK_SECONDS * fs))
    n_blocks = row.size // block
    if n_blocks == 0:
        return 0.0
    blocks = row[: n_blocks * block].reshape(n_blocks, block)
    with np.errstate(invalid="ignore"):
        valid = np.isfinite(blocks).any(axis=1)
        safe = np.where(valid[:, None], blocks, 0.0)
        span = np.nanmax(safe, axis=1) - np.nanmin(safe, axis=1)
    longest = max((stop - start for start, stop in true_runs(valid & (span < FLAT_MV))), default=0)
    return longest * block / fs


def clipped_level(row: np.ndarray, fs: float) -> tuple[float, int] | None:
    """(level, samples) when the lead piles up at one extreme the way a clipped signal does.

    A clipped lead holds its extreme value for many samples while passing quickly through the
    values just inside it; a natural peak is the reverse. Extremes near the median are the
    baseline (e.g. a noise-free isoelectric line), not a limit; the record's ends, where
    recorders often hold the last value, are left out.
    """
    edge = round(CLIP_EDGE_SECONDS * fs)
    inner = row[edge : row.size - edge] if row.size > 4 * edge else row
    x = inner[np.isfinite(inner)]
    if x.size < 2:
        return None
    low, high = float(x.min()), float(x.max())
    span = high - low
    median = float(np.median(x))
    tolerance = 1e-6 * max(abs(low), abs(high), 1.0)
    needed = max(CLIP_MIN_SAMPLES, round(CLIP_MIN_SECONDS * fs))
    for level in (high, low):
        if abs(level - median) < max(CLIP_EXCURSION * span, CLIP_MIN_LEVEL_MV):
            continue
        distance = np.abs(x - level)
        held = int(np.count_nonzero(distance <= tolerance))
        inside = int(np.count_nonzero((distance > tolerance) & (distance <= CLIP_BAND * span)))
        if held >= needed and held > CLIP_PILE_UP * inside:
            return level, held
    return None


def _baseline(row: np.ndarray, fs: float) -> np.ndarray:
    """The baseline under the ECG at every sample: block means down to about 50 Hz, a 200 ms
    then a 600 ms median filter, and linear interpolation back."""
    from scipy.ndimage import median_filter

    step = max(1, int(fs // BASELINE_RATE_HZ))
    n_blocks = max(1, row.size // step)
    coarse = row[: n_blocks * step].reshape(n_blocks, -1).mean(axis=1)
    rate = fs / step
    for seconds in BASELINE_MEDIANS_SECONDS:
        size = 2 * round(seconds * rate / 2) + 1
        coarse = median_filter(coarse, size=size, mode="nearest")
    centres = (np.arange(n_blocks) + 0.5) * step - 0.5
    return np.interp(np.arange(row.size), centres, coarse)


def _largest_wander(baseline: np.ndarray, fs: float) -> float:
    """Largest peak-to-peak excursion of the baseline within any window (half-window steps),
    leaving out the ends, where the median filters see only part of a beat."""
    margin = round(sum(BASELINE_MEDIANS_SECONDS) / 2 * fs)
    if baseline.size > 4 * margin:
        baseline = baseline[margin:-margin]
    window = max(1, round(WANDER_WINDOW_SECONDS * fs))
    starts = range(0, max(1, baseline.size - window // 2), max(1, window // 2))
    return max(float(np.ptp(baseline[s : s + window])) for s in starts)


def _rate_warnings(fs: float, model_fs: float) -> list[str]:
    if fs * FS_FACTOR < model_fs:
        return [f"sampled at {fs:g} Hz, far below the model's {model_fs:g} Hz: the reconstruction "
                f"cannot show detail above {fs / 2:g} Hz"]
    if fs > FS_FACTOR * model_fs:
        return [f"sampled at {fs:g} Hz, far above the model's {model_fs:g} Hz: reconstructed "
                f"leads carry nothing above {model_fs / 2:g} Hz, unlike the measured ones"]
    return []
