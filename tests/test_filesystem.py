"""The batch commands and the file system (issue 16): an output directory that is an input
directory, an output directory inside an input directory, and outputs left incomplete."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ecgfill.cli import app
from ecgfill.io import read_record, write_record
from ecgfill.synth import synthesize


def run(*args: str) -> tuple[int, list[dict], str]:
    result = CliRunner().invoke(app, [*args, "--json"])
    lines = [json.loads(ln) for ln in result.stdout.splitlines() if ln.startswith("{")]
    return result.exit_code, lines, result.stderr


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    src = tmp_path / "data"
    for k, fmt in enumerate(["wfdb", "wfdb", "edf"]):
        rec = synthesize(2.0, 250.0, seed=k).select(["I", "II", "V4"])
        write_record(rec, src / f"site{k}" / f"r{k}", fmt=fmt)
    return src


@pytest.mark.parametrize("extra", [[], ["--overwrite"]])
@pytest.mark.parametrize("fmt", ["wfdb", "edf"])
def test_output_directory_equal_to_input_directory_is_a_usage_error(
    tree: Path, extra: list[str], fmt: str
) -> None:
    before = snapshot(tree)
    for inputs, out in ((tree, tree), (tree / "site0" / "r0.hea", tree / "site0"),
                        (tree / "site2", tree / "site2" / "." )):
        code, lines, stderr = run("derive-limb", str(inputs), str(out), "--format", fmt, *extra)
        assert code == 2 and lines == []
        assert stderr.strip() == (f"error: {out}: output directory is the input directory "
                                  f"{inputs if inputs.is_dir() else inputs.parent}; choose another")
    assert snapshot(tree) == before  # nothing replaced, nothing added


def test_output_inside_input_is_never_read_back(tree: Path) -> None:
    out = tree / "derived"
    for _ in range(2):
        code, lines, _ = run("derive-limb", str(tree), str(out))
        assert code == 0
        assert sorted(Path(o["input"]).name for o in lines) == ["r0.hea", "r1.hea", "r2.edf"]
    code, lines, _ = run("derive-limb", f"{tree}/**/*.hea", str(out))
    assert code == 0 and sorted(Path(o["input"]).name for o in lines) == ["r0.hea", "r1.hea"]
    assert not (out / "derived").exists()


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-10])


def _flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def _drop_data(path: Path) -> None:
    path.with_suffix(".dat").unlink()


@pytest.mark.parametrize(
    ("victim", "damage", "problem"),
    [
        ("site0/r0.dat", _truncate, r"has fewer samples than the header declares"),
        ("site0/r0.dat", _flip_a_byte, r"checksum mismatch in signal"),
        ("site0/r0.hea", _drop_data, r"missing data file r0\.dat"),
        ("site0/r0.dat", lambda p: p.write_bytes(p.read_bytes() + b"\0\0"),
         r"r0\.dat has \d+ bytes where the header declares \d+"),
    ],
)
def test_incomplete_outputs_are_redone(tree: Path, tmp_path: Path, victim: str, damage: object,
                                       problem: str) -> None:
    out = tmp_path / "out"
    assert run("derive-limb", str(tree), str(out))[0] == 0
    reference = snapshot(out)
    damage(out / victim)  # type: ignore[operator]
    code, lines, stderr = run("derive-limb", str(tree), str(out))
    assert code == 0
    statuses = {Path(o["input"]).stem: o["status"] for o in lines}
    assert statuses == {"r0": "ok", "r1": "skipped", "r2": "skipped"}
    assert any("site0/r0.hea: existing output" in ln and "incomplete" in ln for ln in
               stderr.splitlines())
    import re

    assert re.search(problem, stderr), stderr
    assert snapshot(out) == reference


def test_incomplete_edf_output_is_redone(tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert run("derive-limb", str(tree), str(out), "--format", "edf")[0] == 0
    reference = snapshot(out)
    _truncate(out / "site1" / "r1.edf")
    code, lines, stderr = run("derive-limb", str(tree), str(out), "--format", "edf")
    assert code == 0 and "file is truncated" in stderr
    assert {Path(o["input"]).stem: o["status"] for o in lines}["r1"] == "ok"
    assert snapshot(out) == reference
    read_record(out / "site1" / "r1.edf")
