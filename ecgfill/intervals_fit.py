"""Fitting the interval calibration of :mod:`ecgfill.intervals` on a dataset split, and the
honest check on records it never saw (``scripts/calibrate_intervals.py`` is the command).

The split's records are divided by patient into two halves (a stable permutation of the
patient ids): the calibration is fitted on the first half, coverage, widths and the expected-r
Spearman correlation are measured on the second (patient-disjoint). A dedicated model is
calibrated for its own lead set (also its fallback); an any-subset model for each given lead
set, with a fallback per lead pooled over them. The model is chosen, bound and completed
exactly as ``ecgfill reconstruct`` does.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from ecgfill.dsp import apply_filters
from ecgfill.evaluate.coverage import (
    CoverageTally,
    complete_dataset,
    format_report,
    model_scales,
    qrs_mask,
)
from ecgfill.intervals import (
    BAND,
    FEATURES,
    FORMAT,
    LEVELS,
    PARTNER,
    PARTNER_FEATURE,
    R_FEATURES,
    PlanCalibration,
    fit_expected_r,
    fit_scale,
    r_features,
    score_quantiles,
    uncertain_leads,
)
from ecgfill.io.atomic import write_text_atomic
from ecgfill.leads import STANDARD_LEADS, LeadPlan
from ecgfill.reconstruct import ReconstructSettings, choose_model, get_model
from ecgfill.train.data import open_dataset

ANY_SETS = ("I,II,V4", "II,V1,V5", "I,II,V3", "I", "II", "I,II", "II,V5", "I,II,V1", "III",
            "V1,V2,V3,V4,V5,V6", "II,V2", "V2")
REPORT_LEVELS = (0.8, 0.9, 0.95)
FIT_SAMPLES = 200_000


def halves(ds: Any, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Boolean masks over ``idx``: calibration and held-out halves, disjoint by patient."""
    patients = np.array([ds.manifest[i].get("patient_id") or str(i) for i in idx])
    unique = np.unique(patients)
    order = np.random.default_rng(20).permutation(unique.size)
    first = set(unique[order[: unique.size // 2]])
    calib = np.array([p in first for p in patients])
    return calib, ~calib


def record_r(truth: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Pearson r per record and lead ``[N, L]``."""
    t = truth - truth.mean(-1, keepdims=True)
    y = pred - pred.mean(-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (t * y).sum(-1) / np.sqrt((t ** 2).sum(-1) * (y ** 2).sum(-1))


class SetRun:
    """One lead set of one model: predictions on the split, the fit on the first half."""

    def __init__(self, model, plan: LeadPlan, truth: np.ndarray, calib: np.ndarray) -> None:
        self.model, self.plan = model, plan
        self.leads = list(uncertain_leads(plan))
        self.rows = [STANDARD_LEADS.index(n) for n in self.leads]
        self.out12 = complete_dataset(model, plan, truth)
        self.truth = truth
        self.calib = calib
        self.r = record_r(truth[:, self.rows].astype(np.float64), self.out12[:, self.rows])
        self.scale = self.cal = None  # set once the calibration is fitted

    def sample(self, rng: np.random.Generator) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Per lead a random subsample of (features [n, F], |residual| [n]) from the first half."""
        from ecgfill.intervals import features

        idx = np.flatnonzero(self.calib)
        inputs = [STANDARD_LEADS.index(n) for n in self.plan.inputs]
        x = apply_filters(self.truth[idx][:, inputs], self.model.fs, self.model.input_filters)
        out = {}
        for lead, row in zip(self.leads, self.rows, strict=True):
            feats = features(self.out12[idx], x, self.model.fs, [lead])[:, 0]  # [n, F, T]
            f = feats.transpose(0, 2, 1).reshape(-1, feats.shape[1])
            res = np.abs(self.truth[idx, row] - self.out12[idx, row]).reshape(-1)
            pick = rng.choice(res.size, size=min(FIT_SAMPLES, res.size), replace=False)
            out[lead] = (f[pick], res[pick])
        return out


def fit_table(samples: dict[str, list[tuple[np.ndarray, np.ndarray]]],
              r_by_lead: dict[str, float]) -> dict[str, dict]:
    """Per lead: scale coefficients, score quantiles and calibration r from pooled samples."""
    table = {}
    for lead, parts in samples.items():
        f = np.concatenate([p[0] for p in parts])
        res = np.concatenate([p[1] for p in parts])
        coef = fit_scale(f, res)
        scores = res / np.exp(coef[0] + f @ coef[1:])
        table[lead] = {"coef": [float(c) for c in coef], "quantiles": score_quantiles(scores),
                       "r": round(float(r_by_lead[lead]), 4)}
    return table


def calibrate(name: str, truth: np.ndarray, calib: np.ndarray, test: np.ndarray,
              sets: list[str], qrs: np.ndarray) -> dict:
    settings = ReconstructSettings(model=name)
    runner = get_model(name, settings)
    if runner.input_leads == "any":
        keys = [LeadPlan.of(s.split(",")).key for s in sets]
    else:
        keys = [LeadPlan.of(runner.input_leads).key]
    rng = np.random.default_rng(0)
    block: dict = {"format": FORMAT, "band": BAND, "levels": list(LEVELS),
                   "features": list(FEATURES), "lead_sets": {}}
    runs, pooled, pooled_r = [], {}, {}
    for key in keys:
        began = time.monotonic()
        model, _ = choose_model(LeadPlan.of(key.split(",")).measured, settings)
        run = SetRun(model, LeadPlan.of(key.split(",")), truth, calib)
        samples = run.sample(rng)
        r_lead = {n: float(np.nanmean(run.r[calib, j])) for j, n in enumerate(run.leads)}
        block["lead_sets"][key] = fit_table({n: [s] for n, s in samples.items()}, r_lead)
        for n, s in samples.items():
            pooled.setdefault(n, []).append((s[0][: FIT_SAMPLES // len(keys) + 1],
                                             s[1][: FIT_SAMPLES // len(keys) + 1]))
            pooled_r.setdefault(n, []).append(r_lead[n])
        runs.append(run)
        print(f"{name} {key}: fitted ({time.monotonic() - began:.0f} s)", file=sys.stderr)
    if len(keys) == 1:
        block["fallback"] = block["lead_sets"][keys[0]]
    else:
        block["fallback"] = fit_table(pooled, {n: float(np.mean(v)) for n, v in pooled_r.items()})
    # expected r: regress on the first half (pooled over lead sets), Spearman on the second
    xs, rs, sets_of = [], [], []
    block["expected_r"] = {"coef": [0.0, 1.0] + [0.0] * (len(R_FEATURES) - 1),
                           "features": list(R_FEATURES)}
    card = {"name": name, "intervals": block}
    for run in runs:
        cal = PlanCalibration.of(card, run.plan)
        scale = model_scales(cal, run.out12, truth, run.plan, run.model)
        run.scale, run.cal = scale, cal
        std = run.out12[:, run.rows].std(-1)
        rms = np.sqrt((scale.astype(np.float64) ** 2).mean(-1))
        lead_r = np.array([c.r for c in cal.leads.values()])
        x = apply_filters(truth[:, [STANDARD_LEADS.index(n) for n in run.plan.inputs]],
                          run.model.fs, run.model.input_filters)
        xs.append(r_features(np.broadcast_to(lead_r, std.shape), std, rms,
                             x.std(-1).mean(-1)[:, None]))
        rs.append(run.r)
        sets_of.append(run)
    x_cal = np.concatenate([x[run.calib].reshape(-1, len(R_FEATURES))
                            for x, run in zip(xs, runs, strict=True)])
    r_cal = np.concatenate([r[run.calib].reshape(-1) for r, run in zip(rs, runs, strict=True)])
    block["expected_r"]["coef"] = fit_expected_r(x_cal, r_cal)
    fitted = {"block": block, "runs": runs, "xs": xs, "rs": rs, "card": card}
    partner = _partner(name)
    if partner is not None:  # the agreement with the linear any-subset baseline
        xs_p = []
        for x, run in zip(xs, runs, strict=True):
            bound = partner.bind(run.plan.measured)
            other = complete_dataset(bound, run.plan, truth)
            agree = record_r(run.out12[:, run.rows].astype(np.float64), other[:, run.rows])
            xs_p.append(np.concatenate([x, np.arctanh(np.clip(agree, -0.999, 0.999))[..., None]],
                                       axis=-1))
        x_cal = np.concatenate([x[run.calib].reshape(-1, len(R_FEATURES) + 1)
                                for x, run in zip(xs_p, runs, strict=True)])
        block["expected_r"].update(partner=PARTNER, coef_partner=fit_expected_r(x_cal, r_cal),
                                   features_partner=[*R_FEATURES, PARTNER_FEATURE])
        fitted["xs_partner"] = xs_p
    return fitted


def _partner(name: str) -> Any | None:
    """The installed partner (linear any-subset baseline) for ``name``, None for itself."""
    from ecgfill.errors import ModelError

    if name == PARTNER:
        return None
    try:
        return get_model(PARTNER, ReconstructSettings(model=PARTNER))
    except ModelError:
        return None


def held_out(name: str, fitted: dict, test: np.ndarray, qrs: np.ndarray) -> dict:
    """Coverage, widths and the expected-r Spearman on the held-out half."""
    from scipy.stats import spearmanr

    out: dict = {"lead_sets": {}}
    fit = fitted["block"]["expected_r"]
    with_partner = "xs_partner" in fitted
    coef = np.asarray(fit["coef_partner"] if with_partner else fit["coef"])
    xs = fitted["xs_partner"] if with_partner else fitted["xs"]
    out["expected_r_partner"] = fit.get("partner") if with_partner else None
    pred_all, true_all, within, plain_all = [], [], [], []
    plain_coef = np.asarray(fit["coef"])
    for run, x, r, x0 in zip(fitted["runs"], xs, fitted["rs"], fitted["xs"], strict=True):
        tally = CoverageTally(run.leads, REPORT_LEVELS)
        tally.add(run.truth[test][:, run.rows], run.out12[test][:, run.rows], run.scale[test],
                  [run.cal.multipliers(v) for v in REPORT_LEVELS], qrs[test])
        report = tally.report()
        pred = np.tanh(coef[0] + x[test] @ coef[1:])
        keep = np.isfinite(r[test])
        rho = spearmanr(pred[keep], r[test][keep]).statistic
        per_lead = [spearmanr(pred[:, j][keep[:, j]], r[test][:, j][keep[:, j]]).statistic
                    for j in range(len(run.leads))]
        report["expected_r_spearman"] = round(float(rho), 3)
        report["expected_r_spearman_within_lead"] = round(float(np.nanmean(per_lead)), 3)
        out["lead_sets"][run.plan.key] = report
        pred_all.append(pred[keep])
        plain_all.append(np.tanh(plain_coef[0] + x0[test] @ plain_coef[1:])[keep])
        true_all.append(r[test][keep])
        within.extend(per_lead)
        print(format_report(report, f"{name} {run.plan.key}: held-out half of the validation "
                            "fold"), file=sys.stderr)
        print(f"  expected_r Spearman {rho:.3f} (within lead mean "
              f"{np.nanmean(per_lead):.3f})", file=sys.stderr)
    out["expected_r_spearman"] = round(float(spearmanr(np.concatenate(pred_all),
                                                       np.concatenate(true_all)).statistic), 3)
    out["expected_r_spearman_within_lead"] = round(float(np.nanmean(within)), 3)
    out["expected_r_spearman_without_partner"] = round(float(spearmanr(
        np.concatenate(plain_all), np.concatenate(true_all)).statistic), 3)
    return out


def calibrate_dataset(dataset: str | Path, names: list[str], split: str = "val",
                      sets: list[str] | None = None, limit: int | None = None,
                      write_cards: bool = True, command: str = "") -> dict[str, Any]:
    """Calibrate ``names`` on ``split`` of ``dataset``; write each calibration into the model's
    installed card (``write_cards``); returns the held-out report per model."""
    from ecgfill.models import installed_cards

    ds = open_dataset(dataset)
    idx = ds.indices(split)
    idx = idx[ds.n_valid[idx] == ds.n_samples][:limit]
    truth = np.asarray(ds.signals[idx], dtype=np.float32)
    calib, test = halves(ds, idx)
    qrs = qrs_mask(truth, ds.fs)
    cards = {str(c["name"]): Path(c["card_path"]) for c in installed_cards()}
    results = {}
    for name in names:
        fitted = calibrate(name, truth, calib, test, list(sets or ANY_SETS), qrs)
        report = held_out(name, fitted, test, qrs)
        block = fitted["block"]
        block["protocol"] = (
            f"split-conformal on the {split} split of {Path(dataset).name}: fitted on "
            f"{int(calib.sum())} records of one half of its patients, checked on the other "
            f"{int(test.sum())} (patient-disjoint); references and outputs {BAND}"
            + (f"; command: {command}" if command else ""))
        block["validation"] = {
            "expected_r_spearman": report["expected_r_spearman"],
            "expected_r_spearman_within_lead": report["expected_r_spearman_within_lead"],
            "expected_r_spearman_without_partner":
                report["expected_r_spearman_without_partner"],
            "expected_r_partner": report["expected_r_partner"],
            "coverage": {key: {lv: {k: v for k, v in b.items() if k != "per_lead"}
                               for lv, b in rep["levels"].items()}
                         for key, rep in report["lead_sets"].items()}}
        results[name] = report
        if write_cards:
            path = cards[name]
            card = json.loads(path.read_text())
            card["intervals"] = block
            write_text_atomic(path, json.dumps(card, indent=2, allow_nan=False) + "\n")
            print(f"{name}: calibration written to {path}", file=sys.stderr)
    return results
