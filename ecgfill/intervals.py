"""Calibrated prediction intervals and an expected accuracy for reconstructed leads.

Model-agnostic normalised split-conformal intervals: for every lead a model leaves uncertain
(its predicted leads and the limb leads computed from them), an adaptive *scale* is built from
signals available at inference — the smoothed absolute slope of the reconstructed lead itself
and of the measured inputs, over a short (QRS-sized) and a longer window — as a non-negative
linear combination fitted to ``|residual|`` on held-out records. The half-width at level ``p`` is
the ``p``-quantile of ``|residual| / scale`` on the calibration records times the scale, so the
band is narrow on the baseline and wide over QRS complexes, and its coverage is the level on
exchangeable data. Features are computed at the model's rate on 0.5 Hz high-passed inputs (the
band the models reconstruct): the intervals bound the 0.5 Hz high-passed truth.

``expected_r`` per lead and record is a small regression of Fisher-z(r) on inference-time
features (the lead's calibration r for that lead set, the ratio of the reconstructed lead's
amplitude to its expected error, the amplitudes, and, where the card names a *partner* (the
linear any-subset baseline ``linear-any``) that is installed, the agreement between the model's
lead and the partner's), fitted on the calibration records.

The calibration lives in the model card under ``intervals`` (written by
``scripts/calibrate_intervals.py``): per lead set (``LeadPlan.key``) and lead the scale
coefficients, the score quantiles on a grid of levels and the calibration r; a ``fallback``
per lead (the model's own lead set for a dedicated model, all calibrated sets pooled for an
any-subset model) serves lead sets that were not calibrated.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ecgfill.errors import ModelError
from ecgfill.leads import STANDARD_LEADS, LeadPlan, limb_coefficients

FORMAT = 1
WINDOWS_S = (0.04, 0.1, 0.3, 1.0)  # smoothing of the absolute slope, QRS-sized to beat-sized
EPS = 1e-3
FEATURES = (*(f"log slope of the lead over {w:g} s" for w in WINDOWS_S),
            *(f"log slope of the inputs over {w:g} s" for w in WINDOWS_S),
            "log |lead| over 0.1 s", "log std of the lead (chunk)", "log std of the inputs (chunk)")
ALPHAS = (0.25, 0.5, 0.75, 1.0)  # scale exponents tried (the one giving the narrowest band)
LEVELS: tuple[float, ...] = (
    *(round(k / 100, 2) for k in range(1, 100)), 0.995, 0.999)
TUNE_LEVEL = 0.9
BAND = "0.5 Hz high-passed (the band the models reconstruct)"


def uncertain_leads(plan: LeadPlan) -> tuple[str, ...]:
    """The standard leads the measurements do not determine exactly (predicted leads and limb
    leads computed from predicted ones), in standard order."""
    basis = plan.lift @ plan.constraints()  # projector onto the measured row space
    return tuple(n for n in STANDARD_LEADS
                 if np.abs(limb_coefficients(n) @ basis - limb_coefficients(n)).max() > 1e-9)


def slope_envelope(x: np.ndarray, fs: float, seconds: float) -> np.ndarray:
    """Moving average over ``seconds`` of ``|dx/dt|`` (mV/s) along the last axis."""
    from scipy.ndimage import uniform_filter1d

    slope = np.abs(np.gradient(np.asarray(x, dtype=np.float32), axis=-1)) * np.float32(fs)
    size = max(1, int(round(seconds * fs)))
    return uniform_filter1d(slope, size, axis=-1, mode="nearest")


def features(out12: np.ndarray, inputs: np.ndarray, fs: float,
             leads: Sequence[str]) -> np.ndarray:
    """``[..., len(leads), len(FEATURES), T]`` float32 log features for ``leads`` of ``out12``
    ``[..., 12, T]`` (the completed record or chunk) and the model's ``inputs`` ``[..., K, T]``,
    at the model's rate ``fs``; non-finite samples count as 0."""
    from scipy.ndimage import uniform_filter1d

    out12 = np.nan_to_num(np.asarray(out12, dtype=np.float32))
    inputs = np.nan_to_num(np.asarray(inputs, dtype=np.float32))
    rows = out12[..., [STANDARD_LEADS.index(n) for n in leads], :]
    parts = [slope_envelope(rows, fs, w) for w in WINDOWS_S]
    parts += [np.broadcast_to(slope_envelope(inputs, fs, w).mean(axis=-2, keepdims=True),
                              rows.shape) for w in WINDOWS_S]
    parts.append(uniform_filter1d(np.abs(rows), max(1, int(round(0.1 * fs))), axis=-1,
                                  mode="nearest"))
    parts.append(np.broadcast_to(rows.std(axis=-1, keepdims=True), rows.shape))
    parts.append(np.broadcast_to(inputs.std(axis=-1).mean(axis=-1)[..., None, None],
                                 rows.shape))
    return np.log(np.stack(parts, axis=-2) + np.float32(EPS))


def scale_from(feats: np.ndarray, coef: np.ndarray) -> np.ndarray:
    """``[..., T]`` scale ``exp(c0 + sum c_f f)`` from ``[..., F, T]`` log features."""
    coef = np.asarray(coef, dtype=np.float32)
    return np.exp(coef[0] + np.einsum("...ft,f->...t", feats, coef[1:]))


# --------------------------------------------------------------------------------------------
# Fitting (used by scripts/calibrate_intervals.py)


def fit_scale(feats: np.ndarray, abs_residual: np.ndarray) -> np.ndarray:
    """Scale coefficients from log features ``[n, F]`` and ``|residual|`` ``[n]``: least
    squares of ``log |residual|`` (the log-linear conditional scale), then raised to the
    exponent of :data:`ALPHAS` whose conformal band at :data:`TUNE_LEVEL` is narrowest on
    these samples (a compressed scale: records with large errors do not take all the width)."""
    design = np.column_stack([np.ones(len(feats)), feats]).astype(np.float64)
    target = np.log(abs_residual.astype(np.float64) + EPS)
    coef, *_ = np.linalg.lstsq(design, target, rcond=None)
    log_scale = design @ coef
    best, best_width = 1.0, np.inf
    for alpha in ALPHAS:
        scale = np.exp(alpha * log_scale)
        width = np.quantile(abs_residual / scale, TUNE_LEVEL) * scale.mean()
        if width < best_width:
            best, best_width = alpha, width
    return coef * best


def score_quantiles(scores: np.ndarray) -> list[float]:
    """Split-conformal quantiles of ``scores`` at :data:`LEVELS` (finite-sample rank
    ``ceil((n + 1) p)``)."""
    s = np.sort(scores[np.isfinite(scores)])
    n = s.size
    ranks = np.minimum(np.ceil((n + 1) * np.asarray(LEVELS)).astype(np.int64), n) - 1
    return [float(v) for v in s[ranks]]


def fit_expected_r(x: np.ndarray, r: np.ndarray) -> list[float]:
    """Least squares of Fisher-z(r) on ``x`` ``[n, k]`` (with a constant)."""
    keep = np.isfinite(r) & np.isfinite(x).all(axis=1)
    design = np.column_stack([np.ones(keep.sum()), x[keep]])
    z = np.arctanh(np.clip(r[keep], -0.999, 0.999))
    coef, *_ = np.linalg.lstsq(design, z, rcond=None)
    return [float(c) for c in coef]


PARTNER = "linear-any"  # the linear any-subset baseline: agreement with it predicts accuracy
PARTNER_FEATURE = "atanh(r of the lead against the partner's reconstruction of it)"
R_FEATURES = ("atanh(calibration r of the lead for the lead set)",
              "log(std of the reconstructed lead / RMS of its interval scale)",
              "log std of the reconstructed lead", "log mean std of the inputs")


def r_features(lead_r: np.ndarray, pred_std: np.ndarray, scale_rms: np.ndarray,
               input_std: np.ndarray) -> np.ndarray:
    """``[..., len(R_FEATURES)]`` expected-r regressors (per record and lead; ``input_std``
    per record, broadcast over the leads)."""
    pred = np.log(np.maximum(pred_std, 1e-6))
    scale = np.log(np.maximum(scale_rms, 1e-6))
    inputs = np.broadcast_to(np.log(np.maximum(input_std, 1e-6)), pred.shape)
    return np.stack([np.arctanh(np.clip(lead_r, -0.999, 0.999)), pred - scale, pred, inputs],
                    axis=-1)


# --------------------------------------------------------------------------------------------
# Inference


@dataclass(frozen=True)
class LeadCalibration:
    coef: np.ndarray
    quantiles: np.ndarray
    r: float

    @classmethod
    def from_dict(cls, entry: Mapping[str, Any]) -> LeadCalibration:
        return cls(np.asarray(entry["coef"], dtype=np.float32),
                   np.asarray(entry["quantiles"], dtype=np.float64), float(entry["r"]))

    def quantile(self, level: float) -> float:
        """Score quantile at ``level`` (interpolated between grid levels, held at the ends)."""
        return float(np.interp(level, LEVELS, self.quantiles))


def no_calibration(name: str) -> str:
    return (f"model {name} has no interval calibration in its card (run "
            f"scripts/calibrate_intervals.py {name})")


# (id of a card's intervals block, plan key) -> (that block, its PlanCalibration)
_PLAN_CALIBRATIONS: dict[tuple[int, str], tuple[Any, Any]] = {}


@dataclass(frozen=True)
class PlanCalibration:
    """A model's calibration for one lead plan: per uncertain lead, and the expected-r fit."""

    model: str
    plan: LeadPlan
    leads: dict[str, LeadCalibration]
    r_coef: tuple[float, ...]
    partner: str | None = None
    r_coef_partner: tuple[float, ...] | None = None

    @classmethod
    def of(cls, card: Mapping[str, Any], plan: LeadPlan) -> PlanCalibration:
        """The calibration of ``card``'s model for ``plan``; ModelError naming the model when
        its card has none (or none for a lead the plan leaves uncertain)."""
        name = str(card.get("name"))
        block = card.get("intervals")
        if not isinstance(block, Mapping) or block.get("format") != FORMAT:
            raise ModelError(no_calibration(name))
        cached = _PLAN_CALIBRATIONS.get((id(block), plan.key))
        if cached is not None and cached[0] is block:  # the same card's block: every record asks
            return cached[1]
        table = dict(block.get("fallback") or {})
        table.update((block.get("lead_sets") or {}).get(plan.key) or {})
        wanted = uncertain_leads(plan)
        lacking = [n for n in wanted if n not in table]
        if lacking:
            raise ModelError(f"model {name}: no interval calibration for lead(s) "
                             f"{','.join(lacking)} with leads {plan.key}")
        fit = block["expected_r"]
        made = cls(name, plan, {n: LeadCalibration.from_dict(table[n]) for n in wanted},
                   tuple(fit["coef"]), fit.get("partner"),
                   tuple(fit["coef_partner"]) if fit.get("coef_partner") else None)
        if len(_PLAN_CALIBRATIONS) > 64:
            _PLAN_CALIBRATIONS.clear()
        _PLAN_CALIBRATIONS[(id(block), plan.key)] = (block, made)
        return made

    def scales(self, out12: np.ndarray, inputs: np.ndarray, fs: float) -> np.ndarray:
        """``[..., n_uncertain, T]`` scales at the model's rate ``fs``."""
        names = list(self.leads)
        feats = features(out12, inputs, fs, names)
        return np.stack([scale_from(feats[..., k, :, :], self.leads[n].coef)
                         for k, n in enumerate(names)], axis=-2)

    def multipliers(self, level: float) -> np.ndarray:
        return np.array([c.quantile(level) for c in self.leads.values()], dtype=np.float32)

    def expected_r(self, pred_std: np.ndarray, scale_rms: np.ndarray,
                   input_std: np.ndarray, agree: np.ndarray | None = None) -> np.ndarray:
        """Predicted r ``[..., n_uncertain]`` from the leads' std and RMS scale, the inputs'
        mean std (``[..., 1]``) and, when given (and fitted), the r of each lead against the
        partner's reconstruction."""
        lead_r = np.array([c.r for c in self.leads.values()])
        x = r_features(np.broadcast_to(lead_r, pred_std.shape), pred_std, scale_rms, input_std)
        coef = np.asarray(self.r_coef)
        if agree is not None and self.r_coef_partner is not None:
            x = np.concatenate([x, np.arctanh(np.clip(agree, -0.999, 0.999))[..., None]], -1)
            coef = np.asarray(self.r_coef_partner)
        return np.tanh(coef[0] + x @ coef[1:])


def at_rate(x: np.ndarray, fs: float, fs_out: float) -> np.ndarray:
    """``x`` ``[L, T]`` taken to ``fs_out`` cheaply for the features: a moving average over one
    output sample, then linear interpolation (the features are smooth envelopes; the model's
    own polyphase resampling is not needed for them)."""
    from scipy.ndimage import uniform_filter1d

    if abs(fs - fs_out) < 1e-9:
        return x
    width = int(round(fs / fs_out))
    smooth = uniform_filter1d(x, width, axis=-1, mode="nearest") if width > 1 else x
    n_out = max(1, int(round(x.shape[-1] * fs_out / fs)))
    if abs(fs - width * fs_out) < 1e-9 and (n_out - 1) * width < x.shape[-1]:
        # a whole ratio: the output samples fall on input samples, so interpolation is slicing
        return np.ascontiguousarray(smooth[:, ::width][:, :n_out], dtype=np.float32)
    t_in = np.arange(x.shape[-1]) / fs
    t_out = np.arange(n_out) / fs_out
    return np.stack([np.interp(t_out, t_in, row) for row in smooth]).astype(np.float32)


def model_rate_signals(record: Any, plan: LeadPlan, model: Any,
                       leads: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """``[12, T]`` at the model's rate holding ``leads`` of the completed ``record`` (the other
    rows 0), and the model's inputs at its rate through its input filters (as it saw them)."""
    from ecgfill.dsp import apply_filters

    full = record.in_standard_order()
    rows = sorted({STANDARD_LEADS.index(n) for n in (*leads, *plan.inputs)})
    part = at_rate(np.nan_to_num(full.signal[rows]), record.fs, model.fs)
    sig = np.zeros((len(STANDARD_LEADS), part.shape[-1]), dtype=np.float32)
    sig[rows] = part
    inputs = sig[[STANDARD_LEADS.index(n) for n in plan.inputs]]
    return sig, apply_filters(inputs, model.fs, getattr(model, "input_filters", None))


class RecordIntervals:
    """Half-widths of one record's uncertain leads, chunk by chunk, and the per-record
    summaries for the JSON (``expected_r``, median width)."""

    def __init__(self, calibration: PlanCalibration, model: Any, level: float | None,
                 partner: Any | None = None) -> None:
        self.calibration = calibration
        self.model = model
        self.partner = partner  # the partner model bound to the plan, or None
        self.level = level
        self.names = list(calibration.leads)
        self.mult = calibration.multipliers(level) if level is not None else None
        k = len(self.names)
        self.sums = np.zeros((3, k))  # sum y, sum y^2, sum scale^2 (at the model rate)
        self.input_sums = np.zeros((2, len(calibration.plan.inputs)))  # sum x, sum x^2
        self.count = 0
        self.pair_sums = np.zeros((5, k))  # sum p, p^2, y*p, y, y^2 where both are finite
        self.widths: list[np.ndarray] = []

    def chunk(self, record: Any, keep: slice) -> np.ndarray | None:
        """``[12, T]`` half-widths at the record's rate (0 for exact leads; None without a
        level); updates the summaries over the ``keep`` part."""
        sig, inputs = model_rate_signals(record, self.calibration.plan, self.model, self.names)
        scale = self.calibration.scales(sig, inputs, self.model.fs)
        ratio = self.model.fs / record.fs
        lo, hi = int(round(keep.start * ratio)), int(round(keep.stop * ratio))
        rows = sig[[STANDARD_LEADS.index(n) for n in self.names], lo:hi].astype(np.float64)
        self.sums += [rows.sum(1), (rows ** 2).sum(1), (scale[:, lo:hi] ** 2).sum(1)]
        x = inputs[:, lo:hi].astype(np.float64)
        self.input_sums += [x.sum(1), (x ** 2).sum(1)]
        self.count += rows.shape[1]
        if self.partner is not None:
            p = partner_rows(self.partner, self.calibration.plan, inputs, self.names)[:, lo:hi]
            self.pair_sums += [p.sum(1), (p ** 2).sum(1), (rows * p).sum(1), rows.sum(1),
                               (rows ** 2).sum(1)]
        if self.mult is None:
            return None
        half = scale * self.mult[:, None]
        if abs(record.fs - self.model.fs) > 1e-9:
            t_out = np.arange(record.n_samples) / record.fs
            t_in = np.arange(half.shape[1]) / self.model.fs
            half = np.stack([np.interp(t_out, t_in, h) for h in half])
        out = np.zeros((len(STANDARD_LEADS), record.n_samples), dtype=np.float32)
        out[[STANDARD_LEADS.index(n) for n in self.names]] = half
        self.widths.append(2 * half[:, keep][:, ::max(1, int(record.fs // 50))])
        return out

    def summary(self) -> dict[str, Any]:
        """``expected_r`` (lead -> r) and ``interval`` (level, band, lead -> median width mV)."""
        n = max(self.count, 1)
        mean = self.sums[0] / n
        std = np.sqrt(np.maximum(self.sums[1] / n - mean ** 2, 0.0))
        rms = np.sqrt(self.sums[2] / n)
        x_mean = self.input_sums[0] / n
        x_std = np.sqrt(np.maximum(self.input_sums[1] / n - x_mean ** 2, 0.0)).mean()
        agree = None
        if self.partner is not None:
            sp, spp, syp, sy, syy = self.pair_sums
            cov = syp / n - sp * sy / n ** 2
            with np.errstate(invalid="ignore", divide="ignore"):
                agree = cov / np.sqrt((spp / n - (sp / n) ** 2) * (syy / n - (sy / n) ** 2))
            agree = np.nan_to_num(agree)
        r = self.calibration.expected_r(std, rms, np.array([x_std]), agree)
        out: dict[str, Any] = {"expected_r": {n: round(float(v), 3)
                                              for n, v in zip(self.names, r, strict=True)}}
        if self.level is not None:
            widths = np.concatenate(self.widths, axis=1) if self.widths else np.zeros(
                (len(self.names), 0))
            out["interval"] = {"level": self.level, "band": BAND, "median_width_mv": {
                n: round(float(np.nanmedian(w)), 4) if w.size else None
                for n, w in zip(self.names, widths, strict=True)}}
        return out


def partner_rows(partner: Any, plan: LeadPlan, inputs: np.ndarray,
                 leads: Sequence[str]) -> np.ndarray:
    """``[len(leads), T]`` float64: the partner's completed reconstruction of ``leads`` from the
    model-rate, filtered measured ``inputs`` ``[len(plan.inputs), T]``."""
    from ecgfill.leads import expand_independent

    y = partner.predict(np.ascontiguousarray(inputs, dtype=np.float32)[None])[0]
    independent = plan.complete(inputs, dict(zip(partner.output_leads, y, strict=True)))
    return expand_independent(independent)[[STANDARD_LEADS.index(n) for n in leads]]


_PARTNERS: dict[tuple[str, str], Any] = {}


def load_partner(calibration: PlanCalibration, model: Any) -> Any | None:
    """The calibration's partner model bound to its plan (cached), or None: none named, none
    fitted, the model is its own partner, or the partner is not installed."""
    name = calibration.partner
    if not name or calibration.r_coef_partner is None or name == model.name:
        return None
    key = (name, calibration.plan.key)
    if key not in _PARTNERS:
        from ecgfill.models import load_model

        try:
            _PARTNERS[key] = load_model(name, threads=1).bind(calibration.plan.measured)
        except ModelError:
            _PARTNERS[key] = None
    return _PARTNERS[key]
