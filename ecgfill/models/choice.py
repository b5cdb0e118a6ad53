"""``--model auto``: which installed model serves a record's measured leads best.

A dedicated model can serve a record when its inputs can be fed from the record's leads (its
chest leads measured, its limb leads measured or derivable); an any-subset model serves every
record. Each candidate's figure is its validation Pearson r over the leads the record lacks:
for a dedicated model, its card's per-lead figures on those leads; for an any-subset model, its
card's grid entry for the record's lead set (or, for a set outside the grid, the best entry of a
set the record contains: a lower bound, since the model then also uses the extra leads; with
none, its worst grid figure). The
best figure wins; figures within :data:`TIE` of the best count as a tie, broken by using more of
the measured leads, then a learned network over a linear one, then the figure itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ecgfill.errors import ModelError
from ecgfill.leads import LeadPlan
from ecgfill.models.family import ANY

TIE = 0.005


@dataclass(frozen=True)
class Choice:
    """The model chosen for a lead plan; ``model`` None when the plan needs none."""

    plan: LeadPlan
    model: str | None
    uses: tuple[str, ...] = ()
    figure: float | None = None
    lead_set: str | None = None  # the lead set the figure was measured on


def is_any_subset(card: Mapping[str, Any]) -> bool:
    return card.get("input_leads") == ANY


def family_of(card: Mapping[str, Any]) -> str:
    """The card's family for tie-breaks: an any-subset model without a core is linear."""
    if is_any_subset(card) and (card.get("config") or {}).get("core") == "none":
        return "linear"
    return str(card["arch"])


def lead_set_figures(card: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Validation figures per lead set a card carries: an any-subset card's grid, or a
    dedicated card's own set (``r`` and ``r_per_lead`` over its predicted leads)."""
    if is_any_subset(card):
        if card.get("lead_sets"):
            return dict(card["lead_sets"])
        per_set = (card.get("validation") or {}).get("r_per_lead_set") or {}  # training's own
        return {key: {"r": r} for key, r in per_set.items() if r is not None}
    validation = card.get("validation") or {}
    if validation.get("r") is None:
        return {}
    key = LeadPlan.of(card["input_leads"]).key
    return {key: {"r": validation["r"], "r_per_lead": validation.get("r_per_lead") or {}}}


def _mean_over(entry: Mapping[str, Any], leads: Iterable[str]) -> float | None:
    per_lead = entry.get("r_per_lead") or {}
    values = [per_lead[n] for n in leads if per_lead.get(n) is not None]
    if values:
        return float(np.mean(values))
    return None if entry.get("r") is None else float(entry["r"])


def figure_for(card: Mapping[str, Any], plan: LeadPlan) -> tuple[float, str, tuple[str, ...]] | None:
    """(validation r over the plan's missing leads, the lead set it was measured on, the
    record's leads the model would use), or None when the card cannot serve the plan."""
    figures = lead_set_figures(card)
    if is_any_subset(card):
        if plan.key in figures:
            r = _mean_over(figures[plan.key], plan.predicted)
            return (r, plan.key, plan.inputs) if r is not None else None
        fed = [(r, key) for key, entry in figures.items()
               if plan.can_feed(LeadPlan.of(key.split(",")).inputs)
               and (r := _mean_over(entry, plan.predicted)) is not None]
        if fed:
            r, key = max(fed)
            return r, key, plan.inputs
        # no grid set inside the record's: the model still serves it; its worst figure
        values = [(r, key) for key, entry in figures.items() if (r := entry.get("r")) is not None]
        return (min(values)[0], min(values)[1], plan.inputs) if values else None
    if not plan.can_feed(card["input_leads"]):
        return None
    own = LeadPlan.of(card["input_leads"])
    entry = figures.get(own.key)
    if entry is None:
        return None
    r = _mean_over(entry, plan.predicted)
    return (r, own.key, own.inputs) if r is not None else None


def choose(plan: LeadPlan, cards: Sequence[Mapping[str, Any]]) -> Choice:
    """The best installed model for ``plan`` (see the module docstring); ModelError when none
    serves it. A plan with all 8 independent leads needs no model."""
    if plan.is_complete:
        return Choice(plan, None)
    candidates = []
    for card in cards:
        found = figure_for(card, plan)
        if found is not None:
            candidates.append((found, card))
    if not candidates:
        served = sorted({ANY if is_any_subset(c) else ",".join(c["input_leads"]) for c in cards})
        raise ModelError(f"no installed model serves leads {','.join(plan.measured)} (models take: "
                         f"{'; '.join(served) or 'none installed'})")
    best = max(found[0] for found, _ in candidates)
    tied = [(found, card) for found, card in candidates if found[0] >= best - TIE]
    tied.sort(key=lambda item: (-len(item[0][2]), family_of(item[1]) == "linear",
                                -item[0][0], item[1]["name"]))
    (figure, lead_set, uses), card = tied[0]
    return Choice(plan, str(card["name"]), uses, round(figure, 4), lead_set)
