"""Physiological 12-lead ECG synthesiser: a beating heart dipole projected onto the standard leads.

The cardiac dipole is a vectorcardiogram in Frank coordinates (x to the patient's left, y to the
feet, z to the back) built per beat from five waves P, Q, R, S, T, each a fixed 3-D direction times
a bump in time, in the spirit of McSharry's ECGSYN and Sameni's 3-D dipole model. Dower's
lead-field matrix projects it onto I, II and V1-V6; III, aVR, aVL and aVF then follow by
Einthoven/Goldberger (``ecgfill.leads.expand_independent``), so the lead algebra holds exactly.

Every bump is a Gaussian shifted down by ``WAVE_EDGE_FRACTION`` of its peak and clipped at zero:
it is exactly zero outside ``peak - K*sigma_left .. peak + K*sigma_right``, where the Gaussian falls
to that fraction. Those edges are the ground-truth fiducials, and the widths are derived from the
parameters, so P onset to QRS onset is ``pr_ms``, QRS onset to offset ``qrs_ms`` and QRS onset to
T offset ``qt_ms``. Noise and baseline wander are added to the eight independent leads (as they
would be to electrode potentials), so the derived limb leads stay exact.

All output is deterministic given the seed, and a shorter record is a prefix of a longer one with
the same parameters and seed: rhythm, noise and wander come from separate random streams, and
samples are generated chunk-wise (a 24-hour 500 Hz record takes seconds).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Final

import numpy as np

from ecgfill.leads import STANDARD_LEADS, expand_independent
from ecgfill.record import ECGRecord

WAVE_EDGE_FRACTION: Final = 0.05  # a wave starts/ends where its Gaussian falls to 5 % of its peak
_EDGE_K: Final = math.sqrt(2.0 * math.log(1.0 / WAVE_EDGE_FRACTION))  # edge at K sigma

# Dower's matrix (Clin. Cardiol. 3:87, 1980): Frank X, Y, Z (mV) to I, II, V1-V6.
_LEAD_FIELD: Final = np.array(
    [
        [0.632, -0.235, 0.059],  # I
        [0.235, 1.066, -0.132],  # II
        [-0.515, 0.157, -0.917],  # V1
        [0.044, 0.164, -1.387],  # V2
        [0.882, 0.098, -1.277],  # V3
        [1.213, 0.127, -0.601],  # V4
        [1.125, 0.127, -0.086],  # V5
        [0.831, 0.076, 0.230],  # V6
    ]
)
_N_INDEPENDENT: Final = _LEAD_FIELD.shape[0]

# Peak dipole of each wave at amplitude 1 (Frank mV): a P and T towards left-inferior, a septal Q
# towards right-anterior, the main R towards left-inferior-posterior, a basal S towards
# right-superior-posterior. This gives rS in V1, qR in V5/V6 with the transition at V3-V4, R about
# 1 mV in II and all waves inverted in aVR.
_WAVES: Final = ("P", "Q", "R", "S", "T")
_QRS_WAVES: Final = ("Q", "R", "S")
_WAVE_VECTORS: Final = {
    "P": np.array([0.10, 0.16, 0.0]),
    "Q": np.array([-0.10, 0.05, -0.15]),
    "R": np.array([1.05, 0.84, 0.52]),
    "S": np.array([-0.20, -0.15, 0.30]),
    "T": np.array([0.35, 0.20, -0.15]),
}
_P_DURATION_OF_PR: Final = 0.6
# (onset, peak, offset) of Q, R, S as fractions of the QRS duration from QRS onset.
_QRS_LAYOUT: Final = {"Q": (0.0, 0.2, 0.4), "R": (0.1, 0.45, 0.8), "S": (0.4, 0.72, 1.0)}
_ST_OF_QT_AFTER_QRS: Final = 0.35  # ST segment as a share of QT - QRS; the T wave takes the rest
_T_RISE_TO_FALL: Final = 1.4  # the T wave rises more slowly than it falls

_MIN_TQ_MS: Final = 40.0  # each T wave ends at least this long before the next QRS
_HRV_CORRELATION_BEATS: Final = 3.0  # beat-to-beat heart-rate changes are smooth over a few beats
_WANDER_HZ: Final = (0.1, 0.5)
_CHUNK_SAMPLES: Final = 1 << 18

FIDUCIALS: Final = ("p_on", "p_peak", "p_off", "qrs_on", "r_peak", "qrs_off", "t_peak", "t_off")


@dataclass(frozen=True)
class SynthParams:
    """Rhythm, intervals, amplitude, artefacts and frontal axis of a synthetic ECG."""

    heart_rate_bpm: float = 70.0
    hr_std_bpm: float = 2.0  # beat-to-beat variability
    pr_ms: float = 160.0  # P onset to QRS onset
    qrs_ms: float = 90.0  # QRS onset to offset
    qt_ms: float = 400.0  # QRS onset to T offset
    amplitude_mv: float = 1.0  # overall scale (R in lead II about 1 mV at 1.0)
    noise_mv: float = 0.0  # white noise std
    baseline_wander_mv: float = 0.0  # amplitude of a slow (0.1-0.5 Hz) wander
    axis_deg: float = 60.0  # frontal QRS axis, rotates the dipole

    def __post_init__(self) -> None:
        for f in fields(self):
            if not math.isfinite(getattr(self, f.name)):
                raise ValueError(f"{f.name} must be finite")
        for name in ("heart_rate_bpm", "pr_ms", "qrs_ms", "amplitude_mv"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        for name in ("hr_std_bpm", "noise_mv", "baseline_wander_mv"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        if not self.pr_ms < self.qt_ms or not self.qrs_ms < self.qt_ms:
            raise ValueError("pr_ms and qrs_ms must be shorter than qt_ms")
        if 60_000.0 / self.heart_rate_bpm < self.qt_ms + _MIN_TQ_MS:
            raise ValueError(
                f"qt_ms {self.qt_ms:g} is too long for {self.heart_rate_bpm:g} bpm: the T wave "
                "would run into the next QRS"
            )


@dataclass(frozen=True)
class _Morphology:
    """Per-record shape variation beyond SynthParams (used by ``synthesize_batch``)."""

    wave_scale: tuple[float, ...] = (1.0,) * len(_WAVES)  # P, Q, R, S, T
    horizontal_rotation_deg: float = 0.0  # about the vertical axis: moves the R/S transition


@dataclass(frozen=True)
class _Wave:
    """One wave of every beat: its dipole and its onset, peak, offset (s after the P onset)."""

    vector: np.ndarray
    onset: float
    peak: float
    offset: float

    @property
    def sigma_left(self) -> float:
        return (self.peak - self.onset) / _EDGE_K

    @property
    def sigma_right(self) -> float:
        return (self.offset - self.peak) / _EDGE_K

    def area(self) -> float:
        """Time integral of the unit bump (s)."""
        per_sigma = math.sqrt(math.pi / 2) * math.erf(_EDGE_K / math.sqrt(2))
        per_sigma -= WAVE_EDGE_FRACTION * _EDGE_K
        return (self.sigma_left + self.sigma_right) * per_sigma / (1.0 - WAVE_EDGE_FRACTION)

    def bump(self, tau: np.ndarray) -> np.ndarray:
        """The unit bump at ``tau`` seconds from its peak: 1 there, 0 beyond the edges."""
        sigma = np.where(tau < 0, self.sigma_left, self.sigma_right)
        gaussian = np.exp(-0.5 * (tau / sigma) ** 2)
        return np.maximum(gaussian - WAVE_EDGE_FRACTION, 0.0) / (1.0 - WAVE_EDGE_FRACTION)


def synthesize(
    seconds: float, fs: float, params: SynthParams | None = None, seed: int = 0
) -> ECGRecord:
    """A synthetic 12-lead ECG (standard lead order, float32 mV, all leads "measured")."""
    return synthesize_with_fiducials(seconds, fs, params, seed)[0]


def synthesize_with_fiducials(
    seconds: float, fs: float, params: SynthParams | None = None, seed: int = 0
) -> tuple[ECGRecord, dict[str, np.ndarray]]:
    """A synthetic ECG and its ground truth: sample indices of each wave edge and peak per beat.

    Keys are ``FIDUCIALS``; each array holds one int64 index per beat lying wholly inside the
    record (P onset to T offset), in time order. ``r_peak`` is the peak of the R wave's dipole.
    """
    params = params or SynthParams()
    signal, fiducials = _render(_n_samples(seconds, fs), fs, params, _Morphology(), seed)
    record = ECGRecord(
        signal=signal,
        fs=float(fs),
        leads=STANDARD_LEADS,
        comments=[f"synthetic ECG (ecgfill.synth, seed {seed}): {params}"],
    )
    return record, fiducials


def synthesize_batch(n: int, seconds: float, fs: float, seed: int = 0) -> np.ndarray:
    """float32 ``[n, 12, T]`` noise-free ECGs with random rhythm, axis, intervals and shape.

    Heart rate 50-110 bpm, axis -30..90 deg, PR 120-200 ms, QRS 70-110 ms, QT from a QTc of
    370-450 ms (Fridericia), overall amplitude 0.6-1.6 and per-wave amplitudes 0.6-1.4 times the
    template, chest transition moved by up to 15 deg.
    """
    if n < 0:
        raise ValueError("n must not be negative")
    n_samples = _n_samples(seconds, fs)
    out = np.empty((n, len(STANDARD_LEADS), n_samples), dtype=np.float32)
    for i, child in enumerate(np.random.SeedSequence(seed).spawn(n)):
        rng = np.random.default_rng(child)
        heart_rate = rng.uniform(50.0, 110.0)
        params = SynthParams(
            heart_rate_bpm=heart_rate,
            hr_std_bpm=rng.uniform(0.0, 3.0),
            pr_ms=rng.uniform(120.0, 200.0),
            qrs_ms=rng.uniform(70.0, 110.0),
            qt_ms=rng.uniform(370.0, 450.0) * (60.0 / heart_rate) ** (1.0 / 3.0),
            amplitude_mv=rng.uniform(0.6, 1.6),
            axis_deg=rng.uniform(-30.0, 90.0),
        )
        morphology = _Morphology(
            wave_scale=tuple(rng.uniform(0.6, 1.4, len(_WAVES))),
            horizontal_rotation_deg=rng.uniform(-15.0, 15.0),
        )
        record_seed = int(rng.integers(2**63))
        out[i] = _render(n_samples, fs, params, morphology, record_seed)[0]
    return out


def _n_samples(seconds: float, fs: float) -> int:
    if not (math.isfinite(fs) and fs > 0):
        raise ValueError(f"sampling rate must be positive, got {fs}")
    n = round(seconds * fs)
    if not n >= 1:
        raise ValueError(f"{seconds} s at {fs} Hz is not a single sample")
    return int(n)


def _waves(params: SynthParams, morphology: _Morphology) -> dict[str, _Wave]:
    """The five waves of a beat: timing from the intervals, dipoles rotated to the axis."""
    pr, qrs, qt = params.pr_ms / 1000, params.qrs_ms / 1000, params.qt_ms / 1000
    p_duration = _P_DURATION_OF_PR * pr
    timing = {"P": (0.0, p_duration / 2, p_duration)}
    for name, fractions in _QRS_LAYOUT.items():
        onset, peak, offset = (pr + f * qrs for f in fractions)
        timing[name] = (onset, peak, offset)
    after_qrs = qt - qrs
    t_onset = pr + qrs + _ST_OF_QT_AFTER_QRS * after_qrs
    t_fall = (pr + qt - t_onset) / (1.0 + _T_RISE_TO_FALL)
    timing["T"] = (t_onset, pr + qt - t_fall, pr + qt)

    beta = math.radians(morphology.horizontal_rotation_deg)
    cos_b, sin_b = math.cos(beta), math.sin(beta)
    about_vertical = np.array([[cos_b, 0.0, sin_b], [0.0, 1.0, 0.0], [-sin_b, 0.0, cos_b]])
    waves = {
        name: _Wave(
            params.amplitude_mv * scale * (about_vertical @ _WAVE_VECTORS[name]), *timing[name]
        )
        for name, scale in zip(_WAVES, morphology.wave_scale, strict=True)
    }
    alpha = _frontal_rotation(waves, params.axis_deg)
    cos_a, sin_a = math.cos(alpha), math.sin(alpha)
    about_sagittal = np.array([[cos_a, -sin_a, 0.0], [sin_a, cos_a, 0.0], [0.0, 0.0, 1.0]])
    return {
        name: _Wave(about_sagittal @ w.vector, w.onset, w.peak, w.offset)
        for name, w in waves.items()
    }


def _frontal_rotation(waves: dict[str, _Wave], axis_deg: float) -> float:
    """Rotation (rad, about the z axis) that puts the frontal QRS axis at ``axis_deg``.

    The axis is what a measurement reports from the net QRS areas of leads I and aVF:
    ``atan2(2 * area_aVF / sqrt(3), area_I)``. With M the frontal part of those two lead vectors
    and c their response to the (unrotated) z component, solve ``M R v + c = s u`` for the
    rotation R of the frontal net vector v, with u the wanted direction and s > 0.
    """
    net = sum(w.area() * w.vector for name, w in waves.items() if name in _QRS_WAVES)
    lead_i, lead_ii = _LEAD_FIELD[0], _LEAD_FIELD[1]
    lead_avf_scaled = (lead_ii - lead_i / 2) * (2 / math.sqrt(3))
    frontal = np.array([lead_i[:2], lead_avf_scaled[:2]])
    from_z = np.array([lead_i[2], lead_avf_scaled[2]]) * net[2]
    wanted = np.array([math.cos(math.radians(axis_deg)), math.sin(math.radians(axis_deg))])
    a = np.linalg.solve(frontal, wanted)
    b = np.linalg.solve(frontal, from_z)
    v = net[:2]
    half_p = float(a @ b) / float(a @ a)
    q = (float(b @ b) - float(v @ v)) / float(a @ a)
    if half_p**2 - q < 0:
        raise ValueError(f"no rotation gives a frontal axis of {axis_deg} deg")
    s = half_p + math.sqrt(half_p**2 - q)
    target = s * a - b
    return math.atan2(target[1], target[0]) - math.atan2(v[1], v[0])


def _beat_starts(
    n_samples: int, fs: float, params: SynthParams, rng: np.random.Generator
) -> np.ndarray:
    """P-onset times (s) of enough beats to cover the record.

    The record starts at a random phase of beat 1; beat 0 lies wholly before t = 0, as its T
    wave may reach into the record. The heart rate wanders smoothly (white noise smoothed over a
    few beats, unit variance times ``hr_std_bpm``, never below half the mean rate); RR never
    drops below QT plus a minimal TQ interval.
    """
    min_rr = (params.qt_ms + _MIN_TQ_MS) / 1000
    max_rr = 2 * 60.0 / params.heart_rate_bpm
    n_beats = math.ceil((n_samples / fs + max_rr) / min_rr) + 3
    width = _HRV_CORRELATION_BEATS
    half = math.ceil(3 * width)
    kernel = np.exp(-0.5 * (np.arange(-half, half + 1) / width) ** 2)
    kernel /= np.linalg.norm(kernel)
    first_phase = rng.uniform()
    smooth = np.convolve(rng.standard_normal(n_beats + 2 * half), kernel, mode="valid")
    rate = np.maximum(params.heart_rate_bpm + params.hr_std_bpm * smooth, params.heart_rate_bpm / 2)
    rr = np.maximum(60.0 / rate, min_rr)
    starts = np.concatenate([[0.0], np.cumsum(rr[:-1])])
    return starts - rr[0] - first_phase * rr[1]


def _render(
    n_samples: int, fs: float, params: SynthParams, morphology: _Morphology, seed: int
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """float32 ``[12, n_samples]`` standard leads and the beat fiducials.

    I, II and V1-V6 are computed chunk by chunk and expanded to the twelve leads in float32, so
    III == II - I exactly and memory stays at the output plus one chunk.
    """
    rhythm_seq, noise_seq, wander_seq = np.random.SeedSequence(seed).spawn(3)
    starts = _beat_starts(n_samples, fs, params, np.random.default_rng(rhythm_seq))
    waves = _waves(params, morphology)
    wave_list = list(waves.values())
    lead_waves = _LEAD_FIELD @ np.stack([w.vector for w in wave_list], axis=1)  # [8, waves]
    noise_rng = np.random.default_rng(noise_seq)
    wander_rng = np.random.default_rng(wander_seq)
    wander_hz = wander_rng.uniform(*_WANDER_HZ, size=(_N_INDEPENDENT, 1))
    wander_phase = wander_rng.uniform(0.0, 2 * math.pi, size=(_N_INDEPENDENT, 1))

    out = np.empty((len(STANDARD_LEADS), n_samples), dtype=np.float32)
    for first in range(0, n_samples, _CHUNK_SAMPLES):
        size = min(_CHUNK_SAMPLES, n_samples - first)
        chunk = lead_waves @ _wave_trains(first, size, fs, starts, wave_list)
        if params.baseline_wander_mv > 0:
            t = np.arange(first, first + size) / fs
            chunk += params.baseline_wander_mv * np.sin(2 * math.pi * wander_hz * t + wander_phase)
        if params.noise_mv > 0:
            # Drawn sample-major so that a shorter record is a prefix of a longer one.
            noise = noise_rng.standard_normal((size, _N_INDEPENDENT), dtype=np.float32).T
            chunk += params.noise_mv * noise
        out[:, first : first + size] = expand_independent(chunk.astype(np.float32))
    return out, _fiducials(starts, waves, fs, n_samples)


def _wave_trains(
    first: int, size: int, fs: float, starts: np.ndarray, waves: list[_Wave]
) -> np.ndarray:
    """``[len(waves), size]`` unit bumps of every beat's waves at samples ``first ..``.

    Each wave is stamped only over the samples it covers. Instances of one wave never overlap
    (every wave is shorter than the shortest RR interval), so the nonzero samples are unique.
    """
    trains = np.zeros((len(waves), size))
    for row, wave in zip(trains, waves, strict=True):
        first_sample = np.ceil((starts + wave.onset) * fs).astype(np.int64)
        width = math.ceil((wave.offset - wave.onset) * fs) + 1
        near = (first_sample < first + size) & (first_sample + width > first)
        index = first_sample[near, None] + np.arange(width)
        values = wave.bump(index / fs - (starts[near, None] + wave.peak))
        keep = (values > 0) & (index >= first) & (index < first + size)
        row[index[keep] - first] = values[keep]
    return trains


def _fiducials(
    starts: np.ndarray, waves: dict[str, _Wave], fs: float, n_samples: int
) -> dict[str, np.ndarray]:
    offsets = {
        "p_on": waves["P"].onset,
        "p_peak": waves["P"].peak,
        "p_off": waves["P"].offset,
        "qrs_on": waves["Q"].onset,
        "r_peak": waves["R"].peak,
        "qrs_off": waves["S"].offset,
        "t_peak": waves["T"].peak,
        "t_off": waves["T"].offset,
    }
    index = {k: np.rint((starts + v) * fs).astype(np.int64) for k, v in offsets.items()}
    whole = (index["p_on"] >= 0) & (index["t_off"] <= n_samples - 1)
    return {k: index[k][whole] for k in FIDUCIALS}
