"""`ecgfill train`."""

from __future__ import annotations

from ecgfill.commands._common import not_available

NAME = "train"
HELP = "Train a reconstruction model (linear, unet, vae) on a preprocessed dataset."


def command() -> None:
    not_available(NAME, 4)
