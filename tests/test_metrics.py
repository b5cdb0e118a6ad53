"""Signal metrics, their aggregation and paired comparison, against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from ecgfill.evaluate.metrics import (
    SIGNAL_METRICS,
    SNR_CAP_DB,
    amplitude_ratio,
    cohens_d_paired,
    paired_comparison,
    signal_metrics,
    summarize,
    wilcoxon_p,
)

FS = 100.0


def _wave(n: int = 400, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / FS
    return np.sin(2 * np.pi * 1.3 * t) + 0.3 * rng.standard_normal(n)


def test_perfect_reconstruction() -> None:
    truth = np.stack([_wave(seed=1), _wave(seed=2)])
    m = signal_metrics(truth, truth.copy(), FS)
    assert set(m) == set(SIGNAL_METRICS)
    np.testing.assert_allclose(m["pearson_r"], 1.0)
    np.testing.assert_allclose(m["mae_mv"], 0.0)
    np.testing.assert_allclose(m["rmse_mv"], 0.0)
    np.testing.assert_allclose(m["prd_pct"], 0.0)
    np.testing.assert_allclose(m["r2"], 1.0)
    np.testing.assert_allclose(m["amp_ratio"], 1.0)
    np.testing.assert_allclose(m["snr_db"], SNR_CAP_DB)


def test_hand_computed_values() -> None:
    truth = np.array([[1.0, 2.0, 3.0, 4.0]])
    recon = np.array([[1.0, 2.0, 3.0, 5.0]])
    m = signal_metrics(truth, recon, FS)
    # error [0, 0, 0, 1]: SSE 1; truth about its mean 2.5: SST 5
    assert m["mae_mv"][0] == pytest.approx(0.25)
    assert m["rmse_mv"][0] == pytest.approx(0.5)
    assert m["r2"][0] == pytest.approx(1 - 1 / 5)
    assert m["prd_pct"][0] == pytest.approx(100 * math.sqrt(1 / 5))
    assert m["snr_db"][0] == pytest.approx(10 * math.log10(5))
    assert m["pearson_r"][0] == pytest.approx(np.corrcoef(truth[0], recon[0])[0, 1])
    assert m["amp_ratio"][0] == pytest.approx(4 / 3)  # peak-to-peak 4 against 3


def test_scaled_copy_gives_amplitude_ratio_and_perfect_r() -> None:
    truth = _wave()[None]
    truth = truth - truth.mean()
    m = signal_metrics(truth, 0.6 * truth, FS)
    assert m["pearson_r"][0] == pytest.approx(1.0)
    assert m["amp_ratio"][0] == pytest.approx(0.6)
    assert m["mae_mv"][0] == pytest.approx(0.4 * np.abs(truth).mean())
    assert m["r2"][0] == pytest.approx(1 - 0.16)
    assert m["prd_pct"][0] == pytest.approx(40.0)


def test_offset_changes_errors_not_correlation() -> None:
    truth = _wave()[None]
    m = signal_metrics(truth, truth + 0.1, FS)
    assert m["pearson_r"][0] == pytest.approx(1.0)
    assert m["mae_mv"][0] == pytest.approx(0.1)
    assert m["amp_ratio"][0] == pytest.approx(1.0)


def test_flat_leads_are_nan_not_errors() -> None:
    truth = np.stack([np.zeros(50), _wave(50)])
    recon = np.stack([np.ones(50), np.zeros(50)])
    m = signal_metrics(truth, recon, FS)
    assert np.isnan(m["pearson_r"]).all()  # flat truth, then flat reconstruction
    assert np.isnan(m["prd_pct"][0]) and np.isnan(m["r2"][0]) and np.isnan(m["amp_ratio"][0])
    assert m["amp_ratio"][1] == 0.0
    assert m["mae_mv"][0] == pytest.approx(1.0)


def test_amplitude_ratio_uses_qrs_windows() -> None:
    n = 1000
    truth = np.zeros(n)
    peaks = np.array([100, 400, 700])
    truth[peaks] = 2.0
    truth += 0.3 * np.sin(np.arange(n) / 200)  # slow wave outside the QRS windows
    recon = truth.copy()
    recon[peaks] = 0.5 * truth[peaks]
    ratio = amplitude_ratio(truth[None], recon[None], FS, peaks)
    window = np.arange(-6, 7)
    expected = np.median([np.ptp(recon[p + window]) / np.ptp(truth[p + window]) for p in peaks])
    assert ratio[0] == pytest.approx(expected)
    assert ratio[0] < 0.6


def test_shape_mismatch_raises() -> None:
    with pytest.raises(ValueError, match="differ in shape"):
        signal_metrics(np.zeros((2, 10)), np.zeros((2, 11)), FS)


def test_summarize_is_deterministic_and_contains_the_mean() -> None:
    values = np.random.default_rng(3).normal(0.8, 0.1, 200)
    a, b = summarize(values, 500, seed=7), summarize(values, 500, seed=7)
    assert a == b
    assert summarize(values, 500, seed=8)["ci95"] != a["ci95"]
    lo, hi = a["ci95"]
    assert lo < a["mean"] < hi
    assert a["mean"] == pytest.approx(values.mean())
    assert a["median"] == pytest.approx(np.median(values))
    # the percentile interval of the mean is close to ±1.96 standard errors
    se = values.std(ddof=1) / np.sqrt(values.size)
    assert hi - lo == pytest.approx(2 * 1.96 * se, rel=0.2)


def test_summarize_edge_cases() -> None:
    assert summarize([]) == {"mean": None, "median": None, "ci95": None, "n": 0}
    one = summarize([0.5, float("nan")])
    assert one == {"mean": 0.5, "median": 0.5, "ci95": None, "n": 1}
    assert summarize([1.0, 2.0], n_boot=0)["ci95"] is None


def test_paired_comparison_against_scipy() -> None:
    rng = np.random.default_rng(5)
    b = rng.normal(0.8, 0.05, 40)
    a = b + rng.normal(0.02, 0.03, 40)
    a[3] = np.nan  # a record missing on one side is left out of the pairs
    result = paired_comparison(a, b, n_boot=300, seed=1)
    keep = np.isfinite(a)
    diff = a[keep] - b[keep]
    assert result["n"] == 39
    assert result["mean_diff"] == pytest.approx(diff.mean())
    assert result["median_diff"] == pytest.approx(np.median(diff))
    assert result["wilcoxon_p"] == pytest.approx(stats.wilcoxon(a[keep], b[keep]).pvalue)
    t = stats.ttest_rel(a[keep], b[keep]).statistic
    assert result["cohens_d"] == pytest.approx(t / np.sqrt(39))
    lo, hi = result["ci95"]
    assert lo < diff.mean() < hi


def test_paired_comparison_undefined_cases() -> None:
    same = np.array([0.5, 0.6, 0.7])
    assert math.isnan(wilcoxon_p(same - same))
    assert cohens_d_paired(same - same) == 0.0
    assert math.isnan(cohens_d_paired(np.array([0.1])))
