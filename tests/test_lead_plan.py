"""Lead plans over every subset of the 12 standard leads: measured leads exact, limb identities
within float rounding, a model asked for exactly what is missing."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from ecgfill.leads import (
    CHEST_LEADS,
    INDEPENDENT_LEADS,
    LIMB_LEADS,
    STANDARD_LEADS,
    LeadPlan,
    expand_independent,
)

ALL_SUBSETS = [c for k in range(1, 13) for c in itertools.combinations(STANDARD_LEADS, k)]


def _truth(seed: int = 0, length: int = 64) -> np.ndarray:
    """A consistent 12-lead signal [12, T] (float32, as records hold it)."""
    rng = np.random.default_rng(seed)
    independent = rng.standard_normal((8, length))
    return expand_independent(independent).astype(np.float32)


def test_there_are_4095_subsets() -> None:
    assert len(ALL_SUBSETS) == 4095


def test_every_subset_completes_exactly() -> None:
    """For every subset: the 12 leads built from the measurements and an (arbitrary, wrong)
    prediction reproduce each measured lead and satisfy Einthoven/Goldberger to rounding."""
    truth = _truth()
    rng = np.random.default_rng(1)
    for subset in ALL_SUBSETS:
        plan = LeadPlan.of(subset)
        inputs = np.stack([truth[STANDARD_LEADS.index(n)] for n in plan.inputs])
        if plan.frontal_dof == 2:  # I and II as the record derives them from its limb leads
            assert plan.inputs[:2] == ("I", "II")
        guess = {n: rng.standard_normal(truth.shape[1]) for n in plan.predicted}
        independent = plan.complete(inputs, guess)
        full = expand_independent(independent)
        for name in subset:
            k = STANDARD_LEADS.index(name)
            np.testing.assert_allclose(full[k], truth[k], atol=1e-5, err_msg=f"{subset}: {name}")
        iii, avr, avl, avf = (full[STANDARD_LEADS.index(n)] for n in ("III", "aVR", "aVL", "aVF"))
        np.testing.assert_allclose(iii, full[1] - full[0], atol=1e-9)
        np.testing.assert_allclose(avr + avl + avf, 0.0, atol=1e-9)


@pytest.mark.parametrize("subset", ALL_SUBSETS[::7])
def test_plan_partitions_the_independent_leads(subset: tuple[str, ...]) -> None:
    plan = LeadPlan.of(subset)
    assert set(plan.known) | set(plan.predicted) == set(INDEPENDENT_LEADS)
    assert not set(plan.known) & set(plan.predicted)
    limb = [n for n in subset if n in LIMB_LEADS]
    assert plan.frontal_dof == min(2, len(limb))
    assert len(plan.inputs) == plan.frontal_dof + len([n for n in subset if n in CHEST_LEADS])
    assert plan.is_complete == (plan.frontal_dof == 2 and set(CHEST_LEADS) <= set(subset))


def test_single_limb_lead_predicts_one_frontal_degree_of_freedom() -> None:
    plan = LeadPlan.of(("III", "V4"))
    assert plan.inputs == ("III", "V4")
    assert plan.predicted == ("I", "II", "V1", "V2", "V3", "V5", "V6")
    inputs = np.array([[0.3, -0.2], [1.0, 2.0]])
    out = plan.complete(inputs, {n: np.zeros(2) for n in plan.predicted})
    np.testing.assert_allclose(out[1] - out[0], inputs[0])  # II - I is the measured III
    np.testing.assert_allclose(out[0] + out[1], 0.0, atol=1e-12)  # free direction untouched
    np.testing.assert_array_equal(out[INDEPENDENT_LEADS.index("V4")], inputs[1])


def test_six_limb_leads_are_the_frontal_plane() -> None:
    plan = LeadPlan.of(LIMB_LEADS)
    assert plan.key == "I,II"
    assert plan.derived_exactly and not plan.derived_limb
    assert LeadPlan.of(("aVF", "aVL")).key == "I,II"


def test_can_feed() -> None:
    plan = LeadPlan.of(("III", "aVF", "V1", "V4"))
    assert plan.can_feed(("I", "II", "V4"))
    assert plan.can_feed(("I",))
    assert not plan.can_feed(("I", "II", "V3"))
    single = LeadPlan.of(("III", "V4"))
    assert not single.can_feed(("I",))
    assert single.can_feed(("III",))


@pytest.mark.parametrize("bad", [(), ("I", "I"), ("X",)])
def test_bad_lead_sets(bad: tuple[str, ...]) -> None:
    with pytest.raises(ValueError):
        LeadPlan.of(bad)
