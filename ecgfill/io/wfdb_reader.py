"""WFDB reader: every storage format wfdb-python reads, multi-segment records, Challenge ``.mat``.

wfdb-python does not verify checksums, rejects Challenge headers whose record line names the file
(``E00271.mat 12 500 ...``) and some of their dates (wfdb-python #351); this reader handles all three.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

import numpy as np

from ecgfill.errors import RecordError
from ecgfill.io.channels import ChannelSet, build_record
from ecgfill.record import ECGRecord

MAX_SAMPLES = 2**31 // 8  # refuse headers that declare absurd lengths before allocating them
_RECORD_LINE = re.compile(r"^\s*(\S+)(.*)$")


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

    def __init__(self, path: str | Path) -> None:
        import wfdb

        self.path = path
        base = record_base(Path(path))
        self.header_path = base.with_suffix(".hea")
        if not self.header_path.is_file():
            raise RecordError(path, "no header file (.hea) found")
        self.text = _read_header_text(self.header_path)
        _check_header(self.header_path, self.text)
        self._readable = _readable_header(self.header_path, self.text)
        self.base = self._readable.__enter__()
        try:
            self.header = wfdb.rdheader(str(self.base))
        except Exception as exc:
            self.close()
            raise RecordError(self.header_path, f"corrupt header: {_one_line(exc)}") from None
        self.fs = float(self.header.fs)
        self.n_samples = int(self.header.sig_len or 0)
        if self.n_samples == 0:
            self.close()
            raise RecordError(self.header_path, "zero-length record")
        self._sums: np.ndarray | None = None
        self._summed_until = 0

    def read(self, start: int, stop: int) -> ECGRecord:
        import wfdb

        try:
            rec = wfdb.rdrecord(
                str(self.base), sampfrom=start, sampto=stop, physical=False, m2s=True,
                smooth_frames=True,
            )
        except FileNotFoundError as exc:
            problem = f"missing data file {Path(exc.filename or '').name}"
            raise RecordError(self.header_path, problem) from None
        except MemoryError:
            raise RecordError(self.header_path, "header declares a length too large to read") from None
        except Exception as exc:  # wfdb raises bare ValueErrors and friends on bad files
            if "not loaded correctly" in str(exc):
                problem = "data file has fewer samples than the header declares"
                raise RecordError(self.header_path, problem) from None
            raise RecordError(self.header_path, f"cannot read WFDB record: {_one_line(exc)}") from None
        self._check_chunk(rec, start, stop)
        return _to_record(rec, self.header_path)

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

    def close(self) -> None:
        self._readable.__exit__(None, None, None)

    def __enter__(self) -> WfdbReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


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


def _check_header(header_path: Path, text: str) -> None:
    """Cheap sanity checks with clear messages before wfdb-python sees the header."""
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        raise RecordError(header_path, "header has no record line")
    fields = lines[0].split()
    if len(fields) < 2:
        raise RecordError(header_path, "corrupt header: record line needs a name and signal count")
    n_sig_text = fields[1].split("/")[0]
    if not n_sig_text.isdigit():
        raise RecordError(header_path, f"corrupt header: signal count {fields[1]!r} is not a number")
    if len(fields) >= 4:
        length = fields[3]
        if not length.isdigit():
            raise RecordError(header_path, f"corrupt header: length {length!r} is not a number")
        if int(length) == 0:
            raise RecordError(header_path, "zero-length record")
        if int(length) > MAX_SAMPLES:
            raise RecordError(header_path, f"header declares {length} samples per signal; refusing")
    is_multi = "/" in fields[0]
    n_sig = int(n_sig_text)
    if n_sig == 0:
        raise RecordError(header_path, "header declares no signals")
    if not is_multi and len(lines) - 1 < n_sig:
        raise RecordError(
            header_path, f"corrupt header: declares {n_sig} signals but has {len(lines) - 1} lines"
        )


class _readable_header:
    """Context manager giving a record base wfdb-python accepts.

    Most headers are used as they are. A record line that names the data file
    (``E00271.mat``) or carries a date wfdb-python rejects is rewritten into a temporary copy that
    links to the original data files.
    """

    def __init__(self, header_path: Path, text: str) -> None:
        self.header_path, self.text, self.tmp = header_path, text, None

    def __enter__(self) -> Path:
        base = self.header_path.with_suffix("")
        fixed = _sanitised_header(self.text, base.name)
        if fixed is None:
            return base
        self.tmp = tempfile.mkdtemp(prefix="ecgfill-hea-")
        tmp_dir = Path(self.tmp)
        (tmp_dir / f"{base.name}.hea").write_text(fixed)
        for line in fixed.splitlines()[1:]:
            if line.strip() and not line.lstrip().startswith("#"):
                data = line.split()[0]
                src = self.header_path.parent / data
                dst = tmp_dir / data
                if src.exists() and not dst.exists():
                    dst.symlink_to(src.resolve())
        return tmp_dir / base.name

    def __exit__(self, *exc: object) -> None:
        if self.tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)


def _sanitised_header(text: str, name: str) -> str | None:
    """Header text wfdb-python accepts, or None when the original is already fine."""
    lines = text.splitlines()
    idx = next(i for i, ln in enumerate(lines) if ln.strip() and not ln.lstrip().startswith("#"))
    fields = lines[idx].split()
    record_name = fields[0].split("/")[0]
    changed = False
    if record_name != name and Path(record_name).stem == name:
        fields[0] = fields[0].replace(record_name, name, 1)
        changed = True
    if len(fields) > 4 and not _wfdb_accepts_time_date(fields[4:]):
        fields = fields[:4]
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


def _to_record(rec: object, header_path: Path) -> ECGRecord:
    """Convert a wfdb Record (digital, or physical for multi-segment) into physical units."""
    path = str(header_path)
    names = [str(n) for n in (rec.sig_name or [])]
    units = [str(u) if u else "mV" for u in (rec.units or ["mV"] * len(names))]
    if getattr(rec, "d_signal", None) is not None:
        digital = rec.d_signal
        gain = np.asarray(rec.adc_gain, dtype=np.float64)
        gain = np.where(gain == 0, 200.0, gain)  # WFDB: a zero gain means the default, 200
        physical = (digital - np.asarray(rec.baseline, dtype=np.float64)) / gain
        for ch, fmt in enumerate(rec.fmt):
            bad = _invalid_value(fmt)
            if bad is not None:
                physical[digital[:, ch] == bad, ch] = np.nan
    else:
        physical = np.asarray(rec.p_signal, dtype=np.float64)
    if physical.shape[0] == 0:
        raise RecordError(path, "zero-length record")
    comments = [str(c) for c in (rec.comments or [])]
    channels = ChannelSet(signal=physical.T, labels=names, units=units, fs=float(rec.fs))
    return build_record(channels, path, comments)


def _invalid_value(fmt: str) -> int | None:
    from wfdb.io._signal import INVALID_SAMPLE_VALUE

    return INVALID_SAMPLE_VALUE.get(str(fmt))


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
