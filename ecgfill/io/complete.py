"""Is an existing output complete? The batch commands skip complete outputs and redo others."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ecgfill.errors import RecordError
from ecgfill.io.edf_reader import EdfReader
from ecgfill.io.wfdb_reader import WfdbReader
from ecgfill.io.wfdb_writer import safe_record_name

CHUNK_SAMPLES = 1 << 20  # samples per signal summed at a time (bounded memory)


def output_problem(base: Path, fmt: str) -> str | None:
    """None when no output exists at ``base``; ``""`` when a complete one does; else the problem."""
    if fmt == "edf":
        return _edf_problem(base.with_suffix(".edf"))
    base = base.with_name(safe_record_name(base.name))
    header, data = base.with_suffix(".hea"), base.with_suffix(".dat")
    if not header.exists() and not data.exists():
        return None
    try:
        return _wfdb_problem(header, data)
    except RecordError as exc:
        return exc.problem


def _edf_problem(path: Path) -> str | None:
    if not path.exists():
        return None
    try:
        EdfReader(path).close()  # checks the size against the header, then parses it
    except RecordError as exc:
        return exc.problem
    return ""


def _wfdb_problem(header: Path, data: Path) -> str:
    with WfdbReader(header) as reader:  # strict header; data files present and long enough
        head = reader.header
        n, n_sig = reader.n_samples, int(head.n_sig)
        layout = (getattr(head, "file_name", None) == [data.name] * n_sig
                  and list(head.fmt) == ["16"] * n_sig
                  and all(not o for o in head.byte_offset)
                  and all((s or 1) == 1 for s in head.samps_per_frame))
        if not layout:  # not the layout ecgfill writes: read it all and check the checksums
            for start in range(0, n, CHUNK_SAMPLES):
                reader.read(start, min(n, start + CHUNK_SAMPLES))
            reader.verify()
            return ""
        expected = 2 * n * n_sig
        size = data.stat().st_size
        if size != expected:
            return f"data file {data.name} has {size} bytes where the header declares {expected}"
        samples = np.memmap(data, dtype="<i2", mode="r", shape=(n, n_sig))
        sums = np.zeros(n_sig, dtype=np.int64)
        for start in range(0, n, CHUNK_SAMPLES):
            sums += samples[start : start + CHUNK_SAMPLES].sum(axis=0, dtype=np.int64)
        for name, expected_sum, got in zip(head.sig_name, head.checksum or [], sums % 65536,
                                           strict=False):
            if expected_sum is not None and int(expected_sum) % 65536 != int(got):
                return f"checksum mismatch in signal {name}"
        return ""
