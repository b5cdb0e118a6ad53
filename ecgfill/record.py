"""The record type every part of ecgfill passes around."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, time
from typing import Literal

import numpy as np

from ecgfill.errors import RecordError
from ecgfill.leads import LEAD_INDEX, LIMB_LEADS, STANDARD_LEADS, i_ii_from_limb, limb_lead

Origin = Literal["measured", "derived", "reconstructed"]
Start = datetime | time | None  # when the recording began (a time alone when the file has no date)


@dataclass
class ECGRecord:
    """An ECG: ``signal`` is float32 ``[leads, samples]`` in mV, one canonical name per lead.

    ``origins`` says for each lead whether it was measured, derived by lead algebra or
    reconstructed by a model; ``other_channels`` names non-ECG channels the reader left out.
    ``start`` is when the recording began, as the file says (None when it does not).
    ``gains`` maps a lead to the ``(gain per mV, baseline)`` of the integers it was stored as
    (only where those integers fit 16 bits): writers store a *measured* lead with them, so its
    integers come back bit-exactly; any other lead is written at 1000/mV.
    """

    signal: np.ndarray
    fs: float
    leads: tuple[str, ...]
    origins: tuple[Origin, ...] = ()
    source: str | None = None
    comments: list[str] = field(default_factory=list)
    other_channels: tuple[str, ...] = ()
    warnings: list[str] = field(default_factory=list)
    model: str | None = None
    start: Start = None
    gains: dict[str, tuple[float, int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.signal = np.asarray(self.signal, dtype=np.float32)
        if self.signal.ndim != 2 or self.signal.shape[0] != len(self.leads):
            raise ValueError(f"signal shape {self.signal.shape} does not match {len(self.leads)} leads")
        if not self.origins:
            self.origins = ("measured",) * len(self.leads)
        self.leads, self.origins = tuple(self.leads), tuple(self.origins)

    @property
    def n_samples(self) -> int:
        return int(self.signal.shape[1])

    @property
    def seconds(self) -> float:
        return self.n_samples / self.fs

    def lead(self, name: str) -> np.ndarray:
        return self.signal[self.leads.index(name)]

    def leads_with(self, origin: Origin) -> list[str]:
        return [n for n, o in zip(self.leads, self.origins, strict=True) if o == origin]

    def select(self, names: list[str] | tuple[str, ...]) -> ECGRecord:
        """A record with only ``names`` (in that order)."""
        missing = [n for n in names if n not in self.leads]
        if missing:
            raise KeyError(f"leads not in record: {', '.join(missing)}")
        idx = [self.leads.index(n) for n in names]
        return replace(
            self,
            signal=self.signal[idx],
            leads=tuple(names),
            origins=tuple(self.origins[i] for i in idx),
            warnings=list(self.warnings),
            comments=list(self.comments),
        )

    def with_limb_leads(self) -> ECGRecord:
        """All six limb leads (missing ones derived from any two limb leads), in standard order.

        Leads already present keep their samples and origin untouched. Raises ValueError when
        fewer than two limb leads are present.
        """
        present = {n: self.lead(n) for n in LIMB_LEADS if n in self.leads}
        pair = i_ii_from_limb({k: v.astype(np.float64) for k, v in present.items()})
        if pair is None:
            raise ValueError("needs two limb leads (e.g. I and II) to derive the others")
        lead_i, lead_ii = pair
        rows: dict[str, tuple[np.ndarray, Origin]] = {}
        for name in LIMB_LEADS:
            if name in self.leads:
                rows[name] = (self.lead(name), self.origins[self.leads.index(name)])
            else:
                rows[name] = (limb_lead(name, lead_i, lead_ii), "derived")
        for name, origin in zip(self.leads, self.origins, strict=True):
            rows.setdefault(name, (self.lead(name), origin))
        return self._from_rows(rows)

    def in_standard_order(self) -> ECGRecord:
        """Leads sorted as I, II, III, aVR, aVL, aVF, V1-V6."""
        order = sorted(self.leads, key=LEAD_INDEX.__getitem__)
        return self.select(order)

    def is_complete(self) -> bool:
        return set(STANDARD_LEADS) <= set(self.leads)

    def _from_rows(self, rows: dict[str, tuple[np.ndarray, Origin]]) -> ECGRecord:
        names = sorted(rows, key=LEAD_INDEX.__getitem__)
        return replace(
            self,
            signal=np.stack([rows[n][0] for n in names]).astype(np.float32),
            leads=tuple(names),
            origins=tuple(rows[n][1] for n in names),
            warnings=list(self.warnings),
            comments=list(self.comments),
        )


def require_usable(record: ECGRecord, dead_ok: bool = False) -> None:
    """Refuse a single-sample record, and (unless ``dead_ok``) one with a lead that holds no
    finite sample. ``reconstruct`` passes ``dead_ok``: it serves a record with dead leads from
    the others (:func:`ecgfill.reconstruct.plan_record`) and refuses it only when none is left."""
    if record.n_samples < 2:
        raise RecordError(record.source or "?", "record has a single sample; nothing to process")
    if dead_ok:
        return
    for name, row in zip(record.leads, record.signal, strict=True):
        if not np.isfinite(row).any():
            raise RecordError(record.source or "?", f"lead {name} has no finite samples (all NaN)")
