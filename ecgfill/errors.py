"""Exceptions that carry one clear, user-facing line."""

from __future__ import annotations


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
    """Bad command-line arguments (exit code 2)."""
