"""Clinical features of a lead, measured the same way on the reference and the reconstruction.

Beats are found with a Pan-Tompkins style detector (5-15 Hz band-pass, squared slope, 120 ms
moving integration, adaptive threshold, refractory period, T-wave rejection). Each beat is then
delineated on a 40 Hz low-passed copy by slope thresholds: a wave edge is where the slope stays
below a fraction of the wave's own steepest slope for ``QUIET_RUN_S``. From the fiducials follow
heart rate, PR (P onset to QRS onset), QRS duration, QT (QRS onset to T end) and the P- and T-wave
amplitudes against the isoelectric level just before the QRS.

Reference and reconstruction are delineated independently; beats are matched by R-peak time, and
a lead's feature is the median over its matched beats. A feature that cannot be measured is NaN.
"""

from __future__ import annotations

from dataclasses import dataclass, field
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
QRS_LOWPASS_HZ = 40.0  # QRS edges on a 40 Hz low-passed copy
WAVE_LOWPASS_HZ = 20.0  # P and T waves on a 20 Hz low-passed copy
QRS_EDGE_FRACTION = 0.03  # QRS edge: slope below 3 % of the QRS's steepest slope
WAVE_EDGE_FRACTION = 0.1  # P and T edges: slope below 10 % of the wave's steepest slope
NOISE_FLOOR = 3.0  # ... and below this many standard deviations of a noise-only step
QUIET_RUN_S = 0.008
QRS_SEARCH_S = 0.15  # QRS onset/offset searched this far from the beat's steepest point
P_SEARCH_S = 0.3  # P wave searched this far before QRS onset
T_GAP_S = 0.05  # T peak searched from this long after QRS offset ...
T_SEARCH_S = 0.7  # ... up to this long after the beat (and 80 % of the next RR)
SLOPE_SEARCH_S = 0.25  # the steepest slope of a P/T limb lies this close to its peak
ISO_WINDOW_S = 0.02  # isoelectric level: median of the last 20 ms before QRS onset
MIN_WAVE_MV = 0.02  # P/T waves smaller than this have no measurable edges
BEAT_MATCH_S = 0.15


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
    beats: list[tuple[Beats, Beats]] = field(default_factory=list, repr=False)


def _nanmedian(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(np.median(finite)) if finite.size else float("nan")


def _sosfiltfilt(x: np.ndarray, fs: float, btype: str, cutoff: float | tuple[float, float]):
    from scipy.signal import butter, sosfiltfilt

    sos = butter(2, cutoff, btype=btype, fs=fs, output="sos")
    padlen = min(x.shape[-1] - 1, 3 * (2 * len(sos) + 1) * 4)
    return sosfiltfilt(sos, x, axis=-1, padlen=max(padlen, 0))


def _qrs_envelope(x: np.ndarray, fs: float) -> np.ndarray:
    """Moving-integrated squared slope of the QRS band, ``[..., T]`` (the detector's input)."""
    low, high = QRS_BAND_HZ
    high = min(high, 0.45 * fs)
    band = _sosfiltfilt(np.asarray(x, dtype=np.float64), fs, "bandpass", (low, high))
    energy = np.gradient(band, axis=-1) ** 2
    width = max(1, round(INTEGRATION_S * fs))
    kernel = np.ones(width) / width
    flat = energy.reshape(-1, energy.shape[-1])
    out = np.stack([np.convolve(row, kernel, mode="same") for row in flat])
    return out.reshape(energy.shape)


def detect_r_peaks(signal: np.ndarray, fs: float) -> np.ndarray:
    """Beat positions (int64 sample indices, ascending) in a lead ``[T]`` or record ``[L, T]``.

    Multi-lead input combines the leads' envelopes, each scaled to its own 99th percentile, so
    that a weak lead cannot hide beats that the others show. Each beat sits at the steepest point
    of its QRS in the lead with the largest envelope there.
    """
    from scipy.signal import find_peaks

    x = np.atleast_2d(np.nan_to_num(np.asarray(signal, dtype=np.float64)))
    if x.shape[-1] < max(3 * round(INTEGRATION_S * fs), 16):
        return np.zeros(0, dtype=np.int64)
    env = _qrs_envelope(x, fs)
    scale = np.percentile(env, 99, axis=1)
    usable = scale > 0
    if not usable.any():
        return np.zeros(0, dtype=np.int64)
    combined = (env[usable] / scale[usable, None]).sum(axis=0)
    candidates, _ = find_peaks(combined, distance=max(1, round(REFRACTORY_S * fs)))
    if candidates.size == 0:
        return np.zeros(0, dtype=np.int64)
    heights = combined[candidates]
    keep = candidates[heights >= PEAK_THRESHOLD * np.percentile(heights, 90)]
    beats: list[int] = []
    for c in keep:
        if beats and c - beats[-1] < T_REJECT_S * fs and combined[c] < T_REJECT_RATIO * combined[
            beats[-1]
        ]:
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
def _noise_gains(fs: float, cutoff: float) -> tuple[float, float]:
    """For unit white noise: the std of one sample step after the zero-phase ``cutoff`` low-pass,
    and the std of what that low-pass removes (both from the filter's frequency response)."""
    if not _filters(fs, cutoff):
        return float(np.sqrt(2.0)), 0.0
    from scipy.signal import butter, sosfreqz

    sos = butter(2, cutoff, btype="lowpass", fs=fs, output="sos")
    freqs, response = sosfreqz(sos, worN=4096, fs=fs)
    power = np.abs(response) ** 4  # forward-backward filtering squares the magnitude
    step_power = (2.0 * np.sin(np.pi * freqs / fs)) ** 2
    return float(np.sqrt(np.mean(power * step_power))), float(
        np.sqrt(np.mean((1.0 - np.abs(response) ** 2) ** 2))
    )


def _step_noise(raw: np.ndarray, smooth: np.ndarray, fs: float, cutoff: float) -> float:
    """Expected size of a noise-only sample step in the ``cutoff`` copy of the leads, combined.

    Each lead's white-noise level comes from the robust spread (MAD) of what the QRS low-pass
    removes, which holds noise and little ECG; 0 when the rate is too low to tell.
    """
    _, removed_gain = _noise_gains(fs, QRS_LOWPASS_HZ)
    if removed_gain == 0.0 or raw.shape[-1] < 16:
        return 0.0
    residual = raw - smooth
    mad = np.median(np.abs(residual - np.median(residual, axis=1, keepdims=True)), axis=1)
    sigma = 1.4826 * mad / removed_gain
    step_gain, _ = _noise_gains(fs, cutoff)
    return float(step_gain * np.sqrt(np.sum(sigma**2)))


class _Trace:
    """Leads ``[L, T]`` delineated together: a QRS copy and a smoother P/T copy with the slope
    (root-sum-square over leads of each sample step) and its noise floor."""

    def __init__(self, raw: np.ndarray, fs: float) -> None:
        self.fs = fs
        self.qrs = _lowpass(raw, fs, QRS_LOWPASS_HZ)
        self.waves = _lowpass(raw, fs, WAVE_LOWPASS_HZ)
        self.qrs_step = np.sqrt(np.sum(np.diff(self.qrs, axis=1) ** 2, axis=0))
        self.wave_step = np.sqrt(np.sum(np.diff(self.waves, axis=1) ** 2, axis=0))
        self.qrs_floor = NOISE_FLOOR * _step_noise(raw, self.qrs, fs, QRS_LOWPASS_HZ)
        self.wave_floor = NOISE_FLOOR * _step_noise(raw, self.qrs, fs, WAVE_LOWPASS_HZ)
        self.run = max(2, round(QUIET_RUN_S * fs))
        self.n = raw.shape[1]

    def samples(self, seconds: float) -> int:
        return max(1, round(seconds * self.fs))

    def deviation(self, x: np.ndarray, lo: int, hi: int, iso: np.ndarray) -> np.ndarray:
        """Distance from the isoelectric level over ``[lo, hi)``: signed for one lead, else the
        spatial magnitude."""
        d = x[:, lo:hi] - iso[:, None]
        return d[0] if d.shape[0] == 1 else np.sqrt(np.sum(d**2, axis=0))


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
    iso = np.median(trace.waves[:, max(0, on - trace.samples(ISO_WINDOW_S)) : on + 1], axis=1)
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
            t_hi = min(t_hi, anchor + int(0.8 * (next_anchor - anchor)))
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
    if abs(amplitude) < MIN_WAVE_MV:
        return out
    reach = trace.samples(SLOPE_SEARCH_S)
    left_lo, right_hi = max(lo, peak - reach), min(hi, peak + reach)
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


def delineate(signal: np.ndarray, fs: float, r_peaks: np.ndarray | None = None) -> list[Beats]:
    """Delineate each lead of ``signal`` (``[T]`` or ``[L, T]``, mV) on its own.

    ``r_peaks`` (sample indices) imposes the beat positions on every lead; by default each lead
    finds its own with :func:`detect_r_peaks`.
    """
    x = _as_leads(signal)
    out = []
    for row in x:
        anchors = detect_r_peaks(row, fs) if r_peaks is None else np.asarray(r_peaks, np.int64)
        out.append(_delineate_trace(_Trace(row[None], fs), anchors))
    return out


def delineate_global(
    signal: np.ndarray, fs: float, r_peaks: np.ndarray | None = None
) -> Beats:
    """Delineate all leads of ``signal`` ``[L, T]`` together, as an ECG machine measures global
    intervals: the slope is combined over leads, so an edge is where the first lead starts or the
    last lead ends; P/T amplitudes are spatial magnitudes (unsigned)."""
    x = _as_leads(signal)
    anchors = detect_r_peaks(x, fs) if r_peaks is None else np.asarray(r_peaks, np.int64)
    return _delineate_trace(_Trace(x, fs), anchors)


def _delineate_trace(trace: _Trace, anchors: np.ndarray) -> Beats:
    rows: list[dict] = []
    prev_end = float("nan")
    for i, anchor in enumerate(anchors):
        following = float(anchors[i + 1]) if i + 1 < anchors.size else float("nan")
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


def compare_features(
    truth: np.ndarray, recon: np.ndarray, fs: float, leads: tuple[str, ...] | list[str]
) -> FeatureComparison:
    """Features of each lead of ``truth`` and ``recon`` (``[L, T]`` mV) over matched beats."""
    truth_beats = delineate(truth, fs)
    recon_beats = delineate(recon, fs)
    n = len(leads)
    values = {side: {f: np.full(n, np.nan) for f in FEATURES} for side in ("truth", "recon")}
    matched, missed, extra = (np.zeros(n, dtype=np.int64) for _ in range(3))
    for k, (tb, rb) in enumerate(zip(truth_beats, recon_beats, strict=True)):
        it, ir = match_beats(tb.anchors, rb.anchors, BEAT_MATCH_S * fs)
        matched[k], missed[k], extra[k] = it.size, len(tb) - it.size, len(rb) - ir.size
        truth_values = tb.features(it)
        recon_values = rb.features(ir)
        for f in FEATURES:
            values["truth"][f][k] = truth_values[f]
            values["recon"][f][k] = recon_values[f]
    return FeatureComparison(
        leads=tuple(leads),
        truth=values["truth"],
        recon=values["recon"],
        matched=matched,
        missed=missed,
        extra=extra,
        beats=list(zip(truth_beats, recon_beats, strict=True)),
    )
