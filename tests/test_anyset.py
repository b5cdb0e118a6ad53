"""The any-subset family: the ridge for a plan from the stored covariance, measurements kept
exactly through the network, training/export/loading, and --model auto over any lead set."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

from ecgfill.errors import ModelError  # noqa: E402
from ecgfill.leads import INDEPENDENT_LEADS, LEAD_INDEX, LeadPlan  # noqa: E402
from ecgfill.models import anyset, load_model  # noqa: E402
from ecgfill.models.choice import choose  # noqa: E402
from ecgfill.models.linear import fit_ridge  # noqa: E402
from ecgfill.synth import synthesize_batch  # noqa: E402
from ecgfill.train import TrainOptions, train  # noqa: E402
from ecgfill.train.data import write_synthetic_dataset  # noqa: E402

TINY = {"channels": "8,16", "kernel_size": "5", "lag_seconds": "0.05"}
INDEPENDENT_ROWS = [LEAD_INDEX[n] for n in INDEPENDENT_LEADS]


def _independent(n: int = 12, seconds: float = 4.0, seed: int = 3) -> np.ndarray:
    return synthesize_batch(n, seconds, 100.0, seed)[:, INDEPENDENT_ROWS].astype(np.float64)


@pytest.mark.parametrize("leads", [("I", "II", "V4"), ("III", "V2"), ("aVF",), ("V1", "V6")])
def test_ridge_from_covariance_equals_the_direct_fit(leads: tuple[str, ...]) -> None:
    """The closed form from the lagged covariance is the ridge fitted on the lagged samples
    themselves (same lags, same relative ridge)."""
    x = _independent()
    valid = np.ones((x.shape[0], x.shape[-1]), dtype=bool)
    lag = 3
    cov = anyset.lagged_covariance([(x, valid)], 2 * lag)
    plan = LeadPlan.of(leads)
    a = plan.constraints()
    weight, bias = anyset.subset_ridge(cov, a, lag, 1e-4)
    measured = np.einsum("ri,bit->brt", a, x)
    pred_cov = _conv(measured, weight, bias, lag)
    direct_w, direct_b = fit_ridge([(measured, x, valid)], lag, 1e-4)
    pred_direct = _conv(measured, direct_w.astype(np.float64), direct_b.astype(np.float64), lag)
    # edges differ (zero padding in the direct fit); compare the interior
    interior = slice(2 * lag, -2 * lag)
    scale = np.abs(x).max()
    assert np.abs(pred_cov - pred_direct)[..., interior].max() < 0.02 * scale


def _conv(m: np.ndarray, weight: np.ndarray, bias: np.ndarray, lag: int) -> np.ndarray:
    padded = np.pad(m, ((0, 0), (0, 0), (lag, lag)))
    windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * lag + 1, axis=2)
    return np.einsum("brtk,ork->bot", windows, weight) + bias[None, :, None]


def test_network_reproduces_measurements_for_any_plan() -> None:
    import torch

    config = anyset.AnySetConfig(channels=(8, 16), kernel_size=5, lag_seconds=0.03)
    stats = {n: (0.0, 1.0) for n in INDEPENDENT_LEADS}
    net = anyset.make_net(config, stats, 100.0).eval()
    for p in net.parameters():  # a network far from zero: the projection must still hold
        torch.nn.init.normal_(p, std=0.3)
    x = _independent(2, 2.0)
    cov = anyset.lagged_covariance([(x, np.ones((2, x.shape[-1]), bool))], 2 * net.lag)
    for leads in [("III", "V4"), ("aVR",), ("I", "II", "V1"), ("II", "V5"), ("V1", "V2", "V3")]:
        plan = LeadPlan.of(leads)
        tensors = anyset.plan_tensors(plan, cov, net.lag, 1e-3)
        measured = np.einsum("ri,bit->brt", plan.constraints(), x)
        x8 = np.einsum("ik,bkt->bit", tensors.lift, measured).astype(np.float32)
        with torch.no_grad():
            y = net(torch.from_numpy(x8), **anyset.torch_feed(tensors, "cpu")).numpy()
        back = np.einsum("ri,bit->brt", plan.constraints(), y)
        np.testing.assert_allclose(back, measured, atol=1e-4)


@pytest.fixture(scope="module")
def anyset_registry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("anyset")
    dataset = write_synthetic_dataset(base / "ds", 40, 6.0, 100.0, seed=5)
    out = base / "models"
    for name, extra in (("test-anyset", TINY), ("test-linear-any", {"core": "none",
                                                                    "lag_seconds": "0.05"})):
        train(TrainOptions(dataset, base / name, "anyset", ("any",), epochs=1, batch_size=8,
                           augment="none", threads=1, name=name, model_options=dict(extra),
                           export_onnx=True))
        for suffix in (".json", ".onnx", ".pt"):
            out.mkdir(exist_ok=True)
            (out / f"{name}{suffix}").write_bytes((base / name / f"{name}{suffix}").read_bytes())
    return out


@pytest.fixture
def only_test_models(anyset_registry: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The registry holds the test's any-subset models only (no shipped models)."""
    import ecgfill.models.registry as registry
    import ecgfill.reconstruct as reconstruct

    monkeypatch.setattr(registry, "model_dirs", lambda: [anyset_registry])
    monkeypatch.setattr(reconstruct, "_AUTO_CHOICE", {})
    monkeypatch.setattr(reconstruct, "_MODEL_CACHE", {})
    return anyset_registry


@pytest.mark.parametrize("backend", ["onnx", "torch"])
def test_loaded_anyset_binds_any_lead_set(anyset_registry: Path, backend: str,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ECGFILL_MODELS", str(anyset_registry))
    runner = load_model("test-anyset", backend=backend)
    model = runner.bind(("III", "V4"))
    assert model.input_leads == ("III", "V4")
    assert model.output_leads == ("I", "II", "V1", "V2", "V3", "V5", "V6")
    x = synthesize_batch(1, 3.0, 100.0, 9)[:, [LEAD_INDEX["III"], LEAD_INDEX["V4"]]]
    y = model.predict(x)
    np.testing.assert_allclose(y[0, 1] - y[0, 0], x[0, 0], atol=1e-4)  # II - I = III
    with pytest.raises(ModelError, match="already give all 12"):
        runner.bind(("I", "II", "V1", "V2", "V3", "V4", "V5", "V6"))


def test_linear_any_is_the_plain_ridge(anyset_registry: Path) -> None:
    card = json.loads((anyset_registry / "test-linear-any.json").read_text())
    assert card["input_leads"] == "any" and card["parameters"] == 0
    assert card["covariance"]["max_lag"] == 2 * 5


def _cards(grid: dict[str, dict]) -> list[dict]:
    dedicated = {"name": "unet-i-ii-v4", "arch": "unet", "input_leads": ["I", "II", "V4"],
                 "validation": {"r": 0.91, "r_per_lead": {"V1": 0.89, "V2": 0.88, "V3": 0.91,
                                                          "V5": 0.95, "V6": 0.93}}}
    anyset_card = {"name": "anyset-unet", "arch": "anyset", "input_leads": "any",
                   "lead_sets": grid}
    return [dedicated, anyset_card]


def test_auto_prefers_the_better_figure_then_more_leads() -> None:
    grid = {"I,II,V4": {"r": 0.90}, "I,II,V1,V4": {"r": 0.915}, "III,V4": {"r": 0.7}}
    cards = _cards(grid)
    assert choose(LeadPlan.of(("I", "II", "V4")), cards).model == "unet-i-ii-v4"
    # I,II,V1,V4: the dedicated model ignores V1 (its figure over V2,V3,V5,V6 is 0.9175);
    # the any-subset model's 0.915 ties within 0.005 and uses all four leads
    choice = choose(LeadPlan.of(("I", "II", "V1", "V4")), cards)
    assert choice.model == "anyset-unet" and choice.uses == ("I", "II", "V1", "V4")
    # III,V4: one frontal degree of freedom; only the any-subset model serves it
    assert choose(LeadPlan.of(("V4", "III")), cards).model == "anyset-unet"
    # a lead set outside the grid: the best entry the record contains bounds the figure
    outside = choose(LeadPlan.of(("I", "II", "V4", "V6")), [cards[1]])
    assert outside.model == "anyset-unet" and outside.lead_set == "I,II,V4"
    # all 8 independent leads: no model at all
    assert choose(LeadPlan.of(INDEPENDENT_LEADS), cards).model is None


def test_auto_refuses_a_lead_set_nobody_serves() -> None:
    with pytest.raises(ModelError, match="no installed model serves leads V2"):
        choose(LeadPlan.of(("V2",)), _cards({})[:1])


# -- ecgfill reconstruct --model auto on the layouts real devices produce -------------------------


def _wrsamp(folder: Path, name: str, signal: np.ndarray, labels: list[str], fs: float) -> Path:
    import wfdb

    folder.mkdir(parents=True, exist_ok=True)
    digital = np.round(signal.T * 1000).astype(np.int16)
    wfdb.wrsamp(name, fs=fs, units=["mV"] * len(labels), sig_name=labels, d_signal=digital,
                fmt=["16"] * len(labels), adc_gain=[1000.0] * len(labels),
                baseline=[0] * len(labels), write_dir=str(folder))
    return folder / f"{name}.hea"


LAYOUTS = {
    "eight": ("I", "II", "V1", "V2", "V3", "V4", "V5", "V6"),
    "kardia6": ("I", "II", "III", "aVR", "aVL", "aVF"),
    "i_ii_v1": ("I", "II", "V1"),
    "i_ii_v2_v4": ("I", "II", "V2", "V4"),
    "lead_ii": ("II",),
    "iii_v4": ("III", "V4"),
}


def test_reconstruct_auto_serves_any_lead_set(only_test_models: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from ecgfill.cli import app
    from ecgfill.io import read_record
    from ecgfill.leads import STANDARD_LEADS
    from ecgfill.synth import synthesize

    truth = synthesize(10.0, 100.0, seed=4)
    src = tmp_path / "in"
    for name, leads in LAYOUTS.items():
        _wrsamp(src, name, truth.select(list(leads)).signal, list(leads), 100.0)
    holter = truth.select(["II", "V5"]).signal
    _wrsamp(src, "holter", np.vstack([holter, holter[:1]]), ["ECG1", "ECG2", "RESP"], 100.0)
    result = CliRunner().invoke(app, ["reconstruct", str(src), str(tmp_path / "out"), "--json",
                                      "--map", "ECG1=II,ECG2=V5"])
    assert result.exit_code == 0, result.stderr
    lines = {Path(o["input"]).stem: o for o in map(json.loads, result.stdout.splitlines())}
    assert lines["eight"]["model"] is None and lines["eight"]["leads_reconstructed"] == []
    assert lines["holter"]["leads_measured"] == ["II", "V5"]
    assert lines["holter"]["unused_channels"] == ["RESP"]
    assert lines["iii_v4"]["model"].startswith("test-anyset")
    for name, leads in [*LAYOUTS.items(), ("holter", ("II", "V5"))]:
        assert lines[name]["status"] == "ok"
        out = read_record(tmp_path / "out" / f"{name}.hea")
        assert out.leads == STANDARD_LEADS
        source = read_record(src / f"{name}.hea", channel_map={"ECG1": "II", "ECG2": "V5"})
        for lead in leads:  # measured leads bit-exact
            assert np.array_equal(out.lead(lead), source.lead(lead)), (name, lead)
        i, ii = out.lead("I").astype(np.float64), out.lead("II").astype(np.float64)
        assert np.abs(out.lead("III") - (ii - i)).max() < 2e-3  # written at 1 µV
        assert np.abs(out.lead("aVR") + out.lead("aVL") + out.lead("aVF")).max() < 3e-3


def test_reconstruct_refuses_a_record_without_standard_leads(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from ecgfill.cli import app

    _wrsamp(tmp_path / "in", "x", np.zeros((2, 500)), ["RESP", "PLETH"], 100.0)
    result = CliRunner().invoke(app, ["reconstruct", str(tmp_path / "in"), str(tmp_path / "o")])
    assert result.exit_code == 1
    assert "no standard ECG leads" in result.stderr and "Traceback" not in result.stderr
    bad = CliRunner().invoke(app, ["reconstruct", str(tmp_path / "in"), str(tmp_path / "o"),
                                   "--map", "ECG1=X"])
    assert bad.exit_code == 2 and "--map" in bad.stderr


def test_evaluate_accepts_what_reconstruct_accepts(only_test_models: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from ecgfill.cli import app
    from ecgfill.io import write_record
    from ecgfill.synth import synthesize

    for k in range(3):
        write_record(synthesize(8.0, 100.0, seed=20 + k), tmp_path / "refs" / f"r{k}")
    result = CliRunner().invoke(app, ["evaluate", str(tmp_path / "refs"), "--model", "auto",
                                      "--input-leads", "V4,III", "--no-features", "--json"])
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["summary"]["model"].startswith("test-anyset")
    assert report["summary"]["input_leads"] == ["III", "V4"]
    assert report["leads"]["I"]["origin"] == "learned"
    assert report["leads"]["aVR"]["origin"] == "derived"
    eight = CliRunner().invoke(app, ["evaluate", str(tmp_path / "refs"), "--input-leads",
                                     "I,II,V1,V2,V3,V4,V5,V6"])
    assert eight.exit_code == 2 and "nothing to reconstruct" in eight.stderr


def test_api_reconstruct_any_lead_set(only_test_models: Path) -> None:
    from ecgfill import api
    from ecgfill.errors import RecordError
    from ecgfill.leads import STANDARD_LEADS
    from ecgfill.synth import synthesize

    record = synthesize(6.0, 100.0, seed=31).select(["aVF", "V2"])
    full = api.reconstruct(record)
    assert full.leads == STANDARD_LEADS and full.model.startswith("test-anyset")
    assert np.array_equal(full.lead("aVF"), record.lead("aVF"))
    assert np.abs(full.lead("II") - full.lead("I") / 2 - record.lead("aVF")).max() < 1e-5
    with pytest.raises(RecordError, match="no model named"):
        api.reconstruct(record, model="no-such-model")
