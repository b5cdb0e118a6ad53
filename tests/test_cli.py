"""The CLI shell: help, version, fast start-up, completions."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from ecgfill import __version__
from ecgfill.cli import app
from ecgfill.completions import SHELLS, completion_script

ROOT = Path(__file__).resolve().parents[1]


def test_help_lists_every_command() -> None:
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    for name in ("preprocess", "train", "reconstruct", "evaluate", "derive-limb", "info"):
        assert name in result.stdout


def test_version() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.stdout.strip() == f"ecgfill {__version__}"


def test_help_does_not_import_heavy_libraries() -> None:
    code = (
        "import sys; from ecgfill.cli import app; "
        "heavy = [m for m in ('torch', 'onnxruntime', 'scipy', 'wfdb', 'pyedflib', 'matplotlib', 'pandas') "
        "if m in sys.modules]; print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_completions_are_current() -> None:
    for shell, filename in SHELLS.items():
        shipped = (ROOT / "completions" / filename).read_text()
        assert shipped == completion_script(shell).rstrip("\n") + "\n", (
            f"completions/{filename} is stale: run python -m ecgfill.completions completions"
        )
