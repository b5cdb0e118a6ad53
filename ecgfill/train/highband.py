"""Fit the high-band model (:mod:`ecgfill.models.highband`) on a preprocessed 500 Hz dataset.

No gradient descent: the lagged covariance of the 8 independent leads' high band over the
training split is the whole model. The gate (:func:`ecgfill.models.highband.steep_gate`) is
chosen on the training split from a small grid; the validation split gives the card's figures
(the high band alone: Pearson r of the predicted against the true high band of each missing
lead, and predicted ÷ true energy, per record).
"""

from __future__ import annotations

import datetime
import json
import shlex
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ecgfill import __version__
from ecgfill.console import info
from ecgfill.errors import UsageError
from ecgfill.evaluate.metrics import pearson_rows
from ecgfill.io.atomic import write_text_atomic
from ecgfill.leads import INDEPENDENT_LEADS, STANDARD_LEADS, LeadPlan
from ecgfill.models.anyset import SHIPPED_SETS, lagged_covariance
from ecgfill.models.base import PTBXL_ATTRIBUTION, sha256_file
from ecgfill.models.highband import (
    GAIN_CAP,
    HIGH_BAND_FORMAT,
    TOP_HZ,
    HighBandModel,
    high_band,
    low_path_top_hz,
)
from ecgfill.train.data import open_dataset

LOW_FS = 100.0
LAG_SECONDS = 0.016  # ±16 ms: longer lags gained nothing on the training split (±8-80 ms)
RIDGE = 1e-3
GATE_GRID: tuple[tuple[float, float], ...] = tuple(
    (seconds, knee) for seconds in (0.05, 0.1) for knee in (1.0, 3.0, 10.0)
)
SCORED_SETS: tuple[tuple[str, ...], ...] = (*SHIPPED_SETS, ("II",), ("I", "II"), ("II", "V5"))


def _signals(ds: Any, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(records ``[n, 8, T]`` in mV, their high band) of a split, valid lengths only."""
    idx = ds.indices(split)
    idx = idx[ds.n_valid[idx] > 0]
    length = int(ds.n_valid[idx].min())
    rows = [STANDARD_LEADS.index(n) for n in INDEPENDENT_LEADS]
    x = np.asarray(ds.signals[idx][:, rows, :length], dtype=np.float64)
    return x, high_band(x, ds.fs, LOW_FS)


def _plans(x: np.ndarray, sets: Iterable[tuple[str, ...]]
           ) -> Iterator[tuple[str, LeadPlan, list[int], Iterator[np.ndarray]]]:
    """Per lead set: its name, plan, the rows of the leads it lacks, and each record's measured
    quantities (records ``x`` ``[n, 8, T]``)."""
    for leads in sets:
        plan = LeadPlan.of(leads)
        a = plan.constraints()
        missing = [i for i, name in enumerate(INDEPENDENT_LEADS) if name in plan.predicted]
        yield ",".join(leads), plan, missing, (a @ record for record in x)


def _score(model: HighBandModel, x: np.ndarray, band: np.ndarray,
           sets: Iterable[tuple[str, ...]]) -> dict[str, dict[str, float]]:
    """Per lead set: mean and median r and median energy ratio of the high band of the leads
    the set lacks, over records."""
    out = {}
    for key, plan, missing, measured in _plans(x, sets):
        rs, ratios = [], []
        for inputs, truth in zip(measured, band, strict=True):
            t = truth[missing]
            p = model.predict(inputs, model.fs, plan)[missing].astype(np.float64)
            r = pearson_rows(t, p)
            ok = np.isfinite(r)
            rs.extend(r[ok])
            ratios.extend(((p**2).sum(-1) / (t**2).sum(-1))[ok])
        out[key] = {"r_mean": float(np.mean(rs)), "r_median": float(np.median(rs)),
                    "energy_ratio_median": float(np.median(ratios)),
                    "energy_ratio_mean": float(np.mean(ratios)), "n": len(rs)}
    return out


def _gate_keep(model: HighBandModel, x: np.ndarray, sets: Iterable[tuple[str, ...]]) -> float:
    """The median over records and missing leads of ``sets`` of the factor that gives back the
    energy the gate takes from the ridge's prediction."""
    factors = []
    for _, plan, missing, measured in _plans(x, sets):
        for inputs in measured:
            y, gate = model.ungated(inputs, plan, missing)
            gated = ((y * gate) ** 2).sum(-1)
            factors.extend(np.sqrt((y**2).sum(-1) / gated)[gated > 0])
    return float(np.median(factors))


def fit_high_band(dataset_dir: str | Path, out_dir: str | Path, name: str = "highband-any",
                  argv: Sequence[str] | None = None, version: str | None = None
                  ) -> dict[str, Any]:
    """Fit, choose the gate, score on validation, write ``<name>.json`` + ``<name>.npz``."""
    began = time.monotonic()
    ds = open_dataset(dataset_dir)
    if ds.fs < 2 * TOP_HZ:
        raise UsageError(f"{dataset_dir}: sampled at {ds.fs:g} Hz; the high band needs at least "
                         f"{2 * TOP_HZ:g} Hz (preprocess the 500 Hz records with --fs 500)")
    x_train, band_train = _signals(ds, "train")
    lag = round(LAG_SECONDS * ds.fs)
    covariance = lagged_covariance([(band_train, np.ones(band_train.shape[::2], bool))], 2 * lag)
    info(f"high-band covariance of {len(x_train)} training records at {ds.fs:g} Hz: "
         f"{time.monotonic() - began:.1f} s")
    card: dict[str, Any] = {
        "format": HIGH_BAND_FORMAT, "format_version": 1, "name": name,
        "version": version or datetime.date.today().isoformat().replace("-", "."),
        "ecgfill_version": __version__, "fs": ds.fs, "low_fs": LOW_FS, "lag": lag,
        "ridge": RIDGE, "gain_cap": GAIN_CAP,
        "bandwidth_hz": [low_path_top_hz(LOW_FS), TOP_HZ],
        "input_leads": "any", "output_leads": list(INDEPENDENT_LEADS),
        "dataset": {"path": ds.path.name, "fingerprint": ds.fingerprint(),
                    "train_records": len(x_train)},
        "data_attribution": [PTBXL_ATTRIBUTION],
        "recipe": "python scripts/fit_high_band.py " + shlex.join(
            list(argv) if argv is not None else sys.argv[1:]),
    }
    cov = {"cov": np.asarray(covariance["cov"]), "mean": np.asarray(covariance["mean"]),
           "max_lag": 2 * lag}
    gate_scores = {}
    for seconds, knee in GATE_GRID:
        model = HighBandModel({**card, "gate": {"seconds": seconds, "knee": knee, "keep": 1.0}},
                              cov)
        scores = _score(model, x_train, band_train, SHIPPED_SETS)
        gate_scores[(seconds, knee)] = float(np.mean([s["r_mean"] for s in scores.values()]))
        info(f"gate {seconds:g} s, knee {knee:g}: training r {gate_scores[(seconds, knee)]:.4f}")
    seconds, knee = max(gate_scores, key=gate_scores.__getitem__)
    gate = {"seconds": seconds, "knee": knee, "keep": 1.0}
    keep = _gate_keep(HighBandModel({**card, "gate": gate}, cov), x_train, SHIPPED_SETS)
    card["gate"] = {**gate, "keep": round(keep, 4), "chosen_on": "training split",
                    "keep_is": "median over training records and missing leads of the shipped "
                               "lead sets of sqrt(energy before / after the gate)",
                    "training_r": {f"{s:g} s, knee {k:g}": round(v, 4)
                                   for (s, k), v in gate_scores.items()}}
    info(f"gate {seconds:g} s, knee {knee:g}, energy given back x{keep:.3f}")
    x_val, band_val = _signals(ds, "val")
    card["validation"] = {
        "split": "val", "records": len(x_val),
        "what": "the high band alone (the part above the 100 Hz round trip, below 150 Hz): "
                "per-record Pearson r and predicted ÷ true energy of each missing lead",
        "lead_sets": _score(HighBandModel(card, cov), x_val, band_val, SCORED_SETS),
    }
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    weights = out / f"{name}.npz"
    tmp = weights.with_suffix(".tmp.npz")
    np.savez(tmp, cov=cov["cov"], mean=cov["mean"], max_lag=np.int64(cov["max_lag"]))
    tmp.replace(weights)
    card["sha256"] = {weights.name: sha256_file(weights)}
    card_path = out / f"{name}.json"
    write_text_atomic(card_path, json.dumps(card, indent=1) + "\n")
    info(f"wrote {card_path} and {weights.name} in {time.monotonic() - began:.0f} s")
    return card
