"""Quality warnings cover the whole record (issue 16 item 6): a long record streams through in
5-minute chunks, and what goes wrong after the first one is reported too, with durations and
times in seconds of the record."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from ecgfill.cli import app
from ecgfill.io import write_record
from ecgfill.quality import QualityScan
from ecgfill.record import ECGRecord
from ecgfill.synth import SynthParams, synthesize

FS = 100.0


def long_record(seconds: float = 720.0) -> ECGRecord:
    params = SynthParams(noise_mv=0.01, amplitude_mv=2.5)
    return synthesize(seconds, FS, params, seed=8).select(["I", "II", "V4"])


def reconstruct_warnings(record: ECGRecord, tmp_path: Path) -> list[str]:
    write_record(record, tmp_path / "in" / "holter")
    result = CliRunner().invoke(app, ["reconstruct", str(tmp_path / "in"), str(tmp_path / "out"),
                                      "--json", "--model", "linear-i-ii-v4"])
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)["warnings"]


def test_twelve_minutes_with_v4_flat_from_minute_seven(models_env: Path, tmp_path: Path) -> None:
    record = long_record()
    record.signal[2, int(420 * FS):] = record.signal[2, int(420 * FS)]  # electrode off
    record.signal[2, int(100 * FS):int(101 * FS)] = np.nan  # and a second lost in chunk 1
    record.signal[2, int(400 * FS):int(402 * FS)] = np.nan  # and two in chunk 2
    warnings = reconstruct_warnings(record, tmp_path)
    assert "lead V4 is flat for 300.0 s of 720.0 s (from 420.0 s): electrode off?" in warnings
    assert ("lead V4 has 300 non-finite samples (0.4%) in 2 gaps, the longest 2.00 s at 400.0 s: "
            "the leads computed from it are NaN there too") in warnings


def test_clipping_after_the_first_chunk(models_env: Path, tmp_path: Path) -> None:
    record = long_record()
    late = slice(int(300 * FS), None)
    record.signal[1, late] = np.minimum(record.signal[1, late], 1.5)
    held = int(np.count_nonzero(record.signal[1, late] == np.float32(1.5)))
    warnings = reconstruct_warnings(record, tmp_path)
    assert (f"lead II looks clipped at 1.5 mV ({held / FS:.1f} s held at the limit): peaks are "
            "cut off and amplitudes unreliable") in warnings


@pytest.mark.parametrize("pieces", [[7000], [1234, 2000, 3766], [50, 49, 6901], [3500, 3500]])
def test_a_record_read_in_pieces_gets_the_warnings_of_the_whole(pieces: list[int]) -> None:
    """Flat stretches and gaps that run across the pieces, counts, clipping: the same lines
    whichever way the record is cut (clipping is judged per piece: pieces of seconds at least;
    reconstruct's are minutes)."""
    record = long_record(70.0)
    record.signal[0, 3300:3700] = 0.2  # I flat for 4 s across the middle
    record.signal[2, 3450:3460] = np.nan  # a short gap in V4 ...
    record.signal[2, 20:3480] = np.where(record.signal[2, 20:3480] > 0.2, np.nan,
                                         record.signal[2, 20:3480])  # ... and many more
    record.signal[1] = np.minimum(record.signal[1], 1.5)
    whole = QualityScan(record.leads, FS, record.n_samples, 50.0)
    whole.add(record.signal)
    cut = QualityScan(record.leads, FS, record.n_samples, 50.0)
    start = 0
    for size in pieces:
        cut.add(record.signal[:, start:start + size])
        start += size
    expected = whole.reader_warnings(gaps=record.leads)
    assert cut.reader_warnings(gaps=record.leads) == expected
    assert any(w.startswith("lead V4 has ") and " gaps, the longest" in w for w in expected)
    kinds = ("flat", "clipped") if min(pieces) >= 10 * FS else ("flat",)
    lines = [w for w in cut.clinical_warnings() if any(k in w for k in kinds)]
    assert lines == [w for w in whole.clinical_warnings() if any(k in w for k in kinds)]
    assert lines[0] == "lead I is flat for 4.0 s of 70.0 s (from 33.0 s): electrode off?"
    assert kinds == ("flat",) or lines[1].startswith("lead II looks clipped at 1.5 mV (")
