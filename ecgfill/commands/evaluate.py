"""`ecgfill evaluate`."""

from __future__ import annotations

from ecgfill.commands._common import not_available

NAME = "evaluate"
HELP = "Score reconstructions against complete 12-lead references, honestly."


def command() -> None:
    not_available(NAME, 6)
