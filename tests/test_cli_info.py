"""`ecgfill info` (issue 16): what a record holds, like WFDB's wfdbdesc."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
import wfdb
from typer.testing import CliRunner

from ecgfill.api import describe_record
from ecgfill.cli import app
from ecgfill.io import write_record
from ecgfill.synth import synthesize

KEYS = {"input", "status", "error", "fs", "n_samples", "seconds", "start", "leads", "model",
        "checksums", "unused_channels", "comments", "warnings"}


def run(*args: str) -> tuple[int, list[dict], list[str], str]:
    result = CliRunner().invoke(app, ["info", *args])
    lines = [json.loads(ln) for ln in result.stdout.splitlines()]
    return result.exit_code, lines, result.stderr.splitlines(), result.stdout


@pytest.fixture
def output(tmp_path: Path) -> Path:
    """A reconstruct-like output: I, II, V4 measured (2000/mV), limb leads derived, the other
    chest leads reconstructed, with a start time."""
    digital = np.random.default_rng(2).integers(-4000, 4000, (1000, 3))
    wfdb.wrsamp("in", fs=500, units=["mV"] * 3, sig_name=["I", "II", "V4"], d_signal=digital,
                fmt=["16"] * 3, adc_gain=[2000] * 3, baseline=[0] * 3, write_dir=str(tmp_path),
                base_time=datetime(2024, 2, 29, 7, 30).time(),
                base_date=datetime(2024, 2, 29).date())
    from ecgfill.io import read_record

    rec = read_record(tmp_path / "in.hea").with_limb_leads()
    chest = synthesize(2.0, 500.0).select(["V1", "V2", "V3", "V5", "V6"])
    full = type(rec)(np.concatenate([rec.signal, chest.signal]), 500.0,
                     (*rec.leads, *chest.leads),
                     (*rec.origins, *["reconstructed"] * 5), start=rec.start, gains=rec.gains,
                     model="unet-i-ii-v4 2026.11.25").in_standard_order()
    write_record(full, tmp_path / "out")
    return tmp_path / "out.hea"


def test_describe_record(output: Path) -> None:
    info = describe_record(output)
    assert info["fs"] == 500.0 and info["n_samples"] == 1000 and info["seconds"] == 2.0
    assert info["start"] == "2024-02-29T07:30:00"
    assert info["checksums"] == "ok" and info["model"] == "unet-i-ii-v4 2026.11.25"
    leads = {x["lead"]: x for x in info["leads"]}
    assert list(leads) == ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5",
                           "V6"]
    assert leads["V4"] == {"lead": "V4", "origin": "measured", "label": "V4", "units": "mV",
                           "gain": 2000.0, "baseline": 0, "storage": "WFDB format 16"}
    assert leads["aVF"]["origin"] == "derived" and leads["aVF"]["gain"] == 1000.0
    assert leads["V1"]["origin"] == "reconstructed"


def test_info_json_and_text(output: Path, tmp_path: Path) -> None:
    rec = synthesize(3.0, 250.0).select(["I", "II"])
    rec.start = datetime(2020, 1, 2, 3, 4, 5)
    write_record(rec, tmp_path / "e", fmt="edf")
    code, lines, stderr, _ = run(str(output), str(tmp_path / "e.edf"), "--json")
    assert code == 0 and len(lines) == 2 and all(set(o) == KEYS for o in lines)
    edf = next(o for o in lines if o["input"].endswith(".edf"))
    assert edf["status"] == "ok" and edf["checksums"] == "not stored (EDF)"
    assert edf["start"] == "2020-01-02T03:04:05"
    assert [x["storage"] for x in edf["leads"]] == ["EDF 16-bit"] * 2
    assert str(output) in stderr
    assert "  start     2024-02-29T07:30:00" in stderr
    assert any(ln.split()[:4] == ["V4", "measured", "V4", "2000"] for ln in stderr)
    code, lines, _, stdout = run(str(output))  # without --json: nothing on stdout
    assert code == 0 and stdout == ""


def test_unused_channels_and_warnings(tmp_path: Path) -> None:
    digital = np.stack([np.arange(500) % 50 * 20, np.zeros(500, int), np.arange(500)], axis=1)
    wfdb.wrsamp("r", fs=250, units=["mV", "mV", "mV"], sig_name=["I", "II", "RESP"],
                d_signal=digital, fmt=["16"] * 3, adc_gain=[1000] * 3, baseline=[0] * 3,
                write_dir=str(tmp_path))
    info = describe_record(tmp_path / "r.hea")
    assert info["unused_channels"] == ["RESP"]
    assert "lead II is flat (peak-to-peak 0 µV): electrode off?" in info["warnings"]
    assert [x["lead"] for x in info["leads"]] == ["I", "II"]


def test_failed_record_is_one_line_and_exit_1(output: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    for suffix in (".hea", ".dat"):
        (bad / f"out{suffix}").write_bytes(output.with_suffix(suffix).read_bytes())
    data = bytearray((bad / "out.dat").read_bytes())
    data[100] ^= 0x04
    (bad / "out.dat").write_bytes(bytes(data))
    code, lines, stderr, _ = run(str(output), str(bad / "out.hea"), str(tmp_path / "nope.hea"),
                                 "--json")
    assert code == 1
    status = {o["input"]: (o["status"], o["error"]) for o in lines}
    assert status[str(output)] == ("ok", None)
    assert status[str(tmp_path / "nope.hea")] == ("error", "input path does not exist")
    state, problem = status[str(bad / "out.hea")]
    assert state == "error" and problem.startswith("checksum mismatch in signal ")
    errors = [ln for ln in stderr if ln.startswith("error: ")]
    assert sorted(errors) == sorted([f"error: {bad / 'out.hea'}: {problem}",
                                     f"error: {tmp_path / 'nope.hea'}: input path does not exist"])
    assert not any("Traceback" in ln for ln in stderr)


def test_usage_error_without_records() -> None:
    result = CliRunner().invoke(app, ["info"])
    assert result.exit_code == 2 and "Missing argument 'records'" in result.stderr
