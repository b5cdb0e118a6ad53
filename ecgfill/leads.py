"""Lead algebra: the 12 standard leads, of which only 8 are independent.

Einthoven and Goldberger give every limb lead from any two of I, II, III:
III = II - I, aVR = -(I + II) / 2, aVL = I - II / 2, aVF = II - I / 2.
"""

from __future__ import annotations

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


def limb_matrix() -> np.ndarray:
    """The [6, 2] matrix mapping (I, II) to the six limb leads in standard order."""
    return np.array([LIMB_FROM_I_II[name] for name in LIMB_LEADS], dtype=np.float64)


def expand_independent(independent: np.ndarray) -> np.ndarray:
    """Map [..., 8, T] independent leads (I, II, V1-V6) to [..., 12, T] standard leads."""
    lead_i, lead_ii = independent[..., 0, :], independent[..., 1, :]
    limb = [a * lead_i + b * lead_ii for a, b in (LIMB_FROM_I_II[n] for n in LIMB_LEADS)]
    return np.concatenate([np.stack(limb, axis=-2), independent[..., 2:, :]], axis=-2)
