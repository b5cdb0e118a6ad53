"""What a dedicated network sees and predicts, given the leads a record measures.

Of the 12 leads only I, II and V1-V6 are independent: a network takes I and II (solved from
two or more limb leads) or its single limb lead, plus the chest leads, and predicts exactly the
independent leads those do not give.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from ecgfill.errors import ModelError
from ecgfill.leads import CHEST_LEADS, INDEPENDENT_LEADS, LEAD_INDEX, LIMB_FROM_I_II, LIMB_LEADS


def check_input_leads(input_leads: Iterable[str]) -> tuple[str, ...]:
    """Canonical, distinct input leads that leave something to predict; ModelError otherwise."""
    leads = tuple(input_leads)
    unknown = [n for n in leads if n not in LEAD_INDEX]
    if unknown:
        raise ModelError(f"unknown lead names: {', '.join(unknown)}")
    if len(set(leads)) != len(leads) or not leads:
        raise ModelError(f"input leads must be distinct and non-empty, got {','.join(leads)}")
    if not output_leads_for(leads):
        raise ModelError(f"input leads {','.join(leads)} already give all 12 leads")
    return leads


def network_input_leads(input_leads: Iterable[str]) -> tuple[str, ...]:
    """The leads the network sees: I and II (solved) when two or more limb leads are given,
    the single limb lead otherwise, then the chest leads, in standard order."""
    leads = set(input_leads)
    limb = [n for n in LIMB_LEADS if n in leads]
    chest = [n for n in CHEST_LEADS if n in leads]
    return tuple((["I", "II"] if len(limb) >= 2 else limb) + chest)


def output_leads_for(input_leads: Iterable[str]) -> tuple[str, ...]:
    """The independent leads (I, II, V1-V6) a model with these inputs must predict."""
    known = set(network_input_leads(input_leads))
    return tuple(n for n in INDEPENDENT_LEADS if n not in known)


def input_transform(input_leads: Iterable[str]) -> np.ndarray:
    """The [n_network_inputs, n_inputs] matrix mapping the given leads to the network's leads.

    I and II are solved by least squares from all given limb leads (exact for consistent
    leads, since any two distinct limb leads determine I and II).
    """
    given = tuple(input_leads)
    net = network_input_leads(given)
    matrix = np.zeros((len(net), len(given)), dtype=np.float64)
    limb_given = [n for n in given if n in LIMB_LEADS]
    solved = len(limb_given) >= 2
    if solved:
        coeffs = np.array([LIMB_FROM_I_II[n] for n in limb_given])  # [k, 2]: lead = a*I + b*II
        solve = np.linalg.pinv(coeffs)  # [2, k]: rows give I and II
        for col, name in enumerate(limb_given):
            matrix[:2, given.index(name)] = solve[:, col]
    for row, name in enumerate(net):
        if not (solved and row < 2):
            matrix[row, given.index(name)] = 1.0
    return matrix

