"""EDF+ writer (pyedflib), for viewers that need it; streams chunk by chunk like the WFDB writer.

EDF stores 16-bit integers. Every lead gets the physical range ±32.767 mV over digital ±32767,
i.e. the same 1 µV resolution as the WFDB output, so chunks can be written before the whole
signal is known. pyedflib drops samples that do not fill a whole data record (pyedflib #321):
the writer buffers to whole data records and pads only the final one, and reports it.
"""

from __future__ import annotations

import math
import os
import warnings
from fractions import Fraction
from pathlib import Path

import numpy as np

from ecgfill import __version__
from ecgfill.io.atomic import AtomicWriter
from ecgfill.io.wfdb_writer import DIGITAL_MAX, GAIN_PER_MV, provenance_lines, to_digital
from ecgfill.record import ECGRecord

PHYSICAL_MAX_MV = DIGITAL_MAX / GAIN_PER_MV


MAX_RECORD_BYTES = 61440  # EDF's recommended upper bound for one data record
MAX_RECORD_SECONDS = 60.0  # pyedflib's bounds on a data record's duration
MIN_RECORD_SECONDS = 0.001
DURATION_TICKS_PER_SECOND = 100_000  # EDF headers store the duration in steps of 10 µs


def exact_record_unit(fs: float) -> int:
    """The fewest samples whose duration EDF stores exactly (a whole number of 10 µs steps), so
    the rate read back is ``fs`` itself; 1 when that would exceed a data record's limits."""
    rate = Fraction(fs).limit_denominator(10_000)
    unit = (rate / math.gcd(rate.numerator, rate.denominator * DURATION_TICKS_PER_SECOND)).numerator
    return unit if unit <= MAX_RECORD_SECONDS * fs else 1


def data_record_samples(n_samples: int | None, fs: float, n_leads: int) -> int:
    """Samples per data record: a multiple of :func:`exact_record_unit` that keeps records small
    (bytes and duration) and, when possible, divides ``n_samples`` so nothing needs padding;
    about one second of signal when the length is unknown or has no useful divisor."""
    unit = exact_record_unit(fs)
    lowest = max(unit, math.ceil(MIN_RECORD_SECONDS * fs / unit) * unit)
    limit = min(MAX_RECORD_BYTES // (2 * n_leads), math.floor(MAX_RECORD_SECONDS * fs))
    limit = max(lowest, limit // unit * unit)
    second = min(limit, max(lowest, round(fs / unit) * unit))
    if not n_samples:
        return second
    best = max(
        (d for k in range(1, math.isqrt(n_samples) + 1) if n_samples % k == 0
         for d in (k, n_samples // k) if d <= limit and d >= lowest and d % unit == 0),
        default=0,
    )
    return best if best * 10 >= second else second


class EdfWriter(AtomicWriter):
    """Writes an EDF+ file chunk by chunk to a temporary name, renamed on close."""

    def __init__(self, base: str | Path, n_samples: int | None = None) -> None:
        self.n_samples = n_samples
        self.paths = [Path(base).with_suffix(".edf")]
        self._temp = self.paths[0].with_name(f".{self.paths[0].name}.tmp-{os.getpid()}")
        self.template: ECGRecord | None = None
        self._writer = None
        self._pending: np.ndarray | None = None
        self._spr = 1

    def write(self, chunk: ECGRecord) -> None:
        digital, notes = to_digital(chunk)  # [samples, leads], 1 µV, clipped like WFDB
        if self.template is None:
            self.template = chunk
            self._open(chunk)
        self.template.warnings.extend(n for n in notes if n not in self.template.warnings)
        block = digital.T.astype(np.int32)
        self._pending = block if self._pending is None else np.concatenate([self._pending, block], 1)
        whole = (self._pending.shape[1] // self._spr) * self._spr
        if whole:
            self._write_block(self._pending[:, :whole])
            self._pending = self._pending[:, whole:]

    def _open(self, record: ECGRecord) -> None:
        import pyedflib

        fs = record.fs
        self._spr = data_record_samples(self.n_samples, fs, len(record.leads))
        self._temp.parent.mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings():  # pyedflib warns about every forced record duration
            warnings.simplefilter("ignore", UserWarning)
            writer = pyedflib.EdfWriter(str(self._temp), len(record.leads), pyedflib.FILETYPE_EDFPLUS)
            # pyedflib truncates duration * 1e5 (2.3 s became 2.29999 s): aim inside the step
            ticks = round(self._spr / fs * DURATION_TICKS_PER_SECOND)
            writer.setDatarecordDuration(
                min((ticks + 1e-4) / DURATION_TICKS_PER_SECOND, MAX_RECORD_SECONDS))
            writer.setSignalHeaders([
                {"label": f"ECG {name}", "dimension": "mV", "sample_frequency": fs,
                 "physical_min": -PHYSICAL_MAX_MV, "physical_max": PHYSICAL_MAX_MV,
                 "digital_min": -DIGITAL_MAX, "digital_max": DIGITAL_MAX,
                 "transducer": "", "prefilter": ""}
                for name in record.leads
            ])
            writer.setEquipment(f"ecgfill_{__version__}")
        self._writer = writer

    def _write_block(self, block: np.ndarray) -> None:
        self._writer.writeSamples([np.ascontiguousarray(row) for row in block], digital=True)

    def close(self) -> None:
        if self.template is None or self._writer is None:
            raise ValueError("no samples written")
        if self._pending is not None and self._pending.shape[1]:
            pad = self._spr - self._pending.shape[1]
            self.template.warnings.append(f"EDF: padded {pad} samples to fill the last data record")
            self._write_block(np.pad(self._pending, ((0, 0), (0, pad)), mode="edge"))
        for line in provenance_lines(self.template):
            self._writer.writeAnnotation(0, -1, line[:40])
        self._writer.close()
        os.replace(self._temp, self.paths[0])

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._temp.unlink(missing_ok=True)
