"""Clinical features of a lead, measured the same way on the reference and the reconstruction.

Beats are found with a Pan-Tompkins style detector (5-15 Hz band-pass, squared slope, 120 ms
moving integration, adaptive threshold, refractory period, T-wave rejection). Each beat is then
delineated by slope thresholds, after removing baseline wander (0.5 Hz high-pass): QRS edges on a
50 Hz and P/T waves on a 25 Hz low-passed copy. A wave edge is where the slope stays, for
``QUIET_RUN_S``, below a fraction of the wave's own steepest slope and below a floor set by the
white noise (estimated per lead) and the background activity between waves. From the fiducials
follow heart rate, PR (P onset to QRS onset), QRS duration, QT (QRS onset to T end) and the P-
and T-wave amplitudes against the isoelectric level just before the QRS.
:func:`delineate_global` measures all leads together, as ECG machines report global intervals.

Reference and reconstruction are delineated independently; beats are matched by R-peak time, and
a lead's feature is the median over its matched beats. A feature that cannot be measured is NaN.
The reconstruction is measured with the reference's slope floors, so that a denoised
reconstruction is not credited with different edges for being smoother than its reference.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

FEATURES: tuple[str, ...] = ("hr_bpm", "pr_ms", "qrs_ms", "qt_ms", "p_amp_mv", "t_amp_mv")
# Clinical tolerances for the absolute error of a feature (units as in its name).
TOLERANCES: dict[str, float] = {"hr_bpm": 5.0, "qrs_ms": 10.0, "pr_ms": 20.0, "qt_ms": 30.0}
FIDUCIALS: tuple[str, ...] = (
    "p_on", "p_peak", "p_off", "qrs_on", "r_peak", "qrs_off", "t_peak", "t_off",
)

QRS_BAND_HZ = (5.0, 15.0)
INTEGRATION_S = 0.12
REFRACTORY_S = 0.25  # no two beats closer than this (240 bpm)
PEAK_THRESHOLD = 0.3  # share of the 90th percentile of candidate envelope peaks
T_REJECT_S = 0.36  # a candidate this soon after a beat ...
T_REJECT_RATIO = 0.5  # ... and below this share of its envelope is a T wave
BASELINE_HZ = 0.5  # baseline wander removed by a zero-phase high-pass before delineation
QRS_LOWPASS_HZ = 50.0  # QRS edges on a 50 Hz low-passed copy
WAVE_LOWPASS_HZ = 25.0  # P and T waves on a 25 Hz low-passed copy
QRS_EDGE_FRACTION = 0.03  # QRS edge: slope below 3 % of the QRS's steepest slope
WAVE_EDGE_FRACTION = 0.1  # P and T edges: slope below 10 % of the wave's steepest slope
BACKGROUND_PERCENTILE = 25  # slope between waves: a low percentile of the slope ...
BACKGROUND_FLOOR = 3.0  # ... times this is quiet enough to end a wave
NOISE_SPLIT = 0.4  # noise is estimated above 40 % of the sampling rate
NOISE_FLOOR = 3.0  # ... and below this many standard deviations of a noise-only step
QUIET_RUN_S = 0.008  # a wave has ended once its slope stays quiet this long
QRS_SEARCH_S = 0.15  # QRS onset/offset searched this far from the beat's steepest point
P_SEARCH_S = 0.3  # P wave searched this far before QRS onset
T_GAP_S = 0.05  # T peak searched from this long after QRS offset ...
T_SEARCH_S = 0.7  # ... up to this long after the beat ...
T_RR_SHARE = 0.8  # ... and no further than this share of the way to the next beat
LIMB_FRACTION = 0.3  # a P/T limb ends where the wave has fallen to 30 % of its height
ISO_WINDOW_S = 0.02  # isoelectric level: mean of the last 20 ms before QRS onset
MIN_WAVE_MV = 0.02  # P/T waves smaller than this have no measurable edges
BEAT_MATCH_S = 0.15  # beats of truth and reconstruction closer than this are the same beat


@dataclass
class Beats:
    """Fiducials of one lead: ``fiducials[name]`` holds one sample index per beat (NaN if absent)."""

    fs: float
    fiducials: dict[str, np.ndarray]
    p_amp_mv: np.ndarray
    t_amp_mv: np.ndarray

    @property
    def anchors(self) -> np.ndarray:
        """Beat positions used for matching: the R peak (samples, float)."""
        return self.fiducials["r_peak"]

    def __len__(self) -> int:
        return int(self.anchors.size)

    def per_beat(self) -> dict[str, np.ndarray]:
        """PR, QRS and QT in ms and P/T amplitudes in mV, one value per beat (NaN if unmeasured)."""
        f, ms = self.fiducials, 1000.0 / self.fs
        return {
            "pr_ms": (f["qrs_on"] - f["p_on"]) * ms,
            "qrs_ms": (f["qrs_off"] - f["qrs_on"]) * ms,
            "qt_ms": (f["t_off"] - f["qrs_on"]) * ms,
            "p_amp_mv": self.p_amp_mv,
            "t_amp_mv": self.t_amp_mv,
        }

    def heart_rate(self) -> float:
        """Heart rate (bpm) from the median RR interval; NaN with fewer than two beats."""
        if len(self) < 2:
            return float("nan")
        return 60.0 * self.fs / float(np.median(np.diff(self.anchors)))

    def features(self, beats: np.ndarray | None = None) -> dict[str, float]:
        """Median of each feature over ``beats`` (indices; all beats when None)."""
        out = {"hr_bpm": self.heart_rate()}
        for name, values in self.per_beat().items():
            chosen = values if beats is None else values[beats]
            out[name] = _nanmedian(chosen)
        return out


@dataclass
class FeatureComparison:
    """Features of each lead measured on the truth and on the reconstruction over matched beats.

    ``truth[name]`` and ``recon[name]`` are float arrays over leads; ``matched``, ``missed``
    (truth beats with no reconstructed beat) and ``extra`` (reconstructed beats with no truth
    beat) count beats per lead.
    """

    leads: tuple[str, ...]
    truth: dict[str, np.ndarray]
    recon: dict[str, np.ndarray]
    matched: np.ndarray
    missed: np.ndarray
    extra: np.ndarray


def _nanmedian(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(np.median(finite)) if finite.size else float("nan")


@lru_cache(maxsize=64)
def _design(fs: float, btype: str, cutoff: float | tuple[float, float]) -> np.ndarray:
    from scipy.signal import butter

    return butter(2, cutoff, btype=btype, fs=fs, output="sos")


def _sosfiltfilt(
    x: np.ndarray, fs: float, btype: str, cutoff: float | tuple[float, float]
) -> np.ndarray:
    """Zero-phase second-order Butterworth filter along the last axis, odd padding of one
    period of the lowest cutoff."""
    from scipy.signal import sosfiltfilt

    lowest = min(cutoff) if isinstance(cutoff, tuple) else cutoff
    padlen = min(x.shape[-1] - 1, math.ceil(fs / lowest))
    return sosfiltfilt(_design(fs, btype, cutoff), x, axis=-1, padlen=padlen)


def _qrs_envelope(x: np.ndarray, fs: float) -> np.ndarray:
    """Moving-integrated squared slope of the QRS band of ``[L, T]`` leads (detector input)."""
    low, high = QRS_BAND_HZ
    band = _sosfiltfilt(x, fs, "bandpass", (low, min(high, 0.45 * fs)))
    energy = np.gradient(band, axis=-1) ** 2
    width = max(1, round(INTEGRATION_S * fs))
    padded = np.pad(energy, ((0, 0), (width // 2, width - 1 - width // 2)))
    cumulative = np.concatenate([np.zeros((x.shape[0], 1)), np.cumsum(padded, axis=1)], axis=1)
    return (cumulative[:, width:] - cumulative[:, :-width]) / width


def _too_short(n: int, fs: float) -> bool:
    return n < max(3 * round(INTEGRATION_S * fs), 16)


def detect_r_peaks(signal: np.ndarray, fs: float) -> np.ndarray:
    """Beat positions (int64 sample indices, ascending) in a lead ``[T]`` or record ``[L, T]``.

    Multi-lead input combines the leads' envelopes, each scaled to its own 99th percentile, so
    that a weak lead cannot hide beats that the others show. Each beat sits at the steepest point
    of its QRS.
    """
    x = _as_leads(signal)
    if _too_short(x.shape[-1], fs):
        return np.zeros(0, dtype=np.int64)
    return _beats_from_envelope(x, _qrs_envelope(x, fs), fs)


def _beats_from_envelope(x: np.ndarray, env: np.ndarray, fs: float) -> np.ndarray:
    from scipy.signal import find_peaks

    none = np.zeros(0, dtype=np.int64)
    scale = np.percentile(env, 99, axis=1)
    usable = scale > 0
    if not usable.any():
        return none
    combined = (env[usable] / scale[usable, None]).sum(axis=0)
    candidates, _ = find_peaks(combined, distance=max(1, round(REFRACTORY_S * fs)))
    if candidates.size == 0:
        return none
    heights = combined[candidates]
    keep = candidates[heights >= PEAK_THRESHOLD * np.percentile(heights, 90)]
    beats: list[int] = []
    for c in keep:
        t_wave = beats and c - beats[-1] < T_REJECT_S * fs
        if t_wave and combined[c] < T_REJECT_RATIO * combined[beats[-1]]:
            continue
        beats.append(int(c))
    return _steepest_points(x[usable], np.asarray(beats, dtype=np.int64), fs)


def _steepest_points(x: np.ndarray, beats: np.ndarray, fs: float) -> np.ndarray:
    """Move each beat to the sample of steepest slope within half an integration window."""
    if beats.size == 0:
        return beats
    slope = np.abs(np.gradient(x, axis=-1))
    slope /= np.maximum(slope.max(axis=1, keepdims=True), 1e-12)
    half = max(1, round(INTEGRATION_S * fs / 2))
    n = x.shape[-1]
    out = np.empty_like(beats)
    for i, b in enumerate(beats):
        lo, hi = max(0, b - half), min(n, b + half + 1)
        window = slope[:, lo:hi].max(axis=0)
        out[i] = lo + int(np.argmax(window))
    return np.unique(out)


def _quiet_edge(step: np.ndarray, start: int, stop: int, threshold: float, run: int) -> float:
    """The wave edge found by walking from ``start`` towards ``stop`` over sample steps.

    ``step[k]`` is the slope between samples k and k + 1. The walk stops at the first run of
    ``run`` steps below ``threshold``; the edge is the sample where that quiet run meets the wave
    (the last quiet sample before an onset, the first after an offset). NaN when there is no run.
    """
    backward = stop < start
    idx = np.arange(start, stop, -1 if backward else 1)
    idx = idx[(idx >= 0) & (idx < step.size)]
    if idx.size < run:
        return float("nan")
    quiet = np.concatenate([[0], np.cumsum(step[idx] < threshold)])
    full = np.flatnonzero(quiet[run:] - quiet[:-run] == run)
    if not full.size:
        return float("nan")
    first = int(idx[full[0]])
    return float(first + 1 if backward else first)


def _lowpass(x: np.ndarray, fs: float, cutoff: float) -> np.ndarray:
    """Zero-phase low-pass of ``[L, T]`` leads when ``cutoff`` lies well below Nyquist."""
    if _filters(fs, cutoff) and x.shape[-1] > 16:
        return _sosfiltfilt(x, fs, "lowpass", cutoff)
    return x


def _filters(fs: float, cutoff: float) -> bool:
    return cutoff < 0.45 * fs


@lru_cache(maxsize=64)
def _gains(fs: float, cutoff: float) -> tuple[float, float]:
    """For unit white noise at ``fs``: the std of one sample step after the zero-phase
    ``cutoff`` low-pass, and the std of what that low-pass removes (from its response)."""
    if not _filters(fs, cutoff):
        return float(np.sqrt(2.0)), 0.0
    from scipy.signal import butter, sosfreqz

    sos = butter(2, cutoff, btype="lowpass", fs=fs, output="sos")
    freqs, response = sosfreqz(sos, worN=4096, fs=fs)
    kept = np.abs(response) ** 2  # forward-backward filtering squares the magnitude
    step = (2.0 * np.sin(np.pi * freqs / fs)) ** 2
    return float(np.sqrt(np.mean(kept**2 * step))), float(np.sqrt(np.mean((1.0 - kept) ** 2)))


def noise_level(signal: np.ndarray, fs: float) -> np.ndarray:
    """Estimated white-noise std (mV) of each lead of ``[L, T]``: the robust spread (MAD) of what
    a low-pass at ``NOISE_SPLIT`` of the rate removes, which is noise and little ECG."""
    x = _as_leads(signal)
    cutoff = NOISE_SPLIT * fs
    _, removed_gain = _gains(fs, cutoff)
    if removed_gain == 0.0 or x.shape[-1] < 16:
        return np.zeros(x.shape[0])
    residual = x - _lowpass(x, fs, cutoff)
    mad = np.median(np.abs(residual - np.median(residual, axis=1, keepdims=True)), axis=1)
    return 1.4826 * mad / removed_gain


def _step_noise(sigma: np.ndarray, fs: float, cutoff: float) -> float:
    """Expected std of a noise-only sample step of the ``cutoff`` copy, combined over leads."""
    step_gain, _ = _gains(fs, cutoff)
    return float(step_gain * np.sqrt(np.sum(sigma**2)))


class _Trace:
    """Leads ``[L, T]`` delineated together: a QRS copy and a smoother P/T copy, the slope of
    each (root-sum-square over leads of every sample step) and the slope floors below which the
    signal counts as quiet (from ``floors``, else its own noise and background activity)."""

    def __init__(
        self,
        qrs: np.ndarray,
        waves: np.ndarray,
        sigma: np.ndarray,
        fs: float,
        floors: tuple[float, float] | None = None,
    ) -> None:
        self.fs = fs
        self.qrs, self.waves = qrs, waves
        self.qrs_step = np.sqrt(np.sum(np.diff(qrs, axis=1) ** 2, axis=0))
        self.wave_step = np.sqrt(np.sum(np.diff(waves, axis=1) ** 2, axis=0))
        self.qrs_floor, self.wave_floor = floors or (
            self._floor(self.qrs_step, sigma, QRS_LOWPASS_HZ),
            self._floor(self.wave_step, sigma, WAVE_LOWPASS_HZ),
        )
        self.run = max(2, round(QUIET_RUN_S * fs))
        self.n = qrs.shape[1]

    def _floor(self, step: np.ndarray, sigma: np.ndarray, cutoff: float) -> float:
        """The larger of the white-noise floor and the background floor (a multiple of a low
        percentile of the slope: the activity between waves)."""
        noise = NOISE_FLOOR * _step_noise(sigma, self.fs, cutoff)
        background = BACKGROUND_FLOOR * float(np.percentile(step, BACKGROUND_PERCENTILE)) if (
            step.size) else 0.0
        return max(noise, background)

    @property
    def floors(self) -> tuple[float, float]:
        return self.qrs_floor, self.wave_floor

    def samples(self, seconds: float) -> int:
        return max(1, round(seconds * self.fs))

    def deviation(self, x: np.ndarray, lo: int, hi: int, iso: np.ndarray) -> np.ndarray:
        """Distance from the isoelectric level over ``[lo, hi)``: signed for one lead, else the
        spatial magnitude."""
        d = x[:, lo:hi] - iso[:, None]
        return d[0] if d.shape[0] == 1 else np.sqrt(np.sum(d**2, axis=0))


@dataclass
class _Prepared:
    """Leads ``[L, T]`` filtered once for all of them: baseline removed, QRS and P/T copies."""

    raw: np.ndarray
    qrs: np.ndarray
    waves: np.ndarray
    sigma: np.ndarray
    fs: float

    @classmethod
    def of(cls, signal: np.ndarray, fs: float) -> _Prepared:
        x = _as_leads(signal)
        steady = _sosfiltfilt(x, fs, "highpass", BASELINE_HZ) if x.shape[-1] > 16 else x
        return cls(
            raw=x,
            qrs=_lowpass(steady, fs, QRS_LOWPASS_HZ),
            waves=_lowpass(steady, fs, WAVE_LOWPASS_HZ),
            sigma=noise_level(x, fs),
            fs=fs,
        )

    def trace(self, rows: slice, floors: tuple[float, float] | None = None) -> _Trace:
        return _Trace(self.qrs[rows], self.waves[rows], self.sigma[rows], self.fs, floors)

    def lead_traces(self, like: list[_Trace] | None = None) -> list[_Trace]:
        """One trace per lead; with ``like``, each takes the floors of the matching trace."""
        return [
            self.trace(slice(k, k + 1), like[k].floors if like else None)
            for k in range(self.raw.shape[0])
        ]

    def lead_anchors(self) -> list[np.ndarray]:
        """Each lead's own beats."""
        x = self.raw
        if _too_short(x.shape[-1], self.fs):
            return [np.zeros(0, dtype=np.int64)] * x.shape[0]
        env = _qrs_envelope(x, self.fs)
        return [_beats_from_envelope(x[k : k + 1], env[k : k + 1], self.fs)
                for k in range(x.shape[0])]


def _delineate_beat(trace: _Trace, anchor: int, prev_end: float, next_anchor: float) -> dict:
    """Fiducials (sample indices, NaN when absent) and P/T amplitudes of the beat at ``anchor``."""
    step, n = trace.qrs_step, trace.n
    nan = float("nan")
    out = dict.fromkeys(FIDUCIALS, nan) | {"p_amp_mv": nan, "t_amp_mv": nan}
    reach = trace.samples(QRS_SEARCH_S)
    lo, hi = max(0, anchor - reach), min(n - 1, anchor + reach)
    steepest = float(step[lo:hi].max(initial=0.0))
    if steepest <= trace.qrs_floor:
        return out
    threshold = max(QRS_EDGE_FRACTION * steepest, trace.qrs_floor)
    qrs_on = _quiet_edge(step, anchor - 1, lo - 1, threshold, trace.run)
    qrs_off = _quiet_edge(step, anchor, hi, threshold, trace.run)
    if np.isnan(qrs_on):
        return out
    on = int(qrs_on)
    iso = np.mean(trace.waves[:, max(0, on - trace.samples(ISO_WINDOW_S)) : on + 1], axis=1)
    out["qrs_on"], out["qrs_off"] = qrs_on, qrs_off
    end = int(qrs_off) if not np.isnan(qrs_off) else hi
    out["r_peak"] = float(on + np.argmax(np.abs(trace.deviation(trace.qrs, on, end + 1, iso))))

    p_lo = max(0, on - trace.samples(P_SEARCH_S))
    if np.isfinite(prev_end):
        p_lo = max(p_lo, int(prev_end) + 1)
    p_hi = on - trace.run
    if p_hi - p_lo > 2 * trace.run:
        out |= _wave(trace, p_lo, p_hi, iso, "p")
    if not np.isnan(qrs_off):
        t_lo = int(qrs_off) + trace.samples(T_GAP_S)
        t_hi = min(n - 1, anchor + trace.samples(T_SEARCH_S))
        if np.isfinite(next_anchor):
            t_hi = min(t_hi, anchor + int(T_RR_SHARE * (next_anchor - anchor)))
        if t_hi - t_lo > 2 * trace.run:
            out |= _wave(trace, t_lo, t_hi, iso, "t")
    return out


def _wave(trace: _Trace, lo: int, hi: int, iso: np.ndarray, name: str) -> dict[str, float]:
    """Peak, edges and amplitude of the P or T wave in samples ``[lo, hi)``, against ``iso``."""
    step = trace.wave_step
    deviation = trace.deviation(trace.waves, lo, hi, iso)
    peak = lo + int(np.argmax(np.abs(deviation)))
    amplitude = float(deviation[peak - lo])
    out = {f"{name}_amp_mv": amplitude}
    if abs(amplitude) < MIN_WAVE_MV or min(peak - lo, hi - 1 - peak) < trace.run:
        return out  # too small, or the largest deviation is a neighbouring wave at the edge
    # Each limb's steepest slope lies between the peak and where the wave has fallen to
    # LIMB_FRACTION of its height (past that, a neighbouring wave could be steeper).
    low = np.flatnonzero(np.abs(deviation) < LIMB_FRACTION * abs(amplitude)) + lo
    left_lo = int(low[low < peak].max(initial=lo))
    right_hi = int(low[low > peak].min(initial=hi))
    if peak - left_lo < 2 or right_hi - peak < 2:
        return out
    left = left_lo + int(np.argmax(step[left_lo:peak]))
    right = peak + int(np.argmax(step[peak:right_hi]))
    steepest = max(float(step[left]), float(step[right]))
    if steepest <= trace.wave_floor:
        return out
    threshold = max(WAVE_EDGE_FRACTION * steepest, trace.wave_floor)
    out[f"{name}_peak"] = float(peak)
    out[f"{name}_on"] = _quiet_edge(step, left, lo - 1, threshold, trace.run)
    out[f"{name}_off"] = _quiet_edge(step, right, hi, threshold, trace.run)
    return out


def _as_leads(signal: np.ndarray) -> np.ndarray:
    return np.nan_to_num(np.atleast_2d(np.asarray(signal, dtype=np.float64)))


def delineate(
    signal: np.ndarray,
    fs: float,
    r_peaks: np.ndarray | None = None,
    reference: np.ndarray | None = None,
) -> list[Beats]:
    """Delineate each lead of ``signal`` (``[T]`` or ``[L, T]``, mV) on its own.

    ``r_peaks`` (sample indices) imposes the beat positions on every lead; by default each lead
    finds its own with :func:`detect_r_peaks`. ``reference`` (same shape) supplies the slope
    floors, so that a reconstruction is measured with the thresholds of its reference.
    """
    prepared = _Prepared.of(signal, fs)
    like = _Prepared.of(reference, fs).lead_traces() if reference is not None else None
    return _delineate_leads(prepared, prepared.lead_traces(like), r_peaks)


def _delineate_leads(
    prepared: _Prepared, traces: list[_Trace], r_peaks: np.ndarray | None
) -> list[Beats]:
    anchors = prepared.lead_anchors() if r_peaks is None else (
        [np.asarray(r_peaks, dtype=np.int64)] * len(traces))
    return [_delineate_trace(t, a) for t, a in zip(traces, anchors, strict=True)]


def delineate_global(
    signal: np.ndarray,
    fs: float,
    r_peaks: np.ndarray | None = None,
    reference: np.ndarray | None = None,
) -> Beats:
    """Delineate all leads of ``signal`` ``[L, T]`` together, as an ECG machine measures global
    intervals: the slope is combined over leads, so an edge is where the first lead starts or the
    last lead ends; P/T amplitudes are spatial magnitudes (unsigned). Arguments as in
    :func:`delineate`."""
    prepared = _Prepared.of(signal, fs)
    floors = _Prepared.of(reference, fs).trace(slice(None)).floors if reference is not None else (
        None)
    anchors = detect_r_peaks(prepared.raw, fs) if r_peaks is None else np.asarray(r_peaks, np.int64)
    return _delineate_trace(prepared.trace(slice(None), floors), anchors)


def _delineate_trace(trace: _Trace, anchors: np.ndarray) -> Beats:
    rows: list[dict] = []
    prev_end = float("nan")
    typical_rr = float(np.median(np.diff(anchors))) if anchors.size > 1 else float("nan")
    for i, anchor in enumerate(anchors):
        following = float(anchors[i + 1]) if i + 1 < anchors.size else anchor + typical_rr
        beat = _delineate_beat(trace, int(anchor), prev_end, following)
        if np.isnan(beat["r_peak"]):
            beat["r_peak"] = float(anchor)
        ends = [beat[k] for k in ("t_off", "qrs_off") if np.isfinite(beat[k])]
        prev_end = ends[0] if ends else float(anchor)
        rows.append(beat)
    fiducials = {k: np.array([r[k] for r in rows], dtype=np.float64) for k in FIDUCIALS}
    return Beats(
        fs=trace.fs,
        fiducials=fiducials,
        p_amp_mv=np.array([r["p_amp_mv"] for r in rows], dtype=np.float64),
        t_amp_mv=np.array([r["t_amp_mv"] for r in rows], dtype=np.float64),
    )


def match_beats(a: np.ndarray, b: np.ndarray, tolerance: float) -> tuple[np.ndarray, np.ndarray]:
    """Pair beat positions of ``a`` and ``b`` (ascending) closer than ``tolerance`` samples.

    Greedy by distance, each beat used once; returns index arrays into ``a`` and ``b``.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.size == 0 or b.size == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    distance = np.abs(a[:, None] - b[None, :])
    pairs = np.argwhere(distance <= tolerance)
    order = np.argsort(distance[pairs[:, 0], pairs[:, 1]], kind="stable")
    used_a, used_b, ia, ib = set(), set(), [], []
    for i, j in pairs[order]:
        if i not in used_a and j not in used_b:
            used_a.add(i)
            used_b.add(j)
            ia.append(i)
            ib.append(j)
    keep = np.argsort(ia)
    return np.asarray(ia, dtype=np.int64)[keep], np.asarray(ib, dtype=np.int64)[keep]


def compare_leads(
    truth: np.ndarray, recon: np.ndarray, fs: float, leads: tuple[str, ...] | list[str]
) -> FeatureComparison:
    """Features of each lead of ``truth`` and ``recon`` (``[L, T]`` mV), lead by lead, over
    matched beats; the reconstruction is measured with the truth's slope floors."""
    truth_prep, recon_prep = _Prepared.of(truth, fs), _Prepared.of(recon, fs)
    truth_traces = truth_prep.lead_traces()
    return _compare(
        _delineate_leads(truth_prep, truth_traces, None),
        _delineate_leads(recon_prep, recon_prep.lead_traces(truth_traces), None),
        fs,
        leads,
    )


def compare_global(truth: np.ndarray, recon: np.ndarray, fs: float) -> FeatureComparison:
    """Global features (all leads together, :func:`delineate_global`) of two whole records
    ``[L, T]``, as one row named ``"global"``."""
    truth_prep, recon_prep = _Prepared.of(truth, fs), _Prepared.of(recon, fs)
    truth_trace = truth_prep.trace(slice(None))
    truth_beats = _delineate_trace(truth_trace, detect_r_peaks(truth_prep.raw, fs))
    recon_beats = _delineate_trace(recon_prep.trace(slice(None), truth_trace.floors),
                                   detect_r_peaks(recon_prep.raw, fs))
    return _compare([truth_beats], [recon_beats], fs, ("global",))


def _compare(
    truth_beats: list[Beats], recon_beats: list[Beats], fs: float, names: tuple[str, ...] | list[str]
) -> FeatureComparison:
    n = len(names)
    values = {side: {f: np.full(n, np.nan) for f in FEATURES} for side in ("truth", "recon")}
    matched, missed, extra = (np.zeros(n, dtype=np.int64) for _ in range(3))
    for k, (tb, rb) in enumerate(zip(truth_beats, recon_beats, strict=True)):
        it, ir = match_beats(tb.anchors, rb.anchors, BEAT_MATCH_S * fs)
        matched[k], missed[k], extra[k] = it.size, len(tb) - it.size, len(rb) - ir.size
        for side, found in (("truth", tb.features(it)), ("recon", rb.features(ir))):
            for f in FEATURES:
                values[side][f][k] = found[f]
    return FeatureComparison(
        leads=tuple(names),
        truth=values["truth"],
        recon=values["recon"],
        matched=matched,
        missed=missed,
        extra=extra,
    )
