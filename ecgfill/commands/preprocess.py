"""`ecgfill preprocess`."""

from __future__ import annotations

from ecgfill.commands._common import not_available

NAME = "preprocess"
HELP = "Turn folders of ECG records into a training dataset (signals.npy + manifest)."


def command() -> None:
    not_available(NAME, 3)
