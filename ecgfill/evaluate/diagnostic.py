"""Diagnostic-level evaluation: does a reconstructed ECG keep what a classifier needs?

The diagnostic classifier (:mod:`ecgfill.models.classifier`) scores (a) the real records, (b)
their reconstructions and (c) the input leads alone with every other lead zeroed. Reported: AUROC
per class and macro, paired bootstrap CIs of ΔAUROC (reconstructed − real, input-only − real),
the non-inferiority verdict (lower 95% bound of the macro ΔAUROC above −margin, margin 0.05 as in
the hybrid paper) and the Fréchet distance between the classifier's penultimate features on real
and reconstructed records (WearECG's FID).

Library use::

    labels = load_superclass_labels("ptbxl_database.csv")       # scp_statements.csv beside it
    collector = DiagnosticCollector(load_classifier(), labels, n_models=1)
    evals = evaluate_models([dataset], [model], EvaluateOptions(observe=collector.observe),
                            split="val")
    block = diagnostic_report(collector.results()[0])

rich and matplotlib are imported inside the functions that render tables and plots (start-up
time).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ecgfill.errors import EcgfillError
from ecgfill.evaluate.metrics import json_safe
from ecgfill.evaluate.plots import pyplot, save_figure

# ecgfill/commands/evaluate.py imports the names marked F401 from here.
from ecgfill.models.classifier import (
    DEFAULT_CLASSIFIER,  # noqa: F401
    LABEL_RULE,
    DiagnosticClassifier,
    LabelTable,
    load_classifier,  # noqa: F401
    load_superclass_labels,  # noqa: F401
)
from ecgfill.record import ECGRecord

NON_INFERIORITY_MARGIN = 0.05
SETS: tuple[str, ...] = ("real", "reconstructed", "input_only")


# ------------------------------------------------------------------------------------------
# AUROC, bootstrap, Fréchet distance


def weighted_auroc(y: np.ndarray, scores: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """AUROC of ``scores`` for binary ``y`` (both ``[n]``) under each row of record
    ``weights`` ``[B, n]`` (bootstrap counts; ones for the plain AUROC), ties counted half.
    NaN where a row weighs no positive or no negative record."""
    y = np.asarray(y, dtype=bool)
    order = np.argsort(scores, kind="mergesort")
    sorted_scores = np.asarray(scores)[order]
    w = np.asarray(weights, dtype=np.float64)[:, order]
    starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
    pos = np.add.reduceat(w * y[order], starts, axis=1)  # [B, tie groups]
    neg = np.add.reduceat(w * ~y[order], starts, axis=1)
    below = np.cumsum(neg, axis=1) - neg  # negatives strictly below each group
    wins = (pos * (below + 0.5 * neg)).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return wins / (pos.sum(axis=1) * neg.sum(axis=1))


def auroc(y: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (NaN when ``y`` has only one class)."""
    return float(weighted_auroc(y, scores, np.ones((1, len(y))))[0])


def per_class_auroc(y: np.ndarray, probs: np.ndarray, weights: np.ndarray | None = None
                    ) -> np.ndarray:
    """AUROC per class ``[B, C]`` (``[1, C]`` without weights) for ``y``/``probs`` ``[n, C]``."""
    w = np.ones((1, len(y))) if weights is None else weights
    return np.stack([weighted_auroc(y[:, c], probs[:, c], w) for c in range(y.shape[1])], axis=1)


def macro_auroc(per_class: np.ndarray) -> np.ndarray:
    """Macro AUROC of each row of per-class AUROCs ``[B, C]``: the mean over the classes with
    a finite value (NaN for a row without any)."""
    finite = np.isfinite(per_class)
    total = np.where(finite, per_class, 0.0).sum(axis=1)
    count = finite.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float | None:
    """Fréchet distance between Gaussians fitted to feature sets ``a`` ``[n, F]`` and ``b``
    ``[m, F]``: ‖μa − μb‖² + Tr(Σa + Σb − 2(ΣaΣb)^½); None with fewer than two rows each.

    Tr((ΣaΣb)^½) is taken as Tr((Σa^½ Σb Σa^½)^½), a symmetric form that stays exact and
    stable when the covariances are singular (e.g. features that are always zero)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if len(a) < 2 or len(b) < 2:
        return None
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    cov_a, cov_b = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    values, vectors = np.linalg.eigh(cov_a)
    root_a = (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T
    inner = np.linalg.eigvalsh(root_a @ cov_b @ root_a)
    trace_root = float(np.sqrt(np.clip(inner, 0.0, None)).sum())
    value = float(np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a) + np.trace(cov_b) - 2 * trace_root)
    return max(value, 0.0)


# ------------------------------------------------------------------------------------------
# Collecting classifier outputs during an evaluation


@dataclass
class DiagnosticSet:
    """Classifier outputs of one evaluated model over its labelled records: ``labels`` ``[n, C]``
    and, per set name (real, reconstructed, input_only), ``probs`` ``[n, C]`` and ``features``
    ``[n, F]``; ``left_out`` counts scored records without labels by reason."""

    classes: tuple[str, ...]
    names: list[str]
    labels: np.ndarray
    probs: dict[str, np.ndarray]
    features: dict[str, np.ndarray]
    left_out: dict[str, int]
    classifier: str
    label_source: str


@dataclass
class _Pending:
    model: int
    name: str
    labels: np.ndarray
    recon: ECGRecord
    truth: ECGRecord | None  # None when the reference outputs are already known
    input_leads: tuple[str, ...]


class DiagnosticCollector:
    """Receives ``(model index, name, truth, reconstruction)`` from an evaluation (pass
    :meth:`observe` as ``EvaluateOptions.observe``), classifies real, reconstructed and
    input-only versions in batches, and gives one :class:`DiagnosticSet` per model."""

    def __init__(self, classifier: DiagnosticClassifier, labels: LabelTable, n_models: int = 1,
                 batch: int = 64) -> None:
        if tuple(labels.classes) != classifier.classes:
            raise EcgfillError(f"classifier {classifier.name} predicts "
                               f"{','.join(classifier.classes)}, labels are "
                               f"{','.join(labels.classes)}")
        self.classifier, self.table, self.batch = classifier, labels, batch
        self._pending: list[_Pending] = []
        self._reference: dict[tuple[str, tuple[str, ...]], tuple[np.ndarray, ...]] = {}
        self._queued: set[tuple[str, tuple[str, ...]]] = set()
        self._recon: list[dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, tuple[str, ...]]]] \
            = [{} for _ in range(n_models)]
        self._left_out: list[dict[str, int]] = [{"unlabelled": 0, "no_superclass": 0}
                                                for _ in range(n_models)]

    def observe(self, model: int, name: str, truth: ECGRecord, recon: ECGRecord) -> None:
        """Queue one scored record (12-lead truth and reconstruction, origins kept)."""
        status, labels = self.table.lookup(name)
        if labels is None:
            self._left_out[model][status] += 1
            return
        input_leads = tuple(recon.leads_with("measured"))
        key = (name, input_leads)
        known = key in self._reference or key in self._queued
        self._queued.add(key)
        self._pending.append(_Pending(model, name, labels, recon, None if known else truth,
                                      input_leads))
        if len(self._pending) >= self.batch:
            self.flush()

    def flush(self) -> None:
        """Classify everything queued."""
        if not self._pending:
            return
        records: list[ECGRecord] = []
        for item in self._pending:
            records.append(item.recon)
            if item.truth is not None:
                records += [item.truth, input_only(item.truth, item.input_leads)]
        probs, feats = self.classifier.predict_records(records)
        row = 0
        for item in self._pending:
            recon_out = (probs[row], feats[row])
            row += 1
            if item.truth is not None:
                self._reference[(item.name, item.input_leads)] = (
                    probs[row], feats[row], probs[row + 1], feats[row + 1])
                row += 2
            self._recon[item.model][item.name] = (*recon_out, item.labels, item.input_leads)
        self._pending.clear()
        self._queued.clear()

    def results(self) -> list[DiagnosticSet]:
        """One set per model, records in the order they were observed."""
        self.flush()
        out = []
        for recon, left_out in zip(self._recon, self._left_out, strict=True):
            names = list(recon)
            rows = [(recon[n], self._reference[(n, recon[n][3])]) for n in names]
            n_classes = len(self.table.classes)
            labels = np.array([r[2] for r, _ in rows], dtype=bool).reshape(-1, n_classes)

            def stack(values: Iterable[np.ndarray]) -> np.ndarray:
                listed = list(values)
                return np.array(listed) if listed else np.empty((0, 0))

            probs = {"real": stack(ref[0] for _, ref in rows),
                     "reconstructed": stack(r[0] for r, _ in rows),
                     "input_only": stack(ref[2] for _, ref in rows)}
            features = {"real": stack(ref[1] for _, ref in rows),
                        "reconstructed": stack(r[1] for r, _ in rows),
                        "input_only": stack(ref[3] for _, ref in rows)}
            out.append(DiagnosticSet(self.table.classes, names, labels, probs, features,
                                     dict(left_out), self.classifier.label, self.table.source))
        return out


def input_only(truth: ECGRecord, input_leads: Sequence[str]) -> ECGRecord:
    """The 12-lead ``truth`` with every lead but ``input_leads`` set to zero."""
    keep = np.array([n in set(input_leads) for n in truth.leads])
    return ECGRecord(np.where(keep[:, None], truth.signal, 0.0), truth.fs, truth.leads,
                     source=truth.source)


# ------------------------------------------------------------------------------------------
# The "diagnostic" report section


def diagnostic_report(
    result: DiagnosticSet,
    n_boot: int = 1000,
    seed: int = 0,
    margin: float = NON_INFERIORITY_MARGIN,
) -> dict[str, Any]:
    """The ``"diagnostic"`` JSON object (keys documented in :mod:`ecgfill.evaluate.report`)."""
    n, classes = len(result.names), result.classes
    y = result.labels
    points = {s: per_class_auroc(y, result.probs[s])[0] if n else np.full(len(classes), np.nan)
              for s in SETS}
    macro = {s: float(macro_auroc(points[s][None])[0]) for s in SETS}
    boots: dict[str, np.ndarray] = {}
    if n > 1 and n_boot > 0:
        rng = np.random.default_rng(seed)
        weights = rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot)
        boots = {s: per_class_auroc(y, result.probs[s], weights) for s in SETS}

    def ci(values: np.ndarray) -> list[float] | None:
        finite = values[np.isfinite(values)]
        return [float(v) for v in np.percentile(finite, [2.5, 97.5])] if finite.size > 1 else None

    def delta(other: str, column: int | None) -> dict[str, Any]:
        """``other`` minus real: point value and bootstrap CI (macro when ``column`` is None)."""
        if column is None:
            value = macro[other] - macro["real"]
            draws = (macro_auroc(boots[other]) - macro_auroc(boots["real"])) if boots else None
        else:
            value = float(points[other][column] - points["real"][column])
            draws = boots[other][:, column] - boots["real"][:, column] if boots else None
        return {"value": value, "ci95": ci(draws) if draws is not None else None}

    per_class: dict[str, Any] = {}
    for k, cls in enumerate(classes):
        per_class[cls] = {
            **{s: float(points[s][k]) for s in SETS},
            "ci95": {s: ci(boots[s][:, k]) if boots else None for s in SETS},
            "delta": {s: delta(s, k) for s in SETS[1:]},
            "n_positive": int(y[:, k].sum()) if n else 0,
        }
    deltas = {s: delta(s, None) for s in SETS[1:]}
    lower = (deltas["reconstructed"]["ci95"] or [None])[0]
    block = {
        "classifier": result.classifier,
        "classes": list(classes),
        "macro_auroc": macro,
        "macro_auroc_ci95": {s: ci(macro_auroc(boots[s])) if boots else None for s in SETS},
        "delta_macro_auroc": deltas,
        "per_class": per_class,
        "fid": frechet_distance(result.features["real"], result.features["reconstructed"]),
        "fid_input_only": frechet_distance(result.features["real"],
                                           result.features["input_only"]),
        "n_labelled": n,
        "n_left_out": dict(result.left_out),
        "non_inferior": None if lower is None else bool(lower > -margin),
        "margin": margin,
        "labels": result.label_source,
        "label_rule": LABEL_RULE,
        "bootstrap": n_boot,
        "seed": seed,
    }
    return json_safe(block)


def render_diagnostic(block: Mapping[str, Any]) -> list[Any]:
    """Rich renderables for a ``"diagnostic"`` block: AUROC table, verdict and FID lines."""
    from rich import box
    from rich.table import Table

    def fmt(value: float | None, signed: bool = False) -> str:
        return "–" if value is None else f"{value:+.3f}" if signed else f"{value:.3f}"

    def ci_cell(entry: Mapping[str, Any]) -> str:
        ci = entry.get("ci95")
        return f"{fmt(ci[0], True)}…{fmt(ci[1], True)}" if ci else "–"

    left = block["n_left_out"]
    table = Table(title=f"diagnostic AUROC ({block['classifier']}), Δ = set − real: "
                        f"{block['n_labelled']} labelled records; left out "
                        f"{left['unlabelled']} unlabelled, {left['no_superclass']} without a "
                        "superclass", title_justify="left",
                  box=box.SIMPLE_HEAD, padding=(0, 1))
    for column in ("class", "n+", "real", "recon", "input", "Δrecon", "95% CI", "Δinput"):
        table.add_column(column, justify="left" if column == "class" else "right",
                         no_wrap=True)

    def deltas(entry: Mapping[str, Any]) -> list[str]:
        recon, inputs = entry["reconstructed"], entry["input_only"]
        return [fmt(recon["value"], True), ci_cell(recon), fmt(inputs["value"], True)]

    for cls, entry in block["per_class"].items():
        table.add_row(cls, str(entry["n_positive"]), *(fmt(entry[s]) for s in SETS),
                      *deltas(entry["delta"]))
    table.add_section()
    table.add_row("macro", "", *(fmt(block["macro_auroc"][s]) for s in SETS),
                  *deltas(block["delta_macro_auroc"]), style="bold")
    verdict = {True: "yes", False: "no", None: "not computed (needs --bootstrap > 0)"}
    return [
        table,
        f"reconstructed non-inferior to real at margin {block['margin']:g} (lower 95% bound of "
        f"macro ΔAUROC > −{block['margin']:g}): {verdict[block['non_inferior']]}",
        f"FID of classifier features, real vs reconstructed: {fmt(block['fid'])} "
        f"(real vs input only: {fmt(block['fid_input_only'])})",
    ]


def roc_curve(y: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """False- and true-positive rates at every distinct threshold, from (0, 0) to (1, 1)."""
    order = np.argsort(-np.asarray(scores), kind="mergesort")
    y_sorted, s_sorted = np.asarray(y, bool)[order], np.asarray(scores)[order]
    last = np.r_[s_sorted[1:] != s_sorted[:-1], True]  # end of each tie group
    tp, fp = np.cumsum(y_sorted)[last], np.cumsum(~y_sorted)[last]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.r_[0.0, fp / fp[-1]], np.r_[0.0, tp / tp[-1]]


def plot_roc(result: DiagnosticSet, path: str | Path, title: str | None = None) -> Path:
    """ROC curves per class of the real, reconstructed and input-only records (one panel per
    class, AUROC in the legend)."""
    plt = pyplot()
    styles = {"real": {"color": "black"}, "reconstructed": {"color": "#d62728"},
              "input_only": {"color": "#1f77b4", "linestyle": "--"}}
    fig, axes = plt.subplots(1, len(result.classes), figsize=(2.8 * len(result.classes), 3.2),
                             sharey=True)
    for k, (ax, cls) in enumerate(zip(np.atleast_1d(axes), result.classes, strict=True)):
        y = result.labels[:, k]
        for name, style in styles.items():
            fpr, tpr = roc_curve(y, result.probs[name][:, k])
            ax.plot(fpr, tpr, linewidth=1.0, label=f"{name} {auroc(y, result.probs[name][:, k]):.3f}",
                    **style)
        ax.plot([0, 1], [0, 1], color="#bbbbbb", linewidth=0.6)
        ax.set_title(f"{cls} (n+ = {int(y.sum())})", fontsize=9)
        ax.set_xlabel("false-positive rate", fontsize=8)
        ax.legend(fontsize=7, loc="lower right")
    np.atleast_1d(axes)[0].set_ylabel("true-positive rate", fontsize=8)
    fig.suptitle(title or f"{result.classifier}: {len(result.names)} labelled records",
                 fontsize=10)
    fig.tight_layout()
    return save_figure(fig, plt, path)


