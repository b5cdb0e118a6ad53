"""Names: lead-name normalisation (the many spellings of a lead to its canonical name) and the
one parser of PTB-XL record names."""

from __future__ import annotations

import re
from pathlib import PurePath

from ecgfill.leads import STANDARD_LEADS

_CANONICAL = {name.upper(): name for name in STANDARD_LEADS}
_ALIASES = {
    "D1": "I", "D2": "II", "D3": "III", "DI": "I", "DII": "II", "DIII": "III",
    "LEADI": "I", "LEADII": "II", "LEADIII": "III",
    "MLI": "I", "MLII": "II", "MLIII": "III",
    "AVR": "aVR", "AVL": "aVL", "AVF": "aVF",
    **{f"C{k}": f"V{k}" for k in range(1, 7)},
}
_PTBXL_NAME = re.compile(r"(\d+)_[lh]r|HR(\d+)", re.IGNORECASE)
_RECORD_SUFFIXES = (".hea", ".dat", ".mat", ".edf", ".csv")
_PREFIX = re.compile(r"^(ECG|EKG|LEAD)[\s_\-:.]*", re.IGNORECASE)
_NOISE = re.compile(r"[\s_\-:.]+")


def normalize_lead_name(label: str) -> tuple[str, float] | None:
    """Canonical lead name and sign for a channel label, or None when it is not a standard lead.

    Handles case (``avr``, ``i``), ``ECG ``/``EKG `` prefixes, ``C1``-``C6`` and ``D1``-``D3``
    spellings, and inverted leads such as ``-aVR`` (sign -1).
    """
    text = label.strip()
    sign = 1.0
    if text.startswith("-") and len(text) > 1:
        sign, text = -1.0, text[1:]
    text = _PREFIX.sub("", text) if _PREFIX.sub("", text) else text
    if text.startswith("-") and len(text) > 1:
        sign, text = -sign, text[1:]
    key = _NOISE.sub("", text).upper()
    name = _CANONICAL.get(key) or _ALIASES.get(key)
    return (name, sign) if name else None


def parse_lead_list(text: str) -> tuple[str, ...]:
    """Parse ``"I,II,V4"`` (any alias) into canonical names; ValueError on unknown or repeated."""
    names: list[str] = []
    for part in (p for p in text.split(",") if p.strip()):
        found = normalize_lead_name(part)
        if found is None or found[1] < 0:
            raise ValueError(f"unknown lead name {part.strip()!r}")
        if found[0] in names:
            raise ValueError(f"lead {found[0]} given twice")
        names.append(found[0])
    if not names:
        raise ValueError("no leads given")
    return tuple(names)


def ptbxl_ecg_id(name: str | PurePath) -> int | None:
    """The PTB-XL ``ecg_id`` of a record name or path: ``00000/00001_lr``, ``00017_hr.hea``, or
    the Challenge form ``HR00042``; None for any other name (``mitdb/100`` is not record 100)."""
    stem = PurePath(str(name)).name
    for suffix in _RECORD_SUFFIXES:
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
    match = _PTBXL_NAME.fullmatch(stem)
    return int(match[1] or match[2]) if match else None
