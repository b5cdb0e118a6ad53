"""Resampling, high-pass filtering and gap repair (ecgfill.dsp)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ecgfill import dsp


def sine(fs: float, n: int, freq: float = 5.0, phase: float = 0.3, amp: float = 1.0) -> np.ndarray:
    t = np.arange(n) / fs
    return (amp * np.sin(2 * np.pi * freq * t + phase)).astype(np.float32)


@pytest.mark.parametrize("method", dsp.RESAMPLE_METHODS)
@pytest.mark.parametrize(
    ("fs_in", "fs_out"), [(100, 500), (500, 100), (360, 500), (500, 360), (257, 500), (128, 100)]
)
def test_resampled_sine_keeps_amplitude_and_phase(fs_in: int, fs_out: int, method: str) -> None:
    x = sine(fs_in, fs_in * 10, amp=1.5)
    y = dsp.resample(x, fs_in, fs_out, method=method)
    assert y.dtype == np.float32
    assert len(y) == dsp.resampled_length(len(x), fs_in, fs_out) == fs_out * 10
    expected = sine(fs_out, len(y), amp=1.5)
    interior = slice(fs_out, -fs_out)  # one second in from each end
    assert np.abs(y[interior] - expected[interior]).max() < 5e-4
    assert np.abs(y - expected).max() < 3e-3  # the ends too: no ringing or phase shift there


@pytest.mark.parametrize("method", dsp.RESAMPLE_METHODS)
def test_round_trip_100_500_100(method: str) -> None:
    x = sine(100, 1000, freq=7.0)
    back = dsp.resample(dsp.resample(x, 100, 500, method=method), 500, 100, method=method)
    assert back.shape == x.shape
    assert np.abs(back - x).max() < 2e-3


def test_equal_rates_return_an_exact_copy() -> None:
    x = np.random.default_rng(0).normal(size=(3, 100)).astype(np.float32)
    y = dsp.resample(x, 500, 500.0)
    assert np.array_equal(x, y) and y is not x and y.dtype == np.float32


def test_resample_along_another_axis() -> None:
    x = np.stack([sine(100, 1000), sine(100, 1000, phase=1.0)], axis=1)  # [T, 2]
    y = dsp.resample(x, 100, 250, axis=0)
    assert y.shape == (2500, 2)
    assert np.allclose(y[:, 1], dsp.resample(x[:, 1], 100, 250), atol=1e-6)


def test_factors_are_rational_and_reduced() -> None:
    assert dsp.resample_factors(360, 500) == (25, 18)
    assert dsp.resample_factors(500, 100) == (1, 5)
    assert dsp.resample_factors(128.0, 100.0) == (25, 32)
    with pytest.raises(ValueError, match="positive"):
        dsp.resample_factors(0, 100)
    with pytest.raises(ValueError, match="unknown resampling"):
        dsp.resample(np.zeros(10, np.float32), 100, 200, method="linear")


def test_antialiasing_removes_content_above_the_new_nyquist() -> None:
    # 70 Hz at 500 Hz would alias to 30 Hz at 100 Hz; the filter must stop it (80 dB).
    y = dsp.resample(sine(500, 5000, freq=70.0), 500, 100)
    assert np.abs(y[100:-100]).max() < 1e-3


def test_filter_is_symmetric_with_unit_gain() -> None:
    taps = dsp.antialias_filter(25, 18)
    assert taps.size % 2 == 1 and np.allclose(taps, taps[::-1])
    assert abs(taps.sum() - 1.0) < 1e-6


@settings(max_examples=15, deadline=None)
@given(
    rates=st.sampled_from([(360, 500), (500, 100), (100, 500), (250, 360)]),
    cuts=st.lists(st.integers(1, 39_999), max_size=12, unique=True),
    block=st.sampled_from([64, 1000, 8192]),
)
def test_stream_matches_whole_signal(rates: tuple[int, int], cuts: list[int], block: int) -> None:
    x = np.random.default_rng(1).normal(size=(2, 40_000)).astype(np.float32)
    pieces = np.split(x, sorted(cuts), axis=1)
    streamed = np.concatenate(list(dsp.resample_stream(pieces, *rates, block=block)), axis=1)
    whole = dsp.resample(x, *rates)
    assert streamed.shape == whole.shape
    assert np.allclose(streamed, whole, atol=1e-5)


def test_stream_handles_signals_shorter_than_the_filter() -> None:
    x = sine(100, 7)
    out = np.concatenate(list(dsp.resample_stream([x[:3], x[3:]], 100, 500)))
    assert np.allclose(out, dsp.resample(x, 100, 500), atol=1e-6)
    assert len(out) == 35


def test_highpass_removes_wander_and_keeps_the_ecg_band() -> None:
    fs = 250
    ecg_band = sine(fs, 2500, freq=5.0)
    wander = sine(fs, 2500, freq=0.1, amp=2.0) + 1.0  # offset plus slow drift
    out = dsp.highpass(ecg_band + wander, fs, 0.5)
    assert out.dtype == np.float32
    # The start-up transient of a forward-backward filter fades within about a second.
    assert np.abs(out - ecg_band)[2 * fs : -2 * fs].max() < 0.005
    assert np.abs(dsp.highpass(wander, fs, 0.5)).max() < 0.01  # drift continues at the ends


@pytest.mark.parametrize(("fs", "n", "cutoff", "order", "tolerance"), [
    (100, 1000, 0.5, 2, 1e-6), (500, 5000, 0.5, 2, 1e-6), (250, 2500, 0.67, 3, 1e-4),
    (100, 30000, 0.5, 2, 1e-6), (100, 150, 0.5, 2, 5e-3),  # 1.5 s: shorter than the padding
])
def test_highpass_matches_scipy_sosfiltfilt(fs: float, n: int, cutoff: float, order: int,
                                            tolerance: float) -> None:
    from scipy.signal import butter, sosfiltfilt

    rng = np.random.default_rng(n)
    x = 0.01 * np.cumsum(rng.standard_normal((3, n)), axis=1) + sine(fs, n, freq=5.0)
    sos = butter(order, cutoff, btype="highpass", fs=fs, output="sos")
    padlen = min(n - 1, int(np.ceil(3 * fs / cutoff)))
    expected = sosfiltfilt(sos, x, axis=-1, padtype="odd", padlen=padlen)
    assert np.abs(dsp.highpass(x, fs, cutoff, order) - expected).max() < tolerance
    along_first = dsp.highpass(x.T, fs, cutoff, order, axis=0)
    assert np.array_equal(along_first.T, dsp.highpass(x, fs, cutoff, order))


def test_highpass_spec_round_trips_and_applies_identically() -> None:
    spec = dsp.Highpass(0.67, order=3)
    x = sine(500, 5000) + 0.5
    assert dsp.Highpass.from_dict(spec.to_dict()) == spec
    assert np.array_equal(dsp.apply_filters(x, 500, {"highpass": spec.to_dict()}), spec.apply(x, 500))
    assert np.array_equal(dsp.apply_filters(x, 500, {"highpass": None}), x)
    with pytest.raises(ValueError, match="cutoff"):
        dsp.highpass(x, 100, 60.0)


def test_fill_gaps_interpolates_short_runs_only() -> None:
    row = np.arange(20, dtype=np.float32)
    row[[0, 1]] = np.nan  # at the start: held at the first finite value
    row[5:8] = np.nan  # short: linear
    row[12:18] = np.nan  # too long for max_gap=4: left as NaN
    filled, longest = dsp.fill_gaps(row, max_gap=4)
    assert longest == 6
    assert np.array_equal(filled[:12], np.r_[2, 2, np.arange(2, 12)].astype(np.float32))
    assert np.isnan(filled[12:18]).all()
    assert dsp.nan_runs(filled) == [(12, 18)]
