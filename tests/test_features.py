"""Beat detection and delineation on synthetic ECGs whose fiducials are known exactly."""

from __future__ import annotations

import numpy as np
import pytest

from ecgfill.evaluate.features import (
    FEATURES,
    compare_global,
    compare_leads,
    delineate,
    delineate_global,
    detect_r_peaks,
    match_beats,
)
from ecgfill.synth import SynthParams, synthesize_with_fiducials

CASES = [
    SynthParams(),
    SynthParams(heart_rate_bpm=100, pr_ms=130, qrs_ms=80, qt_ms=340),
    SynthParams(heart_rate_bpm=55, pr_ms=200, qrs_ms=110, qt_ms=450, axis_deg=0),
    SynthParams(heart_rate_bpm=80, pr_ms=180, qrs_ms=100, qt_ms=380, axis_deg=30, noise_mv=0.01),
]


def _true_intervals(fid: dict[str, np.ndarray], fs: float) -> dict[str, np.ndarray]:
    ms = 1000.0 / fs
    return {
        "pr_ms": (fid["qrs_on"] - fid["p_on"]) * ms,
        "qrs_ms": (fid["qrs_off"] - fid["qrs_on"]) * ms,
        "qt_ms": (fid["t_off"] - fid["qrs_on"]) * ms,
    }


def _measured_vs_truth(params: SynthParams, fs: float, seed: int) -> dict[str, np.ndarray]:
    """Per-beat |measured - true| of PR, QRS and QT (global delineation), matched beats only."""
    record, fid = synthesize_with_fiducials(10, fs, params, seed=seed)
    beats = delineate_global(record.signal, fs)
    it, ib = match_beats(fid["r_peak"], beats.anchors, 0.05 * fs)
    assert it.size == fid["r_peak"].size, "every true beat is found"
    measured = beats.per_beat()
    truth = _true_intervals(fid, fs)
    return {k: np.abs(measured[k][ib] - truth[k][it]) for k in truth}


@pytest.mark.parametrize("seed,params", list(enumerate(CASES)))
def test_global_intervals_within_4_ms_at_500_hz(seed: int, params: SynthParams) -> None:
    errors = _measured_vs_truth(params, 500.0, seed)
    for name, err in errors.items():
        assert np.isfinite(err).all(), f"{name} not measured on some beat"
        assert np.median(err) <= 4.0, f"{name}: median error {np.median(err)} ms"
        assert np.percentile(err, 90) <= 6.0, f"{name}: 90th percentile {np.percentile(err, 90)}"


@pytest.mark.parametrize("seed,params", list(enumerate(CASES)))
def test_global_intervals_within_a_sample_at_100_hz(seed: int, params: SynthParams) -> None:
    errors = _measured_vs_truth(params, 100.0, seed)
    for name, err in errors.items():
        assert np.median(err) <= 10.0, f"{name}: median error {np.median(err)} ms"
        assert np.max(err) <= 20.0, f"{name}: max error {np.max(err)} ms"


def test_heart_rate_and_beats() -> None:
    fs = 500.0
    record, fid = synthesize_with_fiducials(10, fs, SynthParams(heart_rate_bpm=75), seed=2)
    anchors = detect_r_peaks(record.signal, fs)
    # Every beat of the record is found once, inside its QRS.
    it, ia = match_beats(fid["r_peak"], anchors, 0.1 * fs)
    assert it.size == fid["r_peak"].size
    assert np.all((anchors[ia] >= fid["qrs_on"][it]) & (anchors[ia] <= fid["qrs_off"][it]))
    true_hr = 60.0 * fs / np.median(np.diff(fid["r_peak"]))
    assert delineate_global(record.signal, fs).heart_rate() == pytest.approx(true_hr, abs=1.0)


def test_single_leads_measure_clear_waves() -> None:
    fs = 500.0
    record, fid = synthesize_with_fiducials(10, fs, SynthParams(), seed=4)
    truth = {k: float(np.median(v)) for k, v in _true_intervals(fid, fs).items()}
    for beats in delineate(record.select(("II", "V3", "V6")).signal, fs):
        found = beats.features()
        for name, value in truth.items():
            assert abs(found[name] - value) <= 6.0, (name, found[name], value)
        assert found["t_amp_mv"] > 0.1


def test_same_signal_gives_identical_features_and_scaling_only_amplitudes() -> None:
    fs = 500.0
    record, _ = synthesize_with_fiducials(10, fs, SynthParams(noise_mv=0.005), seed=5)
    leads = ("II", "V3", "V5")
    x = record.select(leads).signal
    same = compare_leads(x, x.copy(), fs, leads)
    for f in FEATURES:
        np.testing.assert_array_equal(same.truth[f], same.recon[f])
    assert (same.missed == 0).all() and (same.extra == 0).all() and (same.matched >= 9).all()
    shrunk = compare_leads(x, 0.7 * x, fs, leads)
    for f in ("pr_ms", "qrs_ms", "qt_ms", "hr_bpm"):
        np.testing.assert_allclose(shrunk.recon[f], shrunk.truth[f], atol=4.0)
    for f in ("p_amp_mv", "t_amp_mv"):
        np.testing.assert_allclose(shrunk.recon[f], 0.7 * shrunk.truth[f], rtol=0.05, atol=0.005)


def test_global_comparison_flags_a_wider_qrs() -> None:
    fs = 500.0
    narrow, _ = synthesize_with_fiducials(10, fs, SynthParams(qrs_ms=80), seed=6)
    wide, _ = synthesize_with_fiducials(10, fs, SynthParams(qrs_ms=120), seed=6)
    result = compare_global(narrow.signal, wide.signal, fs)
    assert result.leads == ("global",)
    assert result.recon["qrs_ms"][0] - result.truth["qrs_ms"][0] == pytest.approx(40.0, abs=6.0)


def test_flat_and_short_signals_are_unmeasured_not_errors() -> None:
    fs = 250.0
    flat = np.zeros((2, 2500))
    assert detect_r_peaks(flat, fs).size == 0
    for beats in delineate(flat, fs):
        assert len(beats) == 0
        assert all(np.isnan(v) for v in beats.features().values())
    short = np.random.default_rng(0).normal(0, 0.01, (1, 10))
    assert detect_r_peaks(short, fs).size == 0
    result = compare_leads(flat, flat, fs, ("V1", "V2"))
    assert all(np.isnan(result.recon[f]).all() for f in FEATURES)


def test_match_beats_pairs_nearest_within_tolerance() -> None:
    a = np.array([100, 300, 500, 700])
    b = np.array([104, 290, 640, 705, 900])
    ia, ib = match_beats(a, b, tolerance=20)
    assert ia.tolist() == [0, 1, 3]
    assert ib.tolist() == [0, 1, 3]
    empty = match_beats(a, np.array([]), tolerance=20)
    assert empty[0].size == 0 and empty[1].size == 0


@pytest.mark.realdata
def test_real_records_give_plausible_global_intervals(shared_data) -> None:
    from ecgfill.evaluate.run import complete_reference
    from ecgfill.io import read_record

    paths = sorted((shared_data / "ptb-xl" / "records500-cinc2021").glob("*.hea"))[:8]
    if not paths:
        pytest.skip("no PTB-XL 500 Hz records in the share")
    found = {f: [] for f in ("hr_bpm", "pr_ms", "qrs_ms", "qt_ms")}
    for path in paths:
        record = complete_reference(read_record(path), path)
        features = delineate_global(record.signal, record.fs).features()
        for name in found:
            found[name].append(features[name])
    median = {name: float(np.nanmedian(values)) for name, values in found.items()}
    assert 40 <= median["hr_bpm"] <= 120
    assert 100 <= median["pr_ms"] <= 250
    assert 70 <= median["qrs_ms"] <= 120
    assert 320 <= median["qt_ms"] <= 480
    assert np.isfinite(found["qrs_ms"]).all()
