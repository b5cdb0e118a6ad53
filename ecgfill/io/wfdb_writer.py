"""WFDB writer: format 16, 1 µV resolution, byte-identical to ``wfdb.wrsamp`` but vectorised.

``wfdb.wrsamp(p_signal=...)`` picks a data-dependent gain per channel (wfdb-python #449) and spends
most of its time in pandas lookups; this writer fixes gain 1000/mV, baseline 0, and builds the
header and data in a few numpy operations.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from ecgfill import __version__
from ecgfill.io.atomic import AtomicWriter
from ecgfill.io.channels import provenance_comments
from ecgfill.record import ECGRecord

GAIN_PER_MV = 1000  # 1 digital unit = 1 µV
DIGITAL_MAX = 32767
INVALID = -32768  # WFDB's invalid-sample value for format 16
_NAME_OK = re.compile(r"^[-\w]+$")


def safe_record_name(name: str) -> str:
    """A record name wfdb accepts (``[-\\w]+``): other characters become underscores."""
    return name if _NAME_OK.match(name) else re.sub(r"[^-\w]", "_", name) or "record"


def to_digital(record: ECGRecord) -> tuple[np.ndarray, list[str]]:
    """[samples, leads] int16 at 1 µV; out-of-range values are clipped and reported."""
    scaled = record.signal.astype(np.float64) * GAIN_PER_MV
    finite = np.isfinite(scaled)
    notes = []
    over = finite & (np.abs(scaled) > DIGITAL_MAX)
    for ch in np.flatnonzero(over.any(axis=1)):
        count = int(over[ch].sum())
        notes.append(f"lead {record.leads[ch]}: {count} samples beyond ±32.767 mV clipped")
    digital = np.clip(np.rint(np.where(finite, scaled, 0.0)), -DIGITAL_MAX, DIGITAL_MAX)
    digital = np.where(finite, digital, INVALID).astype("<i2")
    return digital.T, notes


def header_text(
    record: ECGRecord, name: str, n_samples: int, first: np.ndarray, checksums: np.ndarray
) -> str:
    """The ``.hea`` text: record line, one line per signal, then provenance comments."""
    fs = record.fs
    fs_text = str(int(fs)) if float(fs).is_integer() else repr(float(fs))
    lines = [f"{name} {len(record.leads)} {fs_text} {n_samples}"]
    for ch, lead in enumerate(record.leads):
        lines.append(
            f"{name}.dat 16 {GAIN_PER_MV}(0)/mV 16 0 {int(first[ch])} {int(checksums[ch])} 0 {lead}"
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
        self._n = 0
        self.base.parent.mkdir(parents=True, exist_ok=True)
        self._data = open(self._temps[0], "wb")  # noqa: SIM115 (closed in close/abort)

    def write(self, chunk: ECGRecord) -> None:
        """Append a chunk; its leads and metadata must match the first chunk's."""
        if self.template is None:
            self.template = chunk
        elif chunk.leads != self.template.leads:
            raise ValueError("chunk leads differ from the first chunk's")
        digital, notes = to_digital(chunk)
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
        text = header_text(self.template, self.base.name, self._n, self._first, self._sums % 65536)
        self._temps[1].write_text(text, encoding="utf-8")
        for temp, target in zip(self._temps, self.paths, strict=True):
            os.replace(temp, target)

    def abort(self) -> None:
        self._data.close()
        for temp in self._temps:
            temp.unlink(missing_ok=True)
