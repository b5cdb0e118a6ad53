"""Lead algebra: the 12 standard leads, of which only 8 are independent.

Einthoven and Goldberger give every limb lead from any two of I, II, III:
III = II - I, aVR = -(I + II) / 2, aVL = I - II / 2, aVF = II - I / 2.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property

import numpy as np

STANDARD_LEADS: tuple[str, ...] = (
    "I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6",
)
LIMB_LEADS: tuple[str, ...] = STANDARD_LEADS[:6]
CHEST_LEADS: tuple[str, ...] = STANDARD_LEADS[6:]
INDEPENDENT_LEADS: tuple[str, ...] = ("I", "II", *CHEST_LEADS)
LEAD_INDEX: dict[str, int] = {name: i for i, name in enumerate(STANDARD_LEADS)}

# Each limb lead as coefficients (a, b) of a*I + b*II.
LIMB_FROM_I_II: dict[str, tuple[float, float]] = {
    "I": (1.0, 0.0),
    "II": (0.0, 1.0),
    "III": (-1.0, 1.0),
    "aVR": (-0.5, -0.5),
    "aVL": (1.0, -0.5),
    "aVF": (-0.5, 1.0),
}


def i_ii_from_limb(limb: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray] | None:
    """Recover (I, II) from any two limb leads given as float arrays; None if fewer than two.

    No two of the six limb leads are parallel on the hexaxial reference system, so any pair
    determines I and II exactly (I and II themselves are preferred, then III).
    """
    present = [n for n in ("I", "II", "III", "aVR", "aVL", "aVF") if limb.get(n) is not None]
    if len(present) < 2:
        return None
    first, second = present[:2]
    if (first, second) == ("I", "II"):
        return limb["I"], limb["II"]
    coeffs = np.array([LIMB_FROM_I_II[first], LIMB_FROM_I_II[second]])
    inverse = np.linalg.inv(coeffs)  # rows of (I, II) as combinations of (first, second)
    a, b = limb[first], limb[second]
    return inverse[0, 0] * a + inverse[0, 1] * b, inverse[1, 0] * a + inverse[1, 1] * b


def limb_lead(name: str, lead_i: np.ndarray, lead_ii: np.ndarray) -> np.ndarray:
    """One limb lead computed from I and II (float64 arithmetic, returned as float32)."""
    a, b = LIMB_FROM_I_II[name]
    return (a * lead_i.astype(np.float64) + b * lead_ii.astype(np.float64)).astype(np.float32)


def expand_independent(independent: np.ndarray) -> np.ndarray:
    """Map [..., 8, T] independent leads (I, II, V1-V6) to [..., 12, T] standard leads."""
    lead_i, lead_ii = independent[..., 0, :], independent[..., 1, :]
    limb = [a * lead_i + b * lead_ii for a, b in (LIMB_FROM_I_II[n] for n in LIMB_LEADS)]
    return np.concatenate([np.stack(limb, axis=-2), independent[..., 2:, :]], axis=-2)


# --------------------------------------------------------------------------------------------
# Lead plans: what a set of measured leads determines, and what a model must supply


def limb_coefficients(name: str) -> np.ndarray:
    """A lead as a row over the independent leads (I, II, V1-V6): limb leads by Einthoven and
    Goldberger, chest leads as themselves."""
    row = np.zeros(len(INDEPENDENT_LEADS))
    if name in LIMB_FROM_I_II:
        row[:2] = LIMB_FROM_I_II[name]
    else:
        row[INDEPENDENT_LEADS.index(name)] = 1.0
    return row


@dataclass(frozen=True)
class LeadPlan:
    """What a set of measured leads (any 1-12 of the standard leads) determines.

    Two limb leads fix the frontal plane (I and II exactly); one limb lead fixes one of its two
    degrees of freedom; each chest lead is itself. ``inputs`` are the measured quantities a
    model sees (I and II when the frontal plane is known, else the single limb lead, then the
    chest leads), ``known`` the independent leads they give exactly and ``predicted`` the
    independent leads a model must supply. :meth:`complete` turns measurements plus predictions
    into all 8 independent leads that reproduce every measured lead exactly (the predictions
    are projected onto the measured constraints), from which the limb leads follow.
    """

    measured: tuple[str, ...]

    @classmethod
    def of(cls, leads: Iterable[str]) -> LeadPlan:
        """The plan for measured ``leads`` (canonical names, any order); ValueError on unknown
        or repeated names or an empty set."""
        given = tuple(leads)
        unknown = [n for n in given if n not in LEAD_INDEX]
        if unknown:
            raise ValueError(f"unknown lead names: {', '.join(unknown)}")
        if len(set(given)) != len(given):
            raise ValueError(f"leads given twice in {','.join(given)}")
        if not given:
            raise ValueError("no standard leads measured")
        return cls(tuple(sorted(given, key=LEAD_INDEX.__getitem__)))

    @cached_property
    def limb(self) -> tuple[str, ...]:
        return tuple(n for n in self.measured if n in LIMB_FROM_I_II)

    @cached_property
    def chest(self) -> tuple[str, ...]:
        return tuple(n for n in self.measured if n in CHEST_LEADS)

    @cached_property
    def frontal_dof(self) -> int:
        """Degrees of freedom of the frontal plane that are measured (0, 1 or 2)."""
        return min(2, len(self.limb))

    @cached_property
    def inputs(self) -> tuple[str, ...]:
        """The measured quantities, one per degree of freedom, in standard order."""
        limb = ("I", "II") if self.frontal_dof == 2 else self.limb
        return (*limb, *self.chest)

    @cached_property
    def known(self) -> tuple[str, ...]:
        """Independent leads given exactly by the measurements."""
        return tuple(n for n in INDEPENDENT_LEADS if n in self.inputs)

    @cached_property
    def predicted(self) -> tuple[str, ...]:
        """Independent leads a model must supply (with one limb lead other than I or II
        measured, both I and II: their combination is then corrected to the measurement)."""
        return tuple(n for n in INDEPENDENT_LEADS if n not in self.known)

    @property
    def is_complete(self) -> bool:
        """All 8 independent leads measured: every lead follows without a model."""
        return not self.predicted

    @cached_property
    def key(self) -> str:
        """The plan's lead set as text, e.g. ``I,II,V4`` (six limb leads read as ``I,II``)."""
        return ",".join(self.inputs)

    @cached_property
    def derived_limb(self) -> tuple[str, ...]:
        """Limb leads not measured, derived from I and II."""
        return tuple(n for n in LIMB_LEADS if n not in self.measured)

    @property
    def derived_exactly(self) -> bool:
        """Whether the derived limb leads are functions of measured leads only."""
        return self.frontal_dof == 2

    def to_dict(self) -> dict[str, object]:
        """The plan as stored in model cards and reports."""
        return {"measured": list(self.measured), "inputs": list(self.inputs),
                "frontal_dof": self.frontal_dof, "known": list(self.known),
                "predicted": list(self.predicted), "derived_limb": list(self.derived_limb),
                "derived_exactly": self.derived_exactly}

    def constraints(self) -> np.ndarray:
        """``[len(inputs), 8]``: each measured quantity as a row over I, II, V1-V6 (read-only)."""
        return self._constraints

    @cached_property
    def _constraints(self) -> np.ndarray:
        a = np.stack([limb_coefficients(n) for n in self.inputs])
        a.flags.writeable = False
        return a

    @cached_property
    def lift(self) -> np.ndarray:
        """``[8, len(inputs)]``: the pseudo-inverse of :meth:`constraints`, which turns a misfit
        of the measured quantities into the least change of the 8 leads (read-only)."""
        lift = np.linalg.pinv(self._constraints)
        lift.flags.writeable = False
        return lift

    def can_feed(self, model_inputs: Iterable[str]) -> bool:
        """Whether a model taking ``model_inputs`` can be fed from these measurements (its limb
        inputs derivable, its chest inputs measured)."""
        other = LeadPlan.of(model_inputs)
        if other.frontal_dof > self.frontal_dof or not set(other.chest) <= set(self.chest):
            return False
        return self.frontal_dof == 2 or set(other.limb) <= set(self.limb)

    def complete(self, inputs: np.ndarray, predicted: Mapping[str, np.ndarray]) -> np.ndarray:
        """All 8 independent leads ``[..., 8, T]`` (float64) from the measured ``inputs``
        ``[..., len(self.inputs), T]`` and the model's ``predicted`` leads (a mapping holding at
        least :attr:`predicted`, each ``[..., T]``). Predictions are corrected by the least
        change that makes them reproduce every measured quantity, so measured leads and
        Einthoven/Goldberger hold exactly (to float rounding) for any combination of leads."""
        inputs = np.asarray(inputs, dtype=np.float64)
        estimate = np.zeros((*inputs.shape[:-2], len(INDEPENDENT_LEADS), inputs.shape[-1]))
        for k, name in enumerate(INDEPENDENT_LEADS):
            if name in predicted:
                estimate[..., k, :] = np.asarray(predicted[name], dtype=np.float64)
            elif name not in self.known:
                raise ValueError(f"no prediction for lead {name}")
        residual = inputs - self._constraints @ estimate
        return estimate + self.lift @ residual
