"""WFDB writer: format 16, byte-identical to ``wfdb.wrsamp`` but vectorised.

``wfdb.wrsamp(p_signal=...)`` picks a data-dependent gain per channel (wfdb-python #449) and spends
most of its time in pandas lookups; this writer builds the header and data in a few numpy
operations. Measured leads keep the gain and baseline they were read with, so their integers are
the input's own; derived and reconstructed leads are written at 1000/mV (1 µV), baseline 0.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ecgfill import __version__
from ecgfill.io.atomic import AtomicWriter
from ecgfill.io.channels import provenance_comments
from ecgfill.io.times import wfdb_start_fields
from ecgfill.record import ECGRecord

GAIN_PER_MV = 1000  # 1 digital unit = 1 µV
DIGITAL_MAX = 32767
INVALID = -32768  # WFDB's invalid-sample value for format 16
_NAME_OK = re.compile(r"^[-\w]+$")


def safe_record_name(name: str) -> str:
    """A record name wfdb accepts (``[-\\w]+``): other characters become underscores."""
    return name if _NAME_OK.match(name) else re.sub(r"[^-\w]", "_", name) or "record"


@dataclass(frozen=True)
class Scales:
    """Per lead, the gain (digital units per mV) and baseline its integers are written with:
    a measured lead keeps the ones it was read with (``record.gains``), so its integers are the
    input's own; every other lead is written at 1000/mV, baseline 0."""

    gains: np.ndarray
    baselines: np.ndarray

    @classmethod
    def of(cls, record: ECGRecord) -> Scales:
        pairs = [record.gains.get(name, (GAIN_PER_MV, 0)) if origin == "measured"
                 else (GAIN_PER_MV, 0) for name, origin in zip(record.leads, record.origins,
                                                               strict=True)]
        return cls(np.array([g for g, _ in pairs], np.float64), np.array([b for _, b in pairs]))

    def limits_mv(self, ch: int) -> tuple[float, float]:
        """The physical range (mV) the integers of lead ``ch`` can hold."""
        return tuple(((-DIGITAL_MAX, DIGITAL_MAX) - self.baselines[ch]) / self.gains[ch])


def to_digital(record: ECGRecord, scales: Scales | None = None) -> tuple[np.ndarray, list[str]]:
    """[samples, leads] int16 (``scales``, default :meth:`Scales.of`); values out of range are
    clipped and reported, non-finite ones become WFDB's invalid value."""
    scales = scales or Scales.of(record)
    scaled = record.signal.astype(np.float64) * scales.gains[:, None]
    finite = np.isfinite(scaled)
    digital = np.rint(np.where(finite, scaled, 0.0)) + scales.baselines[:, None]
    notes = []
    over = finite & (np.abs(digital) > DIGITAL_MAX)
    for ch in np.flatnonzero(over.any(axis=1)):
        low, high = scales.limits_mv(ch)
        limits = f"±{high:.6g}" if low == -high else f"{low:.6g}..{high:.6g}"
        notes.append(f"lead {record.leads[ch]}: {int(over[ch].sum())} samples beyond "
                     f"{limits} mV clipped")
    digital = np.clip(digital, -DIGITAL_MAX, DIGITAL_MAX)
    digital = np.where(finite, digital, INVALID).astype("<i2")
    return digital.T, notes


def number_text(value: float) -> str:
    """A gain as a header writes it: ``1000``, ``4880``, ``200.5``."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def header_text(
    record: ECGRecord, name: str, n_samples: int, first: np.ndarray, checksums: np.ndarray,
    scales: Scales | None = None,
) -> str:
    """The ``.hea`` text: record line, one line per signal, then provenance comments."""
    scales = scales or Scales.of(record)
    fs = record.fs
    fs_text = str(int(fs)) if float(fs).is_integer() else repr(float(fs))
    lines = [f"{name} {len(record.leads)} {fs_text} {n_samples}{wfdb_start_fields(record.start)}"]
    for ch, lead in enumerate(record.leads):
        adc = f"{number_text(scales.gains[ch])}({int(scales.baselines[ch])})/mV"
        lines.append(
            f"{name}.dat 16 {adc} 16 0 {int(first[ch])} {int(checksums[ch])} 0 {lead}"
        )
    lines.extend("# " + c for c in provenance_lines(record) + list(record.comments))
    return "\n".join(lines) + "\n"


def provenance_lines(record: ECGRecord) -> list[str]:
    """Human and machine-readable provenance for the header comments."""
    groups = []
    for origin in ("measured", "derived", "reconstructed"):
        names = record.leads_with(origin)
        if names:
            groups.append(f"{origin} {','.join(names)}")
    summary = f"ecgfill {__version__}: " + "; ".join(groups)
    if record.model and record.leads_with("reconstructed"):
        summary += f" (model {record.model})"
    origins = dict(zip(record.leads, record.origins, strict=True))
    return [summary, *provenance_comments(origins, record.model)]


class WfdbWriter(AtomicWriter):
    """Writes a record chunk by chunk (bounded memory), atomically.

    Data go to a hidden temporary file; :meth:`close` writes the header (checksums and initial
    values accumulated over the chunks) and renames both files into place. Leaving the ``with``
    block on an exception removes the temporaries, so no partial record is ever visible.
    """

    def __init__(self, base: str | Path) -> None:
        base = Path(base)
        self.base = base.with_name(safe_record_name(base.name))
        self.paths = [self.base.with_suffix(".dat"), self.base.with_suffix(".hea")]
        self._temps = [p.with_name(f".{p.name}.tmp-{os.getpid()}") for p in self.paths]
        self.template: ECGRecord | None = None
        self._sums: np.ndarray | None = None
        self._first: np.ndarray | None = None
        self._scales: Scales | None = None
        self._n = 0
        self.base.parent.mkdir(parents=True, exist_ok=True)
        self._data = open(self._temps[0], "wb")  # noqa: SIM115 (closed in close/abort)

    def write(self, chunk: ECGRecord) -> None:
        """Append a chunk; its leads and metadata must match the first chunk's."""
        if self.template is None:
            self.template = chunk
            self._scales = Scales.of(chunk)
        elif chunk.leads != self.template.leads:
            raise ValueError("chunk leads differ from the first chunk's")
        digital, notes = to_digital(chunk, self._scales)
        self.template.warnings.extend(n for n in notes if n not in self.template.warnings)
        if self._first is None and len(digital):
            self._first = digital[0].copy()
        sums = np.sum(digital, axis=0, dtype=np.int64)
        self._sums = sums if self._sums is None else self._sums + sums
        self._n += digital.shape[0]
        self._data.write(np.ascontiguousarray(digital).tobytes())

    def close(self) -> None:
        if self.template is None or self._first is None:
            raise ValueError("no samples written")
        self._data.close()
        text = header_text(self.template, self.base.name, self._n, self._first, self._sums % 65536,
                           self._scales)
        self._temps[1].write_text(text, encoding="utf-8")
        for temp, target in zip(self._temps, self.paths, strict=True):
            os.replace(temp, target)

    def abort(self) -> None:
        self._data.close()
        for temp in self._temps:
            temp.unlink(missing_ok=True)
