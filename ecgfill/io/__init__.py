"""Reading and writing ECG records: one reader per format, one writer per format.

``read_record(path)`` returns an :class:`~ecgfill.record.ECGRecord` with canonical lead names
in mV; ``write_record(record, base)`` writes a WFDB (or EDF+) record atomically.
"""

from __future__ import annotations
