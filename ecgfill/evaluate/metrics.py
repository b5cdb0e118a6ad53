"""Signal-level metrics, their aggregation over records, paired model comparison and figures
as strict JSON (:func:`json_safe`).

Every metric is computed per record and lead in mV on the record's own samples, then aggregated
over records (mean, median and a percentile-bootstrap 95% confidence interval of the mean).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

SIGNAL_METRICS: tuple[str, ...] = (
    "pearson_r", "mae_mv", "rmse_mv", "snr_db", "prd_pct", "r2", "amp_ratio",
    "high_band_r", "high_energy_ratio",
)
# High-band metrics, for records at HIGH_BAND_MIN_FS and above (NaN below): Pearson r of the
# HIGH_BAND_HZ band (QRS notching, slurring, fragmentation), and reconstructed ÷ true energy
# between ENERGY_FROM_HZ and the top of HIGH_BAND_HZ (or 0.95 x Nyquist).
HIGH_BAND_MIN_FS = 250.0
HIGH_BAND_HZ = (40.0, 150.0)
ENERGY_FROM_HZ = 50.0
# A perfect copy has infinite SNR; capping keeps means finite (1e-5 of the signal's RMS).
SNR_CAP_DB = 100.0
QRS_HALF_WINDOW_S = 0.06  # QRS peak-to-peak is taken within ±60 ms of each R peak
DEFAULT_BOOTSTRAP = 1000


def signal_metrics(
    truth: np.ndarray, recon: np.ndarray, fs: float, r_peaks: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """Per-lead metrics of ``recon`` against ``truth`` (both ``[leads, samples]`` in mV).

    - ``pearson_r``: correlation (NaN when either lead is flat).
    - ``mae_mv``, ``rmse_mv``: absolute and root-mean-square error in mV.
    - ``prd_pct``: 100·‖e‖/‖t − mean(t)‖, the percentage RMS difference normalised to the truth's
      variation (PRDN, so a baseline offset cannot flatter it); ``snr_db`` = −20·log10(PRD/100),
      capped at :data:`SNR_CAP_DB`; ``r2``: 1 − SSE/SST (can be negative).
    - ``amp_ratio``: reconstructed ÷ true QRS peak-to-peak amplitude, medians over the beats at
      ``r_peaks`` (whole-signal peak-to-peak when no beats are given); < 1 means the model
      shrinks the QRS towards the population mean.
    - ``high_band_r``, ``high_energy_ratio`` (:func:`high_band_metrics`; NaN below 250 Hz).

    Returns one float64 array of length ``leads`` per name in :data:`SIGNAL_METRICS`.
    """
    t = np.atleast_2d(np.asarray(truth, dtype=np.float64))
    y = np.atleast_2d(np.asarray(recon, dtype=np.float64))
    if t.shape != y.shape:
        raise ValueError(f"truth {t.shape} and reconstruction {y.shape} differ in shape")
    err = y - t
    sse = np.sum(err**2, axis=1)
    sst = np.sum((t - t.mean(axis=1, keepdims=True)) ** 2, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        prd = 100.0 * np.sqrt(sse / sst)
        snr = np.minimum(-20.0 * np.log10(prd / 100.0), SNR_CAP_DB)
        r2 = 1.0 - sse / sst
    for values in (prd, snr, r2):
        values[sst <= 0] = np.nan
    return {
        "pearson_r": pearson_rows(t, y),
        "mae_mv": np.mean(np.abs(err), axis=1),
        "rmse_mv": np.sqrt(sse / t.shape[1]),
        "snr_db": snr,
        "prd_pct": prd,
        "r2": r2,
        "amp_ratio": amplitude_ratio(t, y, fs, r_peaks),
        **high_band_metrics(t, y, fs),
    }


def pearson_rows(truth: np.ndarray, recon: np.ndarray) -> np.ndarray:
    """Pearson r of each row of ``recon`` with the same row of ``truth`` (``[leads, samples]``),
    in [-1, 1]; NaN where either row is flat."""
    tc = truth - truth.mean(axis=1, keepdims=True)
    yc = recon - recon.mean(axis=1, keepdims=True)
    sst, syy = np.sum(tc**2, axis=1), np.sum(yc**2, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.sum(tc * yc, axis=1) / np.sqrt(sst * syy)
    r[(sst <= 0) | (syy <= 0)] = np.nan
    return np.clip(r, -1.0, 1.0)


def high_band_metrics(truth: np.ndarray, recon: np.ndarray, fs: float) -> dict[str, np.ndarray]:
    """Per lead: ``high_band_r``, the Pearson r of the 40-150 Hz band (zero-phase Butterworth,
    order 4, the top at 0.95 x Nyquist when lower), and ``high_energy_ratio``, reconstructed ÷
    true energy between 50 Hz and that top (the same filters). NaN for records below 250 Hz and
    where the true band is empty."""
    from ecgfill.dsp import bandpass

    t, y = np.atleast_2d(truth), np.atleast_2d(recon)
    nan = np.full(t.shape[0], np.nan)
    if fs < HIGH_BAND_MIN_FS or t.shape[1] < 2:
        return {"high_band_r": nan, "high_energy_ratio": nan.copy()}
    top = min(HIGH_BAND_HZ[1], 0.95 * fs / 2)
    tb = bandpass(t, fs, HIGH_BAND_HZ[0], top).astype(np.float64)
    yb = bandpass(y, fs, HIGH_BAND_HZ[0], top).astype(np.float64)
    # energy through the same zero-phase filters (an FFT of the raw signal would leak the
    # low band's end mismatch into every bin)
    e_true = (bandpass(t, fs, ENERGY_FROM_HZ, top).astype(np.float64) ** 2).sum(axis=1)
    e_recon = (bandpass(y, fs, ENERGY_FROM_HZ, top).astype(np.float64) ** 2).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = e_recon / e_true
    ratio[~(e_true > 0)] = np.nan
    return {"high_band_r": pearson_rows(tb, yb), "high_energy_ratio": ratio}


def amplitude_ratio(
    truth: np.ndarray, recon: np.ndarray, fs: float, r_peaks: np.ndarray | None = None
) -> np.ndarray:
    """Reconstructed ÷ true QRS peak-to-peak per lead (median over beats); NaN for flat truth."""
    t, y = np.atleast_2d(truth), np.atleast_2d(recon)
    n = t.shape[1]
    peaks = np.asarray(r_peaks if r_peaks is not None else [], dtype=np.int64)
    half = max(1, round(QRS_HALF_WINDOW_S * fs))
    peaks = peaks[(peaks - half >= 0) & (peaks + half < n)]
    if peaks.size:
        idx = peaks[:, None] + np.arange(-half, half + 1)[None, :]  # [beats, window]
        ptp_t = np.median(np.ptp(t[:, idx], axis=2), axis=1)
        ptp_y = np.median(np.ptp(y[:, idx], axis=2), axis=1)
    else:
        ptp_t, ptp_y = np.ptp(t, axis=1), np.ptp(y, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = ptp_y / ptp_t
    ratio[ptp_t <= 0] = np.nan
    return ratio


def bootstrap_means(values: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Means of ``n_boot`` resamples (with replacement) of ``values`` (1-D, finite)."""
    n = values.size
    out = np.empty(n_boot)
    chunk = max(1, 2_000_000 // max(n, 1))  # bound the index matrix to ~16 MB
    for start in range(0, n_boot, chunk):
        stop = min(n_boot, start + chunk)
        out[start:stop] = values[rng.integers(0, n, size=(stop - start, n))].mean(axis=1)
    return out


def summarize(
    values: np.ndarray | list[float], n_boot: int = DEFAULT_BOOTSTRAP, seed: int = 0
) -> dict[str, Any]:
    """``{"mean", "median", "ci95": [lo, hi], "n"}`` over the finite values (NaN is skipped).

    ``ci95`` is the 2.5/97.5 percentile interval of ``n_boot`` bootstrap means drawn with
    ``seed`` (deterministic); None when fewer than two values or ``n_boot`` is 0. Empty input gives
    None for every statistic.
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[np.isfinite(v)]
    if v.size == 0:
        return {"mean": None, "median": None, "ci95": None, "n": 0}
    ci = None
    if v.size > 1 and n_boot > 0:
        boots = bootstrap_means(v, n_boot, np.random.default_rng(seed))
        lo, hi = np.percentile(boots, [2.5, 97.5])
        ci = [float(lo), float(hi)]
    return {"mean": float(v.mean()), "median": float(np.median(v)), "ci95": ci, "n": int(v.size)}


def cohens_d_paired(diff: np.ndarray) -> float:
    """Cohen's d for paired samples (d_z): mean difference ÷ standard deviation of differences."""
    d = np.asarray(diff, dtype=np.float64)
    d = d[np.isfinite(d)]
    if d.size < 2:
        return float("nan")
    sd = float(np.std(d, ddof=1))
    if sd == 0.0:
        return 0.0 if float(d.mean()) == 0.0 else float(np.sign(d.mean()) * np.inf)
    return float(d.mean() / sd)


def wilcoxon_p(diff: np.ndarray) -> float:
    """Two-sided Wilcoxon signed-rank p-value of paired differences; NaN when undefined."""
    from scipy.stats import wilcoxon

    d = np.asarray(diff, dtype=np.float64)
    d = d[np.isfinite(d)]
    if d.size == 0 or not np.any(d != 0):
        return float("nan")
    return float(wilcoxon(d).pvalue)


def paired_comparison(
    a: np.ndarray, b: np.ndarray, n_boot: int = DEFAULT_BOOTSTRAP, seed: int = 0
) -> dict[str, Any]:
    """Paired differences ``a - b`` over records where both are finite.

    Returns ``{"mean_diff", "median_diff", "ci95", "wilcoxon_p", "cohens_d", "n"}`` (CI as in
    :func:`summarize`).
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    both = np.isfinite(a) & np.isfinite(b)
    diff = a[both] - b[both]
    stats = summarize(diff, n_boot, seed)
    return {
        "mean_diff": stats["mean"],
        "median_diff": stats["median"],
        "ci95": stats["ci95"],
        "wilcoxon_p": wilcoxon_p(diff),
        "cohens_d": cohens_d_paired(diff),
        "n": stats["n"],
    }


def json_safe(value: Any) -> Any:
    """``value`` with NaN/inf as None and numpy scalars as Python numbers (for strict JSON)."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    return value
