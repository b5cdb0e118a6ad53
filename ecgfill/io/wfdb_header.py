"""WFDB header text (WFDB header(5)): strict checks, storage formats, the sampling rate alone,
and a copy wfdb-python accepts.

wfdb-python rejects Challenge headers whose record line names the file (``E00271.mat 12 500
...``) and some of their dates (wfdb-python #351); :class:`ReadableHeader` gives it a sanitised
copy. Everything here is ecgfill's own parsing: no wfdb-python import.
"""

from __future__ import annotations

import contextlib
import datetime
import math
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from ecgfill.errors import RecordError
from ecgfill.io.files import file_problem

MAX_SAMPLES = 2**31 // 8  # refuse headers that declare absurd lengths before allocating them
MAX_FS = 1e6  # Hz; higher sampling frequencies in a header are corrupt, not exotic
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


# Storage formats (WFDB signal(5)): bytes per sample (0: FLAC-compressed, size says nothing),
# bits per sample, and the sample value that marks an invalid sample (none for format 8, which
# stores differences).
BYTES_PER_SAMPLE: dict[str, float] = {
    "8": 1, "16": 2, "24": 3, "32": 4, "61": 2, "80": 1, "160": 2, "212": 1.5, "310": 4 / 3,
    "311": 4 / 3, "508": 0, "516": 0, "524": 0,
}
BIT_RESOLUTION: dict[str, int] = {
    "8": 8, "16": 16, "24": 24, "32": 32, "61": 16, "80": 8, "160": 16, "212": 12, "310": 10,
    "311": 10, "508": 8, "516": 16, "524": 24,
}
INVALID_SAMPLE: dict[str, int] = {
    "80": -(2**7), "508": -(2**7), "310": -(2**9), "311": -(2**9), "212": -(2**11),
    "16": -(2**15), "61": -(2**15), "160": -(2**15), "516": -(2**15), "24": -(2**23),
    "524": -(2**23), "32": -(2**31),
}
# The record line's base time and date as wfdb-python's reader certainly accepts them.
_BASE_TIME = re.compile(r"(\d{1,2}):(\d{1,2}):(\d{1,2})(\.\d{1,6})?")
_BASE_DATE = re.compile(r"(\d{1,2})/(\d{1,2})/(\d{4})")


@dataclass
class HeaderInfo:
    """What the strict header check learned: per signal line, the data file and raw gain."""

    multi_segment: bool
    files: list[str] = field(default_factory=list)
    gains: list[float | None] = field(default_factory=list)


def read_header_text(header_path: Path) -> str:
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


def header_lines(text: str) -> list[str]:
    """The non-comment lines, split as wfdb-python splits them."""
    return [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]


def header_fields(line: str) -> list[str]:
    """A header line's fields: wfdb-python separates them by spaces and tabs only."""
    return [f for f in re.split(r"[ \t]+", line.strip()) if f]


def check_header(header_path: Path, text: str) -> HeaderInfo:
    """Strict checks with clear messages before wfdb-python sees the header.

    wfdb-python decodes headers as ASCII and drops other characters, so the checks look at the
    text that way too (a record line with such characters is refused outright).
    """
    original = header_lines(text)
    odd = [c for c in (original[0] if original else "") if not c.isascii()]
    if odd:
        raise RecordError(header_path, f"corrupt header: record line holds {odd[0]!r}")
    lines = header_lines(text.encode("ascii", "ignore").decode("ascii"))
    if not lines:
        raise RecordError(header_path, "header has no record line")
    fields = header_fields(lines[0])
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
        file_name, gain = _check_signal_line(header_path, number, header_fields(line))
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
        parts = header_fields(line)
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
    if not known_format(match["fmt"]):
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

def known_format(fmt: str) -> bool:
    return fmt in BYTES_PER_SAMPLE


def bytes_per_sample(fmt: str) -> float | None:
    """Bytes per sample of a known WFDB storage format; None when compressed (FLAC)."""
    return float(BYTES_PER_SAMPLE[fmt]) or None


class ReadableHeader:
    """Context manager giving a record base wfdb-python accepts.

    Most headers are used as they are. A record line that names the data file
    (``E00271.mat``) or carries a date wfdb-python rejects is rewritten into a temporary copy that
    links to the original data files.
    """

    def __init__(self, header_path: Path, text: str, length: int | None = None) -> None:
        self.header_path, self.text, self.length, self.tmp = header_path, text, length, None

    def __enter__(self) -> Path:
        base = self.header_path.with_suffix("")
        fixed = sanitised_header(self.text, base.name, self.length)
        if fixed is None:
            return base
        self.tmp = tempfile.mkdtemp(prefix="ecgfill-hea-")
        tmp_dir = Path(self.tmp)
        (tmp_dir / f"{base.name}.hea").write_text(fixed)
        for line in fixed.splitlines()[1:]:
            if line.strip() and not line.lstrip().startswith("#"):
                data = header_fields(line)[0]
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


def sanitised_header(text: str, name: str, length: int | None = None) -> str | None:
    """Header text wfdb-python accepts, or None when the original is already fine.

    ``length`` is written into a record line that lacks one (WFDB's default rate 250 Hz kept).
    """
    lines = text.encode("ascii", "ignore").decode("ascii").splitlines()  # as wfdb-python reads
    idx = next(i for i, ln in enumerate(lines) if ln.strip() and not ln.lstrip().startswith("#"))
    fields = header_fields(lines[idx])
    record_name = fields[0].split("/")[0]
    changed = False
    if record_name != name and Path(record_name).stem == name:
        fields[0] = fields[0].replace(record_name, name, 1)
        changed = True
    if len(fields) > 4 and not wfdb_accepts_time_date(fields[4:]):
        fields = fields[:4]
        changed = True
    if length is not None and len(fields) < 4:
        fields = [*fields[:2], fields[2] if len(fields) > 2 else "250", str(length)]
        changed = True
    if not changed:
        return None
    lines[idx] = " ".join(fields)
    return "\n".join(lines) + "\n"


def wfdb_accepts_time_date(parts: list[str]) -> bool:
    """Whether the record line's fields after the length are a base time (``HH:MM:SS[.f]``)
    and optional date (``DD/MM/YYYY``) that wfdb-python reads; anything else (other WFDB
    forms included) is left out of the copy it is given (:func:`ecgfill.io.times.parse_start`
    reads the start itself)."""
    if not 1 <= len(parts) <= 2 or not (clock := _BASE_TIME.fullmatch(parts[0])):
        return False
    hour, minute, second = (int(v) for v in clock.groups()[:3])
    if hour > 23 or minute > 59 or second > 59:
        return False
    if len(parts) == 2:
        if not (day := _BASE_DATE.fullmatch(parts[1])):
            return False
        try:
            datetime.date(int(day[3]), int(day[2]), int(day[1]))
        except ValueError:
            return False
    return True


def header_fs(text: str) -> float | None:
    """The sampling rate of a header's record line alone (WFDB's default 250 Hz when the line
    gives none); None when it does not read as a number."""
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            fields = line.split()
            if len(fields) < 3:
                return 250.0  # the WFDB default
            match = re.match(r"[0-9.eE+-]+", fields[2])
            return float(match[0]) if match else None
    return None
