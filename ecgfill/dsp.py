"""Signal processing shared by ``preprocess`` and ``reconstruct``: resampling, filters, gap repair.

Every function takes and returns float32 arrays with time on ``axis`` (last by default) and
computes in float64. scipy.signal is imported inside the functions so the CLI starts fast.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from typing import Any, Literal

import numpy as np

ResampleMethod = Literal["polyphase", "fourier"]
RESAMPLE_METHODS: tuple[str, ...] = ("polyphase", "fourier")

# Anti-aliasing low-pass for polyphase resampling: Kaiser-window FIR whose stopband starts at the
# lower of the two Nyquist frequencies (nothing above it aliases) with this attenuation, and whose
# passband ends this fraction of that Nyquist frequency below it.
ANTIALIAS_ATTENUATION_DB = 80.0
ANTIALIAS_TRANSITION = 0.1
MAX_RATIO_DENOMINATOR = 1000
STREAM_BLOCK = 1 << 16  # input samples per lead resampled at once by resample_stream


def _check_rate(fs: float, what: str) -> float:
    fs = float(fs)
    if not math.isfinite(fs) or fs <= 0:
        raise ValueError(f"{what} must be a positive sampling rate, got {fs}")
    return fs


def resample_factors(fs_in: float, fs_out: float) -> tuple[int, int]:
    """Coprime (up, down) with fs_out / fs_in = up / down (rates rounded to 1e-4 Hz).

    Ratios that need a denominator above 1000 are approximated to the nearest such fraction.
    """
    fin = Fraction(_check_rate(fs_in, "fs_in")).limit_denominator(10_000)
    fout = Fraction(_check_rate(fs_out, "fs_out")).limit_denominator(10_000)
    ratio = (fout / fin).limit_denominator(MAX_RATIO_DENOMINATOR)
    if ratio <= 0:
        raise ValueError(f"cannot resample from {fs_in} Hz to {fs_out} Hz")
    return ratio.numerator, ratio.denominator


def resampled_length(n_samples: int, fs_in: float, fs_out: float) -> int:
    """Samples that ``resample`` returns for ``n_samples`` input samples: ceil(n * up / down)."""
    up, down = resample_factors(fs_in, fs_out)
    return -(-int(n_samples) * up // down)


@lru_cache(maxsize=32)
def antialias_filter(up: int, down: int) -> np.ndarray:
    """The odd-length, symmetric low-pass FIR for ``up``/``down`` (unit DC gain), float64.

    A Kaiser-window design, as ``scipy.signal.kaiserord`` + ``firwin`` make it, written with
    numpy so that resampling does not import scipy.signal (≈0.4 s per process start).
    resample_poly multiplies it by ``up`` to make up for the zeros it inserts.
    """
    widest = max(up, down)
    attenuation, width = ANTIALIAS_ATTENUATION_DB, ANTIALIAS_TRANSITION / widest
    numtaps = math.ceil((attenuation - 7.95) / 2.285 / (math.pi * width) + 1)  # kaiserord
    beta = 0.1102 * (attenuation - 8.7)  # kaiser_beta for attenuation > 50 dB
    numtaps += 1 - numtaps % 2
    cutoff = (1.0 - ANTIALIAS_TRANSITION / 2) / widest  # relative to Nyquist
    m = np.arange(numtaps) - (numtaps - 1) / 2
    taps = cutoff * np.sinc(cutoff * m) * np.kaiser(numtaps, beta)
    taps /= taps.sum()  # unit gain at DC, as firwin(scale=True)
    taps.setflags(write=False)
    return taps


def _context(up: int, down: int) -> int:
    """Input samples each side an output block needs, rounded up to a multiple of ``down``."""
    half_len = (antialias_filter(up, down).size - 1) // 2
    needed = -(-half_len // up) + 1
    return -(-needed // down) * down


def _odd_extension(x: np.ndarray, left: int, right: int) -> np.ndarray:
    """Point-symmetric extension at both ends (keeps value and slope continuous)."""
    return np.pad(x, [(0, 0)] * (x.ndim - 1) + [(left, right)], mode="reflect", reflect_type="odd")


def _polyphase_window(window: np.ndarray, up: int, down: int, skip: int, count: int) -> np.ndarray:
    """Resample ``window`` (time last, float64) and keep ``count`` outputs from ``skip``."""
    taps = antialias_filter(up, down)
    n_in = window.shape[-1]
    n_out = -(-n_in * up // down)
    direct_macs = n_out * taps.size / up
    fft_len = n_in * up + taps.size
    if direct_macs > 4 * fft_len * math.log2(fft_len):
        out = _resample_poly_fft(window, up, down, taps, n_out)
    else:
        from scipy.signal import resample_poly

        out = resample_poly(window, up, down, axis=-1, window=taps)
    return out[..., skip : skip + count]


def _resample_poly_fft(x: np.ndarray, up: int, down: int, taps: np.ndarray, n_out: int) -> np.ndarray:
    """``scipy.signal.resample_poly(x, up, down, window=taps)`` computed by FFT convolution (numpy).

    Same filter, same alignment, same output (to ~1e-14); several times faster for the long
    anti-aliasing filters of simple ratios such as 500 -> 100 Hz and back.
    """
    half_len = (taps.size - 1) // 2
    n_pre_pad = down - half_len % down
    n_pre_remove = (half_len + n_pre_pad) // down
    h = np.concatenate([np.zeros(n_pre_pad), taps * up])
    stuffed = np.zeros(x.shape[:-1] + ((x.shape[-1] - 1) * up + 1,))
    stuffed[..., ::up] = x
    size = stuffed.shape[-1] + h.size - 1
    nfft = 1 << (size - 1).bit_length()
    full = np.fft.irfft(np.fft.rfft(stuffed, nfft) * np.fft.rfft(h, nfft), nfft)[..., :size]
    out = full[..., ::down][..., n_pre_remove : n_pre_remove + n_out]
    missing = n_out - out.shape[-1]
    return np.pad(out, [(0, 0)] * (x.ndim - 1) + [(0, missing)]) if missing > 0 else out


def _stream_last_axis(
    chunks: Iterable[np.ndarray], up: int, down: int, block: int
) -> Iterator[np.ndarray]:
    """Polyphase-resample a stream of ``[..., n_i]`` float arrays; yields float32 blocks."""
    ctx = _context(up, down)
    block = max(down, block // down * down)
    head = ctx * up // down  # outputs that belong to the left context of a window
    pending: list[np.ndarray] = []
    buffered = 0
    buf: np.ndarray | None = None  # ctx samples of left context + unprocessed input
    left_is_real = False  # False while the left context is still the start's extension
    for chunk in chunks:
        chunk = np.asarray(chunk, dtype=np.float64)
        if chunk.shape[-1] == 0:
            continue
        pending.append(chunk)
        buffered += chunk.shape[-1]
        if buf is None and buffered <= ctx:
            continue  # the left edge extension needs ctx + 1 real samples
        joined = np.concatenate(pending, axis=-1)
        pending, buffered = [], 0
        buf = _odd_extension(joined, ctx, 0) if buf is None else np.concatenate([buf, joined], -1)
        usable = (buf.shape[-1] - 2 * ctx) // block * block
        if usable <= 0:
            continue
        window = buf[..., : usable + 2 * ctx]
        yield _polyphase_window(window, up, down, head, usable * up // down).astype(np.float32)
        buf = buf[..., usable:]
        left_is_real = True
    if pending:
        joined = np.concatenate(pending, axis=-1)
        buf = _odd_extension(joined, ctx, 0) if buf is None else np.concatenate([buf, joined], -1)
    if buf is None:
        return
    tail = buf.shape[-1] - ctx
    real = buf if left_is_real else buf[..., ctx:]
    extension = _odd_extension(real, 0, ctx)[..., real.shape[-1] :]
    window = np.concatenate([buf, extension], axis=-1)
    yield _polyphase_window(window, up, down, head, -(-tail * up // down)).astype(np.float32)


def resample_stream(
    chunks: Iterable[np.ndarray],
    fs_in: float,
    fs_out: float,
    block: int = STREAM_BLOCK,
) -> Iterator[np.ndarray]:
    """Polyphase-resample a signal given piecewise, time on the last axis, in bounded memory.

    ``chunks`` are consecutive pieces of one signal (any lengths, same leading shape). The
    yielded float32 pieces concatenate to what :func:`resample` returns for the whole signal
    (equal up to float rounding): every output sample sees the same input samples, and the two
    true ends are extended point-symmetrically, so piece boundaries leave no edge artifacts.
    Memory is bounded by the chunk size plus ``block`` samples and the filter's context.
    """
    up, down = resample_factors(fs_in, fs_out)
    if up == down:
        for chunk in chunks:
            yield np.array(chunk, dtype=np.float32)
        return
    yield from _stream_last_axis(chunks, up, down, block)


def _resample_fourier(x: np.ndarray, up: int, down: int) -> np.ndarray:
    """FFT resampling (scipy.signal.resample) of ``x`` (time last, float64).

    The FFT treats its input as periodic, so the signal is first extended point-symmetrically
    by a quarter of its length at each end (to a whole number of ``down`` periods), the line
    through the two new ends is removed (no jump where the period wraps), and the extension is
    cropped again after resampling.
    """
    from scipy.signal import resample as fft_resample

    n = x.shape[-1]
    n_out = -(-n * up // down)
    pad = -(-max(n // 4, 1) // down) * down
    total = -(-(n + 2 * pad) // down) * down
    ext = _odd_extension(x, pad, total - n - pad)
    slope = (ext[..., -1:] - ext[..., :1]) / (total - 1)
    out = fft_resample(ext - slope * np.arange(total), total * up // down, axis=-1)
    out += slope * (np.arange(out.shape[-1]) * (down / up))
    skip = pad * up // down
    return out[..., skip : skip + n_out]


def fit_length(y: np.ndarray, n: int) -> np.ndarray:
    """Trim or edge-pad the last axis to ``n`` samples (rational resampling, and a round trip
    through it, can be a sample off)."""
    if y.shape[-1] == n:
        return y
    if y.shape[-1] > n:
        return y[..., :n]
    return np.pad(y, [(0, 0)] * (y.ndim - 1) + [(0, n - y.shape[-1])], mode="edge")


def resample(
    x: np.ndarray,
    fs_in: float,
    fs_out: float,
    axis: int = -1,
    method: ResampleMethod | str = "polyphase",
) -> np.ndarray:
    """Resample ``x`` from ``fs_in`` to ``fs_out`` Hz along ``axis``; float32 out.

    ``polyphase`` (default): scipy.signal.resample_poly with rational up/down factors and an
    80 dB Kaiser anti-aliasing FIR (:func:`antialias_filter`), zero phase, ends extended
    point-symmetrically; long signals are processed in blocks (:func:`resample_stream`).
    ``fourier``: FFT resampling (scipy.signal.resample) of the extended, detrended signal.
    Output length is ``resampled_length(n, fs_in, fs_out)``; equal rates return an exact copy.
    """
    if method not in RESAMPLE_METHODS:
        raise ValueError(f"unknown resampling method {method!r} (use {', '.join(RESAMPLE_METHODS)})")
    data = np.asarray(x)
    up, down = resample_factors(fs_in, fs_out)
    if up == down:
        return data.astype(np.float32, copy=True)
    moved = np.moveaxis(data, axis, -1)
    if moved.shape[-1] == 0:
        return np.moveaxis(np.zeros(moved.shape, np.float32), -1, axis)
    if method == "fourier":
        out = _resample_fourier(moved.astype(np.float64), up, down).astype(np.float32)
    else:
        step = STREAM_BLOCK
        pieces = (moved[..., i : i + step] for i in range(0, moved.shape[-1], step))
        out = np.concatenate(list(_stream_last_axis(pieces, up, down, STREAM_BLOCK)), axis=-1)
    return np.moveaxis(out, -1, axis)


@dataclass(frozen=True)
class Highpass:
    """A zero-phase Butterworth high-pass (baseline-wander removal), as recorded in datasets."""

    cutoff_hz: float = 0.5
    order: int = 2

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "butterworth-highpass",
            "cutoff_hz": self.cutoff_hz,
            "order": self.order,
            "zero_phase": True,
            "implementation": "forward-backward response (as scipy.signal.sosfiltfilt) by FFT, "
                              "odd padding of 3/cutoff seconds",
        }

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any]) -> Highpass:
        if spec.get("type") != "butterworth-highpass":
            raise ValueError(f"unknown filter type {spec.get('type')!r}")
        return cls(cutoff_hz=float(spec["cutoff_hz"]), order=int(spec["order"]))

    def apply(self, x: np.ndarray, fs: float, axis: int = -1) -> np.ndarray:
        return highpass(x, fs, self.cutoff_hz, order=self.order, axis=axis)


def highpass(
    x: np.ndarray, fs: float, cutoff_hz: float = 0.5, order: int = 2, axis: int = -1
) -> np.ndarray:
    """Zero-phase Butterworth high-pass; float32 out.

    The same response as ``scipy.signal.sosfiltfilt`` with ``butter(order, cutoff_hz, "highpass",
    fs=fs)``, forward and backward, i.e. the squared magnitude of the bilinear-transform
    Butterworth, applied by FFT in numpy (no scipy.signal import at start-up). The ends are extended
    point-symmetrically (drift continues smoothly) by 3 / cutoff seconds, at most the signal
    length minus one, so the start-up transient stays out of the signal.
    """
    return _butterworth(x, fs, cutoff_hz, order, axis, high=True)


def lowpass(
    x: np.ndarray, fs: float, cutoff_hz: float, order: int = 4, axis: int = -1
) -> np.ndarray:
    """Zero-phase Butterworth low-pass (as :func:`highpass`, the complementary response)."""
    return _butterworth(x, fs, cutoff_hz, order, axis, high=False)


def bandpass(
    x: np.ndarray, fs: float, low_hz: float, high_hz: float, order: int = 4, axis: int = -1
) -> np.ndarray:
    """Zero-phase Butterworth band-pass: :func:`highpass` at ``low_hz`` then :func:`lowpass` at
    ``high_hz`` (skipped when ``high_hz`` reaches Nyquist)."""
    out = highpass(x, fs, low_hz, order=order, axis=axis)
    return lowpass(out, fs, high_hz, order=order, axis=axis) if high_hz < fs / 2 else out


def _butterworth(
    x: np.ndarray, fs: float, cutoff_hz: float, order: int, axis: int, high: bool
) -> np.ndarray:
    fs = _check_rate(fs, "fs")
    kind = "high" if high else "low"
    if not 0 < cutoff_hz < fs / 2:
        raise ValueError(f"{kind}-pass cutoff {cutoff_hz} Hz must lie between 0 and {fs / 2} Hz")
    if order < 1:
        raise ValueError(f"{kind}-pass order must be >= 1, not {order}")
    data = np.moveaxis(np.asarray(x, dtype=np.float64), axis, -1)
    n = data.shape[-1]
    if n < 2:
        return np.moveaxis(data, -1, axis).astype(np.float32)
    padlen = min(n - 1, math.ceil(3 * fs / cutoff_hz))
    # Odd extension, then the edge values held (as sosfiltfilt's steady-state initial conditions
    # assume) for long enough that the FFT's wrap-around meets no step within the filter's memory.
    hold = math.ceil(3 * fs / cutoff_hz)
    extended = np.pad(_odd_extension(data, padlen, padlen),
                      [(0, 0)] * (data.ndim - 1) + [(hold, hold)], mode="edge")
    start = padlen + hold
    nfft = 1 << (extended.shape[-1] - 1).bit_length()
    warped = np.tan(np.pi * np.fft.rfftfreq(nfft))  # tan(omega / 2): the bilinear frequency map
    edge = np.tan(np.pi * cutoff_hz / fs)
    if high:  # |H|^2 of the Butterworth high-pass
        ratio = (edge / np.where(warped > 0, warped, 1.0)) ** (2 * order)
        gain = np.where(warped > 0, 1.0 / (1.0 + ratio), 0.0)
    else:  # |H|^2 of the low-pass; tan is infinite at Nyquist, where the gain is 0
        with np.errstate(over="ignore"):
            gain = 1.0 / (1.0 + (warped / edge) ** (2 * order))
    out = np.fft.irfft(np.fft.rfft(extended, nfft) * gain, nfft)[..., start : start + n]
    return np.moveaxis(out, -1, axis).astype(np.float32)


def highpass_in(filters: Mapping[str, Any] | None) -> Highpass | None:
    """The high-pass a ``filters`` record (``dataset.json["filters"]``, a card's
    ``input_filters``) names, or None. Two records name the same filter when these are equal,
    whatever implementation note they carry."""
    spec = (filters or {}).get("highpass")
    return Highpass.from_dict(spec) if spec else None


def apply_filters(
    x: np.ndarray, fs: float, filters: Mapping[str, Any] | None, axis: int = -1
) -> np.ndarray:
    """Apply the filters a dataset recorded (``dataset.json["filters"]``) the same way."""
    highpass = highpass_in(filters)
    if highpass is None:
        return np.asarray(x, dtype=np.float32)
    return highpass.apply(x, fs, axis=axis)


def true_runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """``(start, stop)`` of each run of True in a 1-D boolean array."""
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        return []
    edges = np.diff(np.concatenate([[False], mask, [False]]).astype(np.int8))
    starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return list(zip(starts.tolist(), stops.tolist(), strict=True))


def nan_runs(row: np.ndarray) -> list[tuple[int, int]]:
    """``(start, stop)`` of each run of non-finite samples in a 1-D array."""
    return true_runs(~np.isfinite(row))


def fill_gaps(row: np.ndarray, max_gap: int) -> tuple[np.ndarray, int]:
    """Linearly interpolate runs of non-finite samples no longer than ``max_gap`` samples.

    Runs at either end hold the nearest finite value. Returns the float32 row (longer runs left
    as NaN) and the length of the longest run found. A row with no finite sample is returned as is.
    """
    runs = nan_runs(row)
    out = np.asarray(row, dtype=np.float32).copy()
    longest = max((stop - start for start, stop in runs), default=0)
    finite = np.flatnonzero(np.isfinite(out))
    if not runs or finite.size == 0:
        return out, longest
    for start, stop in runs:
        if stop - start > max_gap:
            continue
        idx = np.arange(start, stop)
        out[start:stop] = np.interp(idx, finite, out[finite].astype(np.float64))
    return out, longest
