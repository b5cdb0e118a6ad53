"""Personal calibration (issue 17): the fit, its guards, bad references, the CLI, the API and
``evaluate --calibration same-patient``. Generated records (ecgfill.synth); one real-data test."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from ecgfill import beats, calibrate
from ecgfill.beats import pearson
from ecgfill.calibrate import Guard, fit
from ecgfill.cli import app
from ecgfill.errors import RecordError
from ecgfill.io import read_record, write_record
from ecgfill.leads import STANDARD_LEADS
from ecgfill.record import ECGRecord
from ecgfill.synth import SynthParams, synthesize

PATIENT = SynthParams(axis_deg=110.0, heart_rate_bpm=66.0, noise_mv=0.01)
OTHER = SynthParams(axis_deg=-20.0, heart_rate_bpm=90.0, qrs_ms=120.0, noise_mv=0.01)
OUT = ("V1", "V2")


def _arrays(record: ECGRecord, distort: float) -> tuple[np.ndarray, np.ndarray, dict]:
    """Inputs I, II, V4; a 'model' prediction of V1, V2 that is the truth scaled by
    ``distort`` plus a lagged share of lead I; the truth."""
    inputs = np.stack([record.lead(n) for n in ("I", "II", "V4")]).astype(np.float64)
    truth = {n: record.lead(n).astype(np.float64) for n in OUT}
    prediction = np.stack([distort * truth[n] + 0.3 * np.roll(inputs[0], 2) for n in OUT])
    return inputs, prediction, truth


def test_residual_beat_is_recovered_and_laid_back_at_each_beat() -> None:
    fs = 100.0
    before, after = beats.window_samples(fs)
    beat = np.sin(np.linspace(0, 3 * np.pi, before + after))
    peaks = np.arange(60, 960, 80)
    x = beats.place(beat, peaks, 1000, fs) / beats.taper(before + after).max()
    mean = beats.mean_beat(x[None], peaks, fs)
    assert mean is not None and mean.shape == (1, before + after)
    core = slice(before - 10, before + 10)  # away from the taper and the neighbours' windows
    assert np.allclose(mean[0, core], beat[core], atol=1e-9)
    assert beats.mean_beat(x[None], peaks[:2], fs) is None  # fewer than MIN_BEATS
    assert beats.place(beat, np.array([], dtype=np.int64), 500, fs).tolist() == [0.0] * 500


def test_beats_are_aligned_to_the_reference_beat() -> None:
    rec = synthesize(10, 100, PATIENT, seed=1)
    inputs = np.stack([rec.lead(n) for n in ("I", "II", "V4")]).astype(np.float64)
    template = beats.mean_beat(inputs, beats.aligned_beats(inputs, 100.0, None), 100.0,
                                   np.median)
    shifted = np.roll(inputs, 2, axis=1)  # the same beats, 20 ms later
    plain = beats.aligned_beats(inputs, 100.0, template)
    moved = beats.aligned_beats(shifted, 100.0, template)
    assert plain.size == moved.size and np.array_equal(moved[1:-1], plain[1:-1] + 2)


def test_fit_corrects_a_patient_specific_error_on_a_new_record() -> None:
    ref, target = synthesize(20, 100, PATIENT, seed=1), synthesize(10, 100, PATIENT, seed=2)
    guard = Guard(1.0, 0.0, 0.7, 0.9)
    cal = fit("ref", "m", 100.0, *_arrays(ref, 0.6), ("I", "II", "V4"), OUT, guard)
    inputs, prediction, truth = _arrays(target, 0.6)
    checked = cal.for_record(inputs)
    assert checked.similarity is not None and checked.similarity > 0.9
    corrected = checked.apply(inputs, prediction)
    for k, name in enumerate(OUT):
        before = pearson(prediction[k], truth[name])
        after = pearson(corrected[k], truth[name])
        assert after > before + 0.02 and after > 0.98
        assert np.abs(corrected[k] - truth[name]).mean() < 0.5 * np.abs(prediction[k] - truth[name]).mean()
        assert checked.lead_similarity[name] > 0.99
    summary = checked.summary()
    assert summary["leads_calibrated"] == list(OUT) and not summary["fell_back"]
    assert summary["method"] == "residual beat" and summary["strength"] == 1.0
    assert "residual beat x 1, leads calibrated: V1,V2" in checked.comment()
    half = cal.for_record(inputs)  # half the strength: half the correction
    half = replace(half, guard=replace(guard, strength=0.5))
    delta_half = half.apply(inputs, prediction) - prediction
    assert np.allclose(delta_half, 0.5 * (corrected - prediction), atol=1e-5)


def test_guard_falls_back_for_another_electrode_layout() -> None:
    ref = synthesize(20, 100, PATIENT, seed=1)
    cal = fit("ref", "m", 100.0, *_arrays(ref, 0.6), ("I", "II", "V4"), OUT, Guard(1.0, 0.0, 0.7))
    inputs, prediction, _ = _arrays(synthesize(10, 100, PATIENT, seed=2), 0.6)
    assert cal.for_record(inputs).active
    swapped = inputs * np.array([[-1.0], [1.0], [-1.0]])  # arm electrodes and V4 reversed
    other, _, _ = _arrays(synthesize(10, 100, OTHER, seed=2), 0.6)
    for layout in (swapped, other):
        checked = cal.for_record(layout)
        assert not checked.active and set(checked.fallback) == set(OUT)
        assert checked.similarity is not None and checked.similarity < 0.7
        assert np.array_equal(checked.apply(layout, prediction), prediction.astype(np.float32))
        assert any("another patient or electrode layout" in w for w in checked.warnings())
        assert "guard fell back" in checked.comment()


def test_lead_guard_leaves_a_lead_whose_beats_changed() -> None:
    ref = synthesize(20, 100, PATIENT, seed=1)
    cal = fit("ref", "m", 100.0, *_arrays(ref, 0.6), ("I", "II", "V4"), OUT, Guard(1.0, 0.0, 0.7))
    inputs, prediction, _ = _arrays(synthesize(10, 100, PATIENT, seed=2), 0.6)
    prediction[1] = -prediction[1]  # the model now predicts another V2 beat
    checked = cal.for_record(inputs)
    corrected = checked.apply(inputs, prediction)
    assert not np.allclose(corrected[0], prediction[0])
    assert np.array_equal(corrected[1], prediction[1].astype(np.float32))
    assert checked.lead_similarity["V2"] < 0.9 < checked.lead_similarity["V1"]
    summary = checked.summary()
    assert summary["leads_calibrated"] == ["V1"]
    assert "unlike those on the reference" in summary["fallback"]["V2"]
    assert any(w.startswith("calibration not applied to V2") for w in checked.warnings())
    assert "leads calibrated: V1;" in checked.comment()
    fresh = cal.for_record(inputs)  # a new record starts with nothing applied
    assert fresh.chunks == 0 and not fresh.applied and fresh.summary()["leads_calibrated"] == list(OUT)


def test_lead_guard_decides_chunk_by_chunk_and_says_so() -> None:
    ref = synthesize(20, 100, PATIENT, seed=1)
    cal = fit("ref", "m", 100.0, *_arrays(ref, 0.6), ("I", "II", "V4"), OUT, Guard(1.0, 0.0, 0.7))
    inputs, prediction, _ = _arrays(synthesize(10, 100, PATIENT, seed=2), 0.6)
    checked = cal.for_record(inputs)
    checked.apply(inputs, prediction)  # chunk 1: both leads like the reference
    changed = prediction.copy()
    changed[1] = -changed[1]
    checked.apply(inputs, changed)  # chunk 2: V2's beats changed
    summary = checked.summary()
    assert checked.chunks == 2 and checked.applied == {"V1": 2, "V2": 1}
    assert summary["leads_calibrated"] == list(OUT)
    assert summary["leads_calibrated_partly"] == {"V2": "1 of 2 chunks"}
    assert summary["lead_similarity"]["V2"] < 0.9  # the lowest over the chunks
    assert not summary["fell_back"]
    flat = np.zeros_like(inputs)  # chunk 3: no beats found: nothing applied, nothing forgotten
    assert np.array_equal(checked.apply(flat, prediction), prediction.astype(np.float32))
    assert checked.chunks == 3 and checked.summary()["lead_similarity"] == summary["lead_similarity"]


def test_held_out_guard_leaves_unpredictable_leads_alone() -> None:
    from ecgfill.evaluate.features import detect_r_peaks

    ref = synthesize(20, 100, PATIENT, seed=1)
    inputs, prediction, truth = _arrays(ref, 0.6)
    peaks = detect_r_peaks(inputs, 100.0)
    edges = (peaks[:-1] + peaks[1:]) // 2  # every other beat of V2 reversed: not one beat shape
    sign = np.ones(truth["V2"].size)
    for k, (lo, hi) in enumerate(zip(edges[:-1], edges[1:], strict=True)):
        sign[lo:hi] = -1.0 if k % 2 else 1.0
    truth["V2"] = truth["V2"] * sign
    cal = fit("ref", "m", 100.0, inputs, prediction, truth, ("I", "II", "V4"), OUT,
              Guard(1.0, 0.0, 0.7))
    assert "V1" in cal.residual_beats and "V2" not in cal.residual_beats
    assert "does not generalise" in cal.fallback["V2"]
    assert cal.held_out_gain["V2"] < 0.0 < cal.held_out_gain["V1"]


def test_correct_at_the_record_rate_applies_what_was_fitted_at_the_model_rate() -> None:
    """Fitted at 100 Hz, applied to a 500 Hz record: the correction is computed at 100 Hz and
    added resampled, so the corrected 500 Hz prediction brought to 100 Hz is what the fit gives
    at 100 Hz, and it corrects the 500 Hz record as well."""
    from ecgfill.dsp import resample

    ref = synthesize(20, 100, PATIENT, seed=1)
    cal = fit("ref", "m", 100.0, *_arrays(ref, 0.6), ("I", "II", "V4"), OUT, Guard(1.0, 0.0, 0.7))
    assert cal.active and cal.fs == 100.0
    target = synthesize(10, 500, PATIENT, seed=2)
    inputs = np.stack([target.lead(n) for n in ("I", "II", "V4")]).astype(np.float64)
    truth = {n: target.lead(n).astype(np.float64) for n in OUT}
    prediction = np.stack([0.6 * truth[n] + 0.3 * np.roll(inputs[0], 10) for n in OUT])
    corrected = replace(cal, record_fs=500.0).correct(inputs, prediction)
    assert corrected.shape == prediction.shape and corrected.dtype == np.float32
    at_100 = cal.apply(resample(inputs, 500.0, 100.0), resample(prediction, 500.0, 100.0))
    back = resample(corrected, 500.0, 100.0)
    scale = np.abs(at_100).max()
    assert np.abs(back - at_100)[:, 50:-50].max() < 0.01 * scale  # edges: resampling filter
    for k, name in enumerate(OUT):
        assert pearson(corrected[k], truth[name]) > pearson(prediction[k], truth[name]) + 0.02
    same_rate = replace(cal, record_fs=100.0)  # no resampling at the fit's rate: bit-exact
    x100, p100 = resample(inputs, 500.0, 100.0), resample(prediction, 500.0, 100.0)
    assert np.array_equal(same_rate.correct(x100, p100), cal.apply(x100, p100))


def test_a_500_hz_reference_and_record_are_fitted_at_the_model_rate(monkeypatch) -> None:
    from ecgfill import api
    from ecgfill.reconstruct import ReconstructSettings, choose_model, reconstruct_record

    monkeypatch.setattr(calibrate, "MAX_REFERENCE_SECONDS", 12.0)
    ref = synthesize(20, 500, PATIENT, seed=1)
    record = synthesize(10, 500, PATIENT, seed=2)
    reduced = record.select(["I", "II", "V4"])
    model, _ = choose_model(("I", "II", "V4"), ReconstructSettings(model="unet-i-ii-v4"))
    cal = calibrate.record_calibration(reduced, model, ref, reconstruct_record)
    assert cal is not None and cal.active and cal.fs == model.fs and cal.record_fs == 500.0
    assert cal.similarity is not None and cal.similarity > 0.9
    assert "calibration fitted on the reference's first 12 s" in cal.notes
    assert "calibration reference resampled from 500 Hz to 100 Hz (the model's rate)" in cal.notes
    plain = api.reconstruct(reduced, model="unet-i-ii-v4")
    calibrated = api.reconstruct(reduced, model="unet-i-ii-v4", reference=ref)
    learned = ["V1", "V2", "V3", "V5", "V6"]
    r_plain = np.mean([pearson(plain.lead(n), record.lead(n)) for n in learned])
    r_cal = np.mean([pearson(calibrated.lead(n), record.lead(n)) for n in learned])
    assert r_cal > r_plain


def test_bad_references_are_one_clear_line() -> None:
    good = synthesize(10, 100, PATIENT, seed=1)
    with pytest.raises(RecordError, match="at least 5 s"):
        calibrate.check_reference(replace(good, signal=good.signal[:, :300]), ("I",), OUT)
    rebuilt = replace(good, origins=tuple("reconstructed" if n == "V1" else "measured"
                                          for n in good.leads), model="unet-x 1")
    with pytest.raises(RecordError, match="itself reconstructed .*V1.* unet-x"):
        calibrate.check_reference(rebuilt, ("I",), OUT)
    chest = good.select(["V1", "V2", "V3"])
    with pytest.raises(RecordError, match=r"lacks lead\(s\) I,II"):
        calibrate.check_reference(chest, ("I", "II", "V4"), OUT)
    assert calibrate.check_reference(good.select(["I", "II", "V1"]), ("I", "II"), OUT) == ["V2"]


def _write_case(tmp_path: Path) -> tuple[Path, Path]:
    write_record(synthesize(20, 500, PATIENT, seed=1), tmp_path / "ref", "wfdb")
    write_record(synthesize(12, 250, PATIENT, seed=2).select(["I", "II", "V4"]),
                 tmp_path / "in" / "rec", "wfdb")
    return tmp_path / "ref.hea", tmp_path / "in"


def test_cli_calibrate_with_says_so_in_json_and_header(tmp_path: Path) -> None:
    ref, inputs = _write_case(tmp_path)
    plain = CliRunner().invoke(app, ["reconstruct", str(inputs), str(tmp_path / "plain")])
    assert plain.exit_code == 0, plain.stderr
    result = CliRunner().invoke(app, ["reconstruct", str(inputs), str(tmp_path / "out"), "--json",
                                      "--model", "unet-i-ii-v4", "--calibrate-with", str(ref)])
    assert result.exit_code == 0, result.stderr
    line = json.loads(result.stdout)
    cal = line["calibration"]
    assert cal["reference"] == str(ref) and cal["strength"] == calibrate.STRENGTH
    assert cal["leads_calibrated"] and not cal["fell_back"]
    assert ("calibration reference resampled from 500 Hz to 100 Hz (the model's rate)"
            in line["warnings"])
    header = (tmp_path / "out" / "rec.hea").read_text()
    assert f"# personal calibration: reference {ref}" in header
    out, before = read_record(tmp_path / "out" / "rec.hea"), read_record(tmp_path / "plain" / "rec.hea")
    source = read_record(inputs / "rec.hea")
    for lead in ("I", "II", "V4"):
        assert np.array_equal(out.lead(lead), source.lead(lead))
    changed = [n for n in cal["leads_calibrated"] if not np.allclose(out.lead(n), before.lead(n))]
    assert changed == cal["leads_calibrated"]


def test_cli_calibration_map_and_usage_errors(tmp_path: Path) -> None:
    ref, inputs = _write_case(tmp_path)
    write_record(synthesize(12, 250, OTHER, seed=5).select(["I", "II", "V4"]), inputs / "unmapped")
    write_record(synthesize(20, 500, PATIENT, seed=6).select(["V1", "V2"]), tmp_path / "chest")
    write_record(synthesize(12, 250, PATIENT, seed=7).select(["I", "II", "V4"]), inputs / "bad")
    table = tmp_path / "map.csv"
    table.write_text("input,reference\nin/rec.hea,ref.hea\nin/bad,chest.hea\n")
    result = CliRunner().invoke(app, ["reconstruct", str(inputs), str(tmp_path / "out"), "--json",
                                      "--calibration-map", str(table)])
    assert result.exit_code == 1  # the record whose reference lacks its inputs fails
    lines = {Path(o["input"]).stem: o for o in map(json.loads, result.stdout.splitlines())}
    assert lines["rec"]["calibration"]["leads_calibrated"]
    assert lines["unmapped"]["calibration"] is None
    assert any("no reference for this record" in w for w in lines["unmapped"]["warnings"])
    assert lines["bad"]["status"] == "error" and "lacks lead(s) I,II" in lines["bad"]["error"]
    both = CliRunner().invoke(app, ["reconstruct", str(inputs), str(tmp_path / "o2"),
                                    "--calibrate-with", str(ref), "--calibration-map", str(table)])
    assert both.exit_code == 2 and "cannot be used together" in both.stderr
    missing = CliRunner().invoke(app, ["reconstruct", str(inputs), str(tmp_path / "o3"),
                                       "--calibrate-with", str(tmp_path / "nope.hea")])
    assert missing.exit_code == 2 and "--calibrate-with" in missing.stderr
    write_record(synthesize(3, 500, PATIENT, seed=8), tmp_path / "short")
    short = CliRunner().invoke(app, ["reconstruct", str(inputs), str(tmp_path / "o4"),
                                     "--calibrate-with", str(tmp_path / "short.hea")])
    assert short.exit_code == 2 and "needs at least 5 s" in short.stderr
    bad_map = tmp_path / "bad.csv"
    bad_map.write_text("record,ref\nx,y\n")
    malformed = CliRunner().invoke(app, ["reconstruct", str(inputs), str(tmp_path / "o5"),
                                         "--calibration-map", str(bad_map)])
    assert malformed.exit_code == 2 and "input,reference" in malformed.stderr


def test_api_reconstruct_takes_a_reference() -> None:
    from ecgfill import api

    ref = synthesize(20, 100, PATIENT, seed=1)
    record = synthesize(10, 100, PATIENT, seed=2)
    reduced = record.select(["I", "II", "V4"])
    plain = api.reconstruct(reduced, model="unet-i-ii-v4")
    calibrated = api.reconstruct(reduced, model="unet-i-ii-v4", reference=ref)
    assert any(c.startswith("personal calibration: reference") for c in calibrated.comments)
    for lead in ("I", "II", "V4"):
        assert np.array_equal(calibrated.lead(lead), reduced.lead(lead))
    learned = ["V1", "V2", "V3", "V5", "V6"]
    r_plain = np.mean([pearson(plain.lead(n), record.lead(n)) for n in learned])
    r_cal = np.mean([pearson(calibrated.lead(n), record.lead(n)) for n in learned])
    assert r_cal > r_plain  # the patient's own geometry helps on a new record


def test_evaluate_same_patient_on_records_with_patient_ids(tmp_path: Path) -> None:
    refs = tmp_path / "refs"
    for pid, params in (("1", PATIENT), ("2", OTHER), ("3", SynthParams(axis_deg=20.0))):
        for k in range(2):
            rec = synthesize(10, 100, params, seed=10 * int(pid) + k)
            rec.comments = [f"patient_id: {pid}"]
            write_record(rec, refs / f"p{pid}_{k}")
    write_record(synthesize(10, 100, seed=99), refs / "anonymous")
    result = CliRunner().invoke(app, ["evaluate", str(refs), "--model", "unet-i-ii-v4",
                                      "--calibration", "same-patient", "--json", "--bootstrap",
                                      "200"])
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    same = report["same_patient"]
    assert same["patients"] == 3 and same["records_scored"] == 3
    per = report["per_patient"]
    assert np.isclose(same["gain"]["mean"], np.mean([p["gain"] for p in per]))
    assert same["worse"] == sum(p["gain"] < -0.03 for p in per)
    assert same["gain"]["mean"] > 0 and same["gain"]["mean"] > report["other_patient"]["gain"]["mean"]
    assert report["not_used"] == [{"record": str(refs / "anonymous.hea"),
                                   "why": "no patient id in the header comments"}]
    assert "Personal calibration" in result.stderr
    wrong = CliRunner().invoke(app, ["evaluate", str(refs), "--model", "unet-i-ii-v4",
                                     "--calibration", "population"])
    assert wrong.exit_code == 2 and "same-patient" in wrong.stderr


@pytest.mark.realdata
def test_real_same_patient_pair(shared_data: Path, tmp_path: Path) -> None:
    """Two PTB-XL records of one patient (training folds): the calibration is fitted, passes
    the beat-template guard and says so."""
    import csv

    with open(shared_data / "ptb-xl" / "ptbxl_database.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r.get("strat_fold") in {"1", "2"}]
    by_patient: dict[str, list[dict]] = {}
    for row in rows:
        by_patient.setdefault(row["patient_id"], []).append(row)
    pair = next(sorted(v, key=lambda r: int(r["ecg_id"])) for v in by_patient.values() if len(v) >= 2)
    paths = [shared_data / "ptb-xl" / r["filename_lr"] for r in pair[:2]]
    reduced = read_record(str(paths[1]) + ".hea").select(["I"])
    write_record(reduced, tmp_path / "in" / "rec")
    result = CliRunner().invoke(app, ["reconstruct", str(tmp_path / "in"), str(tmp_path / "out"),
                                      "--json", "--model", "unet-i", "--calibrate-with",
                                      str(paths[0]) + ".hea"])
    assert result.exit_code == 0, result.stderr
    cal = json.loads(result.stdout)["calibration"]
    assert cal["model"].startswith("unet-i") and cal["similarity"] is not None
    assert set(cal["leads_calibrated"]) | set(cal["fallback"]) == {"II", "V1", "V2", "V3", "V4",
                                                                   "V5", "V6"}
    assert read_record(tmp_path / "out" / "rec.hea").leads == STANDARD_LEADS
