"""What every command shares: the options several commands take (declared once here, the
same flag and help everywhere) and turning library errors into one line and an exit code."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer

from ecgfill.console import EXIT_FAILED, EXIT_USAGE, error
from ecgfill.errors import EcgfillError, UsageError

F = TypeVar("F", bound=Callable[..., Any])

JsonOutput = Annotated[bool, typer.Option(
    "--json", help="Print JSON on stdout (one object per record, model or run); human text "
    "stays on stderr.")]
Workers = Annotated[int, typer.Option("--workers", "-j", min=1, help="Parallel worker processes.")]
Device = Annotated[str, typer.Option("--device", help="cpu or cuda.")]
Backend = Annotated[str, typer.Option("--backend", help="onnx (CPU default) or torch.")]
HighBand = Annotated[bool, typer.Option(
    "--high-band/--no-high-band", help="At input rates above the model's (100 Hz), add the "
    "reconstructed leads' band above 47.5 Hz, up to 150 Hz, from the high-band model "
    "(highband-any); --no-high-band keeps the model's band only.")]


def check_backend(backend: str, device: str) -> None:
    """Refuse an unknown ``--backend`` or ``--device`` (UsageError, exit 2)."""
    if backend not in {"onnx", "torch"}:
        raise UsageError(f"--backend must be onnx or torch, not {backend!r}")
    if device not in {"cpu", "cuda"}:
        raise UsageError(f"--device must be cpu or cuda, not {device!r}")


def handle_errors(func: F) -> F:
    """Run a command body; EcgfillError becomes one line on stderr and exit 1 (2 for usage)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except UsageError as exc:
            error(str(exc))
            raise typer.Exit(EXIT_USAGE) from None
        except EcgfillError as exc:
            error(str(exc))
            raise typer.Exit(EXIT_FAILED) from None
        except KeyboardInterrupt as exc:  # Ctrl-C, or SIGINT/SIGTERM during a batch
            error("interrupted")
            raise typer.Exit(getattr(exc, "exit_code", 130)) from None

    return wrapper  # type: ignore[return-value]
