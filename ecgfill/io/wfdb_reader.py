"""WFDB reader: every storage format wfdb-python reads, multi-segment records, Challenge ``.mat``.

wfdb-python does not verify checksums, rejects Challenge headers whose record line names the file
(``E00271.mat 12 500 ...``) and some of their dates (wfdb-python #351); this reader handles all three.
"""

from __future__ import annotations

import contextlib
import math
import re
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ecgfill.errors import RecordError, first_line
from ecgfill.io.channels import ChannelSet, build_record
from ecgfill.io.files import file_problem
from ecgfill.io.names import map_channels
from ecgfill.io.times import parse_start
from ecgfill.record import ECGRecord, Start

MAX_SAMPLES = 2**31 // 8  # refuse headers that declare absurd lengths before allocating them
MAX_FS = 1e6  # Hz; higher sampling frequencies in a header are corrupt, not exotic
EXACT_BITS = 16  # integers of formats up to this width are written back as they are
MAX_BASELINE = 2**16  # (integer - baseline) stays exact in float32 mV
# Header grammar (WFDB header(5)), checked strictly so a damaged field is named instead of
# being swallowed into a signal description as wfdb-python's lenient patterns do.
_PLAIN_NAME = re.compile(r"~|[-\w]+(\.\w+)?", re.ASCII)  # a file in the header's folder
_FS = re.compile(r"(?P<fs>\d+\.?\d*|\.\d+)(/\d*\.?\d*(\(-?\d*\.?\d*\))?)?")
_FORMAT = re.compile(r"(?P<fmt>\d+)(x(?P<spf>\d+))?(:\d+)?(\+(?P<offset>\d+))?")
_GAIN = re.compile(r"(?P<gain>[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?)?(\(-?\d+\))?(/\S*)?")
_INTEGER = re.compile(r"[-+]?\d+")
_COUNT = re.compile(r"[0-9]+")  # str.isdigit() also accepts "²", which int() refuses
# Signal-line fields after the format, in order, each optional only with all that follow it.
_SIGNAL_FIELDS = ("ADC gain", "ADC resolution", "ADC zero", "initial value", "checksum",
                  "block size")


@dataclass
class HeaderInfo:
    """What the strict header check learned: per signal line, the data file and raw gain."""

    multi_segment: bool
    files: list[str] = field(default_factory=list)
    gains: list[float | None] = field(default_factory=list)


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
        self.text = _read_header_text(self.header_path)
        self.info = _check_header(self.header_path, self.text)
        ascii_text = self.text.encode("ascii", "ignore").decode("ascii")
        self.start, self.start_problem = parse_start(_fields(_header_lines(ascii_text)[0])[4:])
        self._readable = _readable_header(self.header_path, self.text)
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
            self._readable = _readable_header(self.header_path, self.text, self.n_samples)
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
            per_sample = _bytes_per_sample(fmt)
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
                info = _check_header(seg_header, _read_header_text(seg_header))
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
        """A single-segment record's samples ``[start, stop)`` from the header already parsed.

        ``wfdb.rdrecord`` would parse the header again, which costs more than reading the
        samples (its pandas lookups); this is its single-segment path without that step.
        """
        import copy

        from wfdb.io import _signal

        rec = copy.deepcopy(self.header)
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


def _read_header_text(header_path: Path) -> str:
    try:
        raw = header_path.read_bytes()
    except OSError as exc:
        raise RecordError(header_path, f"cannot read header: {exc.strerror}") from None
    if not raw.strip():
        raise RecordError(header_path, "empty header")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _header_lines(text: str) -> list[str]:
    """The non-comment lines, split as wfdb-python splits them."""
    return [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]


def _fields(line: str) -> list[str]:
    """A header line's fields: wfdb-python separates them by spaces and tabs only."""
    return [f for f in re.split(r"[ \t]+", line.strip()) if f]


def _check_header(header_path: Path, text: str) -> HeaderInfo:
    """Strict checks with clear messages before wfdb-python sees the header.

    wfdb-python decodes headers as ASCII and drops other characters, so the checks look at the
    text that way too (a record line with such characters is refused outright).
    """
    original = _header_lines(text)
    odd = [c for c in (original[0] if original else "") if not c.isascii()]
    if odd:
        raise RecordError(header_path, f"corrupt header: record line holds {odd[0]!r}")
    lines = _header_lines(text.encode("ascii", "ignore").decode("ascii"))
    if not lines:
        raise RecordError(header_path, "header has no record line")
    fields = _fields(lines[0])
    if len(fields) < 2:
        raise RecordError(header_path, "corrupt header: record line needs a name and signal count")
    n_sig_text = fields[1].split("/")[0]
    if not _COUNT.fullmatch(n_sig_text):
        raise RecordError(header_path, f"corrupt header: signal count {fields[1]!r} is not a number")
    if len(fields) >= 3:
        _check_fs(header_path, fields[2])
    if len(fields) >= 4:
        length = fields[3]
        if not _COUNT.fullmatch(length):
            raise RecordError(header_path, f"corrupt header: length {length!r} is not a number")
        if int(length) == 0:
            raise RecordError(header_path, "zero-length record")
        if int(length) > MAX_SAMPLES:
            raise RecordError(header_path, f"header declares {length} samples per signal; refusing")
    name, slash, n_seg = fields[0].partition("/")
    if slash and not (_COUNT.fullmatch(n_seg) and int(n_seg) > 0):
        raise RecordError(header_path, f"corrupt header: segment count {n_seg!r} is not a number")
    n_sig = int(n_sig_text)
    if n_sig == 0:
        raise RecordError(header_path, "header declares no signals")
    info = HeaderInfo(multi_segment=bool(n_seg))
    if info.multi_segment:
        declared = int(fields[3]) if len(fields) >= 4 else None
        _check_segments(header_path, Path(name).stem, int(n_seg), declared, lines[1:])
        return info
    if len(lines) - 1 < n_sig:
        raise RecordError(
            header_path, f"corrupt header: declares {n_sig} signals but has {len(lines) - 1} lines"
        )
    for number, line in enumerate(lines[1 : n_sig + 1], start=1):
        file_name, gain = _check_signal_line(header_path, number, _fields(line))
        info.files.append(file_name)
        info.gains.append(gain)
    return info


def _check_fs(header_path: Path, text: str) -> None:
    match = _FS.fullmatch(text)
    fs = float(match["fs"]) if match else math.nan
    if not 0 < fs <= MAX_FS:
        problem = f"sampling frequency {text!r} is not a positive number up to {MAX_FS:g} Hz"
        raise RecordError(header_path, f"corrupt header: {problem}")


def _check_segments(
    header_path: Path, record_name: str, n_seg: int, length: int | None, lines: list[str]
) -> None:
    """Segment lines: ``n_seg`` of them, plain names other than the record's own, lengths
    that add up to the record's."""
    if len(lines) != n_seg:
        raise RecordError(
            header_path, f"corrupt header: declares {n_seg} segments but has {len(lines)} lines"
        )
    total = 0
    for line in lines:
        parts = _fields(line)
        if len(parts) < 2 or not _PLAIN_NAME.fullmatch(parts[0]) or not _COUNT.fullmatch(parts[1]):
            raise RecordError(header_path, f"corrupt header: bad segment line {line.strip()!r}")
        if parts[0] == record_name:
            raise RecordError(header_path, f"corrupt header: segment {parts[0]} is the record itself")
        total += int(parts[1])
    if length is not None and total != length:
        raise RecordError(
            header_path, f"corrupt header: segments hold {total} samples, the record {length}"
        )


def _check_signal_line(header_path: Path, number: int, tokens: list[str]) -> tuple[str, float | None]:
    """The data file name and ADC gain (None when absent) of one signal line, checked.

    A field that does not parse is an error when the fields after it still look like numbers
    (or it carries a gain's ``(``/``/``); otherwise it starts the description, as WFDB allows.
    """
    where = f"corrupt header: signal line {number}:"
    if len(tokens) < 2:
        raise RecordError(header_path, f"{where} needs a file name and a storage format")
    file_name, storage = tokens[0], tokens[1]
    if not _PLAIN_NAME.fullmatch(file_name):
        raise RecordError(header_path, f"{where} data file {file_name!r} is not a plain file name")
    match = _FORMAT.fullmatch(storage)
    if match is None:
        raise RecordError(header_path, f"{where} storage format {storage!r} is not valid")
    if not _known_format(match["fmt"]):
        raise RecordError(header_path, f"{where} unknown storage format {match['fmt']}")
    if match["spf"] is not None and int(match["spf"]) == 0:
        raise RecordError(header_path, f"{where} zero samples per frame in {storage!r}")
    gain = None
    for k, label in enumerate(_SIGNAL_FIELDS):
        token = tokens[2 + k] if 2 + k < len(tokens) else None
        if token is None:
            break
        pattern = _GAIN if k == 0 else _INTEGER
        found = pattern.fullmatch(token)
        if found is None:
            later = tokens[3 + k : 2 + len(_SIGNAL_FIELDS)]
            if (k == 0 and any(c in token for c in "(/")) or (later and all(
                _INTEGER.fullmatch(t) for t in later
            )):
                raise RecordError(header_path, f"{where} {label} {token!r} is not a number")
            break
        if k == 0 and found["gain"] is not None:
            gain = float(found["gain"])
            if not math.isfinite(gain):
                raise RecordError(header_path, f"{where} ADC gain {token!r} is not finite")
    return file_name, gain


def _known_format(fmt: str) -> bool:
    from wfdb.io._signal import BYTES_PER_SAMPLE

    return fmt in BYTES_PER_SAMPLE


def _bytes_per_sample(fmt: str) -> float | None:
    """Bytes per sample of a known WFDB storage format; None when compressed (FLAC)."""
    from wfdb.io._signal import BYTES_PER_SAMPLE

    return float(BYTES_PER_SAMPLE[fmt]) or None


class _readable_header:
    """Context manager giving a record base wfdb-python accepts.

    Most headers are used as they are. A record line that names the data file
    (``E00271.mat``) or carries a date wfdb-python rejects is rewritten into a temporary copy that
    links to the original data files.
    """

    def __init__(self, header_path: Path, text: str, length: int | None = None) -> None:
        self.header_path, self.text, self.length, self.tmp = header_path, text, length, None

    def __enter__(self) -> Path:
        base = self.header_path.with_suffix("")
        fixed = _sanitised_header(self.text, base.name, self.length)
        if fixed is None:
            return base
        self.tmp = tempfile.mkdtemp(prefix="ecgfill-hea-")
        tmp_dir = Path(self.tmp)
        (tmp_dir / f"{base.name}.hea").write_text(fixed)
        for line in fixed.splitlines()[1:]:
            if line.strip() and not line.lstrip().startswith("#"):
                data = _fields(line)[0]
                src = self.header_path.parent / data
                # Never link outside the temporary folder; bad files are reported later.
                if not _PLAIN_NAME.fullmatch(data) or file_problem(src) is not None:
                    continue
                with contextlib.suppress(FileExistsError):  # signals sharing one file
                    (tmp_dir / data).symlink_to(src.resolve())
        return tmp_dir / base.name

    def __exit__(self, *exc: object) -> None:
        if self.tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)


def _sanitised_header(text: str, name: str, length: int | None = None) -> str | None:
    """Header text wfdb-python accepts, or None when the original is already fine.

    ``length`` is written into a record line that lacks one (WFDB's default rate 250 Hz kept).
    """
    lines = text.encode("ascii", "ignore").decode("ascii").splitlines()  # as wfdb-python reads
    idx = next(i for i, ln in enumerate(lines) if ln.strip() and not ln.lstrip().startswith("#"))
    fields = _fields(lines[idx])
    record_name = fields[0].split("/")[0]
    changed = False
    if record_name != name and Path(record_name).stem == name:
        fields[0] = fields[0].replace(record_name, name, 1)
        changed = True
    if len(fields) > 4 and not _wfdb_accepts_time_date(fields[4:]):
        fields = fields[:4]
        changed = True
    if length is not None and len(fields) < 4:
        fields = [*fields[:2], fields[2] if len(fields) > 2 else "250", str(length)]
        changed = True
    if not changed:
        return None
    lines[idx] = " ".join(fields)
    return "\n".join(lines) + "\n"


def _wfdb_accepts_time_date(parts: list[str]) -> bool:
    from wfdb.io import _header

    try:
        _header._parse_record_line("x 1 1 1 " + " ".join(parts))
    except Exception:
        return False
    return True


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
    from wfdb.io._signal import BIT_RES

    fits = fmt != "8" and BIT_RES.get(fmt, 32) <= EXACT_BITS  # format 8 stores differences
    if fits and math.isfinite(gain) and gain > 0 and abs(baseline) <= MAX_BASELINE:
        return gain, baseline
    return None


def _invalid_value(fmt: str) -> int | None:
    from wfdb.io._signal import INVALID_SAMPLE_VALUE

    return INVALID_SAMPLE_VALUE.get(str(fmt))
