"""Training: dataset reading, augmentation and the training loop (needs torch)."""

from ecgfill.train.loop import TrainOptions, TrainResult, export_model, train

__all__ = ["TrainOptions", "TrainResult", "export_model", "train"]
