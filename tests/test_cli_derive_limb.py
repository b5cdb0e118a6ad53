"""`ecgfill derive-limb` end to end: JSON schema, exit codes, bad inputs, skip/overwrite."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from ecgfill.cli import app
from ecgfill.io import read_record, write_record
from ecgfill.leads import STANDARD_LEADS
from ecgfill.record import ECGRecord

JSON_KEYS = {"input", "output", "status", "error", "leads_measured", "leads_derived", "fs",
             "n_samples", "warnings"}


def run(*args: str, stdin: str | None = None) -> tuple[int, list[dict], str]:
    result = CliRunner().invoke(app, list(args), input=stdin)
    lines = [json.loads(ln) for ln in result.stdout.splitlines() if ln.startswith("{")]
    return result.exit_code, lines, result.stderr


@pytest.fixture
def tree(tmp_path: Path, random_record: ECGRecord) -> Path:
    src = tmp_path / "in"
    write_record(random_record.select(["I", "II", "V1", "V2", "V3", "V4", "V5", "V6"]), src / "a" / "r1")
    write_record(random_record.select(["II", "III", "V4"]), src / "b" / "r2", fmt="edf")
    return src


def test_derives_and_mirrors_tree(tree: Path, tmp_path: Path, random_record: ECGRecord) -> None:
    code, lines, _ = run("derive-limb", str(tree), str(tmp_path / "out"), "--json")
    assert code == 0 and len(lines) == 2 and all(set(o) == JSON_KEYS for o in lines)
    r1 = read_record(tmp_path / "out/a/r1.hea")
    assert r1.leads == STANDARD_LEADS
    assert r1.origins[2:6] == ("derived",) * 4
    np.testing.assert_allclose(r1.lead("III"), random_record.lead("II") - random_record.lead("I"), atol=1e-3)
    r2 = read_record(tmp_path / "out/b/r2.hea")
    assert r2.leads == (*STANDARD_LEADS[:6], "V4")
    assert {o["status"] for o in lines} == {"ok"}


def test_skip_existing_then_overwrite(tree: Path, tmp_path: Path) -> None:
    out = str(tmp_path / "out")
    run("derive-limb", str(tree), out)
    code, lines, _ = run("derive-limb", str(tree), out, "--json")
    assert code == 0 and [o["status"] for o in lines] == ["skipped", "skipped"]
    code, lines, _ = run("derive-limb", str(tree), out, "--json", "--overwrite")
    assert [o["status"] for o in lines] == ["ok", "ok"]


def test_bad_inputs_fail_alone(tree: Path, tmp_path: Path) -> None:
    nolimb = tree / "c" / "nolimb"
    write_record(ECGRecord(np.ones((2, 100), np.float32), 100.0, ("II", "V1")), nolimb)
    nan = tree / "c" / "nan"
    sig = np.ones((2, 100), np.float32)
    sig[0] = np.nan
    write_record(ECGRecord(sig, 100.0, ("I", "II")), nan)
    (tree / "c" / "broken.hea").write_text("broken x 100 10\n")
    missing = str(tmp_path / "missing.hea")
    code, lines, stderr = run("derive-limb", str(tree), missing, str(tmp_path / "out"), "--json")
    assert code == 1
    by_name = {Path(o["input"]).stem: o for o in lines}
    assert by_name["r1"]["status"] == "ok" and by_name["r2"]["status"] == "ok"
    assert "needs two limb leads" in by_name["nolimb"]["error"]
    assert "no finite samples" in by_name["nan"]["error"]
    assert "corrupt header" in by_name["broken"]["error"]
    assert by_name["missing"]["error"] == "input path does not exist"
    assert "Traceback" not in stderr and stderr.count("error:") == 4
    assert not (tmp_path / "out/c/nolimb.hea").exists() and not (tmp_path / "out/c/nan.hea").exists()


def test_paths_on_stdin(tree: Path, tmp_path: Path) -> None:
    code, lines, _ = run("derive-limb", "-", str(tmp_path / "o"), "--json", stdin=f"{tree}/a/r1.hea\n")
    assert code == 0 and len(lines) == 1 and lines[0]["leads_derived"] == ["III", "aVR", "aVL", "aVF"]


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    assert run("derive-limb", str(tmp_path), str(tmp_path / "file"))[0] == 2
    assert run("derive-limb")[0] == 2
    assert run("derive-limb", str(tmp_path), str(tmp_path / "o"), "--format", "xml")[0] == 2


def test_subprocess_streams_and_exit_code(tree: Path, tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "ecgfill", "derive-limb", str(tree), str(tmp_path / "nope"), "--json",
         "--workers", "2"],
        capture_output=True, text=True, check=False,
    )
    assert proc.returncode == 0
    assert all(json.loads(line)["status"] == "ok" for line in proc.stdout.splitlines())
    assert "2 records: 2 ok" in proc.stderr
