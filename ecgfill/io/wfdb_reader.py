"""WFDB reader: every storage format wfdb-python reads, multi-segment records, Challenge ``.mat``.

wfdb-python does not verify checksums, rejects Challenge headers whose record line names the file
(``E00271.mat 12 500 ...``) and some of their dates (wfdb-python #351); this reader handles all
three, with the header checks of :mod:`ecgfill.io.wfdb_header`. wfdb-python (and the pandas it
imports, about 0.2 s) is imported only when a record is opened.

One private wfdb-python API is left, behind a check: chunks of a single-segment record are read
with its internal ``_rd_segment`` (``wfdb.rdrecord`` would parse the header again for every
chunk, which doubles the time to read a short record); when a wfdb-python release no longer has
it with the arguments used here, the public ``wfdb.rdrecord`` is used instead. pyproject.toml
keeps wfdb below 5; tests/test_io.py checks both paths give the same samples.
"""

from __future__ import annotations

import copy
import functools
import inspect
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ecgfill.errors import RecordError, first_line
from ecgfill.io.channels import ChannelSet, build_record
from ecgfill.io.files import file_problem
from ecgfill.io.names import map_channels
from ecgfill.io.times import parse_start
from ecgfill.io.wfdb_header import (
    BIT_RESOLUTION,
    INVALID_SAMPLE,
    ReadableHeader,
    bytes_per_sample,
    check_header,
    header_fields,
    header_lines,
    read_header_text,
)
from ecgfill.record import ECGRecord, Start

EXACT_BITS = 16  # integers of formats up to this width are written back as they are
MAX_BASELINE = 2**16  # (integer - baseline) stays exact in float32 mV
# The arguments the single-segment fast path passes to wfdb-python's ``_rd_segment``.
_RD_SEGMENT_ARGS = (
    "file_name", "dir_name", "pn_dir", "fmt", "n_sig", "sig_len", "byte_offset",
    "samps_per_frame", "skew", "init_value", "sampfrom", "sampto", "channels", "ignore_skew",
    "no_file", "sig_data", "return_res",
)


def record_base(path: Path) -> Path:
    """The WFDB record path without suffix, for a ``.hea``, ``.dat``, ``.mat`` or bare path."""
    if path.suffix.lower() in {".hea", ".dat", ".mat", ".flac", ".xyz"}:
        return path.with_suffix("")
    return path


class WfdbReader:
    """A WFDB record opened for reading, whole or in sequential chunks.

    Checksums cover the whole signal, so they are summed over the chunks read and checked by
    :meth:`verify` once every sample was read; the initial values are checked on the first chunk.
    """

    def __init__(self, path: str | Path, channel_map: Mapping[str, str] | None = None) -> None:
        import wfdb

        self.path = path
        self.channel_map = channel_map
        base = record_base(Path(path))
        self.header_path = base.with_suffix(".hea")
        problem = file_problem(self.header_path)
        if problem == "does not exist":
            raise RecordError(path, "no header file (.hea) found")
        if problem:
            raise RecordError(self.header_path, f"header file {problem}")
        self.text = read_header_text(self.header_path)
        self.info = check_header(self.header_path, self.text)
        ascii_text = self.text.encode("ascii", "ignore").decode("ascii")
        self.start, self.start_problem = parse_start(header_fields(header_lines(ascii_text)[0])[4:])
        self._readable = ReadableHeader(self.header_path, self.text)
        self.base = self._readable.__enter__()
        try:
            self.header = wfdb.rdheader(str(self.base))
        except Exception as exc:
            self.close()
            raise RecordError(self.header_path, f"corrupt header: {first_line(exc)}") from None
        self.fs = float(self.header.fs)
        try:
            self.n_samples = self._checked_length()
        except RecordError:
            self.close()
            raise
        if self.n_samples == 0:
            self.close()
            raise RecordError(self.header_path, "zero-length record")
        if self.header.sig_len is None:  # wfdb-python reads chunks only with a declared length
            self._readable.__exit__(None, None, None)
            self._readable = ReadableHeader(self.header_path, self.text, self.n_samples)
            self.base = self._readable.__enter__()
        self._sums: np.ndarray | None = None
        self._summed_until = 0

    def _checked_length(self) -> int:
        """The record length, from the header or (when it gives none) the data file's size.

        Every data file must be a regular file big enough for the declared length, so a header
        that declares a huge length over a small file is refused before anything is allocated.
        """
        header = self.header
        declared = int(header.sig_len) if header.sig_len is not None else None
        if self.info.multi_segment:
            self._check_segments()
            return declared or 0
        lengths = []
        for name in [n for n in dict.fromkeys(header.file_name) if n != "~"]:  # "~": no file
            chans = [i for i, f in enumerate(header.file_name) if f == name]
            fmt = str(header.fmt[chans[0]])
            frame = sum(int(header.samps_per_frame[i] or 1) for i in chans)
            offset = int(header.byte_offset[chans[0]] or 0)
            path = _require_file(self.header_path, name, "data file")
            per_sample = bytes_per_sample(fmt)
            if per_sample is None:  # compressed (FLAC): the size says nothing about the length
                continue
            size = path.stat().st_size
            fits = int(max(0, size - offset) // (per_sample * frame))
            if declared is not None and fits < declared:
                raise RecordError(
                    self.header_path,
                    f"data file {name} has fewer samples than the header declares "
                    f"({fits} of {declared} per signal; truncated?)",
                )
            lengths.append(fits)
        if declared is not None:
            return declared
        if not lengths:
            raise RecordError(self.header_path, "header gives no length for compressed data")
        return min(lengths)

    def _check_segments(self) -> None:
        """Each segment of a multi-segment record is a checked single-segment record whose
        files are regular files (wfdb-python would block forever on a FIFO)."""
        segments = zip(self.header.seg_name, self.header.seg_len, strict=True)
        for segment, length in dict.fromkeys(segments):
            if segment == "~" or not length:  # a gap, or the layout of a variable-layout record
                continue
            try:
                seg_header = _require_file(self.header_path, f"{segment}.hea", "segment header")
                info = check_header(seg_header, read_header_text(seg_header))
                if info.multi_segment:
                    raise RecordError(self.header_path, f"segment {segment} is itself multi-segment")
                for name in [n for n in dict.fromkeys(info.files) if n != "~"]:
                    _require_file(seg_header, name, "data file")
            except RecordError as exc:
                where = "" if exc.path == str(self.header_path) else f"segment {segment}: "
                raise RecordError(self.header_path, where + exc.problem) from None

    def read(self, start: int, stop: int) -> ECGRecord:
        import wfdb

        try:
            if isinstance(self.header, wfdb.Record):
                rec = self._read_segment(start, stop)
            else:
                rec = wfdb.rdrecord(
                    str(self.base), sampfrom=start, sampto=stop, physical=False, m2s=True,
                    smooth_frames=True,
                )
        except FileNotFoundError as exc:
            problem = f"missing data file {Path(exc.filename or '').name}"
            raise RecordError(self.header_path, problem) from None
        except OSError as exc:
            problem = f"cannot read data file {Path(exc.filename or '').name}: {exc.strerror or exc}"
            raise RecordError(self.header_path, problem) from None
        except MemoryError:
            raise RecordError(self.header_path, "header declares a length too large to read") from None
        except RecursionError:
            raise RecordError(self.header_path, "multi-segment record refers to itself") from None
        except Exception as exc:  # wfdb raises bare ValueErrors and friends on bad files
            if "not loaded correctly" in str(exc):
                problem = "data file has fewer samples than the header declares"
                raise RecordError(self.header_path, problem) from None
            raise RecordError(self.header_path, f"cannot read WFDB record: {first_line(exc)}") from None
        self._check_chunk(rec, start, stop)
        record = _to_record(rec, self.header_path, self.start, self.channel_map)
        if self.start_problem:
            record.warnings.append(self.start_problem)
        for name, gain in zip(getattr(rec, "sig_name", None) or [], self.info.gains, strict=False):
            if gain == 0:
                note = f"lead {name}: ADC gain 0 (uncalibrated) in the header; WFDB's default 200/mV assumed"
                record.warnings.append(note)
        return record

    def _read_segment(self, start: int, stop: int) -> object:
        """A single-segment record's samples ``[start, stop)`` from the header already parsed:
        wfdb-python's single-segment path without parsing the header again (see the module
        docstring), or ``wfdb.rdrecord`` when that path is not available."""
        import wfdb

        if not fast_segment_reads():
            return wfdb.rdrecord(str(self.base), sampfrom=start, sampto=stop, physical=False,
                                 m2s=True, smooth_frames=True)
        from wfdb.io import _signal

        rec: Any = copy.deepcopy(self.header)
        rec.sig_len = rec.sig_len or self.n_samples
        channels = list(range(rec.n_sig))
        rec.check_read_inputs(start, stop, channels, False, True, 64)
        rec.e_d_signal = _signal._rd_segment(
            file_name=rec.file_name, dir_name=str(self.base.parent), pn_dir=None, fmt=rec.fmt,
            n_sig=rec.n_sig, sig_len=rec.sig_len, byte_offset=rec.byte_offset,
            samps_per_frame=rec.samps_per_frame, skew=rec.skew, init_value=rec.init_value,
            sampfrom=start, sampto=stop, channels=channels, ignore_skew=False, no_file=False,
            sig_data=None, return_res=64,
        )
        rec._arrange_fields(channels=channels, sampfrom=start, smooth_frames=True)
        return rec

    def _check_chunk(self, rec: object, start: int, stop: int) -> None:
        digital = getattr(rec, "d_signal", None)
        if digital is None:  # multi-segment records come back physical; nothing to check
            return
        if digital.shape[0] != stop - start:
            problem = f"data has {digital.shape[0]} samples where the header declares {stop - start}"
            raise RecordError(self.header_path, problem)
        if start == 0 and rec.init_value is not None:
            for ch, expected in enumerate(rec.init_value):
                if expected is not None and int(expected) != int(digital[0, ch]):
                    problem = f"initial value mismatch in signal {rec.sig_name[ch]}"
                    raise RecordError(self.header_path, problem)
        if start <= self._summed_until < stop:
            part = np.sum(digital[self._summed_until - start :], axis=0, dtype=np.int64)
            self._sums = part if self._sums is None else self._sums + part
            self._summed_until = stop

    def verify(self) -> None:
        """Check the header's checksums once the whole signal was read."""
        checksums = getattr(self.header, "checksum", None)
        if self._sums is None or self._summed_until < self.n_samples or checksums is None:
            return
        sums = self._sums % 65536
        for ch, expected in enumerate(checksums):
            if expected is not None and int(expected) % 65536 != int(sums[ch]):
                name = self.header.sig_name[ch]
                raise RecordError(self.header_path, f"checksum mismatch in signal {name} (corrupt data?)")

    def checksum_status(self) -> str:
        """After :meth:`verify`: ``ok``, ``absent`` (the header gives none) or ``not checked``
        (multi-segment records, or not every sample read)."""
        checksums = getattr(self.header, "checksum", None)
        if self.info.multi_segment or self._summed_until < self.n_samples:
            return "not checked"
        return "ok" if checksums and any(c is not None for c in checksums) else "absent"

    def channels(self) -> list[dict[str, object]]:
        """Every signal as the header describes it: label, units, ADC gain and baseline (per
        unit), storage format."""
        import wfdb

        head, storage = self.header, "WFDB format {}"
        if self.info.multi_segment:  # the first segment (or the layout) describes the signals
            first = next(name for name in head.seg_name if name != "~")
            head = wfdb.rdheader(str(self.header_path.parent / first))
            storage = "WFDB format {} (multi-segment)"
        names = list(head.sig_name or [])

        def column(name: str) -> list[object]:
            return list(getattr(head, name, None) or [None] * len(names))

        return [{"label": label, "units": units or "mV", "gain": gain, "baseline": baseline,
                 "storage": storage.format(fmt)}
                for label, units, gain, baseline, fmt in zip(
                    names, column("units"), column("adc_gain"), column("baseline"),
                    column("fmt"), strict=True)]

    def close(self) -> None:
        self._readable.__exit__(None, None, None)

    def __enter__(self) -> WfdbReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _require_file(header_path: Path, name: str, what: str) -> Path:
    """The file ``name`` next to ``header_path``; RecordError unless it is a regular file."""
    path = header_path.parent / name
    problem = file_problem(path)
    if problem == "does not exist":
        raise RecordError(header_path, f"missing {what} {name}")
    if problem:
        raise RecordError(header_path, f"{what} {name} {problem}")
    return path


def _to_record(rec: object, header_path: Path, start: Start = None,
               channel_map: Mapping[str, str] | None = None) -> ECGRecord:
    """Convert a wfdb Record (digital, or physical for multi-segment) into physical units."""
    path = str(header_path)
    names = map_channels([str(n) for n in (rec.sig_name or [])], channel_map)
    units = [str(u) if u else "mV" for u in (rec.units or ["mV"] * len(names))]
    adc = None
    if getattr(rec, "d_signal", None) is not None:
        digital = rec.d_signal
        gain = np.asarray(rec.adc_gain, dtype=np.float64)
        gain = np.where(gain == 0, 200.0, gain)  # WFDB: a zero gain means the default, 200
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
            physical = (digital - np.asarray(rec.baseline, dtype=np.float64)) / gain
        for ch, fmt in enumerate(rec.fmt):
            bad = _invalid_value(fmt)
            if bad is not None:
                physical[digital[:, ch] == bad, ch] = np.nan
        adc = [_exact_adc(str(f), float(g), int(b))
               for f, g, b in zip(rec.fmt, gain, rec.baseline, strict=True)]
    else:
        physical = np.asarray(rec.p_signal, dtype=np.float64)
    if physical.ndim != 2 or physical.shape[0] == 0:
        raise RecordError(path, "zero-length record")
    comments = [str(c) for c in (rec.comments or [])]
    channels = ChannelSet(signal=physical.T, labels=names, units=units, fs=float(rec.fs),
                          adc=adc, start=start)
    return build_record(channels, path, comments)


def _exact_adc(fmt: str, gain: float, baseline: int) -> tuple[float, int] | None:
    """(gain, baseline) when a signal's integers can be written back exactly in format 16."""
    fits = fmt != "8" and BIT_RESOLUTION.get(fmt, 32) <= EXACT_BITS  # format 8: differences
    if fits and math.isfinite(gain) and gain > 0 and abs(baseline) <= MAX_BASELINE:
        return gain, baseline
    return None


def _invalid_value(fmt: str) -> int | None:
    return INVALID_SAMPLE.get(str(fmt))


@functools.cache
def fast_segment_reads() -> bool:
    """Whether this wfdb-python has the internal single-segment reader the fast path calls,
    with the arguments it passes (see the module docstring)."""
    import wfdb

    try:
        from wfdb.io import _signal

        params = inspect.signature(_signal._rd_segment).parameters
    except (ImportError, AttributeError, TypeError, ValueError):
        return False
    return set(_RD_SEGMENT_ARGS) <= set(params) and all(
        callable(getattr(wfdb.Record, name, None))
        for name in ("check_read_inputs", "_arrange_fields"))
