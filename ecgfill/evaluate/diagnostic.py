"""Diagnostic-level evaluation: does a reconstructed ECG keep what a classifier needs?

A compact 1-D CNN on the 12 standard leads (multi-label PTB-XL superclasses NORM, MI, STTC, CD,
HYP) scores (a) the real records, (b) their reconstructions and (c) the input leads alone with
every other lead zeroed. Reported: AUROC per class and macro, paired bootstrap CIs of ΔAUROC
(reconstructed − real, input-only − real), the non-inferiority verdict (lower 95% bound of the
macro ΔAUROC above −margin, margin 0.05 as in the hybrid paper) and the Fréchet distance between
the classifier's penultimate features on real and reconstructed records (WearECG's FID).

Labels follow the PTB-XL benchmark convention (Strodthoff et al. 2021, PTB-XL's
``example_physionet.py``): a record has a superclass when any diagnostic code listed in its
``scp_codes`` maps to it in ``scp_statements.csv`` (``diagnostic_class``), whatever the code's
likelihood; records with no diagnostic superclass are left out, as in the benchmark.

Library use::

    labels = load_superclass_labels("ptbxl_database.csv")       # scp_statements.csv beside it
    collector = DiagnosticCollector(load_classifier(), labels, n_models=1)
    evals = evaluate_models([dataset], [model], EvaluateOptions(observe=collector.observe),
                            split="val")
    block = diagnostic_report(collector.results()[0])

The classifier ships as ``models/classifier-ptbxl-superclass.{onnx,pt,json}``; onnxruntime runs
it (PyTorch optionally). torch, onnxruntime and scipy load only when used.
"""

from __future__ import annotations

import ast
import csv
import datetime
import json
import math
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ecgfill.errors import EcgfillError, ModelError, first_line
from ecgfill.io.names import ptbxl_ecg_id
from ecgfill.leads import STANDARD_LEADS
from ecgfill.record import ECGRecord

SUPERCLASSES: tuple[str, ...] = ("NORM", "MI", "STTC", "CD", "HYP")
DEFAULT_CLASSIFIER = "classifier-ptbxl-superclass"
CLASSIFIER_FORMAT = "ecgfill-classifier"
CLASSIFIER_FORMAT_VERSION = 1
NON_INFERIORITY_MARGIN = 0.05
SETS: tuple[str, ...] = ("real", "reconstructed", "input_only")
LABEL_RULE = (
    "PTB-XL benchmark convention: a superclass is present when any diagnostic code in scp_codes "
    "maps to it (scp_statements.csv diagnostic_class), whatever its likelihood; records without "
    "a diagnostic superclass are left out"
)
MIN_SECONDS = 1.0  # shortest record the classifier accepts
BATCH_SAMPLES = 1 << 18  # samples per lead per classifier call (bounded memory)
ONNX_TOLERANCE = 1e-4  # largest |ONNX − PyTorch| accepted at export (probabilities, features)


# ------------------------------------------------------------------------------------------
# Labels


@dataclass
class LabelTable:
    """Superclass labels by PTB-XL ``ecg_id``: a bool row per record over ``classes`` (all
    False when the record has no diagnostic superclass); ``folds`` holds ``strat_fold``."""

    classes: tuple[str, ...]
    labels: dict[int, np.ndarray]
    folds: dict[int, int]
    source: str

    def lookup(self, name: str) -> tuple[str, np.ndarray | None]:
        """(status, labels) for a record name: status ``labelled``, ``unlabelled`` (no id or
        no row) or ``no_superclass``; labels only when labelled."""
        ecg_id = ptbxl_ecg_id(name)
        row = self.labels.get(ecg_id) if ecg_id is not None else None
        if row is None:
            return "unlabelled", None
        if not row.any():
            return "no_superclass", None
        return "labelled", row


def load_superclass_labels(
    labels_csv: str | Path, statements_csv: str | Path | None = None
) -> LabelTable:
    """Superclass labels from a PTB-XL-layout table (``ecg_id``, ``scp_codes``, optional
    ``strat_fold``) and ``scp_statements.csv`` (default: beside the label file); see
    :data:`LABEL_RULE`. EcgfillError naming the file on any problem."""
    labels_csv = Path(labels_csv)
    statements_csv = Path(statements_csv) if statements_csv else labels_csv.with_name(
        "scp_statements.csv")
    mapping = _diagnostic_classes(statements_csv)
    index = {c: k for k, c in enumerate(SUPERCLASSES)}
    labels: dict[int, np.ndarray] = {}
    folds: dict[int, int] = {}
    try:
        with open(labels_csv, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            missing = [c for c in ("ecg_id", "scp_codes") if c not in (reader.fieldnames or [])]
            if missing:
                raise EcgfillError(f"{labels_csv}: lacks columns {', '.join(missing)}")
            for line, row in enumerate(reader, start=2):
                try:
                    ecg_id = int(float(row["ecg_id"]))
                    codes = ast.literal_eval(row["scp_codes"] or "{}")
                    if not isinstance(codes, dict):
                        raise ValueError("scp_codes is not a dict")
                except (ValueError, SyntaxError) as exc:
                    raise EcgfillError(f"{labels_csv}: line {line}: cannot parse ({exc})") from None
                row_labels = np.zeros(len(SUPERCLASSES), dtype=bool)
                for code in codes:
                    if code in mapping:
                        row_labels[index[mapping[code]]] = True
                labels[ecg_id] = row_labels
                if (row.get("strat_fold") or "").strip():
                    folds[ecg_id] = int(float(row["strat_fold"]))
    except OSError as exc:
        raise EcgfillError(f"{labels_csv}: cannot read label file ({exc.strerror})") from None
    if not labels:
        raise EcgfillError(f"{labels_csv}: no labelled records")
    return LabelTable(SUPERCLASSES, labels, folds, str(labels_csv))


def _diagnostic_classes(path: Path) -> dict[str, str]:
    """Diagnostic SCP code -> superclass, from PTB-XL's statement table."""
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh)
            header = next(reader, [])
            if "diagnostic_class" not in header:
                raise EcgfillError(f"{path}: lacks the diagnostic_class column")
            col = header.index("diagnostic_class")
            mapping = {row[0]: row[col] for row in reader if len(row) > col}
    except OSError as exc:
        raise EcgfillError(f"{path}: cannot read statement table ({exc.strerror}); "
                           "scp_statements.csv must sit beside the label file") from None
    mapping = {code: cls for code, cls in mapping.items() if cls in SUPERCLASSES}
    if not mapping:
        raise EcgfillError(f"{path}: no code maps to {', '.join(SUPERCLASSES)}")
    return mapping


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


def _nanmean_rows(values: np.ndarray) -> np.ndarray:
    """Row means over finite entries (NaN for a row without any)."""
    finite = np.isfinite(values)
    total = np.where(finite, values, 0.0).sum(axis=1)
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
# The network (PyTorch, built on demand)


@dataclass
class ClassifierConfig:
    """Stem conv to ``widths[0]``, then one residual stage per width (each halving the time
    axis), global average pooling, a hidden layer of ``hidden`` units (the penultimate features
    used for the FID) and a linear output per class."""

    widths: tuple[int, ...] = (32, 64, 96, 128)
    kernel: int = 5
    hidden: int = 128
    dropout: float = 0.2

    def __post_init__(self) -> None:
        self.widths = tuple(int(w) for w in self.widths)
        if not self.widths or min(self.widths) < 1 or self.hidden < 1 or self.kernel < 1:
            raise ValueError("widths, hidden and kernel must be positive")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError("dropout must be in [0, 1)")


def build_classifier_net(config: ClassifierConfig, mean: Sequence[float], std: Sequence[float],
                         n_classes: int = len(SUPERCLASSES)) -> Any:
    """The classifier as a torch module: ``forward(x)`` on mV ``[b, 12, T]`` returns
    ``(probabilities [b, C], features [b, hidden])``; ``logits(x)`` gives the logits instead."""
    import torch
    from torch import nn

    def conv(cin: int, cout: int, stride: int) -> nn.Module:
        return nn.Conv1d(cin, cout, config.kernel, stride, config.kernel // 2, bias=False)

    class Stage(nn.Module):
        def __init__(self, cin: int, cout: int) -> None:
            super().__init__()
            self.body = nn.Sequential(conv(cin, cout, 2), nn.BatchNorm1d(cout), nn.ReLU(),
                                      conv(cout, cout, 1), nn.BatchNorm1d(cout))
            self.skip = nn.Sequential(nn.Conv1d(cin, cout, 1, 2, bias=False),
                                      nn.BatchNorm1d(cout))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.relu(self.body(x) + self.skip(x))

    class ClassifierNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1))
            self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1))
            width = config.widths[0]
            layers: list[nn.Module] = [conv(len(STANDARD_LEADS), width, 1),
                                       nn.BatchNorm1d(width), nn.ReLU()]
            for out in config.widths:
                layers.append(Stage(width, out))
                width = out
            self.body = nn.Sequential(*layers)
            self.hidden = nn.Sequential(nn.Linear(width, config.hidden), nn.ReLU())
            self.dropout = nn.Dropout(config.dropout)
            self.out = nn.Linear(config.hidden, n_classes)

        def logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            z = self.body((x - self.mean) / self.std).mean(dim=-1)
            features = self.hidden(z)
            return self.out(self.dropout(features)), features

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            logits, features = self.logits(x)
            return torch.sigmoid(logits), features

    return ClassifierNet()


def _net_from_card(card: Mapping[str, Any]) -> Any:
    norm = card["normalization"]
    return build_classifier_net(ClassifierConfig(**card["config"]), norm["mean"], norm["std"],
                                len(card["classes"]))


# ------------------------------------------------------------------------------------------
# Inference


class DiagnosticClassifier:
    """A shipped classifier: :meth:`predict` maps mV ``[B, 12, T]`` at ``fs`` (standard lead
    order) to class probabilities ``[B, C]`` and penultimate features ``[B, F]``."""

    def __init__(self, card: Mapping[str, Any], source: Path,
                 run: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]) -> None:
        self.card = dict(card)
        self.source = source
        self.name: str = card["name"]
        self.version: str = str(card.get("version", ""))
        self.classes: tuple[str, ...] = tuple(card["classes"])
        self.fs: float = float(card["fs"])
        self._run = run

    @property
    def label(self) -> str:
        return f"{self.name} {self.version}".strip()

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Probabilities and features for ``x`` ``[B, 12, T]`` (T >= 1 s), in bounded batches."""
        if x.ndim != 3 or x.shape[1] != len(STANDARD_LEADS):
            raise ModelError(f"classifier {self.name} expects [batch, 12, samples], got {x.shape}")
        if x.shape[2] < MIN_SECONDS * self.fs:
            raise ModelError(f"classifier {self.name} needs at least {MIN_SECONDS:g} s, got "
                             f"{x.shape[2]} samples at {self.fs:g} Hz")
        per_call = max(1, BATCH_SAMPLES // x.shape[2])
        probs, feats = [], []
        for lo in range(0, len(x), per_call):
            chunk = np.nan_to_num(np.ascontiguousarray(x[lo:lo + per_call], dtype=np.float32))
            p, f = self._run(chunk)
            probs.append(p)
            feats.append(f)
        return np.concatenate(probs).astype(np.float64), np.concatenate(feats).astype(np.float64)

    def predict_records(self, records: Sequence[ECGRecord]) -> tuple[np.ndarray, np.ndarray]:
        """Probabilities and features of 12-lead records at any rate (resampled to ``fs``;
        records of equal length are batched together), in the order given."""
        from ecgfill.dsp import resample

        signals = []
        for record in records:
            signal = record.select(STANDARD_LEADS).signal
            if abs(record.fs - self.fs) > 1e-6:
                signal = resample(signal, record.fs, self.fs)
            signals.append(signal)
        probs = np.empty((len(records), len(self.classes)))
        feats: np.ndarray | None = None
        lengths = np.array([s.shape[-1] for s in signals])
        for length in np.unique(lengths):
            rows = np.flatnonzero(lengths == length)
            p, f = self.predict(np.stack([signals[i] for i in rows]))
            if feats is None:
                feats = np.empty((len(records), f.shape[1]))
            probs[rows], feats[rows] = p, f
        return probs, feats if feats is not None else np.empty((0, 0))


def _onnx_runner(path: Path, threads: int | None) -> tuple[dict[str, Any], Callable[..., Any]]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = int(threads)
        options.inter_op_num_threads = 1
    try:
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own untyped errors
        first = first_line(exc)
        raise ModelError(f"{path}: cannot load ONNX classifier ({first})") from None
    meta = session.get_modelmeta().custom_metadata_map.get("ecgfill_card")
    if meta is None:
        raise ModelError(f"{path}: ONNX file carries no ecgfill classifier card")

    def run(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        probs, feats = session.run(["probs", "features"], {"x": x})
        return probs, feats

    return json.loads(meta), run


def _torch_runner(path: Path, threads: int | None) -> tuple[dict[str, Any], Callable[..., Any]]:
    import torch

    from ecgfill.models.base import load_checkpoint

    payload = load_checkpoint(path, formats=(CLASSIFIER_FORMAT,), what="classifier")
    if threads:
        torch.set_num_threads(int(threads))
    net = _net_from_card(payload["card"])
    try:
        net.load_state_dict(payload["state_dict"])
    except RuntimeError as exc:
        raise ModelError(f"{path}: weights do not fit the card's network ({exc})") from None
    net.eval()

    def run(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with torch.inference_mode():
            probs, feats = net(torch.from_numpy(x))
        return probs.numpy(), feats.numpy()

    return payload["card"], run


def _read_classifier_card(path: Path) -> dict[str, Any]:
    try:
        card = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path}: cannot read classifier card ({exc})") from None
    if not isinstance(card, dict) or card.get("format") != CLASSIFIER_FORMAT:
        raise ModelError(f"{path}: not an ecgfill classifier card")
    return card


def find_classifier(name: str = DEFAULT_CLASSIFIER) -> Path:
    """The card of a shipped classifier, looked for in :func:`ecgfill.models.model_dirs`."""
    from ecgfill.models import model_dirs

    for directory in model_dirs():
        path = directory / f"{name}.json"
        if path.is_file():
            return path
    raise ModelError(f"no classifier named {name!r} in {', '.join(map(str, model_dirs()))} "
                     "(train one with scripts/train_classifier.py)")


def load_classifier(name_or_path: str | Path = DEFAULT_CLASSIFIER, backend: str = "onnx",
                    threads: int | None = None) -> DiagnosticClassifier:
    """A classifier by shipped name or path to its ``.json`` card, ``.onnx`` or ``.pt``.

    Weight files named in a card are checked against its SHA-256 and the card embedded in them.
    """
    from ecgfill.models.base import verify_sha256

    suffix = {"onnx": ".onnx", "torch": ".pt"}
    if backend not in suffix:
        raise ModelError(f"unknown backend {backend!r} (choose onnx or torch)")
    path = Path(name_or_path)
    if path.suffix in (".onnx", ".pt"):
        weights, backend = path, "onnx" if path.suffix == ".onnx" else "torch"
        sibling = path.with_suffix(".json")
        card = _read_classifier_card(sibling) if sibling.is_file() else None
    else:
        card_path = path if path.suffix == ".json" else find_classifier(str(name_or_path))
        card = _read_classifier_card(card_path)
        weights = card_path.with_name(card["name"] + suffix[backend])
    if not weights.is_file():
        raise ModelError(f"{weights}: classifier file not found")
    if card is not None:
        verify_sha256(card, weights)
    runner = _onnx_runner if backend == "onnx" else _torch_runner
    embedded, run = runner(weights, threads)
    if card is None:
        card = embedded
    for key in ("name", "classes", "fs", "config", "normalization"):
        if json.dumps(card.get(key)) != json.dumps(embedded.get(key)):
            raise ModelError(f"{weights}: the card's {key} does not match the weight file's")
    return DiagnosticClassifier(card, weights, run)


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
    from ecgfill.evaluate.report import json_safe

    n, classes = len(result.names), result.classes
    y = result.labels
    points = {s: per_class_auroc(y, result.probs[s])[0] if n else np.full(len(classes), np.nan)
              for s in SETS}
    macro = {s: float(_nanmean_rows(points[s][None])[0]) for s in SETS}
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
            draws = (_nanmean_rows(boots[other]) - _nanmean_rows(boots["real"])) if boots else None
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
        "macro_auroc_ci95": {s: ci(_nanmean_rows(boots[s])) if boots else None for s in SETS},
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
    from ecgfill.evaluate.plots import _pyplot, _save

    plt = _pyplot()
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
    return _save(fig, plt, path)


# ------------------------------------------------------------------------------------------
# Training


@dataclass
class ClassifierTrainOptions:
    """How :func:`train_classifier` runs: a ``preprocess`` dataset (train and val splits), the
    label table, the output folder and the optimisation settings."""

    dataset_dir: Path
    labels_csv: Path
    out_dir: Path
    name: str = DEFAULT_CLASSIFIER
    config: ClassifierConfig = field(default_factory=ClassifierConfig)
    epochs: int = 60
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 1e-2
    max_minutes: float | None = 14.0
    crop_seconds: float | None = 5.0
    seed: int = 0
    threads: int | None = 1
    train_limit: int | None = None
    val_limit: int | None = None
    command: str | None = None

    def describe(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(dataset_dir=str(self.dataset_dir), labels_csv=str(self.labels_csv),
                   out_dir=str(self.out_dir), config=_config_dict(self.config))
        return out


def _config_dict(config: ClassifierConfig) -> dict[str, Any]:
    return {**asdict(config), "widths": list(config.widths)}


def _labelled_split(ds: Any, table: LabelTable, split: str, limit: int | None, seed: int
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Dataset rows of ``split`` with a diagnostic superclass, and their labels."""
    rows, labels = [], []
    for i in ds.indices(split):
        _, row = table.lookup(ds.manifest[int(i)].get("id") or "")
        if row is not None and ds.n_valid[i] > 0:
            rows.append(int(i))
            labels.append(row)
    if not rows:
        raise EcgfillError(f"{ds.path / 'manifest.csv'}: no {split} record has a superclass label "
                           f"in {table.source}")
    idx, y = np.array(rows), np.array(labels, dtype=np.float32)
    if limit is not None and limit < len(idx):
        pick = np.sort(np.random.default_rng(seed).choice(len(idx), size=limit, replace=False))
        idx, y = idx[pick], y[pick]
    return idx, y


def _random_crops(signals: np.ndarray, n_valid: np.ndarray, window: int,
                  rng: np.random.Generator) -> np.ndarray:
    """One random ``window``-sample crop per record from its valid part (zero-padded when
    shorter)."""
    if signals.shape[-1] < window:
        signals = np.pad(signals, ((0, 0), (0, 0), (0, window - signals.shape[-1])))
    starts = rng.integers(0, np.maximum(n_valid - window, 0) + 1)
    rows = starts[:, None] + np.arange(window)
    return np.take_along_axis(signals, rows[:, None, :], axis=2)


def _validate(net: Any, signals: np.ndarray, n_valid: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """Macro and per-class AUROC of ``net`` on whole records (grouped by valid length)."""
    import torch

    probs = np.empty(y.shape)
    net.eval()
    with torch.inference_mode():
        for length in np.unique(n_valid):
            rows = np.flatnonzero(n_valid == length)
            step = max(1, BATCH_SAMPLES // int(length))
            for lo in range(0, len(rows), step):
                part = rows[lo:lo + step]
                p, _ = net(torch.from_numpy(np.ascontiguousarray(signals[part, :, :length])))
                probs[part] = p.numpy()
    net.train()
    per = per_class_auroc(y.astype(bool), probs)[0]
    return {"records": len(y), "macro_auroc": round(float(_nanmean_rows(per[None])[0]), 6),
            "per_class": {c: round(float(v), 6) for c, v in zip(SUPERCLASSES, per, strict=True)}}


def _classifier_card(opts: ClassifierTrainOptions, ds: Any, net: Any, final: dict[str, Any],
                     run: dict[str, Any]) -> dict[str, Any]:
    """The classifier card (its SHA-256s are added at export); ``run`` describes the training
    (records, positives, crop, epochs, steps, stop reason, seconds, history)."""
    from ecgfill import __version__
    from ecgfill.models.base import PTBXL_ATTRIBUTION

    mean, std = ds.stats["mean"], ds.stats["std"]
    return {
        "format": CLASSIFIER_FORMAT,
        "format_version": CLASSIFIER_FORMAT_VERSION,
        "name": opts.name,
        "version": datetime.date.today().strftime("%Y.%m.%d"),
        "ecgfill_version": __version__,
        "task": "multi-label diagnostic superclasses (sigmoid per class)",
        "classes": list(SUPERCLASSES),
        "leads": list(STANDARD_LEADS),
        "fs": ds.fs,
        "input": f"float32 x [batch, 12, samples] in mV, standard lead order, {ds.fs:g} Hz, at "
                 f"least {MIN_SECONDS:g} s; outputs probs [batch, {len(SUPERCLASSES)}] and "
                 f"features [batch, {opts.config.hidden}] (penultimate layer, used for the FID)",
        "config": _config_dict(opts.config),
        "normalization": {"split": "train", "leads": list(ds.stats["leads"]),
                          "mean": list(mean), "std": list(std)},
        "parameters": int(sum(p.numel() for p in net.parameters())),
        "validation": {"split": "val (PTB-XL fold 9)", **final},
        "training": {
            "command": opts.command or f"ecgfill.evaluate.diagnostic.train_classifier"
                                       f"({json.dumps(opts.describe(), default=str)})",
            "options": opts.describe(),
            "dataset": {"path": str(ds.path), "fingerprint": ds.fingerprint(),
                        "train_records": run["train_records"], "val_records": run["val_records"]},
            "labels": {"file": str(opts.labels_csv), "rule": LABEL_RULE,
                       "train_positives": run["train_positives"]},
            "splits": "train = dataset train split (PTB-XL folds 1-8), val = val split (fold 9)",
            "crop_samples": run["crop_samples"],
            "optimizer": {"name": "AdamW", "lr": opts.lr, "weight_decay": opts.weight_decay,
                          "schedule": "one-cycle (cosine) over max(step, time) fraction",
                          "batch_size": opts.batch_size, "loss": "binary cross-entropy"},
            **{k: run[k] for k in ("epochs", "steps", "stop_reason", "seconds")},
            "threads": opts.threads,
            "history": run["history"],
            "selection": "last weights (the val split is only monitored, not used to choose)",
        },
        "data_attribution": [PTBXL_ATTRIBUTION],
        "limitations": [
            f"Expects the 12 standard leads in mV at {ds.fs:g} Hz; other rates are resampled "
            "by ecgfill first. Trained on PTB-XL only (German hospital population, "
            "Schiller devices); not validated elsewhere.",
            "A compact evaluation instrument for comparing real and reconstructed ECGs, trained "
            "for minutes on one CPU thread; not a diagnostic device. Published PTB-XL benchmark "
            "classifiers reach a macro AUROC of about 0.93 on this task (Strodthoff et al. 2021, "
            "fold 10), so compare differences between sets, not absolute values.",
            "Validation AUROC is on fold 9, the same fold ecgfill's reconstruction models are "
            "validated on; fold 10 (the PTB-XL test fold) was never used.",
            "Labels are the five superclasses under the PTB-XL benchmark convention; regional MI "
            "and rhythm statements are not predicted.",
        ],
    }


def train_classifier(options: ClassifierTrainOptions) -> dict[str, Any]:
    """Train the classifier on the dataset's train split (labelled records), validate on its
    val split after every epoch, and write ``<name>.pt``, ``<name>.onnx`` and the card
    ``<name>.json`` (with SHA-256s) to ``out_dir``; returns the card.

    AdamW with a one-cycle schedule over the larger of the step and the time fraction, so
    ``max_minutes`` ends the run cleanly; random crops of ``crop_seconds`` in training, whole
    records in validation. The last weights are shipped (no selection on the val split).
    """
    import torch

    from ecgfill.console import info
    from ecgfill.train.data import open_dataset, read_records
    from ecgfill.train.loop import one_cycle_lr

    opts = options
    began = time.monotonic()
    if opts.epochs < 1 or opts.batch_size < 1:
        raise EcgfillError("epochs and batch_size must be >= 1")
    if opts.threads:
        torch.set_num_threads(opts.threads)
    torch.manual_seed(opts.seed)
    rng = np.random.default_rng(opts.seed)
    ds = open_dataset(opts.dataset_dir)
    table = load_superclass_labels(opts.labels_csv)
    train_idx, y_train = _labelled_split(ds, table, "train", opts.train_limit, opts.seed)
    val_idx, y_val = _labelled_split(ds, table, "val", opts.val_limit, opts.seed)
    window = ds.n_samples if opts.crop_seconds is None else min(
        ds.n_samples, round(opts.crop_seconds * ds.fs))
    if window < MIN_SECONDS * ds.fs:
        raise EcgfillError(f"crop of {window} samples is shorter than {MIN_SECONDS:g} s")
    train_x, train_valid = read_records(ds, train_idx)
    val_x, val_valid = read_records(ds, val_idx)
    mean, std = ds.stats["mean"], ds.stats["std"]
    net = build_classifier_net(opts.config, mean, std)
    optimizer = torch.optim.AdamW(net.parameters(), lr=opts.lr, weight_decay=opts.weight_decay)
    steps_per_epoch = max(1, len(train_idx) // opts.batch_size)
    total_steps = opts.epochs * steps_per_epoch
    budget = opts.max_minutes * 60.0 if opts.max_minutes else None
    info(f"classifier: {sum(p.numel() for p in net.parameters()):,} parameters; "
         f"{len(train_idx)} train / {len(val_idx)} val labelled records, crop {window} samples")
    history: list[dict[str, Any]] = []
    step, val_seconds, stop_reason = 0, 0.0, f"{opts.epochs} epochs done"
    metrics: dict[str, Any] | None = None  # validation of the current weights
    positive = torch.from_numpy(y_train)
    for epoch in range(1, opts.epochs + 1):
        order = rng.permutation(len(train_idx))
        loss_sum, seen, epoch_began = 0.0, 0, time.monotonic()
        for lo in range(0, steps_per_epoch * opts.batch_size, opts.batch_size):
            elapsed = time.monotonic() - began
            reserve = 1.5 * val_seconds + 10.0
            if budget is not None and step > 0 and elapsed + reserve >= budget:
                stop_reason = f"time limit of {opts.max_minutes:g} min"
                break
            rows = order[lo:lo + opts.batch_size]
            x = _random_crops(train_x[rows], train_valid[rows], window, rng)
            progress = step / total_steps
            if budget is not None:
                progress = max(progress, elapsed / max(budget - reserve, 1.0))
            for group in optimizer.param_groups:
                group["lr"] = one_cycle_lr(progress, opts.lr)
            logits, _ = net.logits(torch.from_numpy(x))
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, positive[rows])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            loss_sum += float(loss.detach()) * len(rows)
            seen += len(rows)
        if seen == 0:
            break
        val_began = time.monotonic()
        metrics = _validate(net, val_x, val_valid, y_val)
        val_seconds = time.monotonic() - val_began
        history.append({"epoch": epoch, "steps": step, "train_loss": round(loss_sum / seen, 6),
                        "val_macro_auroc": metrics["macro_auroc"],
                        "seconds": round(time.monotonic() - began, 1)})
        info(f"epoch {epoch}: loss {loss_sum / seen:.4f}, val macro AUROC "
             f"{metrics['macro_auroc']:.4f}, {time.monotonic() - epoch_began:.0f} s")
        if stop_reason.startswith("time limit"):
            break
    final = metrics if metrics is not None else _validate(net, val_x, val_valid, y_val)
    card = _classifier_card(opts, ds, net, final, {
        "train_records": len(train_idx), "val_records": len(val_idx),
        "train_positives": dict(zip(SUPERCLASSES, map(int, y_train.sum(axis=0)), strict=True)),
        "crop_samples": window, "epochs": len(history), "steps": step,
        "stop_reason": stop_reason, "seconds": round(time.monotonic() - began, 1),
        "history": history})
    export_classifier(net, card, Path(opts.out_dir))
    info(f"wrote {opts.name}.{{pt,onnx,json}} to {opts.out_dir}: val macro AUROC "
         f"{final['macro_auroc']:.4f} after {len(history)} epochs ({stop_reason})")
    return card


def export_classifier(net: Any, card: dict[str, Any], out_dir: Path) -> None:
    """Write ``<name>.pt`` (weights_only-safe), ``<name>.onnx`` (card in its metadata, dynamic
    batch and length) and the card with their SHA-256s; refuses an ONNX graph that differs
    from PyTorch by more than :data:`ONNX_TOLERANCE`."""
    import io
    import warnings

    import onnx
    import onnxruntime as ort
    import torch

    from ecgfill.models.base import sha256_file

    out_dir.mkdir(parents=True, exist_ok=True)
    net = net.eval().cpu()
    name = card["name"]
    embedded = {k: v for k, v in card.items() if k != "sha256"}
    pt_path, onnx_path = out_dir / f"{name}.pt", out_dir / f"{name}.onnx"
    tmp = pt_path.with_name(pt_path.name + ".tmp")
    torch.save({"format": CLASSIFIER_FORMAT, "card": embedded, "state_dict": net.state_dict()},
               tmp)
    os.replace(tmp, pt_path)
    length = max(64, round(MIN_SECONDS * float(card["fs"])))
    x = torch.from_numpy(np.random.default_rng(0).standard_normal(
        (2, len(STANDARD_LEADS), length)).astype(np.float32) * 0.3)
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (x,), buffer, input_names=["x"], output_names=["probs", "features"],
                          dynamic_axes={"x": {0: "batch", 2: "samples"}, "probs": {0: "batch"},
                                        "features": {0: "batch"}},
                          opset_version=17, do_constant_folding=True, dynamo=False)
    model = onnx.load_from_string(buffer.getvalue())
    entry = model.metadata_props.add()
    entry.key, entry.value = "ecgfill_card", json.dumps(embedded)
    model.producer_name = "ecgfill"
    onnx.checker.check_model(model)
    onnx.save(model, str(onnx_path))
    x_long = x.repeat(1, 1, 3)[..., : 3 * length - 7]  # another length than the export's
    with torch.no_grad():
        expected = [t.numpy() for t in net(x_long)]
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    got = session.run(["probs", "features"], {"x": x_long.numpy()})
    diff = max(float(np.abs(a - b).max()) for a, b in zip(got, expected, strict=True))
    if not math.isfinite(diff) or diff > ONNX_TOLERANCE:
        raise EcgfillError(f"{onnx_path}: ONNX output differs from PyTorch by {diff:.2e}")
    card["onnx_max_abs_diff"] = diff
    card["sha256"] = {p.name: sha256_file(p) for p in (onnx_path, pt_path)}
    tmp_card = out_dir / f"{name}.json.tmp"
    tmp_card.write_text(json.dumps(card, indent=2, allow_nan=False) + "\n")
    os.replace(tmp_card, out_dir / f"{name}.json")
