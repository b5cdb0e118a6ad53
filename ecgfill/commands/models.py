"""`ecgfill models`: the installed models and how well they do on which lead sets."""

from __future__ import annotations

from ecgfill import console
from ecgfill.commands._common import JsonOutput, handle_errors
from ecgfill.errors import EcgfillError

NAME = "models"
HELP = (
    "List the installed models: family, input leads ('any' for the any-subset models), rate, "
    "parameters, validation r (fold 9, 0.5 Hz high-passed) per lead set and whether the weight "
    "files match their SHA-256."
)
MAX_SETS_SHOWN = 4


@handle_errors
def command(json_output: JsonOutput = False) -> None:
    from rich.table import Table

    from ecgfill.api import list_models

    models = list_models()
    if json_output:
        for entry in models:
            console.emit_json(entry)
    table = Table(title="Installed models", title_justify="left")
    for column in ("name", "family", "inputs", "fs", "params", "val r (lead set)", "sha256"):
        table.add_column(column)
    for m in models:
        figures = sorted(m["validation_r"].items(), key=lambda kv: -(kv[1] or 0))  # type: ignore[union-attr]
        shown = ", ".join(f"{k} {v:.3f}" for k, v in figures[:MAX_SETS_SHOWN] if v is not None)
        if len(figures) > MAX_SETS_SHOWN:
            shown += f", … ({len(figures)} sets)"
        inputs = m["input_leads"] if isinstance(m["input_leads"], str) else ",".join(m["input_leads"])
        table.add_row(str(m["name"]), str(m["family"]), inputs, f"{m['fs']:g}",
                      f"{m['parameters']:,}" if m["parameters"] else "-", shown or "-",
                      {True: "ok", False: "MISMATCH", None: "-"}[m["sha256_ok"]])  # type: ignore[index]
    console.stderr.print(table)
    if any(m["sha256_ok"] is False for m in models):
        raise EcgfillError("a model's weight files do not match their SHA-256 (see table)")
