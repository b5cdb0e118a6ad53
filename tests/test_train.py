"""Training: dataset reading, augmentation, the loop (all three families), resume, time limit,
export and the ``ecgfill train`` command, on a tiny synthetic dataset."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

from typer.testing import CliRunner  # noqa: E402

from ecgfill.cli import app  # noqa: E402
from ecgfill.errors import EcgfillError, UsageError  # noqa: E402
from ecgfill.leads import LEAD_INDEX  # noqa: E402
from ecgfill.train import TrainOptions, export_model, train  # noqa: E402
from ecgfill.train.augment import AugmentConfig, parse_augment, star_resample  # noqa: E402
from ecgfill.train.data import (  # noqa: E402
    BatchSpec,
    open_dataset,
    train_batch,
    write_synthetic_dataset,
)

LEADS = ("I", "II", "V4")
TINY = {
    "linear": {"lag_seconds": "0.05"},
    "unet": {"channels": "8,16", "kernel_size": "5"},
    "vae": {"channels": "8,16", "groups": "4", "heads": "2", "kernel_size": "3"},
}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic_dataset(tmp_path_factory.mktemp("ds"), 40, 4.0, 100.0, seed=3)


def options(dataset: Path, run_dir: Path, arch: str, **kw: object) -> TrainOptions:
    base: dict[str, object] = dict(epochs=2, batch_size=4, augment="none", threads=1,
                                   model_options=dict(TINY[arch]))
    base.update(kw)
    return TrainOptions(dataset, run_dir, arch, LEADS, **base)  # type: ignore[arg-type]


def metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


# -- dataset -----------------------------------------------------------------------------------


def test_open_dataset_reads_splits_and_lengths(dataset: Path) -> None:
    ds = open_dataset(dataset)
    assert ds.signals.shape == (40, 12, 400) and ds.fs == 100.0
    assert len(ds.indices("train")) == 28 and len(ds.indices("val")) == 6
    assert ds.n_valid[0] == 300 and ds.n_valid[1] == 400
    assert ds.sources() == {"synth": 28}
    assert len(ds.fingerprint()) == 64


def test_open_dataset_errors_name_the_file(dataset: Path, tmp_path: Path) -> None:
    with pytest.raises(EcgfillError, match="dataset directory not found"):
        open_dataset(tmp_path / "nope")
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("signals.npy", "manifest.csv", "stats.json", "dataset.json"):
        (broken / name).write_bytes((dataset / name).read_bytes())
    np.save(broken / "signals.npy", np.zeros((40, 8, 400), np.float32))
    with pytest.raises(EcgfillError, match=r"signals\.npy: expected float32 \[N, 12, T\]"):
        open_dataset(broken)
    np.save(broken / "signals.npy", np.zeros((39, 12, 400), np.float32))
    with pytest.raises(EcgfillError, match=r"manifest\.csv: describes 40 rows"):
        open_dataset(broken)


# -- augmentation ------------------------------------------------------------------------------


def test_parse_augment() -> None:
    assert parse_augment("none") == AugmentConfig()
    cfg = parse_augment("crop,scale,noise=0.05,star")
    assert cfg.crop and cfg.scale == 0.2 and cfg.noise == 0.05 and cfg.star == 0.1
    assert cfg.wander == 0.0
    assert parse_augment(cfg.describe()) == cfg
    with pytest.raises(UsageError, match="unknown augmentation 'blur'"):
        parse_augment("crop,blur")


def test_train_batch_crops_inside_valid_and_scales_inputs_and_targets_alike(dataset: Path) -> None:
    ds = open_dataset(dataset)
    spec = BatchSpec(LEADS, ("V1", "V2"), window=200, multiple=2)
    idx = ds.indices("train")[:10]
    x, t, mask = train_batch(ds, idx, spec, AugmentConfig(crop=True, scale=0.5),
                             np.random.default_rng(0))
    assert x.shape == (10, 3, 200) and t.shape == (10, 2, 200) and mask.all()
    records = np.asarray(ds.signals[idx])
    leads = [LEAD_INDEX[n] for n in (*LEADS, "V1", "V2")]
    offsets, factors = [], []
    for i in range(10):
        got = np.concatenate([x[i], t[i]])
        # find the crop: the offset where one factor maps the record's leads onto the batch
        best = min(range(int(ds.n_valid[idx[i]]) - 200 + 1), key=lambda off: np.linalg.lstsq(
            records[i, leads, off:off + 200].reshape(-1, 1), got.reshape(-1), rcond=None)[1][0])
        window = records[i, leads, best:best + 200]
        factor = float((window * got).sum() / (window ** 2).sum())
        np.testing.assert_allclose(got, factor * window, atol=1e-5)
        offsets.append(best)
        factors.append(factor)
    assert min(factors) >= 1 / 1.5 - 1e-6 and max(factors) <= 1.5 + 1e-6
    assert len(set(offsets)) > 1 and len({round(f, 4) for f in factors}) > 1
    plain, _, _ = train_batch(ds, idx, spec, AugmentConfig(), np.random.default_rng(0))
    np.testing.assert_array_equal(plain[:, 0], records[:, LEAD_INDEX["I"], :200])


def test_input_corruptions_leave_targets_clean(dataset: Path) -> None:
    ds = open_dataset(dataset)
    spec = BatchSpec(LEADS, ("V1",), window=400, multiple=2)
    idx = ds.indices("train")[:4]
    clean_x, clean_t, _ = train_batch(ds, idx, spec, AugmentConfig(), np.random.default_rng(1))
    x, t, _ = train_batch(ds, idx, spec, AugmentConfig(wander=0.2, noise=0.05),
                          np.random.default_rng(1))
    np.testing.assert_array_equal(t, clean_t)
    assert np.abs(x - clean_x).max() > 0.01


def test_star_resample_keeps_lead_algebra(dataset: Path) -> None:
    ds = open_dataset(dataset)
    records = np.asarray(ds.signals[:6])
    out, n_valid = star_resample(records, ds.n_valid[:6], 0.15, ds.fs, np.random.default_rng(2))
    assert out.shape == records.shape
    assert not np.allclose(out, records)
    i, ii, iii = (out[:, LEAD_INDEX[n]] for n in ("I", "II", "III"))
    np.testing.assert_allclose(iii, ii - i, atol=1e-5)  # one time warp for all leads
    assert (n_valid <= records.shape[-1]).all() and (n_valid > 0).all()


# -- the loop ----------------------------------------------------------------------------------


def test_linear_fit_beats_the_untrained_model(dataset: Path, tmp_path: Path) -> None:
    result = train(options(dataset, tmp_path / "lin", "linear"))
    rows = metrics(tmp_path / "lin")
    assert rows[0]["train_loss"] < 0.2  # normalised MSE; the untrained (zero) model scores ~1
    assert result.best["r"] > 0.95
    assert (tmp_path / "lin" / "best.pt").is_file()


@pytest.mark.parametrize("arch", ["unet", "vae"])
def test_network_loss_decreases(dataset: Path, tmp_path: Path, arch: str) -> None:
    opts = options(dataset, tmp_path / arch, arch, epochs=4, lr=5e-3,
                   model_options={**TINY[arch], "ridge_init": "false"})
    result = train(opts)
    rows = [r for r in metrics(tmp_path / arch) if r["epoch"] > 0]
    assert len(rows) == 4
    assert rows[-1]["train_loss"] < 0.8 * rows[0]["train_loss"]
    assert result.best["r"] is not None and -1 <= result.best["r"] <= 1


def test_ridge_init_starts_at_the_linear_solution(dataset: Path, tmp_path: Path) -> None:
    train(options(dataset, tmp_path / "lin", "linear", model_options={"lag_seconds": "0.1"}))
    train(options(dataset, tmp_path / "unet", "unet", epochs=1,
                  model_options={**TINY["unet"], "lag_seconds": "0.1"}))
    linear_r = metrics(tmp_path / "lin")[0]["val_r"]
    epoch0 = metrics(tmp_path / "unet")[0]
    assert epoch0["epoch"] == 0
    assert epoch0["val_r"] == pytest.approx(linear_r, abs=1e-4)


def test_checkpoints_reload_weights_only_and_resume_continues(dataset: Path, tmp_path: Path) -> None:
    import torch

    run = tmp_path / "run"
    train(options(dataset, run, "unet", epochs=2))
    payload = torch.load(run / "last.pt", weights_only=True)
    assert payload["train_state"]["epoch"] == 2
    steps = payload["train_state"]["step"]
    side = json.loads((run / "last.json").read_text())
    assert side["card"]["output_leads"] == ["V1", "V2", "V3", "V5", "V6"]
    assert side["train_state"]["step"] == steps

    with pytest.raises(UsageError, match="already holds a run"):
        train(options(dataset, run, "unet", epochs=3))
    with pytest.raises(UsageError, match="different settings"):
        train(options(dataset, run, "unet", epochs=3, resume=True,
                      model_options={**TINY["unet"], "kernel_size": "3"}))
    train(options(dataset, run, "unet", epochs=3, resume=True))
    rows = metrics(run)
    assert [r["epoch"] for r in rows] == [0, 1, 2, 3]
    assert rows[-1]["step"] == steps + steps // 2
    assert torch.load(run / "last.pt", weights_only=True)["train_state"]["epoch"] == 3


def test_resume_without_checkpoint_is_a_usage_error(dataset: Path, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="nothing to resume"):
        train(options(dataset, tmp_path / "none", "unet", resume=True))


def test_max_minutes_stops_cleanly_with_a_usable_checkpoint(dataset: Path, tmp_path: Path) -> None:
    from ecgfill.models import load_model

    run = tmp_path / "run"
    result = train(options(dataset, run, "unet", epochs=50, max_minutes=1e-4))
    assert result.stop_reason.startswith("time limit")
    assert result.epochs == 1
    model = load_model(run / "best.pt")
    assert model.predict(np.zeros((1, 3, 50), np.float32)).shape == (1, 5, 50)


def test_export_model_writes_verified_files(dataset: Path, tmp_path: Path) -> None:
    from ecgfill.models import load_model
    from ecgfill.models.base import sha256_file

    run = tmp_path / "run"
    train(options(dataset, run, "vae", epochs=1))
    card = export_model(run, tmp_path / "out", name="tiny-vae")
    files = {p.name for p in (tmp_path / "out").iterdir()}
    assert files == {"tiny-vae.json", "tiny-vae.onnx", "tiny-vae.pt"}
    for name, digest in card["sha256"].items():
        assert sha256_file(tmp_path / "out" / name) == digest
    assert card["onnx_max_abs_diff_mv"] < 1e-4
    assert card["data_attribution"] == ["synthetic records from ecgfill.synth"]
    assert card["training"]["command"].startswith("ecgfill train ")
    assert card["validation"]["r"] is not None and card["parameters"] > 0
    model = load_model(tmp_path / "out" / "tiny-vae.json")
    assert model.name == "tiny-vae" and model.output_leads == ("V1", "V2", "V3", "V5", "V6")


# -- the command -------------------------------------------------------------------------------


def test_cli_train_linear_with_export(dataset: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    result = CliRunner().invoke(app, [
        "train", str(dataset), str(run), "--arch", "linear", "--input-leads", "ii,v1,v5",
        "--export-onnx", "--name", "lin-test", "--json", "--set", "lag_seconds=0.05",
    ])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["exported"] == ["lin-test.onnx", "lin-test.pt"]
    card = json.loads((run / "lin-test.json").read_text())
    assert card["input_leads"] == ["II", "V1", "V5"]
    assert card["output_leads"] == ["I", "V2", "V3", "V4", "V6"]
    assert "--set lag_seconds=0.05" in card["training"]["command"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--arch", "linear", "--input-leads", "I,X9"], "unknown lead name"),
        (["--arch", "cnn", "--input-leads", "I"], "--arch must be one of"),
        (["--arch", "unet", "--input-leads", "I", "--set", "depth"], "expected KEY=VALUE"),
        (["--arch", "unet", "--input-leads", "I", "--set", "depth=3"], "unet has no option"),
        (["--arch", "linear", "--input-leads", "I,II,III,V1,V2,V3,V4,V5,V6"], "all 12 leads"),
    ],
)
def test_cli_train_rejects_bad_options(dataset: Path, tmp_path: Path, args: list[str],
                                       message: str) -> None:
    result = CliRunner().invoke(app, ["train", str(dataset), str(tmp_path / "r"), *args])
    assert result.exit_code in (1, 2)
    assert message in result.output
    assert "Traceback" not in result.output


@pytest.mark.slow
def test_torchrun_two_cpu_processes(dataset: Path, tmp_path: Path) -> None:
    """DDP on CPU (gloo): both ranks train, rank 0 alone logs and checkpoints."""
    import os
    import shutil
    import subprocess
    import sys

    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    if torchrun is None:
        pytest.skip("torchrun not installed")
    run = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [torchrun, "--nproc_per_node", "2", "-m", "ecgfill", "train", str(dataset), str(run),
         "--arch", "unet", "--input-leads", "I,II,V4", "--epochs", "2", "--batch-size", "4",
         "--augment", "none", "--set", "channels=8,16"],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stderr.count("checkpoints in") == 1  # the summary line, from rank 0 only
    rows = metrics(run)
    assert [r["epoch"] for r in rows] == [0, 1, 2]
    assert rows[-1]["step"] == 2 * (28 // (4 * 2))
    assert (run / "best.pt").is_file()
