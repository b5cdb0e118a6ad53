"""Beats: mean beats (templates) around each QRS, their alignment and comparison, and laying a
beat back at each QRS of a record. Used by personal calibration (:mod:`ecgfill.calibrate`)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

TEMPLATE_WINDOW_S = (-0.25, 0.45)  # a beat: from before to after its QRS
TEMPLATE_MAX_SHIFT_S = 0.04  # the record guard's alignment of two input templates
ALIGN_MAX_SHIFT_S = 0.03  # each beat's alignment to the reference's input beat
ALIGN_QRS_S = (-0.1, 0.12)  # the part of the input beat aligned on
TAPER_SHARE = 0.2  # of the window, raised-cosine at each end
MIN_BEATS = 3


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson r of two 1-D signals (NaN when either is flat)."""
    from ecgfill.evaluate.metrics import pearson_rows

    return float(pearson_rows(np.asarray(a, dtype=np.float64)[None],
                              np.asarray(b, dtype=np.float64)[None])[0])


def window_samples(fs: float) -> tuple[int, int]:
    """Samples before and after a beat's QRS in a template at ``fs``."""
    return round(-TEMPLATE_WINDOW_S[0] * fs), round(TEMPLATE_WINDOW_S[1] * fs)


def whole_beats(peaks: np.ndarray, n: int, fs: float) -> np.ndarray:
    """The beats whose whole template window lies within ``n`` samples."""
    before, after = window_samples(fs)
    return peaks[(peaks >= before) & (peaks + after <= n)]


def mean_beat(x: np.ndarray, peaks: np.ndarray, fs: float, stat: Callable = np.mean
              ) -> np.ndarray | None:
    """``stat`` (mean or median) over whole beats of ``x`` ``[rows, T]`` around ``peaks``:
    ``[rows, window]``; None with fewer than :data:`MIN_BEATS`."""
    before, after = window_samples(fs)
    p = whole_beats(peaks, x.shape[-1], fs)
    if p.size < MIN_BEATS:
        return None
    return stat(np.stack([x[:, q - before: q + after] for q in p]), axis=0)


def detect_beats(inputs: np.ndarray, fs: float) -> np.ndarray:
    """Beat positions (QRS) in ``inputs`` ``[n_in, T]`` (NaN as 0)."""
    from ecgfill.evaluate.features import detect_r_peaks

    return detect_r_peaks(np.nan_to_num(np.asarray(inputs, dtype=np.float64)), fs)


def align_beats(inputs: np.ndarray, peaks: np.ndarray, fs: float,
                template: np.ndarray | None) -> np.ndarray:
    """``peaks`` each moved (within :data:`ALIGN_MAX_SHIFT_S`) to where the QRS of ``inputs``
    ``[n_in, T]`` best matches the input ``template``'s (Pearson r over the leads together);
    a beat with no shift to compare stays where it is."""
    x = np.nan_to_num(np.asarray(inputs, dtype=np.float64))
    before, _ = window_samples(fs)
    start, stop = before + round(ALIGN_QRS_S[0] * fs), before + round(ALIGN_QRS_S[1] * fs)
    width, n = stop - start, x.shape[-1]
    if template is None or peaks.size == 0 or n < width:
        return peaks
    from ecgfill.evaluate.metrics import pearson_rows

    most = round(ALIGN_MAX_SHIFT_S * fs)
    shifts = np.arange(-most, most + 1)
    first = peaks[:, None] + shifts[None, :] - before + start  # [beats, shifts]
    inside = (first >= 0) & (first + width <= n)
    idx = np.clip(first, 0, n - width)[..., None] + np.arange(width)  # [beats, shifts, width]
    segments = np.moveaxis(x[:, idx], 0, 2).reshape(idx.shape[0] * idx.shape[1], -1)
    ref = np.broadcast_to(template[:, start:stop].ravel(), segments.shape)
    r = pearson_rows(segments, ref).reshape(idx.shape[:2])
    r = np.where(inside & np.isfinite(r), r, -np.inf)
    found = np.isfinite(r.max(axis=1))
    return np.where(found, peaks + shifts[np.argmax(r, axis=1)], peaks)


def aligned_beats(inputs: np.ndarray, fs: float, template: np.ndarray | None) -> np.ndarray:
    """Beat positions in ``inputs`` (:func:`detect_beats`), aligned to the input ``template``
    (:func:`align_beats`)."""
    return align_beats(inputs, detect_beats(inputs, fs), fs, template)


def taper(n: int) -> np.ndarray:
    """``[n]`` ones with raised-cosine ends of :data:`TAPER_SHARE` of ``n`` each."""
    w = np.ones(n)
    k = max(1, int(TAPER_SHARE * n))
    ramp = 0.5 - 0.5 * np.cos(np.pi * (np.arange(k) + 0.5) / k)
    w[:k], w[n - k:] = ramp, ramp[::-1]
    return w


def place(beat: np.ndarray, peaks: np.ndarray, n: int, fs: float) -> np.ndarray:
    """``[n]``: the tapered ``beat`` ``[window]`` laid at each of ``peaks`` (partly at the
    edges); where beats overlap, their weighted mean."""
    before, after = window_samples(fs)
    w = taper(before + after)
    total, weight = np.zeros(n), np.zeros(n)
    for q in peaks:
        lo, hi = max(q - before, 0), min(q + after, n)
        if hi > lo:
            total[lo:hi] += (beat * w)[lo - q + before: hi - q + before]
            weight[lo:hi] += w[lo - q + before: hi - q + before]
    return total / np.maximum(weight, 1.0)


def beat_template(inputs: np.ndarray, fs: float) -> np.ndarray | None:
    """The median beat ``[n_in, window]`` of the input leads around each detected QRS, or None
    with fewer than :data:`MIN_BEATS` whole beats."""
    x = np.nan_to_num(np.asarray(inputs, dtype=np.float64))
    return mean_beat(x, detect_beats(x, fs), fs, np.median)


def template_similarity(a: np.ndarray | None, b: np.ndarray | None, fs: float) -> float | None:
    """Mean over the input leads of the Pearson r between two beat templates, at the best
    common alignment within ±40 ms; None when either is missing. Each lead counts alike, so a
    swapped or reversed electrode shows even beside a larger lead."""
    if a is None or b is None or a.shape != b.shape:
        return None
    most = int(round(TEMPLATE_MAX_SHIFT_S * fs))
    n = a.shape[-1]
    best = -1.0
    for shift in range(-most, most + 1):
        lo, hi = max(0, shift), min(n, n + shift)
        rs = [pearson(x[lo:hi], y[lo - shift: hi - shift]) for x, y in zip(a, b, strict=True)]
        r = float(np.nanmean(rs)) if np.isfinite(rs).any() else float("nan")
        best = max(best, r) if np.isfinite(r) else best
    return best
