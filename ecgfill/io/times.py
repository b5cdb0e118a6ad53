"""A recording's start date and time, as WFDB and EDF headers write it.

WFDB's record line ends with ``HH:MM:SS[.fff] DD/MM/YYYY`` (either part optional); PhysioNet/CinC
Challenge headers write ``DD-Mon-YYYY HH:MM:SS`` instead, which wfdb-python rejects. EDF always
holds a date: a start of 01.01.85 (EDF's first year, used for unknown dates) means no date, and
00:00:00 on that day means no start at all.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time

from ecgfill.record import Start

EDF_NO_DATE = date(1985, 1, 1)
_TIME = re.compile(r"(\d{1,2}):(\d{1,2}):(\d{1,2})(?:\.(\d{1,6})\d*)?")
_WFDB_DATE = re.compile(r"(\d{1,2})/(\d{1,2})/(\d{4})")
_CHALLENGE_DATE = re.compile(r"(\d{1,2})-([A-Za-z]{3})-(\d{4})")


def parse_start(parts: list[str]) -> tuple[Start, str | None]:
    """(start, problem) from the record line's fields after the length; the problem names what
    could not be understood (the start is then None)."""
    if not parts:
        return None, None
    found_time: time | None = None
    found_date: date | None = None
    try:
        for part in parts:
            if (m := _TIME.fullmatch(part)) and found_time is None:
                micro = int((m[4] or "0").ljust(6, "0"))
                found_time = time(int(m[1]), int(m[2]), int(m[3]), micro)
            elif (m := _WFDB_DATE.fullmatch(part)) and found_date is None:
                found_date = date(int(m[3]), int(m[2]), int(m[1]))
            elif _CHALLENGE_DATE.fullmatch(part) and found_date is None:
                found_date = datetime.strptime(part.title(), "%d-%b-%Y").date()
            else:
                raise ValueError(part)
    except ValueError:
        return None, f"start date/time {' '.join(parts)!r} not understood; left out"
    if found_date is None:
        return found_time, None
    return datetime.combine(found_date, found_time or time()), None


def wfdb_start_fields(start: Start) -> str:
    """`` HH:MM:SS[.ffffff][ DD/MM/YYYY]`` for the record line, or ``""`` without a start."""
    if start is None:
        return ""
    clock = start.time() if isinstance(start, datetime) else start
    text = " " + clock.strftime("%H:%M:%S")
    if clock.microsecond:
        text += f".{clock.microsecond:06d}".rstrip("0")
    if isinstance(start, datetime):
        text += " " + start.strftime("%d/%m/%Y")
    return text


def to_edf_start(start: Start) -> datetime:
    """The EDF header's start (whole seconds: pyedflib loses EDF+'s sub-second start)."""
    if isinstance(start, datetime):
        return start.replace(microsecond=0, tzinfo=None)
    clock = start or time()
    return datetime.combine(EDF_NO_DATE, clock.replace(microsecond=0, tzinfo=None))


def from_edf_start(value: datetime) -> Start:
    """Inverse of :func:`to_edf_start`."""
    if value.date() != EDF_NO_DATE:
        return value
    return value.time() if value.time() != time() else None
