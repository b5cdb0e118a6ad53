"""Shared plumbing for commands that turn input records into output records."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from ecgfill.errors import EcgfillError, UsageError

# Parameters shared by the commands that turn input records into output records.
Inputs = Annotated[
    list[str],
    typer.Argument(help="Record files, directories (recursive), globs, or '-' for paths on stdin."),
]
OutputDir = Annotated[Path, typer.Argument(help="Output directory; mirrors the input tree.")]
Overwrite = Annotated[bool, typer.Option("--overwrite", help="Redo records whose output exists.")]
OutputFormat = Annotated[str, typer.Option("--format", help="Output format: wfdb or edf.")]


def run_file_batch(
    inputs: list[str],
    output_dir: Path,
    process: Callable[..., Any],
    *,
    fmt: str,
    overwrite: bool,
    workers: int,
    json_output: bool,
    label: str,
    shard: tuple[int, int] | None = None,
    initializer: Callable[..., None] | None = None,
    initargs: tuple[Any, ...] = (),
) -> None:
    """Discover records, plan outputs, run the batch and exit with its code."""
    from ecgfill.batch import plan_jobs, run_batch
    from ecgfill.io import discover

    if fmt not in {"wfdb", "edf"}:
        raise UsageError(f"--format must be wfdb or edf, not {fmt!r}")
    items = discover.find_records(inputs, exclude=output_dir)
    _check_not_an_input_dir(items, output_dir)
    _check_output_dir(output_dir)
    if shard:
        good = [i for i in items if not i.error]
        items = [i for i in items if i.error] + discover.shard(good, *shard)
    jobs, decided = plan_jobs(items, output_dir, fmt=fmt, overwrite=overwrite)
    summary = run_batch(
        jobs, decided, process, workers=workers, json_output=json_output, label=label,
        initializer=initializer, initargs=initargs,
    )
    raise typer.Exit(summary.exit_code)


def _check_not_an_input_dir(items: list[Any], output_dir: Path) -> None:
    """Refuse an output directory that is an input directory (the folder given, or the one an
    input file lies in): outputs would replace the originals (with ``--overwrite``) or mix
    with them."""
    target = output_dir.resolve()
    for item in items:
        if item.root.resolve() == target:
            raise UsageError(f"{output_dir}: output directory is the input directory "
                             f"{item.root}; choose another")


def _check_output_dir(output_dir: Path) -> None:
    if output_dir.exists() and not output_dir.is_dir():
        raise UsageError(f"{output_dir}: output path exists and is not a directory")
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EcgfillError(f"{output_dir}: cannot create output directory ({exc.strerror})") from None
    if not os.access(output_dir, os.W_OK):
        raise EcgfillError(f"{output_dir}: output directory is not writable")


def parse_leads(text: str | None, option: str = "--leads") -> tuple[str, ...] | None:
    """``--leads I,II,V4`` into canonical names (aliases accepted); UsageError names ``option``."""
    if text is None:
        return None
    from ecgfill.api import lead_names

    return lead_names(text, option)


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """``--shard i/N`` (1-based) into (i, N)."""
    if text is None:
        return None
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise UsageError(f"--shard must look like 2/8, not {text!r}") from None
    if not 1 <= index <= count:
        raise UsageError(f"--shard {text}: the index must be between 1 and {count}")
    return index, count
