"""Reading and writing ECG records: one reader per format, one writer per format.

``read_record(path)`` returns an :class:`~ecgfill.record.ECGRecord` with canonical lead names
in mV; ``write_record(record, base)`` writes a 12-lead WFDB (or EDF+) record atomically;
``probe_fs(path)`` reads a record's sampling rate from its header alone. wfdb-python and pyedflib
are imported only when a record is opened (start-up time).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

from ecgfill.errors import RecordError
from ecgfill.io.complete import output_problem as _output_problem
from ecgfill.io.edf_reader import EdfReader
from ecgfill.io.edf_reader import header_fs as edf_header_fs
from ecgfill.io.edf_writer import EdfWriter
from ecgfill.io.files import file_problem
from ecgfill.io.wfdb_header import header_fs
from ecgfill.io.wfdb_reader import WfdbReader
from ecgfill.io.wfdb_writer import WfdbWriter
from ecgfill.record import ECGRecord


class RecordReader(Protocol):
    """A record opened for chunked reading."""

    fs: float
    n_samples: int

    def read(self, start: int, stop: int) -> ECGRecord: ...
    def verify(self) -> None: ...
    def checksum_status(self) -> str: ...
    def channels(self) -> list[dict[str, object]]: ...
    def close(self) -> None: ...
    def __enter__(self) -> RecordReader: ...
    def __exit__(self, *exc: object) -> None: ...


class RecordWriter(Protocol):
    """A record being written chunk by chunk."""

    paths: list[Path]
    template: ECGRecord | None

    def write(self, chunk: ECGRecord) -> None: ...
    def close(self) -> None: ...
    def abort(self) -> None: ...
    def __enter__(self) -> RecordWriter: ...
    def __exit__(self, exc_type: object, *rest: object) -> None: ...

EDF_SUFFIXES = {".edf", ".bdf", ".rec"}
WFDB_SUFFIXES = {".hea", ".dat", ".mat"}


def read_record(path: str | Path, channel_map: Mapping[str, str] | None = None) -> ECGRecord:
    """Read any supported record (WFDB incl. FLAC and Challenge ``.mat``, EDF/EDF+/BDF);
    ``channel_map`` names device channels as standard leads (``{"ECG1": "II"}``)."""
    path = Path(path)
    with open_record(path, channel_map) as reader:
        record = reader.read(0, reader.n_samples)
        reader.verify()
    return record


def open_record(path: str | Path, channel_map: Mapping[str, str] | None = None) -> RecordReader:
    """Open a record for chunked reading (``.fs``, ``.n_samples``, ``.read(start, stop)``,
    ``.verify()`` once all samples were read, ``.close()``); use as a context manager."""
    path = Path(path)
    if path.suffix.lower() in EDF_SUFFIXES:
        problem = file_problem(path)
        if problem:
            raise RecordError(path, f"file {problem}")
        return EdfReader(path, channel_map)
    return WfdbReader(path, channel_map)


def probe_fs(path: str | Path) -> float | None:
    """A record's sampling rate from its header alone (WFDB ``.hea`` or EDF/BDF), without
    opening the record; None when unreadable or unknown."""
    path = Path(path)
    try:
        if path.suffix.lower() == ".hea":
            return header_fs(path.read_text(encoding="latin-1"))
        with path.open("rb") as handle:
            return edf_header_fs(handle)
    except (OSError, ValueError):
        return None


def open_writer(base: str | Path, fmt: str = "wfdb", n_samples: int | None = None) -> RecordWriter:
    """A streaming, atomic writer: ``.write(chunk)`` any number of times, then ``.close()``
    (or ``.abort()``); as a context manager it closes on success and aborts on error."""
    if fmt == "wfdb":
        return WfdbWriter(base)
    if fmt == "edf":
        return EdfWriter(base, n_samples)
    raise ValueError(f"unknown output format {fmt!r} (expected wfdb or edf)")


def write_record(record: ECGRecord, base: str | Path, fmt: str = "wfdb") -> list[Path]:
    """Write ``record`` to ``base`` (path without suffix) atomically; returns the files written.

    Clipping notes are appended to ``record.warnings``.
    """
    with open_writer(base, fmt, record.n_samples) as writer:
        writer.write(record)
    return writer.paths


def output_problem(base: str | Path, fmt: str = "wfdb") -> str | None:
    """Whether an output record at ``base`` can be skipped: None when none exists, ``""`` when
    a complete one does (its header parses, its data file has the declared size and its
    checksums match), else what is wrong with it (a killed run, a full disk ...)."""
    return _output_problem(Path(base), fmt)
