"""Prediction intervals (issue 20): the conformal calibration, ``reconstruct --interval`` and
its band records, ``expected_r``, ``evaluate --interval`` and the card block."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from ecgfill.cli import app
from ecgfill.intervals import (
    LEVELS,
    PlanCalibration,
    fit_scale,
    score_quantiles,
    uncertain_leads,
)
from ecgfill.io import read_record, write_record
from ecgfill.leads import CHEST_LEADS, STANDARD_LEADS, LeadPlan
from ecgfill.synth import synthesize


def run(*args: str) -> tuple[int, list[dict], str]:
    result = CliRunner().invoke(app, list(args))
    lines = [json.loads(ln) for ln in result.stdout.splitlines() if ln.startswith("{")]
    return result.exit_code, lines, result.stderr


def test_uncertain_leads_follow_the_lead_plan() -> None:
    assert uncertain_leads(LeadPlan.of(["I", "II", "V4"])) == ("V1", "V2", "V3", "V5", "V6")
    # one limb lead: every other limb lead depends on a prediction
    assert uncertain_leads(LeadPlan.of(["III"])) == tuple(
        n for n in STANDARD_LEADS if n != "III")
    assert uncertain_leads(LeadPlan.of(["aVF", "I", *CHEST_LEADS])) == ()


def test_conformal_scale_is_adaptive_and_covers_fresh_data() -> None:
    """Heteroscedastic errors: the fitted scale follows the feature that drives them, and the
    split-conformal quantile covers new exchangeable samples at the level."""
    rng = np.random.default_rng(0)

    def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
        driver = rng.uniform(-3, 1, n)
        feats = np.column_stack([driver, rng.normal(size=n)])  # log features, one irrelevant
        return feats, np.abs(rng.normal(size=n) * np.exp(driver))

    f_cal, r_cal = draw(40_000)
    coef = fit_scale(f_cal, r_cal)
    assert coef[1] > 5 * abs(coef[2])  # the driving feature dominates
    q = np.array(score_quantiles(r_cal / np.exp(coef[0] + f_cal @ coef[1:])))
    f_new, r_new = draw(40_000)
    scale = np.exp(coef[0] + f_new @ coef[1:])
    for level in (0.8, 0.9, 0.95):
        mult = np.interp(level, LEVELS, q)
        cover = float((r_new <= mult * scale).mean())
        assert abs(cover - level) < 0.01
        constant = np.quantile(r_new, cover)
        assert (mult * scale).mean() < constant  # narrower than a constant band


def test_score_quantiles_use_the_finite_sample_rank() -> None:
    scores = np.arange(1, 100, dtype=float)  # 99 scores: rank ceil(100 p)
    q = dict(zip(LEVELS, score_quantiles(scores), strict=True))
    assert q[0.9] == 90.0 and q[0.5] == 50.0 and q[0.999] == 99.0


def test_expected_r_uses_the_partner_agreement_when_fitted() -> None:
    plan = LeadPlan.of(["I", "II", "V4"])
    entry = {"coef": [0.0] * 12, "quantiles": list(LEVELS), "r": 0.8}
    card = {"name": "m", "intervals": {
        "format": 1, "fallback": {n: entry for n in uncertain_leads(plan)},
        "expected_r": {"coef": [0.5, 0.0, 0.0, 0.0, 0.0], "partner": "linear-any",
                       "coef_partner": [0.0, 0.0, 0.0, 0.0, 0.0, 1.0]}}}
    calibration = PlanCalibration.of(card, plan)
    std = np.ones(5)
    plain = calibration.expected_r(std, std, np.ones(1))
    assert np.allclose(plain, np.tanh(0.5))
    close, far = (calibration.expected_r(std, std, np.ones(1), np.full(5, a)) for a in (0.95, 0.3))
    assert (close > far).all() and np.allclose(close, 0.95)


def test_a_card_without_calibration_is_named() -> None:
    from ecgfill.errors import ModelError

    with pytest.raises(ModelError, match="model x has no interval calibration"):
        PlanCalibration.of({"name": "x"}, LeadPlan.of(["I"]))


# --------------------------------------------------------------------------------------------
# A registry of small linear models calibrated on a synthetic dataset


@pytest.fixture(scope="session")
def calibrated_registry(linear_registry: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from ecgfill.intervals_fit import calibrate_dataset
    from ecgfill.train.data import write_synthetic_dataset

    root = tmp_path_factory.mktemp("calibrated")
    models = root / "models"
    shutil.copytree(linear_registry, models)
    dataset = write_synthetic_dataset(root / "ds", 60, 4.0, 100.0, seed=11, splits=(0.2, 0.8))
    import ecgfill.models.registry as registry
    import ecgfill.reconstruct as reconstruct

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(registry, "model_dirs", lambda: [models])
        mp.setattr(reconstruct, "_MODEL_CACHE", {})
        mp.setattr(reconstruct, "_AUTO_CHOICE", {})
        names = [json.loads(p.read_text())["name"] for p in sorted(models.glob("*.json"))]
        report = calibrate_dataset(dataset, names, "val")
    assert set(report) == set(names)
    return models


@pytest.fixture
def calibrated_env(calibrated_registry: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    import ecgfill.models.registry as registry
    import ecgfill.reconstruct as reconstruct

    monkeypatch.setenv("ECGFILL_MODELS", str(calibrated_registry))
    monkeypatch.setattr(registry, "model_dirs", lambda: [calibrated_registry])
    monkeypatch.setattr(reconstruct, "_AUTO_CHOICE", {})
    monkeypatch.setattr(reconstruct, "_MODEL_CACHE", {})
    return calibrated_registry


def test_card_holds_the_calibration_and_its_held_out_check(calibrated_env: Path) -> None:
    card = json.loads((calibrated_env / "linear-i-ii-v4.json").read_text())
    block = card["intervals"]
    plan = LeadPlan.of(["I", "II", "V4"])
    assert set(block["lead_sets"]) == {plan.key}
    assert set(block["fallback"]) == set(uncertain_leads(plan))
    assert "0.5 Hz" in block["band"] and "patient-disjoint" in block["protocol"]
    quantiles = np.array(block["fallback"]["V1"]["quantiles"])
    assert (np.diff(quantiles) >= 0).all() and len(quantiles) == len(LEVELS)
    cover = block["validation"]["coverage"][plan.key]
    assert set(cover) == {"0.8", "0.9", "0.95"}
    assert cover["0.8"]["mean_width_mv"] < cover["0.95"]["mean_width_mv"]
    calibration = PlanCalibration.of(card, LeadPlan.of(["I", "II", "V4", "V5"]))  # superset
    assert list(calibration.leads) == ["V1", "V2", "V3", "V6"]


def write_input(path: Path, leads: list[str], fs: float, seconds: float, seed: int) -> None:
    write_record(synthesize(seconds, fs, seed=seed).select(leads), path)


@pytest.mark.parametrize(("leads", "fs"), [(["I", "II", "V4"], 500.0), (["I"], 100.0),
                                           (["II", "V1", "V5"], 250.0)])
def test_reconstruct_writes_lower_and_upper(calibrated_env: Path, tmp_path: Path,
                                            leads: list[str], fs: float) -> None:
    write_input(tmp_path / "in" / "r", leads, fs, 12.0, seed=5)
    code, lines, stderr = run("reconstruct", str(tmp_path / "in"), str(tmp_path / "out"),
                              "--interval", "0.9", "--json")
    assert code == 0, stderr
    (out,) = lines
    rec = read_record(tmp_path / "out" / "r.hea")
    low = read_record(tmp_path / "out" / "r_lower.hea")
    up = read_record(tmp_path / "out" / "r_upper.hea")
    for band in (low, up):
        assert band.leads == rec.leads == STANDARD_LEADS
        assert band.fs == rec.fs == fs and band.n_samples == rec.n_samples
    plan = LeadPlan.of(leads)
    unsure = set(uncertain_leads(plan))
    for i, name in enumerate(STANDARD_LEADS):
        if name in unsure:
            assert (low.signal[i] <= rec.signal[i] + 1e-3).all()
            assert (up.signal[i] >= rec.signal[i] - 1e-3).all()
            assert (up.signal[i] - low.signal[i]).mean() > 0
        else:  # measured, or derived from measured leads only: lower = upper = signal
            np.testing.assert_array_equal(low.signal[i], rec.signal[i])
            np.testing.assert_array_equal(up.signal[i], rec.signal[i])
    assert set(out["expected_r"]) == unsure
    assert all(-1 <= r <= 1 for r in out["expected_r"].values())
    assert out["interval"]["level"] == 0.9 and "0.5 Hz" in out["interval"]["band"]
    assert set(out["interval"]["median_width_mv"]) == unsure
    assert all(w > 0 for w in out["interval"]["median_width_mv"].values())


def test_wider_level_gives_wider_bands(calibrated_env: Path, tmp_path: Path) -> None:
    write_input(tmp_path / "in" / "r", ["I", "II", "V4"], 100.0, 10.0, seed=2)
    widths = []
    for level in ("0.5", "0.95"):
        code, lines, stderr = run("reconstruct", str(tmp_path / "in"),
                                  str(tmp_path / f"out{level}"), "--interval", level, "--json")
        assert code == 0, stderr
        widths.append(lines[0]["interval"]["median_width_mv"])
    assert all(widths[1][n] > widths[0][n] for n in widths[0])


def test_long_record_streams_bands_across_chunks(calibrated_env: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import ecgfill.reconstruct as reconstruct

    write_input(tmp_path / "in" / "long", ["I", "II", "V4"], 250.0, 70.0, seed=8)
    monkeypatch.setattr(reconstruct, "CHUNK_SECONDS", 20.0)  # four chunks
    code, _, stderr = run("reconstruct", str(tmp_path / "in"), str(tmp_path / "chunked"),
                          "--interval", "0.9")
    assert code == 0, stderr
    monkeypatch.setattr(reconstruct, "CHUNK_SECONDS", 300.0)
    code, _, stderr = run("reconstruct", str(tmp_path / "in"), str(tmp_path / "whole"),
                          "--interval", "0.9")
    assert code == 0, stderr
    chunked = read_record(tmp_path / "chunked" / "long_upper.hea").signal
    whole = read_record(tmp_path / "whole" / "long_upper.hea").signal
    assert chunked.shape == whole.shape
    # seams are cross-faded; the band of a chunk only differs through its chunk-level features
    assert np.median(np.abs(chunked - whole)) < 0.01
    assert np.isfinite(chunked).all()


def test_interval_level_outside_0_1_is_a_usage_error(calibrated_env: Path,
                                                     tmp_path: Path) -> None:
    write_input(tmp_path / "in" / "r", ["I"], 100.0, 5.0, seed=1)
    for level in ("0", "1", "1.5", "-0.2"):
        code, _, stderr = run("reconstruct", str(tmp_path / "in"), str(tmp_path / "out"),
                              "--interval", level)
        assert code == 2 and "--interval" in stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_model_without_calibration_fails_the_record_cleanly(models_env: Path,
                                                            tmp_path: Path) -> None:
    write_input(tmp_path / "in" / "r", ["I", "II", "V4"], 100.0, 5.0, seed=1)
    code, lines, stderr = run("reconstruct", str(tmp_path / "in"), str(tmp_path / "out"),
                              "--interval", "0.9", "--json")
    assert code == 1
    errors = [ln for ln in stderr.splitlines() if ln.startswith("error")]
    assert len(errors) == 1 and "linear-i-ii-v4" in errors[0] and "calibration" in errors[0]
    assert lines[0]["status"] == "error"
    assert not list((tmp_path / "out").rglob("*.*"))  # nothing half-written
    # without --interval the record is reconstructed, expected_r left null
    code, lines, stderr = run("reconstruct", str(tmp_path / "in"), str(tmp_path / "out2"),
                              "--json")
    assert code == 0, stderr
    assert lines[0]["expected_r"] is None and "interval" not in lines[0]


def test_evaluate_interval_reports_coverage(calibrated_env: Path, tmp_path: Path) -> None:
    refs = tmp_path / "refs"
    for seed in range(3):
        write_record(synthesize(10.0, 500.0, seed=40 + seed), refs / f"ref{seed}")
    code, lines, stderr = run("evaluate", str(refs), "--model", "linear-i-ii-v4",
                              "--interval", "0.9", "--no-features", "--bootstrap", "0", "--json")
    assert code == 0, stderr
    block = lines[0]["interval"]["levels"]["0.9"]
    assert 0 < block["coverage"] <= 1 and block["mean_width_mv"] > 0
    assert set(block["per_lead"]) == {"V1", "V2", "V3", "V5", "V6"}
    assert "QRS" in stderr and "coverage" in stderr
    code, _, stderr = run("evaluate", str(refs), "--model", "linear-i-ii-v4", "--interval", "2")
    assert code == 2 and "--interval" in stderr


def test_reconstruct_plot_draws_each_output_with_its_band(calibrated_env: Path,
                                                          tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    write_input(tmp_path / "in" / "r", ["I", "II", "V4"], 500.0, 10.0, seed=4)
    code, lines, stderr = run("reconstruct", str(tmp_path / "in"), str(tmp_path / "out"),
                              "--interval", "0.9", "--plot", str(tmp_path / "png"), "--json")
    assert code == 0, stderr
    assert Path(lines[0]["plot"]) == tmp_path / "png" / "r.png" and Path(lines[0]["plot"]).is_file()
    from ecgfill.plot import load

    printout = load(tmp_path / "out" / "r.hea")
    assert printout.lower is not None and printout.upper is not None
    # the band records are drawn as the record's band, not as records of their own
    code, _, stderr = run("plot", str(tmp_path / "out"), str(tmp_path / "png2"))
    assert code == 0, stderr
    assert sorted(p.name for p in (tmp_path / "png2").iterdir()) == ["r.png"]


@pytest.mark.realdata
def test_shipped_model_bands_on_a_real_500_hz_record(shared_data: Path, tmp_path: Path) -> None:
    """A real 12-lead record (Chapman, 500 Hz) masked to I, II, V4: the shipped model's bands
    hold the high-passed truth more often at a higher level, and are wider."""
    from ecgfill.dsp import apply_filters
    from ecgfill.models import load_model

    ref = read_record(shared_data / "chapman" / "JS00001.hea").in_standard_order()
    write_record(ref.select(["I", "II", "V4"]), tmp_path / "in" / "r")
    model = load_model("unet-i-ii-v4")
    if "intervals" not in model.card:
        pytest.skip("the shipped unet-i-ii-v4 card has no interval calibration")
    truth = apply_filters(ref.signal, ref.fs, model.input_filters)
    learned = [STANDARD_LEADS.index(n) for n in ("V1", "V2", "V3", "V5", "V6")]
    cover = {}
    for level in ("0.5", "0.95"):
        out = tmp_path / level
        code, lines, stderr = run("reconstruct", str(tmp_path / "in"), str(out), "--model",
                                  "unet-i-ii-v4", "--interval", level, "--json")
        assert code == 0, stderr
        low, up = (read_record(out / f"r_{side}.hea").signal for side in ("lower", "upper"))
        inside = (truth[learned] >= low[learned]) & (truth[learned] <= up[learned])
        cover[level] = inside.mean()
        assert set(lines[0]["expected_r"]) == {"V1", "V2", "V3", "V5", "V6"}
    assert cover["0.95"] > cover["0.5"]


@pytest.mark.parametrize("leads", [["II", "V5"], ["I", "V2", "V6"]])  # in its grid; not (fallback)
def test_shipped_any_subset_model_gives_bands_for_any_lead_set(tmp_path: Path,
                                                               leads: list[str]) -> None:
    from ecgfill.models import load_model

    if "intervals" not in load_model("linear-any").card:
        pytest.skip("the shipped linear-any card has no interval calibration")
    write_input(tmp_path / "in" / "r", leads, 250.0, 10.0, seed=6)
    code, lines, stderr = run("reconstruct", str(tmp_path / "in"), str(tmp_path / "out"),
                              "--model", "linear-any", "--interval", "0.8", "--json")
    assert code == 0, stderr
    unsure = set(uncertain_leads(LeadPlan.of(leads)))
    assert set(lines[0]["expected_r"]) == set(lines[0]["interval"]["median_width_mv"]) == unsure
    low = read_record(tmp_path / "out" / "r_lower.hea")
    up = read_record(tmp_path / "out" / "r_upper.hea")
    for i, name in enumerate(STANDARD_LEADS):
        assert ((up.signal[i] - low.signal[i]).max() > 0) == (name in unsure)


@pytest.mark.parametrize(("fs", "n"), [(500.0, 5000), (500.0, 5003), (250.0, 2501), (1000.0, 999)])
def test_at_rate_slices_at_a_whole_ratio_as_it_interpolates(fs: float, n: int) -> None:
    from scipy.ndimage import uniform_filter1d

    from ecgfill.intervals import at_rate

    x = np.random.default_rng(3).standard_normal((3, n)).astype(np.float32)
    got = at_rate(x, fs, 100.0)
    smooth = uniform_filter1d(x, int(round(fs / 100.0)), axis=-1, mode="nearest")
    n_out = int(round(n * 100.0 / fs))
    t_in, t_out = np.arange(n) / fs, np.arange(n_out) / 100.0
    want = np.stack([np.interp(t_out, t_in, row) for row in smooth])
    assert got.shape == want.shape and got.dtype == np.float32
    assert np.allclose(got, want, atol=1e-5)
    assert np.array_equal(at_rate(x, 100.0, 100.0), x)
