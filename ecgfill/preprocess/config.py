"""What ``ecgfill preprocess`` is asked to do: the options, and which folds go to which split."""

from __future__ import annotations

import math
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ecgfill.dsp import RESAMPLE_METHODS
from ecgfill.errors import UsageError

SPLITS: tuple[str, ...] = ("train", "val", "test")
EXCLUDED = "excluded"
MAX_GAP_MS = 50.0  # NaN runs up to this long are interpolated; longer ones exclude the record
MIN_SECONDS = 5.0  # records shorter than this are flagged "short"


def parse_folds(text: str) -> frozenset[int]:
    """Fold numbers from ``"1-8"``, ``"9"``, ``"1,3,5-7"`` or ``""`` (none)."""
    folds: set[int] = set()
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        match = re.fullmatch(r"(\d+)(?:\s*-\s*(\d+))?", part)
        if not match:
            raise ValueError(f"bad fold list {text!r} (expected e.g. 1-8 or 1,2,3)")
        low, high = int(match[1]), int(match[2] or match[1])
        if high < low:
            raise ValueError(f"bad fold range {part!r}")
        folds.update(range(low, high + 1))
    return frozenset(folds)


@dataclass(frozen=True)
class FoldSplits:
    """Which ``strat_fold`` values go to train, val and test (disjoint)."""

    train: frozenset[int] = frozenset(range(1, 9))
    val: frozenset[int] = frozenset({9})
    test: frozenset[int] = frozenset({10})

    def __post_init__(self) -> None:
        for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
            common = getattr(self, a) & getattr(self, b)
            if common:
                folds = ",".join(map(str, sorted(common)))
                raise UsageError(f"fold {folds} is in both the {a} and the {b} folds")
        if not (self.train or self.val or self.test):
            raise UsageError("no folds given for any split")

    def split_of(self, fold: int) -> str | None:
        return next((s for s in SPLITS if fold in getattr(self, s)), None)

    def fractions(self) -> dict[str, float]:
        """Share of each split for records without a fold: in proportion to its fold count."""
        total = len(self.train) + len(self.val) + len(self.test)
        return {s: len(getattr(self, s)) / total for s in SPLITS}

    def to_dict(self) -> dict[str, list[int]]:
        return {f"{s}_folds": sorted(getattr(self, s)) for s in SPLITS}


@dataclass(frozen=True)
class PreprocessConfig:
    """Options of ``ecgfill preprocess``; ``fs=None`` keeps the most common input rate."""

    fs: float | None = None
    seconds: float = 10.0
    splits_csv: Path | None = None
    folds: FoldSplits = field(default_factory=FoldSplits)
    workers: int = 1
    highpass_hz: float | None = None
    resample_method: str = "polyphase"
    overwrite: bool = False
    max_gap_ms: float = MAX_GAP_MS
    min_seconds: float = MIN_SECONDS

    def __post_init__(self) -> None:
        if self.fs is not None and not (math.isfinite(self.fs) and self.fs > 0):
            raise UsageError(f"--fs must be a positive rate in Hz, not {self.fs}")
        if not (math.isfinite(self.seconds) and self.seconds > 0):
            raise UsageError(f"--seconds must be positive, not {self.seconds}")
        if self.resample_method not in RESAMPLE_METHODS:
            raise UsageError(f"--resample must be one of {', '.join(RESAMPLE_METHODS)}")
        if self.workers < 1:
            raise UsageError("--workers must be at least 1")
        if self.highpass_hz is not None and not self.highpass_hz > 0:
            raise UsageError(f"--highpass must be a positive cutoff in Hz, not {self.highpass_hz}")

    def command_line(self, inputs: Sequence[str], output_dir: str | Path) -> str:
        """The ``ecgfill preprocess`` call that gives this output; --workers and --overwrite are
        left out because they do not change a byte of it."""
        options = [
            *(["--fs", f"{self.fs:g}"] if self.fs else []),
            "--seconds", f"{self.seconds:g}",
            *(["--splits", str(self.splits_csv)] if self.splits_csv else []),
            *(["--highpass", f"{self.highpass_hz:g}"] if self.highpass_hz else []),
            "--resample", self.resample_method,
        ]
        if self.splits_csv:
            for split in SPLITS:
                folds = sorted(getattr(self.folds, split))
                options += [f"--{split}-folds", ",".join(map(str, folds))]
        return shlex.join(["ecgfill", "preprocess", *inputs, str(output_dir), *options])
