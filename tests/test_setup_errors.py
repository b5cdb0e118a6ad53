"""Setup errors fail early (issue 16 item 9): a backend or device that is not installed, or a model
that does not load, is one line with what to install and exit 2, before any record is read."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ecgfill.cli import app
from ecgfill.io import write_record
from ecgfill.synth import synthesize


@pytest.fixture
def records(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Two reduced-lead records that must never be opened."""
    src = tmp_path / "in"
    for name in ("a", "b"):
        write_record(synthesize(4.0, 100.0, seed=1).select(["I", "II", "V4"]), src / name)

    def opened(*args: object, **kwargs: object) -> None:
        raise AssertionError("a record was read before the setup was checked")

    import ecgfill.io

    monkeypatch.setattr(ecgfill.io, "open_record", opened)
    monkeypatch.setattr(ecgfill.io, "read_record", opened)
    return src


def no_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` raises ImportError


def cpu_only_onnxruntime(monkeypatch: pytest.MonkeyPatch) -> None:
    import onnxruntime

    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: ["CPUExecutionProvider"])


def no_cuda_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def invoke(*args: str) -> tuple[int, list[str], str]:
    result = CliRunner().invoke(app, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stderr.splitlines(), result.stdout


@pytest.mark.parametrize(
    ("environment", "options", "hint"),
    [
        (no_torch, ["--backend", "torch"], r"pip install torch"),
        (no_torch, ["--backend", "torch", "--model", "linear-i-ii-v4"], r"pip install torch"),
        (cpu_only_onnxruntime, ["--device", "cuda"], r"pip install onnxruntime-gpu"),
        (cpu_only_onnxruntime, ["--device", "cuda", "--workers", "2"], r"onnxruntime-gpu"),
        (no_cuda_torch, ["--backend", "torch", "--device", "cuda"], r"PyTorch sees no CUDA device"),
    ],
)
def test_reconstruct_setup_errors_exit_2_before_reading(
    models_env: Path, records: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    environment: object, options: list[str], hint: str,
) -> None:
    environment(monkeypatch)  # type: ignore[operator]
    code, stderr, stdout = invoke("reconstruct", str(records), str(tmp_path / "out"), "--json",
                                  *options)
    assert code == 2
    assert len(stderr) == 1 and stderr[0].startswith("error: --") and hint in stderr[0], stderr
    assert stdout == "" and not (tmp_path / "out").exists()


def test_auto_fails_early_when_no_installed_model_loads(
    models_env: Path, records: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Installed cards without weights for the chosen backend: one line, exit 2."""
    real_is_file = Path.is_file
    monkeypatch.setattr(Path, "is_file", lambda p: p.suffix != ".pt" and real_is_file(p))
    code, stderr, _ = invoke("reconstruct", str(records), str(tmp_path / "out"),
                             "--backend", "torch")
    assert code == 2 and len(stderr) == 1
    assert stderr[0].startswith("error: --model auto: no installed model loads with --backend torch")


def test_evaluate_without_torch_is_one_usage_line(
    models_env: Path, records: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    no_torch(monkeypatch)
    code, stderr, _ = invoke("evaluate", str(records), "--model", "linear-i-ii-v4",
                             "--backend", "torch")
    assert code == 2
    assert len(stderr) == 1 and "pip install torch" in stderr[0], stderr
