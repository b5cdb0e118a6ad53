"""The one place for terminal output: human text on stderr, JSON on stdout, progress on a TTY."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console

# Exit codes shared by every command.
EXIT_OK = 0
EXIT_FAILED = 1  # at least one record failed; the batch went on
EXIT_USAGE = 2  # bad arguments or options

stderr = Console(stderr=True, highlight=False, soft_wrap=True)


def error(message: str) -> None:
    """One clear error line on stderr."""
    stderr.print(f"[bold red]error:[/] {message}", markup=True, highlight=False)


def warn(message: str) -> None:
    stderr.print(f"[yellow]warning:[/] {message}", markup=True, highlight=False)


def info(message: str) -> None:
    stderr.print(message, markup=False, highlight=False)


def emit_json(obj: dict[str, Any]) -> None:
    """One JSON object per line on stdout, flushed so pipelines see it at once."""
    sys.stdout.write(json.dumps(obj, allow_nan=False, default=str) + "\n")
    sys.stdout.flush()


def progress_enabled() -> bool:
    return stderr.is_terminal


@contextmanager
def progress(
    description: str, total: int | None, *, fields: tuple[str, ...] = (), transient: bool = False
) -> Iterator[Any]:
    """A rich progress bar on a terminal; a no-op elsewhere. Yields ``advance(n=1, **fields)``,
    where ``fields`` are extra labelled values shown beside the bar (e.g. ``loss``)."""
    if not progress_enabled():
        yield lambda n=1, **values: None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    extra = [TextColumn(f"{name} {{task.fields[{name}]}}") for name in fields]
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), *extra,
               TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=stderr, transient=transient) as bar:
        task = bar.add_task(description, total=total, **dict.fromkeys(fields, "-"))
        yield lambda n=1, **values: bar.update(task, advance=n, **values)
