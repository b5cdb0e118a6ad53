"""The high band above the 100 Hz models (issue 18): filters, the band split, the any-subset
linear high-band model, its fit, reconstruction at 500 Hz and the high-band metrics."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ecgfill.dsp import bandpass, lowpass, resample
from ecgfill.evaluate.metrics import high_band_metrics, signal_metrics
from ecgfill.leads import INDEPENDENT_LEADS, STANDARD_LEADS, LeadPlan
from ecgfill.models.highband import (
    HighBandModel,
    band_top_hz,
    high_band,
    lagged_apply,
    low_path_top_hz,
)
from ecgfill.record import ECGRecord
from ecgfill.synth import synthesize


def make_record(seconds: float, fs: float, seed: int) -> ECGRecord:
    return synthesize(seconds, fs, seed=seed)


def test_lowpass_and_bandpass_match_scipy() -> None:
    from scipy.signal import butter, sosfiltfilt

    x = np.random.default_rng(0).standard_normal((3, 4000))
    ref = sosfiltfilt(butter(4, 150, "lowpass", fs=500, output="sos"), x)
    assert np.abs(lowpass(x, 500.0, 150.0) - ref)[:, 300:-300].max() < 1e-5
    ref = sosfiltfilt(butter(4, 40, "highpass", fs=500, output="sos"), ref)
    assert np.abs(bandpass(x, 500.0, 40.0, 150.0) - ref)[:, 300:-300].max() < 1e-5
    with pytest.raises(ValueError, match="low-pass cutoff"):
        lowpass(x, 100.0, 60.0)


def test_high_band_is_what_the_round_trip_removes() -> None:
    """Low path (500 -> 100 -> 500 Hz) plus the high band gives back a signal band-limited well
    below 150 Hz: the two bands are complementary."""
    x = lowpass(np.random.default_rng(1).standard_normal((2, 5000)), 500.0, 90.0, order=8)
    low = resample(resample(x, 500.0, 100.0), 100.0, 500.0)[:, :5000]
    band = high_band(x, 500.0, 100.0)
    assert np.abs(low + band - x)[:, 200:-200].max() < 0.02 * np.abs(x).max()
    assert high_band(x, 100.0, 100.0).max() == 0.0  # nothing above the low model's rate
    assert low_path_top_hz(100.0) == 47.5
    assert band_top_hz(500.0) == 150.0 and band_top_hz(250.0) == pytest.approx(118.75)


def test_lagged_apply_is_torch_conv1d() -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    x, w, b = rng.standard_normal((3, 200)), rng.standard_normal((8, 3, 17)), rng.standard_normal(8)
    ref = torch.nn.functional.conv1d(torch.tensor(x)[None], torch.tensor(w), torch.tensor(b),
                                     padding=8)[0].numpy()
    assert np.allclose(lagged_apply(x, w, b), ref)


@pytest.fixture(scope="module")
def high_band_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A high-band model fitted on a small synthetic 500 Hz dataset."""
    from ecgfill.train.data import write_synthetic_dataset
    from ecgfill.train.highband import fit_high_band

    root = tmp_path_factory.mktemp("high-band")
    dataset = write_synthetic_dataset(root / "ds", 12, 4.0, 500.0, seed=5)
    fit_high_band(dataset, root / "models", argv=["ds", "models"])
    return root / "models"


def test_fit_writes_a_checked_card(high_band_dir: Path) -> None:
    card = json.loads((high_band_dir / "highband-any.json").read_text())
    assert card["format"] == "ecgfill-high-band" and card["fs"] == 500.0
    assert card["bandwidth_hz"] == [47.5, 150.0]
    assert card["gate"]["chosen_on"] == "training split"
    assert card["gate"]["keep"] >= 1.0  # the gate (< 1) only takes energy; keep gives it back
    assert set(card["validation"]["lead_sets"]) >= {"I,II,V4", "I,II,V3", "II,V1,V5", "I"}
    assert "/" not in card["dataset"]["path"]  # no machine path
    model = HighBandModel.load(high_band_dir / "highband-any.json")
    assert model.bandwidth_hz == (47.5, 150.0)
    weights = high_band_dir / "highband-any.npz"
    data = bytearray(weights.read_bytes())
    broken = high_band_dir.parent / "broken"
    broken.mkdir(exist_ok=True)
    (broken / "highband-any.json").write_text(json.dumps(card))
    data[-1] ^= 1
    (broken / "highband-any.npz").write_bytes(bytes(data))
    from ecgfill.errors import ModelError

    with pytest.raises(ModelError, match="SHA-256 mismatch"):
        HighBandModel.load(broken / "highband-any.json")


@pytest.mark.parametrize("fs", [250.0, 500.0, 1000.0])
def test_predict_at_any_rate(high_band_dir: Path, fs: float) -> None:
    model = HighBandModel.load(high_band_dir / "highband-any.json")
    record = make_record(4.0, fs, seed=4)
    plan = LeadPlan.of(("I", "II", "V4"))
    measured = record.signal[[STANDARD_LEADS.index(n) for n in plan.inputs]]
    out = model.predict(measured, fs, plan)
    assert out.shape == (8, record.n_samples) and np.isfinite(out).all()
    assert model.applies(fs, 100.0) and not model.applies(100.0, 100.0)
    # nothing below the low path's band edge: the high band adds to the model, never overlaps
    spectrum = np.abs(np.fft.rfft(out[INDEPENDENT_LEADS.index("V1")]))
    freqs = np.fft.rfftfreq(out.shape[1], 1 / fs)
    assert spectrum[freqs < 30].sum() < 0.05 * spectrum.sum()


def test_reconstruct_at_500_hz_adds_the_high_band(
    models_env: Path, high_band_dir: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    import ecgfill.models.registry as registry
    from ecgfill.reconstruct import ReconstructSettings, choose_model, high_band_for, reconstruct_record

    monkeypatch.setattr(registry, "model_dirs", lambda: [models_env, high_band_dir])
    record = make_record(4.0, 500.0, seed=6).select(["I", "II", "V4"])
    model, _ = choose_model(record.leads, ReconstructSettings())
    high = high_band_for(500.0, model)
    assert high is not None and high_band_for(500.0, model, wanted=False) is None
    assert high_band_for(100.0, model) is None
    with_band, _ = reconstruct_record(record, model, high_band=high)
    without, _ = reconstruct_record(record, model)
    v1 = STANDARD_LEADS.index("V1")
    added = with_band.signal[v1] - without.signal[v1]
    assert np.abs(added).max() > 0
    for lead in ("I", "II", "V4"):  # measured leads untouched
        k = STANDARD_LEADS.index(lead)
        assert np.array_equal(with_band.signal[k], without.signal[k])
    assert "highband-any" in with_band.model and "high band 47.5-150 Hz" in with_band.model


def test_reconstruct_json_names_the_band_and_warns_only_without_it(
    models_env: Path, high_band_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    import ecgfill.models.registry as registry
    from ecgfill.batch import Job
    from ecgfill.io import write_record
    from ecgfill.io.discover import find_records
    from ecgfill.reconstruct import ReconstructSettings, reconstruct_job

    monkeypatch.setattr(registry, "model_dirs", lambda: [models_env, high_band_dir])
    (tmp_path / "in").mkdir()
    written = write_record(make_record(4.0, 500.0, seed=7).select(["I", "II", "V4"]),
                           tmp_path / "in" / "rec")
    item = find_records([str(p) for p in written if p.suffix == ".hea"])[0]
    outcomes = {}
    for high in (True, False):
        job = Job(item=item, output=tmp_path / f"out{int(high)}" / "rec.hea", fmt="wfdb")
        job.output.parent.mkdir()
        outcomes[high] = reconstruct_job(ReconstructSettings(high_band=high), job)
    assert outcomes[True].details["bandwidth_hz"][1] == 150.0
    assert outcomes[True].details["high_band_model"].startswith("highband-any ")
    assert not any("carry nothing above" in w for w in outcomes[True].warnings)
    assert outcomes[False].details["high_band_model"] is None
    assert outcomes[False].details["bandwidth_hz"][1] == 47.5
    assert any("carry nothing above 47.5 Hz" in w for w in outcomes[False].warnings)


def test_high_band_metrics() -> None:
    record = make_record(4.0, 500.0, seed=8)
    t = record.signal[6:9].astype(np.float64)
    t = t + 0.01 * np.random.default_rng(0).standard_normal(t.shape)  # some high band
    same = high_band_metrics(t, t, 500.0)
    assert np.allclose(same["high_band_r"], 1.0) and np.allclose(same["high_energy_ratio"], 1.0)
    half = high_band_metrics(t, 0.5 * t, 500.0)
    assert np.allclose(half["high_energy_ratio"], 0.25)
    low = lowpass(t, 500.0, 30.0, order=8)
    assert np.all(high_band_metrics(t, low, 500.0)["high_energy_ratio"] < 0.01)
    assert np.isnan(signal_metrics(t[:, ::5], t[:, ::5], 100.0)["high_band_r"]).all()


def test_fft_path_equals_band_split_then_ridge(high_band_dir: Path) -> None:
    """predict (one FFT filter) = high_band + lagged_apply + gate x the card's constant keep +
    gain, away from the ends."""
    from ecgfill.models.highband import steep_gate

    model = HighBandModel.load(high_band_dir / "highband-any.json")
    plan = LeadPlan.of(("I", "II", "V4"))
    record = make_record(6.0, 500.0, seed=9)
    x = record.signal[[STANDARD_LEADS.index(n) for n in plan.inputs]].astype(np.float64)
    x = x + 0.01 * np.random.default_rng(1).standard_normal(x.shape)
    bound = model.bind(plan)
    ref = lagged_apply(high_band(x, 500.0, 100.0), bound.weight, bound.bias)
    gated = ref * steep_gate(x, 500.0, model.gate_seconds, model.gate_knee)
    assert model.gate_keep == model.card["gate"]["keep"] > 1.0
    ref = gated * (model.gate_keep * bound.gain)[:, None]
    got = model.predict(x, 500.0, plan)
    inner = slice(500, -500)
    assert np.abs(got - ref)[:, inner].max() < 0.005 * np.abs(ref).max()
    v1 = model.predict(x, 500.0, plan, ["V1"])
    assert np.array_equal(v1[0], got[INDEPENDENT_LEADS.index("V1")])


def test_models_lists_the_high_band_and_a_broken_one_stops_reconstruct_early(
    models_env: Path, high_band_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    import shutil

    from typer.testing import CliRunner

    import ecgfill.models.registry as registry
    from ecgfill.api import list_models
    from ecgfill.cli import app

    monkeypatch.setattr(registry, "model_dirs", lambda: [models_env, high_band_dir])
    rows = {row["name"]: row for row in list_models()}
    assert rows["highband-any"]["sha256_ok"] is True
    assert rows["highband-any"]["family"] == "high band 47.5-150 Hz (linear any-subset)"
    broken = tmp_path / "broken-models"
    shutil.copytree(high_band_dir, broken)
    weights = broken / "highband-any.npz"
    weights.write_bytes(weights.read_bytes()[:-1] + b"x")
    monkeypatch.setattr(registry, "model_dirs", lambda: [models_env, broken])
    assert {row["name"]: row for row in list_models()}["highband-any"]["sha256_ok"] is False
    (tmp_path / "in").mkdir()
    write = make_record(4.0, 500.0, seed=3).select(["I", "II", "V4"])
    from ecgfill.io import write_record

    write_record(write, tmp_path / "in" / "rec")
    result = CliRunner().invoke(app, ["reconstruct", str(tmp_path / "in"), str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "high band:" in result.stderr and "SHA-256 mismatch" in result.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    result = CliRunner().invoke(app, ["reconstruct", str(tmp_path / "in"), str(tmp_path / "out"),
                                      "--no-high-band"])
    assert result.exit_code == 0, result.stderr


def test_long_record_with_the_high_band_streams_like_a_short_one(
    models_env: Path, high_band_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    from typer.testing import CliRunner

    import ecgfill.models.registry as registry
    import ecgfill.reconstruct as reconstruct
    from ecgfill.cli import app
    from ecgfill.io import read_record, write_record

    monkeypatch.setattr(registry, "model_dirs", lambda: [models_env, high_band_dir])
    (tmp_path / "in").mkdir()
    write_record(make_record(90.0, 500.0, seed=11).select(["I", "II", "V4"]),
                 tmp_path / "in" / "long")
    outputs = {}
    for name, chunk in (("whole", 300.0), ("chunked", 20.0)):
        monkeypatch.setattr(reconstruct, "CHUNK_SECONDS", chunk)
        result = CliRunner().invoke(app, ["reconstruct", str(tmp_path / "in"),
                                          str(tmp_path / name), "--json"])
        assert result.exit_code == 0, result.stderr
        assert json.loads(result.stdout.splitlines()[0])["bandwidth_hz"][1] == 150.0
        outputs[name] = read_record(tmp_path / name / "long.hea")
    whole, chunked = outputs["whole"], outputs["chunked"]
    assert np.abs(chunked.signal - whole.signal).max() < 0.01
    band = high_band(whole.lead("V1").astype(np.float64), 500.0, 100.0)
    assert np.abs(band).max() > 0  # the output carries a high band
    jumps = np.abs(np.diff(chunked.signal, axis=1)) - np.abs(np.diff(whole.signal, axis=1))
    assert jumps.max() < 0.005
