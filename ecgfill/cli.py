"""The ``ecgfill`` command line: a thin shell over the library, one module per command."""

from __future__ import annotations

import typer

from ecgfill import __version__
from ecgfill.commands import (
    derive_limb,
    evaluate,
    info,
    models,
    plot,
    preprocess,
    reconstruct,
    train,
)

app = typer.Typer(
    name="ecgfill",
    help="Reconstruct complete 12-lead ECGs from reduced-lead recordings.\n\n"
    "Exit codes: 0 all records ok, 1 some records failed (the batch always goes on), "
    "2 usage error.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)

for module in (preprocess, train, reconstruct, evaluate, plot, derive_limb, info, models):
    app.command(module.NAME, help=module.HELP)(module.command)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"ecgfill {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Reconstruct complete 12-lead ECGs from reduced-lead recordings."""


def main() -> None:
    app(prog_name="ecgfill")
