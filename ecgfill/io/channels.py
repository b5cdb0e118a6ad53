"""From raw channels (any labels, any units) to an ECGRecord with canonical leads in mV.

Shared by every reader, so lead naming, unit handling and per-lead checks behave the same for
WFDB and EDF.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from ecgfill.errors import RecordError
from ecgfill.io.names import normalize_lead_name
from ecgfill.leads import LEAD_INDEX
from ecgfill.quality import quality_warnings
from ecgfill.record import ECGRecord, Origin, Start

UNIT_TO_MV = {"mv": 1.0, "uv": 1e-3, "µv": 1e-3, "μv": 1e-3, "nv": 1e-6, "v": 1e3}
ORIGINS_TAG = "ecgfill-origins:"
MODEL_TAG = "ecgfill-model:"
MODEL_MORE_TAG = "ecgfill-model+:"  # the rest of a model name too long for one EDF+ annotation
PROVENANCE_TAGS = (ORIGINS_TAG, MODEL_TAG, MODEL_MORE_TAG, "ecgfill ")
_ORIGIN_ITEM = re.compile(r"(\w+)=(measured|derived|reconstructed)")


@dataclass
class ChannelSet:
    """Channels as a reader found them: physical values ``[channels, samples]`` in ``units``.

    ``adc`` gives, per channel, the ``(gain per unit, baseline)`` of 16-bit stored integers
    (physical = (integer - baseline) / gain), or None where the file's integers do not fit
    WFDB format 16 exactly; ``start`` is the recording's start.
    """

    signal: np.ndarray
    labels: list[str]
    units: list[str]
    fs: float
    adc: list[tuple[float, int] | None] | None = None
    start: Start = None


def unit_to_mv(path: str, label: str, unit: str) -> float:
    key = (unit or "mV").strip().lower()
    if key not in UNIT_TO_MV:
        raise RecordError(path, f"lead {label}: unknown unit {unit!r} (expected mV, uV or V)")
    return UNIT_TO_MV[key]


def build_record(channels: ChannelSet, path: str, comments: list[str]) -> ECGRecord:
    """Normalise lead names, convert units to mV and collect per-lead warnings.

    Channels that are not standard leads (respiration, Frank leads, markers) are kept out and
    listed in ``other_channels``. Duplicate leads are an error; inverted leads (``-aVR``) are
    flipped back.
    """
    rows: dict[str, np.ndarray] = {}
    gains: dict[str, tuple[float, int]] = {}
    others: list[str] = []
    adc = channels.adc or [None] * len(channels.labels)
    for row, label, unit, stored in zip(channels.signal, channels.labels, channels.units, adc,
                                        strict=True):
        found = normalize_lead_name(label)
        if found is None:
            others.append(label)
            continue
        name, sign = found
        if name in rows:
            raise RecordError(path, f"duplicated lead name {name} (channel {label!r})")
        scale = sign * unit_to_mv(path, label, unit)
        if stored is not None and sign > 0:  # an inverted lead's integers would need gain < 0
            gains[name] = (stored[0] / scale, stored[1])
        with np.errstate(over="ignore", invalid="ignore"):
            mv = (np.asarray(row, dtype=np.float64) * scale).astype(np.float32)
        if np.isinf(mv).any():
            raise RecordError(path, f"lead {label}: the header's calibration gives infinite values")
        rows[name] = mv
    if not rows:
        listed = ", ".join(channels.labels) or "none"
        raise RecordError(path, f"no standard ECG leads found (channels: {listed})")
    names = tuple(sorted(rows, key=LEAD_INDEX.__getitem__))
    signal = np.stack([rows[n] for n in names])
    origins, model, unlisted = _provenance(comments, names)
    warnings = quality_warnings(signal, names)
    if unlisted:
        warnings.append(f"ecgfill provenance gives no origin for {','.join(unlisted)} "
                        "(truncated?); taken as measured")
    if others:
        warnings.append(f"non-ECG channels left out: {', '.join(others)}")
    return ECGRecord(
        signal=signal,
        fs=channels.fs,
        leads=names,
        origins=origins,
        source=path,
        comments=[c for c in comments if not c.startswith(PROVENANCE_TAGS)],
        other_channels=tuple(others),
        warnings=warnings,
        model=model,
        start=channels.start,
        gains=gains,
    )


def provenance_comments(origins: dict[str, Origin], model: str | None) -> list[str]:
    """Header comment lines that let the reader restore lead origins and the model."""
    lines = [ORIGINS_TAG + " " + " ".join(f"{k}={v}" for k, v in origins.items())]
    if model:
        lines.append(f"{MODEL_TAG} {model}")
    return lines


def provenance_annotations(origins: dict[str, Origin], model: str | None, limit: int) -> list[str]:
    """The same as short texts of at most ``limit`` UTF-8 bytes (EDF+ annotations: 40): one per
    lead, and the model name cut into pieces (``ecgfill-model+:`` continues it)."""
    texts = [f"{ORIGINS_TAG} {k}={v}" for k, v in origins.items()]
    if model:
        tag = MODEL_TAG
        rest = model
        while rest:
            piece = _fit(rest, limit - len(tag) - 1)
            texts.append(f"{tag} {piece}")
            rest, tag = rest[len(piece):], MODEL_MORE_TAG
    return texts


def _fit(text: str, limit: int) -> str:
    """The longest start of ``text`` that is at most ``limit`` UTF-8 bytes (one character at
    least) and does not end in a space (readers may strip it)."""
    size = 0
    for end, char in enumerate(text):
        size += len(char.encode("utf-8"))
        if size > limit:
            cut = text[: max(1, end)]
            trimmed = cut.rstrip(" ")
            return trimmed if trimmed else cut
    return text


def _provenance(
    comments: list[str], names: tuple[str, ...]
) -> tuple[tuple[Origin, ...], str | None, list[str]]:
    """(origins, model, leads an ecgfill provenance leaves out) from comments or annotations."""
    found: dict[str, Origin] = {}
    model = None
    tagged = False
    for line in comments:
        if line.startswith(ORIGINS_TAG):
            tagged = True
            found.update(dict(_ORIGIN_ITEM.findall(line)))  # type: ignore[arg-type]
        elif line.startswith(MODEL_TAG):
            model = line[len(MODEL_TAG):].strip() or None
        elif line.startswith(MODEL_MORE_TAG) and model:
            model += line[len(MODEL_MORE_TAG) + 1:]
    unlisted = [n for n in names if n not in found] if tagged else []
    return tuple(found.get(n, "measured") for n in names), model, unlisted
