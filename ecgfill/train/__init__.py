"""Training: dataset reading, augmentation, the training loop and export (needs torch).

:func:`train` runs the shared loop (:mod:`ecgfill.train.loop`) or, for ``--arch anyset``, its
any-subset trainer (:mod:`ecgfill.train.anyset`); :func:`export_model` writes shipped-model
files (:mod:`ecgfill.train.export`).
"""

from ecgfill.train.anyset import AnySetTrainer
from ecgfill.train.export import export_model
from ecgfill.train.loop import Trainer
from ecgfill.train.options import TrainOptions, TrainResult


def train(options: TrainOptions) -> TrainResult:
    """Train (or resume) a run; writes checkpoints, ``metrics.jsonl`` and optionally ONNX."""
    trainer = AnySetTrainer if options.arch == "anyset" else Trainer
    return trainer(options).run()


__all__ = ["TrainOptions", "TrainResult", "export_model", "train"]
