"""Reading and writing ECG records: one reader per format, one writer per format.

``read_record(path)`` returns an :class:`~ecgfill.record.ECGRecord` with canonical lead names
in mV; ``write_record(record, base)`` writes a 12-lead WFDB (or EDF+) record atomically.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from ecgfill.errors import RecordError
from ecgfill.record import ECGRecord


class RecordReader(Protocol):
    """A record opened for chunked reading."""

    fs: float
    n_samples: int

    def read(self, start: int, stop: int) -> ECGRecord: ...
    def verify(self) -> None: ...
    def close(self) -> None: ...
    def __enter__(self) -> RecordReader: ...
    def __exit__(self, *exc: object) -> None: ...

EDF_SUFFIXES = {".edf", ".bdf", ".rec"}
WFDB_SUFFIXES = {".hea", ".dat", ".mat"}


def read_record(path: str | Path) -> ECGRecord:
    """Read any supported record (WFDB incl. FLAC and Challenge ``.mat``, EDF/EDF+/BDF)."""
    path = Path(path)
    with open_record(path) as reader:
        record = reader.read(0, reader.n_samples)
        reader.verify()
    return record


def open_record(path: str | Path) -> RecordReader:
    """Open a record for chunked reading (``.fs``, ``.n_samples``, ``.read(start, stop)``,
    ``.verify()`` once all samples were read, ``.close()``); use as a context manager."""
    path = Path(path)
    if path.suffix.lower() in EDF_SUFFIXES:
        if not path.is_file():
            raise RecordError(path, "file does not exist")
        from ecgfill.io.edf_reader import EdfReader

        return EdfReader(path)
    from ecgfill.io.wfdb_reader import WfdbReader

    return WfdbReader(path)


def write_record(record: ECGRecord, base: str | Path, fmt: str = "wfdb") -> list[Path]:
    """Write ``record`` to ``base`` (path without suffix); returns the files written."""
    if fmt == "wfdb":
        from ecgfill.io.wfdb_writer import write_wfdb

        return write_wfdb(record, base)
    if fmt == "edf":
        from ecgfill.io.edf_writer import write_edf

        return write_edf(record, base)
    raise ValueError(f"unknown output format {fmt!r} (expected wfdb or edf)")


def output_exists(base: str | Path, fmt: str = "wfdb") -> bool:
    """True when a complete output record already exists at ``base``."""
    base = Path(base)
    if fmt == "edf":
        return base.with_suffix(".edf").is_file()
    return base.with_suffix(".hea").is_file() and base.with_suffix(".dat").is_file()
