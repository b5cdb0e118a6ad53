"""Exceptions that carry one clear, user-facing line."""

from __future__ import annotations


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type name when it has none), for one-line
    errors built from third-party exceptions."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


class EcgfillError(Exception):
    """A problem the user can act on; its message is shown as one line, without traceback."""


class RecordError(EcgfillError):
    """A single record cannot be read, processed or written; the batch goes on."""

    def __init__(self, path: object, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class ModelError(EcgfillError):
    """A model file is missing, corrupt or does not match its card."""


class UsageError(EcgfillError):
    """Bad arguments: on the command line (exit code 2) or to an :mod:`ecgfill.api` function."""
