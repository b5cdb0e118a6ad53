"""Training augmentations, vectorised over a batch with an explicit random generator.

Whole-heart transforms (random crop, amplitude scaling, STAR beat-wise resampling) act on all 12
leads alike, so inputs and targets stay consistent. Recording artefacts (baseline wander, white
noise) corrupt the input leads only: the network learns to ignore them.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from ecgfill.errors import UsageError

DEFAULT_AUGMENT = "crop,scale,wander,noise"
# Strength used when an augmentation is named without "=value".
DEFAULT_STRENGTH = {"scale": 0.2, "wander": 0.1, "noise": 0.02, "star": 0.1}
WANDER_HZ = (0.05, 0.5)
STAR_MIN_RR_SECONDS = 0.3


@dataclass(frozen=True)
class AugmentConfig:
    """``scale``: max relative amplitude change; ``wander``/``noise``: max amplitude / SD in
    mV; ``star``: max relative change of each beat's length (0 turns an augmentation off)."""

    crop: bool = False
    scale: float = 0.0
    wander: float = 0.0
    noise: float = 0.0
    star: float = 0.0

    def describe(self) -> str:
        parts = ["crop"] if self.crop else []
        parts += [f"{f.name}={getattr(self, f.name):g}" for f in fields(self)
                  if f.name != "crop" and getattr(self, f.name)]
        return ",".join(parts) or "none"


def parse_augment(text: str) -> AugmentConfig:
    """Parse ``"crop,scale=0.2,noise"`` (or ``"none"``); UsageError on unknown names."""
    text = text.strip()
    if text in ("", "none"):
        return AugmentConfig()
    values: dict[str, float | bool] = {}
    for item in (p.strip() for p in text.split(",") if p.strip()):
        name, _, value = item.partition("=")
        if name == "crop":
            values["crop"] = True
        elif name in DEFAULT_STRENGTH:
            try:
                strength = float(value) if value else DEFAULT_STRENGTH[name]
            except ValueError:
                raise UsageError(f"--augment {item}: not a number") from None
            if strength < 0:
                raise UsageError(f"--augment {item}: must be >= 0")
            values[name] = strength
        else:
            known = ", ".join(["crop", *DEFAULT_STRENGTH])
            raise UsageError(f"--augment: unknown augmentation {name!r} (known: {known}, none)")
    return AugmentConfig(**values)  # type: ignore[arg-type]


def random_offsets(n_valid: np.ndarray, window: int, rng: np.random.Generator) -> np.ndarray:
    """A crop start per record, uniform over the positions keeping the crop in valid samples."""
    room = np.maximum(n_valid - window, 0)
    return (rng.random(len(n_valid)) * (room + 1)).astype(np.int64)


def scale_amplitude(batch: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    """Multiply each record (all leads alike) by a log-uniform factor in [1/(1+s), 1+s]."""
    if strength <= 0:
        return batch
    log_max = np.log1p(strength)
    factor = np.exp(rng.uniform(-log_max, log_max, size=(batch.shape[0], 1, 1)))
    return batch * factor.astype(np.float32)


def add_baseline_wander(
    x: np.ndarray, amplitude: float, fs: float, rng: np.random.Generator
) -> np.ndarray:
    """Add two random low-frequency sinusoids per record and lead, each up to ``amplitude`` mV."""
    if amplitude <= 0:
        return x
    b, c, t = x.shape
    time = np.arange(t, dtype=np.float32) / fs
    out = x.copy()
    for _ in range(2):
        freq = rng.uniform(*WANDER_HZ, size=(b, c, 1))
        phase = rng.uniform(0, 2 * np.pi, size=(b, c, 1))
        amp = rng.uniform(0, amplitude, size=(b, c, 1))
        out += (amp * np.sin(2 * np.pi * freq * time + phase)).astype(np.float32)
    return out


def add_noise(x: np.ndarray, sd_max: float, rng: np.random.Generator) -> np.ndarray:
    """White Gaussian noise with a per-record SD uniform in [0, sd_max] mV."""
    if sd_max <= 0:
        return x
    sd = rng.uniform(0, sd_max, size=(x.shape[0], 1, 1)).astype(np.float32)
    return x + sd * rng.standard_normal(x.shape, dtype=np.float32)


def r_peaks(record: np.ndarray, n_valid: int, fs: float) -> np.ndarray:
    """Approximate R-peak positions from the summed absolute slope of all leads."""
    from scipy.signal import find_peaks

    energy = np.abs(np.diff(record[:, :n_valid], axis=1)).sum(axis=0)
    if energy.size < 3 or not energy.any():
        return np.zeros(0, dtype=np.int64)
    distance = max(1, int(STAR_MIN_RR_SECONDS * fs))
    peaks, _ = find_peaks(energy, distance=distance, height=0.5 * np.percentile(energy, 99))
    return peaks.astype(np.int64)


def star_resample(
    batch: np.ndarray, n_valid: np.ndarray, strength: float, fs: float,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """STAR-style augmentation: stretch each beat (R peak to R peak) by its own random factor
    in [1 - s, 1 + s] and scale it by a gain interpolated smoothly between beats, identically in
    all leads. Returns the new batch (same length, zero-padded) and valid lengths."""
    if strength <= 0:
        return batch, n_valid
    out = np.zeros_like(batch)
    new_valid = n_valid.copy()
    length = batch.shape[-1]
    for i, record in enumerate(batch):
        n = int(min(n_valid[i], length))
        anchors = np.concatenate([[0], r_peaks(record, n, fs), [n - 1]])
        anchors = np.unique(anchors)
        if len(anchors) < 3:
            out[i] = record
            continue
        stretch = rng.uniform(1 - strength, 1 + strength, size=len(anchors) - 1)
        new_anchors = np.concatenate([[0.0], np.cumsum(np.diff(anchors) * stretch)])
        n_new = min(length, int(new_anchors[-1]) + 1)
        grid = np.arange(n_new, dtype=np.float64)
        source_time = np.interp(grid, new_anchors, anchors)
        gain = np.interp(grid, new_anchors, rng.uniform(1 - strength, 1 + strength,
                                                         size=len(anchors)))
        positions = np.arange(n)
        for lead in range(record.shape[0]):
            out[i, lead, :n_new] = np.interp(source_time, positions, record[lead, :n]) * gain
        new_valid[i] = n_new
    return out, new_valid
