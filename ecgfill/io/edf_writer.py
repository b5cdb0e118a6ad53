"""EDF+ writer (pyedflib), for viewers that need it; streams chunk by chunk like the WFDB writer.

EDF stores 16-bit integers over digital ±32767. Each lead is written with the integers the WFDB
writer would use (:class:`~ecgfill.io.wfdb_writer.Scales`): a measured lead its own (its input's
integers, bit-exact), others 1 µV, i.e. physical ±32.767 mV; so chunks can be written before the
whole signal is known. EDF holds the physical range in 8 characters: a gain whose range does not
fit (4880/mV: ±6.714549 mV) is kept to 6 significant digits, the integers themselves exactly.
pyedflib drops samples that do not fill a whole data record (pyedflib #321): the writer buffers to
whole data records and pads only the final one, and reports it.

Provenance goes into EDF+ annotations at time 0, which hold 40 characters each: one per lead
(``ecgfill-origins: V1=reconstructed``) and the model name in pieces, with enough annotation
signals that the data records hold them all. The start date and time are the input's (whole
seconds); 01.01.85 stands for an unknown date.
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
from ecgfill.io.channels import provenance_annotations
from ecgfill.io.times import to_edf_start
from ecgfill.io.wfdb_writer import DIGITAL_MAX, INVALID, Scales, to_digital
from ecgfill.record import ECGRecord

ANNOTATION_BYTES = 40  # EDF+ annotation text that EDFlib writes
MAX_ANNOTATION_SIGNALS = 64
FIELD_CHARS = 8  # an EDF header number

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


def edf_range(low: float, high: float) -> tuple[float, float]:
    """``low``, ``high`` rounded to the most decimals that fit both in EDF's 8 characters."""
    for decimals in range(FIELD_CHARS, -1, -1):
        texts = [f"{v:.{decimals}f}" for v in (low, high)]
        if all(len(t.rstrip("0").rstrip(".")) <= FIELD_CHARS for t in texts):
            return float(texts[0]), float(texts[1])
    return float(round(low)), float(round(high))


def annotation_texts(record: ECGRecord) -> list[str]:
    """The EDF+ annotations (at time 0) that carry the record's provenance."""
    origins = dict(zip(record.leads, record.origins, strict=True))
    return [f"ecgfill {__version__}",
            *provenance_annotations(origins, record.model, ANNOTATION_BYTES)]


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
        self._scales: Scales | None = None
        self._annotations: list[str] = []
        self._no_data: np.ndarray | int = 0  # per lead, samples without data (NaN)

    def write(self, chunk: ECGRecord) -> None:
        if self.template is None:
            self.template = chunk
            self._scales = Scales.of(chunk)
            self._open(chunk)
        digital, notes = to_digital(chunk, self._scales)  # [samples, leads], clipped like WFDB
        self.template.warnings.extend(n for n in notes if n not in self.template.warnings)
        block = digital.T.astype(np.int32)
        invalid = block == INVALID  # EDF has no invalid value: the digital minimum stands for it
        if invalid.any():
            self._no_data += invalid.sum(axis=1)
            block[invalid] = -DIGITAL_MAX
        self._pending = block if self._pending is None else np.concatenate([self._pending, block], 1)
        whole = (self._pending.shape[1] // self._spr) * self._spr
        if whole:
            self._write_block(self._pending[:, :whole])
            self._pending = self._pending[:, whole:]

    def _open(self, record: ECGRecord) -> None:
        import pyedflib

        fs = record.fs
        self._spr = data_record_samples(self.n_samples, fs, len(record.leads))
        self._annotations = annotation_texts(record)
        n_records = math.ceil(self.n_samples / self._spr) if self.n_samples else 1
        signals = min(MAX_ANNOTATION_SIGNALS, math.ceil(len(self._annotations) / n_records))
        self._temp.parent.mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings():  # pyedflib warns about every forced record duration
            warnings.simplefilter("ignore", UserWarning)
            writer = pyedflib.EdfWriter(str(self._temp), len(record.leads), pyedflib.FILETYPE_EDFPLUS)
            # pyedflib truncates duration * 1e5 (2.3 s became 2.29999 s): aim inside the step
            ticks = round(self._spr / fs * DURATION_TICKS_PER_SECOND)
            writer.setDatarecordDuration(
                min((ticks + 1e-4) / DURATION_TICKS_PER_SECOND, MAX_RECORD_SECONDS))
            writer.set_number_of_annotation_signals(signals)
            writer.setStartdatetime(to_edf_start(record.start))
            headers = []
            for ch, name in enumerate(record.leads):
                low, high = edf_range(*self._scales.limits_mv(ch))
                headers.append({
                    "label": f"ECG {name}", "dimension": "mV", "sample_frequency": fs,
                    "physical_min": low, "physical_max": high,
                    "digital_min": -DIGITAL_MAX, "digital_max": DIGITAL_MAX,
                    "transducer": "", "prefilter": ""})
            writer.setSignalHeaders(headers)
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
        for ch in np.flatnonzero(self._no_data):
            low = self._scales.limits_mv(ch)[0]
            self.template.warnings.append(
                f"EDF: lead {self.template.leads[ch]} has {int(self._no_data[ch])} samples without "
                f"data (NaN), written at the digital minimum ({low:.6g} mV): EDF has no "
                "invalid-sample value")
        for text in self._annotations:
            self._writer.writeAnnotation(0, -1, text)
        self._writer.close()
        os.replace(self._temp, self.paths[0])

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._temp.unlink(missing_ok=True)
