"""What a training run is asked to do (``ecgfill train``'s options) and what it gives back."""

from __future__ import annotations

import shlex
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ecgfill.train.augment import DEFAULT_AUGMENT


@dataclass
class TrainOptions:
    """Everything ``ecgfill train`` accepts; also the record of how a run was made."""

    dataset_dir: Path
    run_dir: Path
    arch: str
    input_leads: tuple[str, ...]
    epochs: int = 30
    batch_size: int = 32
    lr: float = 3e-3
    weight_decay: float = 1e-2
    max_minutes: float | None = None
    resume: bool = False
    seed: int = 0
    device: str = "cpu"
    export_onnx: bool = False
    name: str | None = None
    window_seconds: float | None = None
    augment: str = DEFAULT_AUGMENT
    train_limit: int | None = None
    val_limit: int | None = None
    patience: int = 8
    grad_clip: float = 1.0
    threads: int | None = None
    model_options: dict[str, str] = field(default_factory=dict)

    def model_name(self) -> str:
        return self.name or f"{self.arch}-{'-'.join(self.input_leads)}".lower()

    def command_line(self) -> str:
        """The ``ecgfill train`` invocation that reproduces this run."""
        defaults = TrainOptions(self.dataset_dir, self.run_dir, self.arch, self.input_leads)
        parts = ["ecgfill", "train", str(self.dataset_dir), str(self.run_dir),
                 "--arch", self.arch, "--input-leads", ",".join(self.input_leads)]
        flags = ("epochs", "batch_size", "lr", "weight_decay", "max_minutes", "seed", "device",
                 "name", "window_seconds", "augment", "train_limit", "val_limit", "patience",
                 "threads")
        for key in flags:
            value = getattr(self, key)
            if value != getattr(defaults, key):
                parts += [f"--{key.replace('_', '-')}", str(value)]
        for key, value in sorted(self.model_options.items()):
            parts += ["--set", f"{key}={value}"]
        if self.export_onnx:
            parts.append("--export-onnx")
        return shlex.join(parts)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(dataset_dir=str(self.dataset_dir), run_dir=str(self.run_dir),
                   input_leads=list(self.input_leads))
        return out


@dataclass
class TrainResult:
    run_dir: Path
    best: dict[str, Any]
    epochs: int
    stop_reason: str
    exported: list[str] = field(default_factory=list)
    main: bool = True  # False on the non-zero ranks of a torchrun job

    def to_json(self) -> dict[str, Any]:
        return {"run_dir": str(self.run_dir), "best": self.best, "epochs": self.epochs,
                "stop_reason": self.stop_reason, "exported": self.exported}
