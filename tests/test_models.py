"""The inference interface: lead plans, predict on any length (windows, cross-fade), ONNX/PyTorch
parity, model files and cards (SHA-256, consistency), the registry and the model sizes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

from ecgfill.blend import crossfade_weights, window_starts  # noqa: E402
from ecgfill.errors import ModelError  # noqa: E402
from ecgfill.leads import LEAD_INDEX, STANDARD_LEADS, LeadPlan  # noqa: E402
from ecgfill.models import (  # noqa: E402
    available_models,
    installed_cards,
    load_model,
    output_leads_for,
)
from ecgfill.models.base import (  # noqa: E402
    build_network,
    count_parameters,
    flops_per_second,
)
from ecgfill.models.choice import TIE, choose, figure_for  # noqa: E402
from ecgfill.models.network_leads import input_transform, network_input_leads  # noqa: E402
from ecgfill.synth import synthesize_batch  # noqa: E402
from ecgfill.train import TrainOptions, export_model, train  # noqa: E402
from ecgfill.train.data import write_synthetic_dataset  # noqa: E402

LEADS = ("II", "III", "V2")  # an unusual set: no shipped model takes it
TINY = {
    "linear": {"lag_seconds": "0.05"},
    "unet": {"channels": "8,16", "kernel_size": "5", "per_lead_heads": "true",
             "physics_weight": "0.1"},
    "vae": {"channels": "8,16", "groups": "4", "heads": "2", "kernel_size": "3"},
}
LENGTHS = (1, 37, 12345)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tiny linear, U-Net and VAE models, trained one epoch and exported."""
    root = tmp_path_factory.mktemp("models")
    dataset = write_synthetic_dataset(root / "ds", 40, 4.0, 100.0, seed=5)
    out = root / "shipped"
    for arch, options in TINY.items():
        run = root / arch
        train(TrainOptions(dataset, run, arch, LEADS, epochs=1, batch_size=4, augment="none",
                           threads=1, model_options=dict(options)))
        export_model(run, out, name=f"test-{arch}-ii-iii-v2")
    return out


@pytest.fixture
def registry(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ECGFILL_MODELS", str(model_dir))
    return model_dir


def inputs(batch: int, length: int, seed: int = 0) -> np.ndarray:
    """Synthetic II, III, V2 in mV, tiled to ``length`` samples."""
    ecg = synthesize_batch(batch, 4.0, 100.0, seed)[:, [LEAD_INDEX[n] for n in LEADS]]
    reps = -(-length // ecg.shape[-1])
    return np.ascontiguousarray(np.tile(ecg, (1, 1, reps))[..., :length])


# -- lead plans --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "outputs"),
    [
        (("I", "II", "V4"), ("V1", "V2", "V3", "V5", "V6")),
        (("II", "V1", "V5"), ("I", "V2", "V3", "V4", "V6")),
        (("I", "II", "V3"), ("V1", "V2", "V4", "V5", "V6")),
        (("I",), ("II", "V1", "V2", "V3", "V4", "V5", "V6")),
        (("II", "III", "V2"), ("V1", "V3", "V4", "V5", "V6")),
        (("aVR", "aVF"), ("V1", "V2", "V3", "V4", "V5", "V6")),
        (("aVL",), ("I", "II", "V1", "V2", "V3", "V4", "V5", "V6")),
    ],
)
def test_output_leads_are_the_missing_independent_leads(given: tuple, outputs: tuple) -> None:
    assert output_leads_for(given) == outputs
    assert output_leads_for(reversed(given)) == outputs


@pytest.mark.parametrize("given", [("II", "III", "V2"), ("I", "aVL"), ("aVR", "aVF", "V1"),
                                   ("I", "II", "III")])
def test_input_transform_solves_i_and_ii_exactly(given: tuple) -> None:
    ecg = synthesize_batch(1, 2.0, 100.0, 1)[0].astype(np.float64)
    x = ecg[[LEAD_INDEX[n] for n in given]]
    net = input_transform(given) @ x
    expected = ecg[[LEAD_INDEX[n] for n in network_input_leads(given)]]
    assert network_input_leads(given)[:2] == ("I", "II")
    np.testing.assert_allclose(net, expected, atol=1e-5)


# -- windows -----------------------------------------------------------------------------------


@pytest.mark.parametrize("length", [401, 700, 1000, 4321])
def test_crossfade_weights_sum_to_one(length: int) -> None:
    window = 400
    starts = window_starts(length, window)
    assert starts[0] == 0 and starts[-1] == length - window
    total = np.zeros(length)
    for start, w in zip(starts, crossfade_weights(starts, window), strict=True):
        total[start:start + window] += w
    np.testing.assert_allclose(total, 1.0, atol=1e-6)


# -- predict -----------------------------------------------------------------------------------


@pytest.mark.parametrize("arch", list(TINY))
@pytest.mark.parametrize("length", LENGTHS)
def test_onnx_and_torch_agree_on_any_length(registry: Path, arch: str, length: int) -> None:
    name = f"test-{arch}-ii-iii-v2"
    onnx_model = load_model(name, threads=1)
    torch_model = load_model(name, backend="torch", threads=1)
    x = inputs(2, length)
    y_onnx, y_torch = onnx_model.predict(x), torch_model.predict(x)
    assert y_onnx.shape == (2, 5, length) and y_onnx.dtype == np.float32
    assert np.isfinite(y_onnx).all()
    np.testing.assert_allclose(y_onnx, y_torch, atol=1e-4, rtol=0)


@pytest.mark.parametrize("arch", ["linear", "unet"])
def test_long_inputs_match_one_pass_of_the_network(registry: Path, arch: str) -> None:
    """Windows with a cross-fade centred away from their edges reproduce the full-length pass
    exactly when the receptive field is shorter than the margin."""
    import torch

    model = load_model(f"test-{arch}-ii-iii-v2", backend="torch")
    x = inputs(1, 3 * model.window + 146)
    with torch.no_grad():
        full = model.net(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(model.predict(x), full, atol=1e-4)


def test_iter_predict_streams_contiguous_blocks(registry: Path) -> None:
    model = load_model("test-unet-ii-iii-v2")
    x = inputs(1, 2 * model.window + 77)
    blocks = list(model.iter_predict(x))
    assert len(blocks) > 1
    assert [b[0] for b in blocks] == [0] + list(np.cumsum([b[1].shape[-1] for b in blocks])[:-1])
    np.testing.assert_array_equal(np.concatenate([b[1] for b in blocks], axis=-1),
                                  model.predict(x))


def test_predict_rejects_wrong_input_shape(registry: Path) -> None:
    model = load_model("test-linear-ii-iii-v2")
    with pytest.raises(ModelError, match=r"expects \[batch, 3 leads \(II,III,V2\), samples\]"):
        model.predict(np.zeros((1, 2, 100), np.float32))
    bad = np.zeros((1, 3, 100), np.float32)
    bad[0, 0, 5] = np.nan
    with pytest.raises(ModelError, match="non-finite"):
        model.predict(bad)


@pytest.mark.parametrize("backend", ["onnx", "torch"])
def test_vae_samples_give_mean_and_spread(registry: Path, backend: str) -> None:
    model = load_model("test-vae-ii-iii-v2", backend=backend)
    x = inputs(2, 523)
    mean, std = model.predict(x, samples=6, seed=1)
    assert mean.shape == std.shape == (2, 5, 523)
    assert (std >= 0).all() and std.max() > 0
    again_mean, again_std = model.predict(x, samples=6, seed=1)
    np.testing.assert_array_equal(again_std, std)
    np.testing.assert_array_equal(again_mean, mean)
    point = model.predict(x)
    assert isinstance(point, np.ndarray) and point.shape == (2, 5, 523)
    long_mean, long_std = model.predict(inputs(1, 2 * model.window + 9), samples=3)
    assert long_mean.shape == long_std.shape == (1, 5, 2 * model.window + 9)


def test_deterministic_models_refuse_samples(registry: Path) -> None:
    with pytest.raises(ModelError, match="deterministic"):
        load_model("test-unet-ii-iii-v2").predict(inputs(1, 50), samples=3)


# -- files, cards, registry --------------------------------------------------------------------


def test_registry_lists_and_chooses_models(registry: Path) -> None:
    names = {c["name"] for c in available_models()}
    assert {"test-linear-ii-iii-v2", "test-unet-ii-iii-v2", "test-vae-ii-iii-v2"} <= names
    cards = [c for c in installed_cards() if c["name"].startswith("test-")]
    plan = LeadPlan.of(["V2", "III", "II"])
    choice = choose(plan, cards)
    figures = [found[0] for c in cards if (found := figure_for(c, plan)) is not None]
    assert len(figures) == 3 and choice.figure == pytest.approx(max(figures), abs=TIE)
    with pytest.raises(ModelError, match="no installed model serves leads II,III"):
        choose(LeadPlan.of(["II", "III"]), cards)
    card = next(c for c in available_models() if c["name"] == "test-unet-ii-iii-v2")
    assert card["network_input_leads"] == ["I", "II", "V2"]
    assert card["fs"] == 100.0 and card["config"]["per_lead_heads"] is True


def test_models_load_from_paths(model_dir: Path) -> None:
    onnx_model = load_model(model_dir / "test-unet-ii-iii-v2.onnx")
    torch_model = load_model(model_dir / "test-unet-ii-iii-v2.pt")
    from_card = load_model(model_dir / "test-unet-ii-iii-v2.json", backend="torch")
    assert type(onnx_model).__name__ == "OnnxModel"
    assert type(torch_model).__name__ == type(from_card).__name__ == "TorchModel"
    assert onnx_model.input_leads == LEADS and onnx_model.card["sha256"]
    with pytest.raises(ModelError, match="no model named 'nope'"):
        load_model("nope")


@pytest.fixture
def copied(model_dir: Path, tmp_path: Path) -> Path:
    for path in model_dir.glob("test-linear-*"):
        shutil.copy(path, tmp_path / path.name)
    return tmp_path


@pytest.mark.parametrize("suffix", [".onnx", ".pt"])
def test_sha256_mismatch_is_a_model_error(copied: Path, suffix: str) -> None:
    weights = copied / f"test-linear-ii-iii-v2{suffix}"
    data = bytearray(weights.read_bytes())
    data[-20] ^= 0xFF
    weights.write_bytes(bytes(data))
    backend = "onnx" if suffix == ".onnx" else "torch"
    with pytest.raises(ModelError, match="SHA-256 mismatch"):
        load_model(copied / "test-linear-ii-iii-v2.json", backend=backend)
    with pytest.raises(ModelError, match="SHA-256 mismatch"):
        load_model(weights)


@pytest.mark.parametrize(("key", "value"), [("fs", 500.0), ("output_leads", ["V1"]),
                                            ("input_leads", ["I", "II", "V2"])])
@pytest.mark.parametrize("backend", ["onnx", "torch"])
def test_card_disagreeing_with_its_file_is_a_model_error(copied: Path, key: str, value: object,
                                                         backend: str) -> None:
    path = copied / "test-linear-ii-iii-v2.json"
    card = json.loads(path.read_text())
    card[key] = value
    path.write_text(json.dumps(card))
    with pytest.raises(ModelError, match=f"card's {key}"):
        load_model(path, backend=backend)


class _Payload:
    """Not on torch's weights-only allow-list."""


def test_checkpoints_load_weights_only(tmp_path: Path) -> None:
    import torch

    path = tmp_path / "evil.pt"
    torch.save({"format": "ecgfill-model", "card": {}, "state_dict": {}, "x": _Payload()}, path)
    with pytest.raises(ModelError, match="cannot load PyTorch weights"):
        load_model(path)


def test_cuda_request_without_cuda_is_a_clear_error(model_dir: Path) -> None:
    import onnxruntime
    import torch

    if torch.cuda.is_available() or "CUDAExecutionProvider" in \
            onnxruntime.get_available_providers():
        pytest.skip("a CUDA device is present")
    with pytest.raises(ModelError, match="cuda"):
        load_model(model_dir / "test-unet-ii-iii-v2.onnx", device="cuda")
    with pytest.raises(ModelError, match="cuda"):
        load_model(model_dir / "test-unet-ii-iii-v2.pt", device="cuda")


# -- sizes -------------------------------------------------------------------------------------


def _card(arch: str, input_leads: tuple[str, ...] = ("I", "II", "V4")) -> dict:
    return {"arch": arch, "input_leads": list(input_leads),
            "output_leads": list(output_leads_for(input_leads)), "fs": 100.0, "config": {},
            "normalization": {"leads": list(STANDARD_LEADS), "mean": [0.0] * 12,
                              "std": [1.0] * 12}}


def test_default_networks_are_small_next_to_the_paper_unet() -> None:
    from ecgfill.models.unet import reference_flops_per_second, reference_parameters

    assert 17.0e6 < reference_parameters() < 17.2e6
    reference = reference_flops_per_second(100.0, 3, 5, 1000)
    for arch in ("unet", "vae"):
        net = build_network(_card(arch))
        assert count_parameters(net) < 1.5e6
        assert flops_per_second(net, 3, 100.0, 1000) <= 0.1 * reference


# -- the models shipped in models/ ---------------------------------------------------------------

SHIPPED_DIR = Path(__file__).resolve().parents[1] / "models"
SHIPPED_SETS = [("I", "II", "V4"), ("II", "V1", "V5"), ("I", "II", "V3"), ("I",)]


def _shipped_cards() -> list[dict]:
    cards = [json.loads(p.read_text()) for p in sorted(SHIPPED_DIR.glob("*.json"))]
    return [c for c in cards if c.get("format") == "ecgfill-model" and "input_leads" in c]


@pytest.mark.parametrize("leads", SHIPPED_SETS, ids=lambda s: ",".join(s))
def test_every_issue_lead_set_has_a_learned_model_and_a_linear_fallback(leads: tuple) -> None:
    archs = {c["arch"] for c in _shipped_cards() if tuple(c["input_leads"]) == leads}
    assert "linear" in archs and archs & {"unet", "vae"}
    chosen = choose(LeadPlan.of(reversed(leads)), _shipped_cards()).model
    assert chosen is not None and not chosen.startswith("linear")


def test_shipped_cards_agree_with_their_recipe_and_filter() -> None:
    cards = _shipped_cards()
    assert cards
    for card in cards:
        cutoff = card["input_filters"]["highpass"]["cutoff_hz"]
        recipe = card["recipe"]
        assert f"--highpass {cutoff:g}" in recipe["preprocess"], card["name"]
        dataset = recipe["preprocess"].split()[3]
        assert recipe["train"].split()[2] == dataset and recipe["evaluate"].split()[2] == dataset
        model = load_model(card["name"])
        assert model.input_filters["highpass"]["cutoff_hz"] == cutoff
