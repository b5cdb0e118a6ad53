"""Atomic file writes: write to a hidden temporary name, then rename into place."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path


def write_atomically(targets: list[Path], writers: list[Callable[[Path], None]]) -> list[Path]:
    """Write each target through a temporary file, renaming only when all were written.

    Targets are renamed in order, so the file that makes a record visible (the header) should
    come last. On any failure no target is created and temporaries are removed.
    """
    temps = [t.with_name(f".{t.name}.tmp-{os.getpid()}") for t in targets]
    try:
        for temp, write in zip(temps, writers, strict=True):
            temp.parent.mkdir(parents=True, exist_ok=True)
            write(temp)
        for temp, target in zip(temps, targets, strict=True):
            os.replace(temp, target)
    except BaseException:
        for temp in temps:
            temp.unlink(missing_ok=True)
        raise
    return targets
