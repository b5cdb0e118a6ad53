"""`ecgfill derive-limb`."""

from __future__ import annotations

from pathlib import Path

import typer

from ecgfill.commands._common import handle_errors

NAME = "derive-limb"
HELP = (
    "Derive the missing limb leads (III, aVR, aVL, aVF ...) exactly from two of I, II, III and "
    "write each record as WFDB; chest leads pass through as measured."
)


@handle_errors
def command(
    inputs: list[str] = typer.Argument(
        ..., help="Record files, directories (recursive), globs, or '-' for paths on stdin."
    ),
    output_dir: Path = typer.Argument(..., help="Output directory; mirrors the input tree."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Redo records whose output exists."),
    output_format: str = typer.Option("wfdb", "--format", help="Output format: wfdb or edf."),
    workers: int = typer.Option(1, "--workers", "-j", min=1, help="Parallel worker processes."),
    json_output: bool = typer.Option(False, "--json", help="One JSON object per record on stdout."),
) -> None:
    from ecgfill.api import derive_limb_job
    from ecgfill.commands._batch import run_file_batch

    run_file_batch(
        inputs, output_dir, derive_limb_job, fmt=output_format, overwrite=overwrite,
        workers=workers, json_output=json_output, label="Deriving limb leads",
    )
