"""Shell completion scripts for bash, zsh and fish.

The scripts ask ``ecgfill`` itself for candidates at run time (click's completion protocol), so new
commands and options complete without regenerating them. Regenerate the files in ``completions/``
with ``python -m ecgfill.completions completions/``; a test fails when they are stale. The text
comes from typer's public ``typer.completion`` module, as its ``--show-completion`` prints it.
"""

from __future__ import annotations

import sys
from pathlib import Path

from typer.completion import get_completion_script

SHELLS = {"bash": "ecgfill.bash", "zsh": "_ecgfill", "fish": "ecgfill.fish"}


def completion_script(shell: str) -> str:
    """The completion script typer's ``--show-completion`` prints for ``shell``."""
    return get_completion_script(prog_name="ecgfill", complete_var="_ECGFILL_COMPLETE", shell=shell)


def write_all(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for shell, filename in SHELLS.items():
        path = directory / filename
        path.write_text(completion_script(shell).rstrip("\n") + "\n")
        paths.append(path)
    return paths


if __name__ == "__main__":
    for written in write_all(Path(sys.argv[1] if len(sys.argv) > 1 else "completions")):
        print(written)
