"""The diagnostic classifier: PTB-XL superclass labels, the network and its loading.

A compact 1-D CNN on the 12 standard leads predicts the PTB-XL superclasses NORM, MI, STTC, CD
and HYP (multi-label, a sigmoid per class) and exposes its penultimate features (for the FID).
:mod:`ecgfill.evaluate.diagnostic` scores reconstructions with it;
:mod:`ecgfill.train.classifier` trains and exports it. It ships as
``models/classifier-ptbxl-superclass.{onnx,pt,json}`` and loads through the same card,
SHA-256, checkpoint and onnxruntime helpers as the reconstruction models.

Labels follow the PTB-XL benchmark convention (Strodthoff et al. 2021, PTB-XL's
``example_physionet.py``): a record has a superclass when any diagnostic code listed in its
``scp_codes`` maps to it in ``scp_statements.csv`` (``diagnostic_class``), whatever the code's
likelihood; records with no diagnostic superclass are left out, as in the benchmark.

torch is imported inside the functions that build or run the network (start-up time).
"""

from __future__ import annotations

import ast
import csv
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ecgfill.dsp import resample
from ecgfill.errors import EcgfillError, ModelError
from ecgfill.io.names import ptbxl_ecg_id
from ecgfill.leads import STANDARD_LEADS
from ecgfill.models.base import check_card_matches, load_checkpoint, read_card, verify_sha256
from ecgfill.models.onnx_backend import open_session, session_card
from ecgfill.models.registry import WEIGHT_SUFFIX, model_dirs
from ecgfill.record import ECGRecord

SUPERCLASSES: tuple[str, ...] = ("NORM", "MI", "STTC", "CD", "HYP")
DEFAULT_CLASSIFIER = "classifier-ptbxl-superclass"
CLASSIFIER_FORMAT = "ecgfill-classifier"
CLASSIFIER_FORMAT_VERSION = 1
# Fields that must agree between a classifier card and the card embedded in its weight file.
CLASSIFIER_IDENTITY_KEYS: tuple[str, ...] = ("name", "classes", "fs", "config", "normalization")
LABEL_RULE = (
    "PTB-XL benchmark convention: a superclass is present when any diagnostic code in scp_codes "
    "maps to it (scp_statements.csv diagnostic_class), whatever its likelihood; records without "
    "a diagnostic superclass are left out"
)
MIN_SECONDS = 1.0  # shortest record the classifier accepts
BATCH_SAMPLES = 1 << 18  # samples per lead per classifier call (bounded memory)


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


def config_dict(config: ClassifierConfig) -> dict[str, Any]:
    """The config as stored in a card (widths as a list)."""
    return {**asdict(config), "widths": list(config.widths)}


# ------------------------------------------------------------------------------------------
# Loading


def _onnx_runner(path: Path, threads: int | None) -> tuple[dict[str, Any], Callable[..., Any]]:
    session = open_session(path, threads=threads)

    def run(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        probs, feats = session.run(["probs", "features"], {"x": x})
        return probs, feats

    return session_card(session, None, path), run


def _torch_runner(path: Path, threads: int | None) -> tuple[dict[str, Any], Callable[..., Any]]:
    import torch

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
    return read_card(path, CLASSIFIER_FORMAT, "classifier", CLASSIFIER_IDENTITY_KEYS)


def find_classifier(name: str = DEFAULT_CLASSIFIER) -> Path:
    """The card of a shipped classifier, looked for in :func:`ecgfill.models.model_dirs`."""
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
    if backend not in WEIGHT_SUFFIX:
        raise ModelError(f"unknown backend {backend!r} (choose onnx or torch)")
    path = Path(name_or_path)
    if path.suffix in (".onnx", ".pt"):
        weights, backend = path, "onnx" if path.suffix == ".onnx" else "torch"
        sibling = path.with_suffix(".json")
        card = _read_classifier_card(sibling) if sibling.is_file() else None
    else:
        card_path = path if path.suffix == ".json" else find_classifier(str(name_or_path))
        card = _read_classifier_card(card_path)
        weights = card_path.with_name(card["name"] + WEIGHT_SUFFIX[backend])
    if not weights.is_file():
        raise ModelError(f"{weights}: classifier file not found")
    if card is not None:
        verify_sha256(card, weights)
    runner = _onnx_runner if backend == "onnx" else _torch_runner
    embedded, run = runner(weights, threads)
    if card is None:
        card = embedded
    check_card_matches(card, embedded, weights, CLASSIFIER_IDENTITY_KEYS)
    return DiagnosticClassifier(card, weights, run)
