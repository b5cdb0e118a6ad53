"""EDF+ writer (pyedflib), for viewers that need it.

EDF stores 16-bit integers: each lead gets a physical range from its own extremes, so the
quantisation step is range / 65535 (sub-µV for normal ECGs). pyedflib drops samples that do not
fill a whole data record (pyedflib #321), so the data-record length is chosen to divide the
signal length exactly, and the few samples of an awkward length are padded and reported.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ecgfill import __version__
from ecgfill.io.atomic import write_atomically
from ecgfill.io.wfdb_writer import provenance_lines
from ecgfill.record import ECGRecord

MAX_RECORD_BYTES = 61440  # EDF's recommended upper bound for one data record


def data_record_samples(n_samples: int, fs: float, n_leads: int) -> int:
    """Samples per data record: a divisor of ``n_samples`` (or fs) that keeps records small."""
    limit = max(1, MAX_RECORD_BYTES // (2 * n_leads))
    best = 1
    for k in range(1, int(math.isqrt(n_samples)) + 1):
        if n_samples % k == 0:
            for d in (k, n_samples // k):
                if d <= limit:
                    best = max(best, d)
    if best * 10 >= min(fs, limit):
        return best
    return int(min(fs, limit)) if float(fs).is_integer() else best


def write_edf(record: ECGRecord, base: str | Path) -> list[Path]:
    """Write ``base.edf`` (EDF+) atomically; returns its path."""
    target = Path(base).with_suffix(".edf")
    return write_atomically([target], [lambda p: _write(record, p)])


def _write(record: ECGRecord, path: Path) -> None:
    import warnings

    import pyedflib

    n = record.n_samples
    spr = data_record_samples(n, record.fs, len(record.leads))
    padded = math.ceil(n / spr) * spr
    signal = np.nan_to_num(record.signal.astype(np.float64))
    if padded != n:
        signal = np.pad(signal, ((0, 0), (0, padded - n)), mode="edge")
        record.warnings.append(f"EDF: padded {padded - n} samples to fill the last data record")
    with warnings.catch_warnings():  # pyedflib warns about every forced record duration
        warnings.simplefilter("ignore", UserWarning)
        writer = pyedflib.EdfWriter(str(path), len(record.leads), file_type=pyedflib.FILETYPE_EDFPLUS)
        try:
            writer.setDatarecordDuration(spr / record.fs)
            headers = []
            for name, row in zip(record.leads, signal, strict=True):
                lo, hi = float(row.min()), float(row.max())
                if hi - lo < 1e-3:
                    lo, hi = lo - 1.0, hi + 1.0
                headers.append({
                    "label": f"ECG {name}", "dimension": "mV", "sample_frequency": record.fs,
                    "physical_min": round(lo - 1e-3, 3), "physical_max": round(hi + 1e-3, 3),
                    "digital_min": -32768, "digital_max": 32767, "transducer": "", "prefilter": "",
                })
            writer.setSignalHeaders(headers)
            writer.setEquipment(f"ecgfill_{__version__}")
            writer.writeSamples(list(signal))
            for line in provenance_lines(record):
                writer.writeAnnotation(0, -1, line[:40])
        finally:
            writer.close()
