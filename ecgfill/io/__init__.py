"""Reading and writing ECG records: one reader per format, one writer per format.

``read_record(path)`` returns an :class:`~ecgfill.record.ECGRecord` with canonical lead names
in mV; ``write_record(record, base)`` writes a 12-lead WFDB (or EDF+) record atomically.
"""

from __future__ import annotations

from pathlib import Path

from ecgfill.errors import RecordError
from ecgfill.record import ECGRecord

EDF_SUFFIXES = {".edf", ".bdf", ".rec"}
WFDB_SUFFIXES = {".hea", ".dat", ".mat"}


def read_record(path: str | Path) -> ECGRecord:
    """Read any supported record (WFDB incl. FLAC and Challenge ``.mat``, EDF/EDF+/BDF)."""
    path = Path(path)
    if path.suffix.lower() in EDF_SUFFIXES:
        if not path.is_file():
            raise RecordError(path, "file does not exist")
        from ecgfill.io.edf_reader import read_edf

        return read_edf(path)
    from ecgfill.io.wfdb_reader import read_wfdb

    return read_wfdb(path)


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
