"""Turning command-line inputs (files, directories, globs, ``-``) into a sorted list of records."""

from __future__ import annotations

import glob
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from ecgfill.io import EDF_SUFFIXES, WFDB_SUFFIXES

RECORD_SUFFIXES = {".hea", *EDF_SUFFIXES}
_GLOB_CHARS = set("*?[")


@dataclass(frozen=True)
class RecordInput:
    """One record to process: ``path`` (``.hea`` or EDF file) found under input ``root``.

    ``error`` is set when the input argument itself is unusable (e.g. does not exist).
    """

    path: Path
    root: Path
    error: str | None = None

    def relative(self) -> Path:
        """Path of the record relative to its input root, without suffix (mirrors the tree)."""
        if self.root.is_dir() and self.root != self.path:
            try:
                return self.path.relative_to(self.root).with_suffix("")
            except ValueError:
                pass
        return Path(self.path.name).with_suffix("")

    def output_base(self, out_dir: Path) -> Path:
        return out_dir / self.relative()


def find_records(
    inputs: list[str], stdin_lines: list[str] | None = None, exclude: Path | None = None
) -> list[RecordInput]:
    """Expand inputs into records, sorted and de-duplicated; unusable inputs carry ``error``.

    Directory walks and glob matches never enter ``exclude`` (the output directory, so a run
    never reads its own outputs back as inputs).
    """
    found: dict[Path, RecordInput] = {}
    problems: list[RecordInput] = []
    skip = exclude.resolve() if exclude is not None else None
    for arg in _expand_stdin(inputs, stdin_lines):
        path = Path(arg)
        if path.is_dir():
            known = len(problems)
            items = [RecordInput(p, path) for p in _walk(path, problems, skip)]
            if not items and len(problems) == known:
                problems.append(RecordInput(path, path, "no ECG records found in directory"))
        elif path.exists() or path.with_suffix(".hea").exists():
            items = [RecordInput(_record_file(path), path.parent)]
        elif _GLOB_CHARS & set(arg):
            items = []
            for match in sorted(Path(m) for m in glob.glob(arg, recursive=True)):
                if _inside(match, skip):
                    continue
                if match.is_dir():
                    items.extend(RecordInput(p, match) for p in _walk(match, problems, skip))
                elif _is_record(match):
                    items.append(RecordInput(_record_file(match), match.parent))
            if not items:
                problems.append(RecordInput(path, path, "pattern matches no ECG records"))
        else:
            problems.append(RecordInput(path, path.parent, "input path does not exist"))
            continue
        for item in items:
            found.setdefault(item.path.resolve() if item.path.exists() else item.path, item)
    return problems + sorted(found.values(), key=lambda r: str(r.path))


def shard(items: list[RecordInput], index: int, count: int) -> list[RecordInput]:
    """The ``index``-th of ``count`` stable slices of the sorted list (1-based index)."""
    if not 1 <= index <= count:
        raise ValueError(f"shard {index}/{count}: index must be between 1 and {count}")
    ordered = sorted(items, key=lambda r: str(r.path))
    return ordered[index - 1 :: count]


def _expand_stdin(inputs: list[str], stdin_lines: list[str] | None) -> list[str]:
    out: list[str] = []
    for arg in inputs:
        if arg == "-":
            lines = stdin_lines if stdin_lines is not None else sys.stdin.read().splitlines()
            out.extend(line.strip() for line in lines if line.strip())
        else:
            out.append(arg)
    return out


def _walk(root: Path, problems: list[RecordInput], skip: Path | None = None) -> list[Path]:
    """Record files under ``root``; symlinked directories are not followed (no loops), ``skip``
    (a resolved directory below ``root``) is not entered.

    Directories that cannot be listed join ``problems`` (os.walk would skip them silently).
    """
    if skip == root.resolve():
        skip = None  # the caller refuses an output directory that is the input directory

    def unreadable(exc: OSError) -> None:
        where = Path(exc.filename) if exc.filename else root
        problems.append(RecordInput(where, root, f"cannot read directory: {exc.strerror or exc}"))

    out = []
    for dirpath, dirnames, filenames in os.walk(root, onerror=unreadable, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".")
                             and not _inside(Path(dirpath) / d, skip))
        for name in filenames:
            p = Path(dirpath) / name
            if not name.startswith(".") and _is_record(p):
                out.append(p)
    return out


def _inside(path: Path, folder: Path | None) -> bool:
    """True when ``path`` is ``folder`` (resolved) or lies below it."""
    if folder is None:
        return False
    resolved = path.resolve()
    return resolved == folder or folder in resolved.parents


def _is_record(path: Path) -> bool:
    return path.suffix.lower() in RECORD_SUFFIXES


def _record_file(path: Path) -> Path:
    """Map a data file or bare record path to the file that names the record."""
    if path.suffix.lower() in WFDB_SUFFIXES - {".hea"} or not path.suffix:
        return path.with_suffix(".hea")
    return path
