"""The synthetic ECG: shape, determinism, lead algebra, morphology, rhythm and ground truth."""

from __future__ import annotations

import time

import numpy as np
import pytest

from ecgfill.leads import STANDARD_LEADS
from ecgfill.synth import (
    FIDUCIALS,
    SynthParams,
    synthesize,
    synthesize_batch,
    synthesize_with_fiducials,
)

FS = 500.0


def _qrs_samples(fiducials: dict[str, np.ndarray]) -> np.ndarray:
    """Indices of every sample from QRS onset to offset, over all beats."""
    bounds = zip(fiducials["qrs_on"], fiducials["qrs_off"], strict=True)
    return np.concatenate([np.arange(on, off + 1) for on, off in bounds])


def _assert_limb_algebra(signal: np.ndarray) -> None:
    """Leads in standard order on the second-to-last axis obey Einthoven and Goldberger."""
    lead_i, lead_ii, lead_iii = signal[..., 0, :], signal[..., 1, :], signal[..., 2, :]
    assert np.array_equal(lead_iii, lead_ii - lead_i)
    goldberger = signal[..., 3, :] + signal[..., 4, :] + signal[..., 5, :]
    assert np.abs(goldberger).max() < 1e-5


def test_record_shape_dtype_and_leads() -> None:
    record = synthesize(10, FS)
    assert record.signal.shape == (12, 5000)
    assert record.signal.dtype == np.float32
    assert record.fs == FS
    assert record.leads == STANDARD_LEADS
    assert record.origins == ("measured",) * 12
    assert np.isfinite(record.signal).all()
    assert synthesize(2.5, 257.0).n_samples == round(2.5 * 257.0)


def test_same_seed_same_record_other_seed_other_record() -> None:
    params = SynthParams(noise_mv=0.02, baseline_wander_mv=0.1)
    first = synthesize(8, FS, params, seed=3).signal
    assert np.array_equal(first, synthesize(8, FS, params, seed=3).signal)
    assert not np.allclose(first, synthesize(8, FS, params, seed=4).signal)


def test_shorter_record_is_prefix_of_longer() -> None:
    params = SynthParams(noise_mv=0.02, baseline_wander_mv=0.1)
    short = synthesize(5, FS, params, seed=1).signal
    long = synthesize(12, FS, params, seed=1).signal
    np.testing.assert_allclose(short, long[:, : short.shape[1]], atol=1e-6)


@pytest.mark.parametrize(
    "params", [SynthParams(), SynthParams(noise_mv=0.05, baseline_wander_mv=0.3, axis_deg=-20)]
)
def test_limb_leads_obey_einthoven_and_goldberger(params: SynthParams) -> None:
    _assert_limb_algebra(synthesize(10, FS, params).signal)


def test_lead_morphology_is_physiological() -> None:
    record, fiducials = synthesize_with_fiducials(10, FS)
    qrs = _qrs_samples(fiducials)

    def peak_and_trough(name: str) -> tuple[float, float]:
        values = record.lead(name)[qrs]
        return float(values.max()), float(values.min())

    r_ii, s_ii = peak_and_trough("II")
    assert 0.8 < r_ii < 1.2 and r_ii > 3 * -s_ii  # tall R about 1 mV in II
    r_avr, s_avr = peak_and_trough("aVR")
    assert s_avr < -0.5 and -s_avr > 3 * r_avr  # mostly negative in aVR
    r_v5, _ = peak_and_trough("V5")
    assert r_v5 > 0.8
    # R/S progression: S dominates in V1, R in V5/V6, the ratio growing across the chest.
    ratios = []
    for name in ("V1", "V2", "V3", "V4", "V5", "V6"):
        r, s = peak_and_trough(name)
        ratios.append(r / -s)
    assert ratios[0] < 0.3 and min(ratios[4:]) > 3
    assert ratios[0] < ratios[2] < ratios[4]
    # T waves upright in II and V5, inverted in aVR.
    t_peak = fiducials["t_peak"]
    assert (record.lead("II")[t_peak] > 0.1).all() and (record.lead("V5")[t_peak] > 0.1).all()
    assert (record.lead("aVR")[t_peak] < -0.1).all()


@pytest.mark.parametrize("rate", [50.0, 72.0, 110.0])
def test_heart_rate_from_r_peak_spacing(rate: float) -> None:
    from scipy.signal import find_peaks

    record = synthesize(60, FS, SynthParams(heart_rate_bpm=rate, hr_std_bpm=3.0), seed=2)
    peaks, _ = find_peaks(record.lead("II"), height=0.5, distance=int(0.3 * FS))
    measured = 60.0 / (np.diff(peaks).mean() / FS)
    assert abs(measured - rate) < 2.0


def test_heart_rate_varies_only_with_hr_std() -> None:
    def rr_samples(std: float) -> np.ndarray:
        _, fiducials = synthesize_with_fiducials(60, FS, SynthParams(hr_std_bpm=std))
        return np.diff(fiducials["r_peak"])

    assert np.ptp(rr_samples(0.0)) <= 1
    assert np.ptp(rr_samples(4.0)) > 10


@pytest.mark.parametrize(
    ("fs", "params"),
    [
        (500.0, SynthParams()),
        (1000.0, SynthParams(pr_ms=200, qrs_ms=120, qt_ms=460, heart_rate_bpm=55)),
        (250.0, SynthParams(pr_ms=120, qrs_ms=70, qt_ms=330, heart_rate_bpm=105, axis_deg=-10)),
    ],
)
def test_fiducial_intervals_match_params(fs: float, params: SynthParams) -> None:
    record, fiducials = synthesize_with_fiducials(20, fs, params, seed=5)
    assert set(fiducials) == set(FIDUCIALS)
    stacked = np.stack([fiducials[k] for k in FIDUCIALS])
    assert stacked.shape[1] >= 15 and stacked.dtype == np.int64
    assert (np.diff(stacked, axis=0) > 0).all()  # p_on < p_peak < ... < t_off in every beat
    assert stacked.min() >= 0 and stacked.max() < record.n_samples
    sample_ms = 1000.0 / fs
    for start, end, interval_ms in [
        ("p_on", "qrs_on", params.pr_ms),
        ("qrs_on", "qrs_off", params.qrs_ms),
        ("qrs_on", "t_off", params.qt_ms),
    ]:
        measured_ms = (fiducials[end] - fiducials[start]) * sample_ms
        assert np.abs(measured_ms - interval_ms).max() <= sample_ms


def test_fiducials_mark_where_the_signal_leaves_the_baseline() -> None:
    record, fiducials = synthesize_with_fiducials(10, FS, SynthParams(hr_std_bpm=0.0))
    activity = np.abs(record.signal).max(axis=0)
    for p_off, qrs_on, t_off in zip(
        fiducials["p_off"], fiducials["qrs_on"], fiducials["t_off"], strict=True
    ):
        assert activity[p_off + 1 : qrs_on].max() == 0.0  # PR segment is flat
        assert activity[qrs_on + 1 : qrs_on + 3].min() > 0.0  # QRS starts right at qrs_on
        assert activity[t_off - 2 : t_off].min() > 0.0  # T wave lasts up to t_off
    for t_off, p_on in zip(fiducials["t_off"][:-1], fiducials["p_on"][1:], strict=True):
        assert activity[t_off + 1 : p_on].max() == 0.0  # TP segment is flat


@pytest.mark.parametrize("axis", [-30.0, 0.0, 45.0, 90.0])
def test_frontal_axis_from_net_qrs_area(axis: float) -> None:
    record, fiducials = synthesize_with_fiducials(10, FS, SynthParams(axis_deg=axis))
    qrs = _qrs_samples(fiducials)
    area_i = float(record.lead("I")[qrs].sum())
    area_avf = float(record.lead("aVF")[qrs].sum())
    measured = np.degrees(np.arctan2(2 * area_avf / np.sqrt(3), area_i))
    assert abs(measured - axis) < 0.5


def test_amplitude_scales_the_clean_signal() -> None:
    single = synthesize(6, FS, SynthParams(amplitude_mv=1.0)).signal
    double = synthesize(6, FS, SynthParams(amplitude_mv=2.0)).signal
    np.testing.assert_allclose(double, 2 * single, atol=1e-5)


def test_noise_is_white_with_the_given_std() -> None:
    clean = synthesize(20, FS).signal.astype(np.float64)
    noise = synthesize(20, FS, SynthParams(noise_mv=0.05)).signal - clean
    for name, expected_std in [("I", 0.05), ("V3", 0.05), ("aVR", 0.05 * np.sqrt(0.5))]:
        row = noise[STANDARD_LEADS.index(name)]
        assert abs(row.std() - expected_std) < 0.05 * expected_std
        assert abs(row.mean()) < 0.005
        lag_one = np.corrcoef(row[:-1], row[1:])[0, 1]
        assert abs(lag_one) < 0.05


def test_baseline_wander_is_slow_with_the_given_amplitude() -> None:
    clean = synthesize(30, FS).signal.astype(np.float64)
    wander = synthesize(30, FS, SynthParams(baseline_wander_mv=0.2)).signal - clean
    for name in ("I", "II", "V1", "V6"):
        row = wander[STANDARD_LEADS.index(name)]
        assert 0.19 < np.abs(row).max() < 0.2 + 1e-5
        spectrum = np.abs(np.fft.rfft(row))
        dominant_hz = np.fft.rfftfreq(row.size, 1 / FS)[spectrum.argmax()]
        assert 0.09 <= dominant_hz <= 0.51


def test_batch_shape_variety_and_determinism() -> None:
    batch = synthesize_batch(8, 5, FS, seed=11)
    assert batch.shape == (8, 12, 2500) and batch.dtype == np.float32
    assert np.isfinite(batch).all()
    _assert_limb_algebra(batch)
    assert np.array_equal(batch, synthesize_batch(8, 5, FS, seed=11))
    assert not np.allclose(batch, synthesize_batch(8, 5, FS, seed=12))
    flat = batch.reshape(8, -1)
    distances = np.linalg.norm(flat[:, None] - flat[None], axis=-1)
    assert distances[~np.eye(8, dtype=bool)].min() > 1.0
    qrs_peaks = np.abs(batch[:, 1]).max(axis=-1)  # lead II amplitude follows axis and scale
    assert qrs_peaks.max() > 1.5 * qrs_peaks.min()


def test_batch_heart_rates_span_the_range() -> None:
    from scipy.signal import find_peaks

    batch = synthesize_batch(12, 20, FS, seed=0)
    rates = []
    for record in batch:
        # The dipole's largest deflection is the QRS in whichever lead shows it best.
        strongest = np.abs(record).max(axis=0)
        peaks, _ = find_peaks(strongest, height=0.6 * strongest.max(), distance=int(0.4 * FS))
        rates.append(60.0 / (np.diff(peaks).mean() / FS))
    assert min(rates) >= 48 and max(rates) <= 112
    assert max(rates) - min(rates) > 25


@pytest.mark.parametrize(
    "kwargs",
    [
        {"heart_rate_bpm": 130.0, "qt_ms": 460.0},  # T would run into the next QRS
        {"noise_mv": -0.1},
        {"qrs_ms": 0.0},
        {"heart_rate_bpm": float("nan")},
        {"pr_ms": 450.0},
    ],
)
def test_inconsistent_params_are_rejected(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        SynthParams(**kwargs)


@pytest.mark.parametrize(("seconds", "fs"), [(0.0, FS), (10.0, 0.0), (10.0, float("inf"))])
def test_empty_or_invalid_length_is_rejected(seconds: float, fs: float) -> None:
    with pytest.raises(ValueError):
        synthesize(seconds, fs)


@pytest.mark.slow
def test_day_long_record_is_fast() -> None:
    started = time.perf_counter()
    record = synthesize(24 * 3600, FS, SynthParams(noise_mv=0.02, baseline_wander_mv=0.1))
    assert time.perf_counter() - started < 60
    assert record.signal.shape == (12, 24 * 3600 * 500)
