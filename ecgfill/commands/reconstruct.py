"""`ecgfill reconstruct`."""

from __future__ import annotations

from ecgfill.commands._common import not_available

NAME = "reconstruct"
HELP = "Reconstruct complete 12-lead WFDB records from reduced-lead recordings."


def command() -> None:
    not_available(NAME, 5)
