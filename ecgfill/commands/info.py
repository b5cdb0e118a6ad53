"""`ecgfill info`: what a record holds, like WFDB's ``wfdbdesc``."""

from __future__ import annotations

from typing import Annotated

import typer

from ecgfill import console
from ecgfill.commands._common import JsonOutput, handle_errors
from ecgfill.errors import RecordError

NAME = "info"
HELP = (
    "Describe records: leads and their origins (measured, derived, reconstructed), rate, "
    "length, start time, gains, units, checksum status, unused channels and warnings."
)


@handle_errors
def command(
    records: Annotated[list[str], typer.Argument(
        help="Record files, directories (recursive), globs, or '-' for paths on stdin.")],
    json_output: JsonOutput = False,
) -> None:
    from ecgfill.api import describe_record
    from ecgfill.io.discover import find_records

    failed = 0
    for item in find_records(records):
        try:
            if item.error:
                raise RecordError(item.path, item.error)
            description = describe_record(item.path)
        except RecordError as exc:
            failed += 1
            console.error(f"{item.path}: {exc.problem}")
            if json_output:
                console.emit_json({"input": str(item.path), "status": "error",
                                   "error": exc.problem})
            continue
        console.info(render(description))
        if json_output:
            console.emit_json({"input": description["input"], "status": "ok", "error": None,
                               **{k: v for k, v in description.items() if k != "input"}})
    raise typer.Exit(console.EXIT_FAILED if failed else console.EXIT_OK)


def render(info: dict[str, object]) -> str:
    """The human description: a few lines, then one row per lead."""
    leads = info["leads"]
    lines = [
        str(info["input"]),
        f"  rate      {info['fs']:g} Hz, {info['n_samples']} samples ({info['seconds']:g} s)",
        f"  start     {info['start'] or 'not recorded'}",
        f"  checksums {info['checksums']}",
    ]
    if info["model"]:
        lines.append(f"  model     {info['model']}")
    rows = [("lead", "origin", "label", "gain", "baseline", "units", "storage")]
    rows += [(str(x["lead"]), str(x["origin"]), str(x["label"]), _number(x["gain"]),
              _number(x["baseline"]), str(x["units"]), str(x["storage"])) for x in leads]
    widths = [max(len(row[k]) for row in rows) for k in range(len(rows[0]))]
    lines += ["  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
              for row in rows]
    if info["unused_channels"]:
        lines.append(f"  unused channels: {', '.join(map(str, info['unused_channels']))}")
    lines += [f"  warning: {w}" for w in info["warnings"]]
    return "\n".join(lines)


def _number(value: object) -> str:
    if value is None:
        return "-"
    number = float(value)  # type: ignore[arg-type]
    return str(int(number)) if number.is_integer() else f"{number:.10g}"
