"""`ecgfill plot`, and the hook behind `ecgfill reconstruct --plot`."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import typer

from ecgfill.commands._common import handle_errors

NAME = "plot"
HELP = (
    "Draw records (reconstructed or not) as the standard 12-lead printout on ECG paper "
    "(3 x 4 grid + lead II rhythm strip, 25 mm/s, 10 mm/mV), one PNG per record; reconstructed "
    "leads are marked and their prediction band shaded when <name>_lower/_upper exist. Needs "
    "matplotlib."
)


@handle_errors
def command(
    inputs: list[str] = typer.Argument(..., help="Record files, directories (recursive) or globs."),
    output_dir: Path = typer.Argument(..., help="Folder for the PNG files (<record>.png)."),
    start: float = typer.Option(0.0, "--start", min=0.0, help="Window start in seconds."),
    seconds: float = typer.Option(10.0, "--seconds", min=0.1, help="Window length in seconds."),
) -> None:
    from ecgfill import console
    from ecgfill.errors import EcgfillError
    from ecgfill.io import discover
    from ecgfill.plot import is_band_record, plot_record

    _need_matplotlib()
    items = [i for i in discover.find_records(inputs, exclude=output_dir)
             if i.error or not is_band_record(i.path)]
    failed = 0
    for item in items:
        if item.error:
            console.error(f"{item.path}: {item.error}")
            failed += 1
            continue
        try:
            png = plot_record(item.path, output_dir, start, seconds)
        except EcgfillError as exc:
            console.error(str(exc))
            failed += 1
            continue
        console.info(f"wrote {png}")
    if failed or not items:
        raise typer.Exit(console.EXIT_FAILED)


def _need_matplotlib() -> None:
    from ecgfill.errors import UsageError

    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise UsageError("plotting needs matplotlib (pip install 'ecgfill[plot]')") from None


def with_plot(plot_dir: Path | None, process: Callable[..., Any]) -> Callable[..., Any]:
    """``process`` (a batch job function), drawing each record it writes into ``plot_dir``."""
    if plot_dir is None:
        return process
    _need_matplotlib()
    return partial(_process_and_plot, plot_dir, process)


def _process_and_plot(plot_dir: Path, process: Callable[..., Any], job: Any) -> Any:
    from ecgfill.errors import EcgfillError
    from ecgfill.plot import plot_record

    outcome = process(job)
    if outcome.status == "ok" and outcome.output:
        base = Path(outcome.output)
        written = [p for p in (base.with_name(base.name + ".hea"),
                               base.with_name(base.name + ".edf")) if p.is_file()]
        try:
            if written:
                png = plot_record(written[0], plot_dir)
                outcome.details["plot"] = str(png)
        except EcgfillError as exc:
            outcome.warnings.append(f"plot not drawn: {exc}")
    return outcome
