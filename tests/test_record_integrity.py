"""What an output record must keep of its input (issue 16): provenance in every format, the
recording's start, and the measured leads' own integers."""

from __future__ import annotations

import json
from datetime import datetime, time
from pathlib import Path

import numpy as np
import pytest
import wfdb
from typer.testing import CliRunner

from ecgfill.api import derive_limb_leads
from ecgfill.cli import app
from ecgfill.io import read_record, write_record
from ecgfill.leads import STANDARD_LEADS
from ecgfill.record import ECGRecord
from ecgfill.synth import synthesize

START = datetime(2021, 3, 23, 20, 20, 47, 250000)
LONG_MODEL = "unet-i-ii-v4-trained-on-ptbxl-highpass 2026.11.25+local.build"


def wfdb_digital(directory: Path, name: str, digital: np.ndarray, names: list[str], *,
                 gain: float, baseline: int = 0, fmt: str = "16", **kw: object) -> Path:
    n = digital.shape[1]
    wfdb.wrsamp(name, fs=500, units=["mV"] * n, sig_name=names, d_signal=digital, fmt=[fmt] * n,
                adc_gain=[gain] * n, baseline=[baseline] * n, write_dir=str(directory), **kw)
    return directory / f"{name}.hea"


def stored_integers(base: Path) -> dict[str, np.ndarray]:
    rec = wfdb.rdrecord(str(base), physical=False)
    return {name: rec.d_signal[:, k] for k, name in enumerate(rec.sig_name)}


def mixed_record(seconds: float = 2.0) -> ECGRecord:
    """12 leads: I, II, V4 measured, the limb leads derived, the rest reconstructed."""
    rec = synthesize(seconds, 250.0, seed=4)
    origins = tuple("measured" if n in ("I", "II", "V4") else
                    "derived" if n in STANDARD_LEADS[2:6] else "reconstructed" for n in rec.leads)
    rec.origins, rec.model = origins, LONG_MODEL
    return rec


# --------------------------------------------------------------------------------------------
# 1. Provenance


@pytest.mark.parametrize("seconds", [0.5, 2.0, 30.0])
def test_origins_and_model_round_trip_through_edf(tmp_path: Path, seconds: float) -> None:
    """EDF+ annotations hold 40 characters and one per data record and annotation signal:
    the origins and a long model name still come back exactly, whatever the length."""
    rec = mixed_record(seconds)
    write_record(rec, tmp_path / "p", fmt="edf")
    back = read_record(tmp_path / "p.edf")
    assert back.origins == rec.origins
    assert back.model == LONG_MODEL


def test_second_run_keeps_origins_from_edf(tmp_path: Path) -> None:
    """derive-limb over an EDF+ output must not call its derived leads measured."""
    write_record(synthesize(4.0, 250.0, seed=1).select(["I", "II", "V4"]), tmp_path / "in" / "r")
    runner = CliRunner()
    first = runner.invoke(app, ["derive-limb", str(tmp_path / "in"), str(tmp_path / "edf"),
                                "--format", "edf"])
    assert first.exit_code == 0, first.stderr
    second = runner.invoke(app, ["derive-limb", str(tmp_path / "edf"), str(tmp_path / "again")])
    assert second.exit_code == 0, second.stderr
    again = read_record(tmp_path / "again" / "r.hea")
    assert again.leads_with("derived") == ["III", "aVR", "aVL", "aVF"]
    assert again.leads_with("measured") == ["I", "II", "V4"]


# --------------------------------------------------------------------------------------------
# 2. Start date and time


@pytest.mark.parametrize("fmt", ["wfdb", "edf"])
def test_start_of_the_input_is_kept(tmp_path: Path, fmt: str) -> None:
    digital = np.arange(-500, 500).reshape(-1, 2)
    hea = wfdb_digital(tmp_path, "in", digital, ["I", "II"], gain=1000,
                       base_time=START.time(), base_date=START.date())
    record = read_record(hea)
    assert record.start == START
    written = write_record(derive_limb_leads(record), tmp_path / "out", fmt=fmt)
    back = read_record(written[-1])
    assert back.start == (START if fmt == "wfdb" else START.replace(microsecond=0))
    if fmt == "wfdb":
        assert (tmp_path / "out.hea").read_text().split("\n")[0].endswith(
            "20:20:47.25 23/03/2021")


def test_start_from_edf_input_reaches_wfdb(tmp_path: Path) -> None:
    rec = synthesize(2.0, 250.0).select(["I", "II"])
    rec.start = datetime(2019, 12, 31, 23, 59, 58)
    write_record(rec, tmp_path / "in", fmt="edf")
    write_record(read_record(tmp_path / "in.edf"), tmp_path / "out")
    assert read_record(tmp_path / "out.hea").start == rec.start
    assert wfdb.rdheader(str(tmp_path / "out")).base_datetime == rec.start


@pytest.mark.parametrize(
    ("fields", "start"),
    [
        ("05-May-2020 14:50:55", datetime(2020, 5, 5, 14, 50, 55)),  # Challenge headers
        ("14:50:55 05/05/2020", datetime(2020, 5, 5, 14, 50, 55)),
        ("08:00:01.5", time(8, 0, 1, 500000)),  # a time alone
        ("", None),
    ],
)
def test_start_forms(tmp_path: Path, fields: str, start: object) -> None:
    write_record(synthesize(1.0, 250.0).select(["I", "II"]), tmp_path / "r")
    hea = tmp_path / "r.hea"
    lines = hea.read_text().split("\n")
    lines[0] = f"{lines[0]} {fields}".rstrip()
    hea.write_text("\n".join(lines))
    rec = read_record(hea)
    assert rec.start == start
    write_record(rec, tmp_path / "again")
    assert read_record(tmp_path / "again.hea").start == start
    write_record(rec, tmp_path / "again", fmt="edf")  # EDF: whole seconds
    assert read_record(tmp_path / "again.edf").start == (start and start.replace(microsecond=0))


def test_unknown_start_stays_unknown_in_edf(tmp_path: Path) -> None:
    """No start: EDF writes 01.01.85 00:00:00 (not the time of the run) and reads None."""
    write_record(synthesize(1.0, 250.0).select(["I", "II"]), tmp_path / "r", fmt="edf")
    assert read_record(tmp_path / "r.edf").start is None
    assert (tmp_path / "r.edf").read_bytes()[168:184] == b"01.01.8500.00.00"


# --------------------------------------------------------------------------------------------
# 3. Measured leads bit-exact


@pytest.mark.parametrize(("gain", "baseline", "fmt"), [(2000, 0, "16"), (2000, 7, "16"),
                                                        (4880, 0, "16"), (200.5, -3, "212")])
def test_measured_integers_written_back_exactly(tmp_path: Path, gain: float, baseline: int,
                                                fmt: str) -> None:
    rng = np.random.default_rng(3)
    high = 2000 if fmt == "212" else 30000
    digital = rng.integers(-high, high, (3000, 3))
    hea = wfdb_digital(tmp_path, "in", digital, ["I", "II", "V4"], gain=gain, baseline=baseline,
                       fmt=fmt)
    result = derive_limb_leads(read_record(hea))
    write_record(result, tmp_path / "out")
    ints = stored_integers(tmp_path / "out")
    for k, name in enumerate(["I", "II", "V4"]):
        np.testing.assert_array_equal(ints[name], digital[:, k])
    header = wfdb.rdheader(str(tmp_path / "out"))
    for name, g, b in zip(header.sig_name, header.adc_gain, header.baseline, strict=True):
        expected = (gain, baseline) if name in ("I", "II", "V4") else (1000, 0)
        assert (g, b) == expected, name
    back = read_record(tmp_path / "out.hea")
    np.testing.assert_allclose(back.lead("III"), result.lead("III"), rtol=0, atol=0.0005 + 1e-6)


def test_measured_integers_exact_through_edf(tmp_path: Path) -> None:
    """EDF stores each measured lead's own integers too; read back, they reach WFDB unchanged."""
    digital = np.random.default_rng(5).integers(-32000, 32000, (2000, 2))
    hea = wfdb_digital(tmp_path, "in", digital, ["I", "II"], gain=4880)
    write_record(derive_limb_leads(read_record(hea)), tmp_path / "mid", fmt="edf")
    write_record(read_record(tmp_path / "mid.edf"), tmp_path / "out")
    ints = stored_integers(tmp_path / "out")
    np.testing.assert_array_equal(ints["I"], digital[:, 0])
    np.testing.assert_array_equal(ints["II"], digital[:, 1])


def test_wide_formats_and_inverted_leads_fall_back_to_microvolts(tmp_path: Path) -> None:
    """24-bit integers do not fit format 16, an inverted lead would need a negative gain: both
    are written at 1000/mV, to the microvolt."""
    digital = np.random.default_rng(6).integers(-10**6, 10**6, (500, 2))
    hea = wfdb_digital(tmp_path, "in", digital, ["I", "-aVR"], gain=100000, fmt="24")
    rec = read_record(hea)
    assert rec.gains == {}
    write_record(rec, tmp_path / "out")
    header = wfdb.rdheader(str(tmp_path / "out"))
    assert header.adc_gain == [1000.0, 1000.0]
    back = read_record(tmp_path / "out.hea")
    np.testing.assert_allclose(back.signal, rec.signal, rtol=0, atol=0.0005 + 1e-6)


def test_derive_limb_cli_keeps_gain_and_start(tmp_path: Path) -> None:
    digital = np.random.default_rng(7).integers(-9000, 9000, (1000, 2))
    (tmp_path / "in").mkdir()
    wfdb_digital(tmp_path / "in", "r", digital, ["I", "II"], gain=2000,
                 base_time=START.time(), base_date=START.date())
    result = CliRunner().invoke(app, ["derive-limb", str(tmp_path / "in"), str(tmp_path / "out"),
                                      "--json"])
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["status"] == "ok"
    ints = stored_integers(tmp_path / "out" / "r")
    np.testing.assert_array_equal(ints["I"], digital[:, 0])
    assert read_record(tmp_path / "out" / "r.hea").start == START


# --------------------------------------------------------------------------------------------
# Real records


def _challenge_integers(hea: Path) -> dict[str, np.ndarray]:
    from scipy.io import loadmat

    names = [ln.split()[-1] for ln in hea.read_text().splitlines()[1:13]]
    values = loadmat(hea.with_suffix(".mat"))["val"]
    return dict(zip(names, values, strict=True))


@pytest.mark.realdata
@pytest.mark.parametrize("fmt", ["wfdb", "edf"])
def test_real_gain_4880_record_round_trips_bit_exactly(shared_data: Path, tmp_path: Path,
                                                       fmt: str) -> None:
    hea = shared_data / "georgia/gain-2020/E00002.hea"
    rec = read_record(hea)
    assert rec.start == datetime(2020, 5, 5, 14, 50, 55)
    assert set(rec.gains.values()) == {(4880.0, 0)}
    written = write_record(derive_limb_leads(rec), tmp_path / "out", fmt=fmt)
    if fmt == "edf":
        write_record(read_record(written[-1]), tmp_path / "out")
    original = _challenge_integers(hea)
    ints = stored_integers(tmp_path / "out")
    for name in STANDARD_LEADS:
        np.testing.assert_array_equal(ints[name], original[name])
    assert read_record(tmp_path / "out.hea").start == rec.start


@pytest.mark.realdata
def test_real_ptb_2000_per_mv_record_is_bit_exact(shared_data: Path, tmp_path: Path) -> None:
    """PTB's s0010_re is stored at 2000/mV: re-quantising to 1 µV changed half its samples."""
    base = shared_data / "ptbdb/patient001/s0010_re"
    original = stored_integers(base)
    reduced = read_record(base.with_suffix(".hea")).select(["I", "II", "V2"])
    write_record(derive_limb_leads(reduced), tmp_path / "out")
    ints = stored_integers(tmp_path / "out")
    for name, source in (("I", "i"), ("II", "ii"), ("V2", "v2")):
        np.testing.assert_array_equal(ints[name], original[source])
    assert read_record(tmp_path / "out.hea").start is None  # the header gives none


def test_reconstruct_keeps_start_and_measured_integers(tmp_path: Path, models_env: Path) -> None:
    (tmp_path / "in").mkdir()
    digital = np.random.default_rng(8).integers(-3000, 3000, (2000, 3))
    wfdb_digital(tmp_path / "in", "r", digital, ["I", "II", "V4"], gain=2000,
                 base_time=START.time(), base_date=START.date())
    result = CliRunner().invoke(app, ["reconstruct", str(tmp_path / "in"), str(tmp_path / "out")])
    assert result.exit_code == 0, result.stderr
    ints = stored_integers(tmp_path / "out" / "r")
    for k, name in enumerate(["I", "II", "V4"]):
        np.testing.assert_array_equal(ints[name], digital[:, k])
    assert read_record(tmp_path / "out" / "r.hea").start == START
