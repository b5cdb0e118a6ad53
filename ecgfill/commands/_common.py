"""What every command shares: turning library errors into one line and an exit code."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import typer

from ecgfill.console import EXIT_FAILED, EXIT_USAGE, error
from ecgfill.errors import EcgfillError, UsageError

F = TypeVar("F", bound=Callable[..., Any])


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
