"""Training and export of the diagnostic classifier (:mod:`ecgfill.models.classifier`).

:func:`train_classifier` trains on a ``preprocess`` dataset's train split (records with a
superclass label), monitors the val split and writes the shipped files through the shared
export (:func:`ecgfill.train.export.write_model_files`); ``scripts/train_classifier.py`` is its
command line. torch is imported inside the functions that use it (start-up time).
"""

from __future__ import annotations

import datetime
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ecgfill import __version__
from ecgfill.console import info
from ecgfill.errors import EcgfillError
from ecgfill.evaluate.diagnostic import macro_auroc, per_class_auroc
from ecgfill.leads import STANDARD_LEADS
from ecgfill.models.base import PTBXL_ATTRIBUTION
from ecgfill.models.classifier import (
    BATCH_SAMPLES,
    CLASSIFIER_FORMAT,
    CLASSIFIER_FORMAT_VERSION,
    DEFAULT_CLASSIFIER,
    LABEL_RULE,
    MIN_SECONDS,
    SUPERCLASSES,
    ClassifierConfig,
    LabelTable,
    build_classifier_net,
    config_dict,
    load_superclass_labels,
)
from ecgfill.train.data import open_dataset, read_records
from ecgfill.train.export import write_model_files
from ecgfill.train.loop import one_cycle_lr

ONNX_TOLERANCE = 1e-4  # largest |ONNX − PyTorch| accepted at export (probabilities, features)


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
                   out_dir=str(self.out_dir), config=config_dict(self.config))
        return out


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
    per = per_class_auroc(y.astype(bool), probs)
    return {"records": len(y), "macro_auroc": round(float(macro_auroc(per)[0]), 6),
            "per_class": {c: round(float(v), 6) for c, v in zip(SUPERCLASSES, per[0], strict=True)}}


def _classifier_card(opts: ClassifierTrainOptions, ds: Any, net: Any, final: dict[str, Any],
                     run: dict[str, Any]) -> dict[str, Any]:
    """The classifier card (its SHA-256s are added at export); ``run`` describes the training
    (records, positives, crop, epochs, steps, stop reason, seconds, history)."""
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
        "config": config_dict(opts.config),
        "normalization": {"split": "train", "leads": list(ds.stats["leads"]),
                          "mean": list(mean), "std": list(std)},
        "parameters": int(sum(p.numel() for p in net.parameters())),
        "validation": {"split": "val (PTB-XL fold 9)", **final},
        "training": {
            "command": opts.command or f"ecgfill.train.classifier.train_classifier"
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
    """Write ``<name>.pt``, ``<name>.onnx`` (outputs ``probs`` and ``features``, dynamic batch
    and length) and the card with their SHA-256s; refuses an ONNX graph that differs from
    PyTorch by more than :data:`ONNX_TOLERANCE` on another length than the export's."""
    import torch

    length = max(64, round(MIN_SECONDS * float(card["fs"])))
    x = torch.from_numpy(np.random.default_rng(0).standard_normal(
        (2, len(STANDARD_LEADS), length)).astype(np.float32) * 0.3)
    x_long = x.repeat(1, 1, 3)[..., : 3 * length - 7]
    write_model_files(net, card, out_dir, {"x": x}, {"x": {0: "batch", 2: "samples"}},
                      fmt=CLASSIFIER_FORMAT, outputs={"probs": {0: "batch"}, "features": {0: "batch"}},
                      check_inputs={"x": x_long}, tolerance=ONNX_TOLERANCE,
                      diff_key="onnx_max_abs_diff", unit="")
