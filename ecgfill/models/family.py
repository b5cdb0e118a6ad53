"""The interface a model family implements: one module per family, declaring ``FAMILY``.

A family module (``ecgfill.models.<name>``) defines its config dataclass and a
:class:`ModelFamily` that says how to build its learned core for a lead plan's inputs and
outputs, the input-length multiple, whether the linear path starts at the ridge solution,
the latent size (stochastic families) and the weights of its extra loss terms. Adding a family
is adding one module and its name to :data:`FAMILIES`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ecgfill.errors import ModelError

FAMILIES: tuple[str, ...] = ("linear", "unet", "vae", "anyset")
ANY = "any"  # a card's input_leads when one model serves every lead set
LOSS_TERMS: tuple[str, ...] = ("physics", "kl")


def _none(config: Any) -> int:
    return 0


def pyramid_multiple(config: Any) -> int:
    """The input-length multiple of an encoder-decoder halving the length at each of
    ``config.channels`` levels but the first."""
    return 2 ** (len(config.channels) - 1)


@dataclass(frozen=True)
class ModelFamily:
    """What a family declares. ``build_core(config, n_inputs, n_outputs)`` gives the learned
    core (a torch module returning ``(correction, kl or None)``) or None for a purely linear
    family; ``loss_weights(config)`` maps extra loss terms (:data:`LOSS_TERMS`) to weights."""

    name: str
    config: type
    multiple: Callable[[Any], int]
    build_core: Callable[[Any, int, int], Any]
    ridge_init: Callable[[Any], bool]
    loss_weights: Callable[[Any], dict[str, float]]
    latent_channels: Callable[[Any], int] = _none
    any_subset: bool = False

    def __post_init__(self) -> None:
        unknown = set(self.loss_weights(self.config())) - set(LOSS_TERMS)
        if unknown:
            raise ValueError(f"family {self.name}: unknown loss terms {sorted(unknown)}")


def family(name: str) -> ModelFamily:
    """The :class:`ModelFamily` of ``name`` (imports torch)."""
    if name not in FAMILIES:
        raise ModelError(f"unknown architecture {name!r} (choose from {', '.join(FAMILIES)})")
    declared = importlib.import_module(f"ecgfill.models.{name}").FAMILY
    if not isinstance(declared, ModelFamily):
        raise ModelError(f"ecgfill.models.{name}.FAMILY is not a ModelFamily")
    return declared
