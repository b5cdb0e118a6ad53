"""A dead channel does not fail the record (issue 16 item 5): a lead with no finite sample or a
flat one counts as not measured; the record is served from the other leads, the dead lead is
reconstructed or derived (never called measured), and only a record without any usable lead
fails, in one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from ecgfill.cli import app
from ecgfill.io import read_record, write_record
from ecgfill.leads import STANDARD_LEADS
from ecgfill.synth import synthesize

FS = 250.0


def write(path: Path, leads: tuple[str, ...], dead: dict[str, float], seconds: float = 10.0) -> None:
    """A record of ``leads`` whose ``dead`` leads hold one value (NaN: no data) throughout."""
    record = synthesize(seconds, FS, seed=5).select(list(leads))
    for name, value in dead.items():
        record.signal[record.leads.index(name)] = value
    write_record(record, path)


def reconstruct(*args: str) -> tuple[int, list[dict], list[str]]:
    result = CliRunner().invoke(app, ["reconstruct", *args, "--json"])
    return (result.exit_code, [json.loads(ln) for ln in result.stdout.splitlines()],
            result.stderr.splitlines())


@pytest.mark.parametrize(("value", "why"), [(np.nan, "has no finite samples"),
                                            (0.4, "is flat (peak-to-peak 0 µV)")])
def test_a_dead_lead_is_reconstructed_from_the_others(models_env: Path, tmp_path: Path,
                                                       value: float, why: str) -> None:
    write(tmp_path / "in" / "r", ("I", "II", "V4"), {"V4": value})
    code, (outcome,), _ = reconstruct(str(tmp_path / "in"), str(tmp_path / "out"))
    assert code == 0 and outcome["status"] == "ok"
    assert outcome["model"].startswith("linear-i ")  # the plan for I,II
    assert outcome["leads_measured"] == ["I", "II"] and "V4" in outcome["leads_reconstructed"]
    assert (f"lead V4 {why} over the whole record: not used as measured, reconstructed instead"
            in outcome["warnings"])
    assert sum(w.startswith("lead V4 ") for w in outcome["warnings"]) == 1  # said once
    written = read_record(tmp_path / "out" / "r.hea")
    assert written.origins[written.leads.index("V4")] == "reconstructed"
    assert np.isfinite(written.signal).all()


def test_a_dead_limb_lead_is_derived(models_env: Path, tmp_path: Path) -> None:
    write(tmp_path / "in" / "r", ("I", "II", "III", "V1", "V5"), {"III": np.nan})
    code, (outcome,), _ = reconstruct(str(tmp_path / "in"), str(tmp_path / "out"))
    assert code == 0 and outcome["model"].startswith("linear-ii-v1-v5 ")
    assert "III" in outcome["leads_derived"] and "III" not in outcome["leads_measured"]
    written = read_record(tmp_path / "out" / "r.hea")
    np.testing.assert_allclose(written.lead("III"), written.lead("II") - written.lead("I"),
                               atol=1.5e-3)


def test_a_twelve_lead_record_with_a_dead_lead_is_not_copied_through(models_env: Path,
                                                                     tmp_path: Path) -> None:
    write(tmp_path / "in" / "r", STANDARD_LEADS, {"V4": 0.0})
    code, (outcome,), _ = reconstruct(str(tmp_path / "in"), str(tmp_path / "out"))
    assert code == 0 and outcome["leads_reconstructed"] == ["V4"]
    assert len(outcome["leads_measured"]) == 11


def test_a_dead_lead_named_in_leads_is_left_out(models_env: Path, tmp_path: Path) -> None:
    write(tmp_path / "in" / "r", ("I", "II", "V1", "V4", "V5"), {"V4": np.nan})
    code, (outcome,), _ = reconstruct(str(tmp_path / "in"), str(tmp_path / "out"),
                                      "--leads", "I,II,V4")
    assert code == 0 and outcome["leads_measured"] == ["I", "II"]
    assert outcome["model"].startswith("linear-i ")


def test_nothing_usable_fails_in_one_line(models_env: Path, tmp_path: Path) -> None:
    write(tmp_path / "in" / "r", ("I", "V4"), {"I": 0.1, "V4": np.nan})
    code, (outcome,), stderr = reconstruct(str(tmp_path / "in"), str(tmp_path / "out"))
    assert code == 1 and outcome["status"] == "error"
    assert outcome["error"] == ("no usable lead: lead I is flat (peak-to-peak 0 µV); lead V4 has "
                                "no finite samples")
    assert [ln for ln in stderr if ln.startswith("error:")] == [
        f"error: {tmp_path / 'in' / 'r.hea'}: {outcome['error']}"]
    assert not (tmp_path / "out" / "r.hea").exists()


def test_a_lead_dead_only_in_the_first_chunk_stays_measured(
    models_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Deadness is judged on the whole record, however long, not on its first chunk."""
    import ecgfill.reconstruct as reconstruct_module

    monkeypatch.setattr(reconstruct_module, "CHUNK_SECONDS", 20.0)
    record = synthesize(60.0, FS, seed=5).select(["I", "II", "V4"])
    record.signal[2, : int(35 * FS)] = np.nan  # V4 off for the first chunk (and its context)
    write_record(record, tmp_path / "in" / "r")
    code, (outcome,), _ = reconstruct(str(tmp_path / "in"), str(tmp_path / "out"))
    assert code == 0 and outcome["leads_measured"] == ["I", "II", "V4"]
    written = read_record(tmp_path / "out" / "r.hea")
    assert np.isnan(written.lead("V1")[: int(34 * FS)]).all()  # no data, none invented
    assert np.isfinite(written.lead("V1")[int(38 * FS):]).all()
