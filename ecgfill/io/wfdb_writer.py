"""WFDB writer: format 16, 1 µV resolution, byte-identical to ``wfdb.wrsamp`` but vectorised.

``wfdb.wrsamp(p_signal=...)`` picks a data-dependent gain per channel (wfdb-python #449) and spends
most of its time in pandas lookups; this writer fixes gain 1000/mV, baseline 0, and builds the
header and data in a few numpy operations.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ecgfill import __version__
from ecgfill.io.atomic import write_atomically
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


def header_text(record: ECGRecord, name: str, digital: np.ndarray) -> str:
    """The ``.hea`` text: record line, one line per signal, then provenance comments."""
    fs = record.fs
    fs_text = str(int(fs)) if float(fs).is_integer() else repr(float(fs))
    lines = [f"{name} {len(record.leads)} {fs_text} {digital.shape[0]}"]
    checksums = np.sum(digital, axis=0, dtype=np.int64) % 65536
    for ch, lead in enumerate(record.leads):
        lines.append(
            f"{name}.dat 16 {GAIN_PER_MV}(0)/mV 16 0 {int(digital[0, ch])} "
            f"{int(checksums[ch])} 0 {lead}"
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


def write_wfdb(record: ECGRecord, base: str | Path) -> list[Path]:
    """Write ``base.hea`` and ``base.dat`` atomically; returns their paths.

    Clipping notes are appended to ``record.warnings``.
    """
    base = Path(base)
    name = safe_record_name(base.name)
    base = base.with_name(name)
    digital, notes = to_digital(record)
    record.warnings.extend(notes)
    data = np.ascontiguousarray(digital).tobytes()
    header = header_text(record, name, digital)
    dat, hea = base.with_suffix(".dat"), base.with_suffix(".hea")
    return write_atomically(
        [dat, hea],
        [lambda p: p.write_bytes(data), lambda p: p.write_text(header, encoding="utf-8")],
    )
