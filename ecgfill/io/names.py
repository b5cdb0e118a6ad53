"""Names: lead-name normalisation (the many spellings of a lead to its canonical name) and the
one parser of PTB-XL record names."""

from __future__ import annotations

import re
from collections.abc import Mapping
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


def map_channels(labels: list[str], channel_map: Mapping[str, str] | None) -> list[str]:
    """Channel labels with device names replaced by the standard leads ``channel_map`` assigns
    (``{"ECG1": "II"}``; keys matched case-insensitively, ignoring surrounding spaces)."""
    if not channel_map:
        return labels
    wanted = {k.strip().upper(): v for k, v in channel_map.items()}
    return [wanted.get(label.strip().upper(), label) for label in labels]


def parse_channel_map(text: str) -> dict[str, str]:
    """Parse ``"ECG1=II,ECG2=V5"`` into {channel: standard lead}; ValueError when malformed,
    when a target is not a standard lead or is given twice."""
    mapping: dict[str, str] = {}
    for part in (p for p in text.split(",") if p.strip()):
        channel, sep, lead = part.partition("=")
        found = normalize_lead_name(lead) if sep else None
        if not channel.strip() or found is None or found[1] < 0:
            raise ValueError(f"{part.strip()!r}: expected CHANNEL=LEAD with a standard lead")
        if found[0] in mapping.values():
            raise ValueError(f"lead {found[0]} assigned twice")
        mapping[channel.strip()] = found[0]
    if not mapping:
        raise ValueError("no CHANNEL=LEAD pairs given")
    return mapping


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
