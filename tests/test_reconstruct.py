"""`ecgfill reconstruct`: model choice, physics, rates, long records, shards, batch behaviour."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import wfdb
from typer.testing import CliRunner

from ecgfill.cli import app
from ecgfill.io import read_record, write_record
from ecgfill.leads import STANDARD_LEADS
from ecgfill.record import ECGRecord
from ecgfill.synth import synthesize

JSON_KEYS = {"input", "output", "status", "error", "model", "model_leads", "lead_set",
             "model_validation_r", "unused_channels", "leads_measured", "leads_derived",
             "leads_reconstructed", "fs", "bandwidth_hz", "high_band_model", "n_samples",
             "seconds", "warnings", "calibration", "expected_r"}


def run(*args: str, stdin: str | None = None) -> tuple[int, list[dict], str]:
    result = CliRunner().invoke(app, ["reconstruct", *args], input=stdin)
    lines = [json.loads(ln) for ln in result.stdout.splitlines() if ln.startswith("{")]
    return result.exit_code, lines, result.stderr


def write_reduced(path: Path, leads: list[str], fs: float = 500.0, seconds: float = 10.0,
                  seed: int = 0, fmt: str = "wfdb") -> ECGRecord:
    record = synthesize(seconds, fs, seed=seed).select(leads)
    write_record(record, path, fmt)
    return record


@pytest.fixture
def inputs(tmp_path: Path) -> Path:
    src = tmp_path / "in"
    write_reduced(src / "patch" / "a", ["I", "II", "V4"], seed=1)
    write_reduced(src / "patch" / "b", ["II", "V1", "V5"], fs=250.0, seed=2)
    write_reduced(src / "watch" / "c", ["I"], fs=100.0, seed=3)
    write_reduced(src / "edf" / "d", ["III", "aVF", "V4"], fs=360.0, seed=4, fmt="edf")
    return src


def test_auto_model_per_lead_set(models_env: Path, inputs: Path, tmp_path: Path) -> None:
    code, lines, stderr = run(str(inputs), str(tmp_path / "out"), "--json")
    assert code == 0, stderr
    assert all(set(o) == JSON_KEYS for o in lines)
    models = {Path(o["input"]).stem: o["model"].split()[0] for o in lines}
    assert models == {"a": "linear-i-ii-v4", "b": "linear-ii-v1-v5", "c": "linear-i",
                      "d": "linear-i-ii-v4"}  # III and aVF determine I and II exactly
    for o in lines:
        rec = read_record(Path(o["output"]).with_suffix(".hea"))
        assert rec.leads == STANDARD_LEADS and rec.fs == o["fs"]
        assert sorted(o["leads_measured"] + o["leads_derived"] + o["leads_reconstructed"]) == sorted(
            STANDARD_LEADS)
    d = next(o for o in lines if o["input"].endswith("d.edf"))
    assert d["leads_measured"] == ["III", "aVF", "V4"]
    assert set(d["leads_derived"]) == {"I", "II", "aVR", "aVL"}


def test_measured_leads_are_bit_exact_and_rates_kept(models_env: Path, inputs: Path, tmp_path: Path) -> None:
    run(str(inputs), str(tmp_path / "out"))
    for rel, n in (("patch/a", 5000), ("patch/b", 2500), ("watch/c", 1000)):
        src = wfdb.rdrecord(str(inputs / rel), physical=False)
        out = wfdb.rdrecord(str(tmp_path / "out" / rel), physical=False)
        assert out.sig_len == n and out.fs == src.fs and out.n_sig == 12
        for k, name in enumerate(src.sig_name):
            assert np.array_equal(out.d_signal[:, out.sig_name.index(name)], src.d_signal[:, k])


def test_limb_leads_consistent_and_output_plausible(models_env: Path, inputs: Path, tmp_path: Path) -> None:
    run(str(inputs), str(tmp_path / "out"))
    rec = read_record(tmp_path / "out/watch/c.hea")
    np.testing.assert_allclose(rec.lead("III"), rec.lead("II") - rec.lead("I"), atol=1.5e-3)
    truth = synthesize(10.0, 100.0, seed=3)
    r = np.corrcoef(rec.lead("V5"), truth.lead("V5"))[0, 1]
    assert r > 0.5  # a linear model fitted on synthetic records follows the morphology


def test_aliases_and_leads_override(models_env: Path, tmp_path: Path) -> None:
    rec = synthesize(10.0, 500.0, seed=5)
    digital = np.rint(rec.select(["I", "II", "V4", "V6"]).signal.T * 1000).astype(int)
    wfdb.wrsamp("alias", fs=500, units=["mV"] * 4, sig_name=["ECG i", "ii", "v4", "C6"],
                d_signal=digital, fmt=["16"] * 4, adc_gain=[1000] * 4, baseline=[0] * 4,
                write_dir=str(tmp_path))
    code, lines, _ = run(str(tmp_path / "alias.hea"), str(tmp_path / "out"), "--json")
    # a superset of a served lead set: the model takes I,II,V4 and the measured V6 is kept
    assert code == 0 and lines[0]["model"].startswith("linear-i-ii-v4")
    assert lines[0]["leads_measured"] == ["I", "II", "V4", "V6"]
    assert lines[0]["model_leads"] == ["I", "II", "V4"] and lines[0]["unused_channels"] == []
    assert "V6" not in lines[0]["leads_reconstructed"]
    code, lines, _ = run(str(tmp_path / "alias.hea"), str(tmp_path / "out2"), "--json", "--leads",
                         "i,II,v4")
    assert code == 0 and lines[0]["leads_measured"] == ["I", "II", "V4"]
    assert "V6" in lines[0]["leads_reconstructed"] and lines[0]["unused_channels"] == ["V6"]


def test_twelve_leads_copied_then_forced(models_env: Path, tmp_path: Path) -> None:
    write_record(synthesize(10.0, 500.0, seed=6), tmp_path / "in" / "full")
    code, lines, stderr = run(str(tmp_path / "in"), str(tmp_path / "out"), "--json")
    assert code == 0 and lines[0]["model"] is None and "copied through" in stderr
    assert (tmp_path / "in/full.dat").read_bytes() == (tmp_path / "out/full.dat").read_bytes()
    code, lines, _ = run(str(tmp_path / "in"), str(tmp_path / "out"), "--json", "--force", "--overwrite")
    assert code == 1 and "--force on a 12-lead record needs" in lines[0]["error"]
    code, lines, _ = run(str(tmp_path / "in"), str(tmp_path / "out"), "--json", "--force", "--overwrite",
                         "--model", "linear-i-ii-v4")
    assert code == 0 and lines[0]["leads_measured"] == ["I", "II", "V4"]


def test_long_record_streams_like_a_short_one(models_env: Path, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    import ecgfill.reconstruct as reconstruct

    write_reduced(tmp_path / "in" / "long", ["I", "II", "V4"], fs=250.0, seconds=200.0, seed=7)
    run(str(tmp_path / "in"), str(tmp_path / "whole"))
    monkeypatch.setattr(reconstruct, "CHUNK_SECONDS", 30.0)
    code, lines, _ = run(str(tmp_path / "in"), str(tmp_path / "chunked"), "--json")
    assert code == 0
    whole, chunked = read_record(tmp_path / "whole/long.hea"), read_record(tmp_path / "chunked/long.hea")
    assert chunked.n_samples == whole.n_samples == 50000
    assert np.abs(chunked.signal - whole.signal).max() < 0.01
    for name in ("I", "II", "V4"):  # measured leads bit-exact across chunk seams
        assert np.array_equal(chunked.lead(name), whole.lead(name))
    jumps = np.abs(np.diff(chunked.signal, axis=1)) - np.abs(np.diff(whole.signal, axis=1))
    assert jumps.max() < 0.005  # predictions are cross-faded at seams: no steps


def test_shards_cover_every_record_once(models_env: Path, inputs: Path, tmp_path: Path) -> None:
    seen = []
    for k in (1, 2, 3):
        code, lines, _ = run(str(inputs), str(tmp_path / "out"), "--json", "--shard", f"{k}/3")
        assert code == 0
        seen += [o["input"] for o in lines]
    assert sorted(seen) == sorted({*seen}) and len(seen) == 4
    assert run(str(inputs), str(tmp_path / "out"), "--shard", "4/3")[0] == 2


def test_skip_overwrite_failure_isolation_and_exit_codes(models_env: Path, inputs: Path,
                                                          tmp_path: Path) -> None:
    (inputs / "patch" / "broken.hea").write_text("broken 3 500 5000\nbroken.dat 16 1000 16 0 0 0 0 I\n")
    code, lines, stderr = run(str(inputs), str(tmp_path / "out"), "--json")
    assert code == 1 and stderr.count("error:") == 1 and "Traceback" not in stderr
    statuses = {Path(o["input"]).stem: o["status"] for o in lines}
    assert statuses == {"a": "ok", "b": "ok", "c": "ok", "d": "ok", "broken": "error"}
    assert not (tmp_path / "out/patch/broken.hea").exists()
    code, lines, _ = run(str(inputs), str(tmp_path / "out"), "--json")
    assert sorted(o["status"] for o in lines) == ["error", "skipped", "skipped", "skipped", "skipped"]
    code, lines, _ = run(str(inputs / "patch/a.hea"), str(tmp_path / "out"), "--json", "--overwrite")
    assert code == 0 and lines[0]["status"] == "ok"


def test_usage_errors(models_env: Path, inputs: Path, tmp_path: Path) -> None:
    assert run(str(inputs), str(tmp_path / "o"), "--model", "no-such-model")[0] == 2
    assert run(str(inputs), str(tmp_path / "o"), "--backend", "tensorrt")[0] == 2
    assert run(str(inputs), str(tmp_path / "o"), "--leads", "I,XYZ")[0] == 2


def test_edf_output(models_env: Path, inputs: Path, tmp_path: Path) -> None:
    code, lines, _ = run(str(inputs / "patch/a.hea"), str(tmp_path / "out"), "--format", "edf", "--json")
    assert code == 0
    rec = read_record(tmp_path / "out/a.edf")
    assert rec.leads == STANDARD_LEADS and rec.n_samples == 5000


def test_torch_and_onnx_backends_agree(models_env: Path, inputs: Path, tmp_path: Path) -> None:
    run(str(inputs / "patch/a.hea"), str(tmp_path / "onnx"))
    run(str(inputs / "patch/a.hea"), str(tmp_path / "torch"), "--backend", "torch")
    a, b = read_record(tmp_path / "onnx/a.hea"), read_record(tmp_path / "torch/a.hea")
    assert np.abs(a.signal - b.signal).max() <= 1e-3 + 1e-6  # same µV after rounding, ±1 digit


@pytest.mark.realdata
@pytest.mark.parametrize("leads", [("I", "II", "V4"), ("II", "V1", "V5")])
def test_ptbxl_500hz_masked_records_reconstruct(shared_data: Path, tmp_path: Path,
                                                 leads: tuple[str, ...]) -> None:
    """PTB-XL 500 Hz originals masked to three leads reconstruct with the shipped models."""
    headers = sorted((shared_data / "ptb-xl/records500-cinc2021").glob("*.hea"))[:8]
    for hea in headers:
        write_record(read_record(hea).select(list(leads)), tmp_path / "masked" / hea.stem)
    code, lines, stderr = run(str(tmp_path / "masked"), str(tmp_path / "out"), "--json")
    assert code == 0, stderr
    assert len(lines) == len(headers)
    for line, hea in zip(sorted(lines, key=lambda o: o["input"]), headers, strict=True):
        full = read_record(hea)
        out = read_record(Path(line["output"]).with_suffix(".hea"))
        assert out.leads == STANDARD_LEADS and out.fs == 500.0 and out.n_samples == full.n_samples
        for name in leads:
            assert np.abs(out.lead(name) - full.lead(name)).max() <= 0.0005 + 1e-6
        assert sorted(line["leads_reconstructed"] + line["leads_derived"] + list(leads)) == sorted(
            STANDARD_LEADS)
