"""Shared fixtures: generated records and the optional real data share."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from ecgfill.leads import STANDARD_LEADS
from ecgfill.record import ECGRecord

SHARED_DATA = Path(
    os.environ.get("ECGFILL_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real-data share (../shared/data); tests using it skip when it is absent."""
    if not (SHARED_DATA / "README.md").is_file():
        pytest.skip("real data share ../shared/data not present")
    return SHARED_DATA


def make_record(seconds: float = 10.0, fs: float = 500.0, seed: int = 0) -> ECGRecord:
    """A 12-lead physiological record from the package's synthesiser."""
    from ecgfill.synth import synthesize

    return synthesize(seconds, fs, seed=seed)


@pytest.fixture
def record12() -> ECGRecord:
    return make_record()


@pytest.fixture
def random_record() -> ECGRecord:
    rng = np.random.default_rng(1)
    return ECGRecord(rng.normal(0, 1, (12, 1234)).astype(np.float32), 250.0, STANDARD_LEADS)


LINEAR_LEAD_SETS = (("I", "II", "V4"), ("II", "V1", "V5"), ("I",))


@pytest.fixture(scope="session")
def linear_registry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model directory with small linear models (100 Hz) for a few lead sets, trained on
    synthetic records; point ``ECGFILL_MODELS`` at it to use ``--model auto``."""
    from ecgfill.train import TrainOptions, export_model, train
    from ecgfill.train.data import write_synthetic_dataset

    root = tmp_path_factory.mktemp("linear-registry")
    dataset = write_synthetic_dataset(root / "ds", 40, 4.0, 100.0, seed=3)
    out = root / "models"
    for leads in LINEAR_LEAD_SETS:
        run = root / ("run-" + "-".join(leads))
        train(TrainOptions(dataset, run, "linear", leads, epochs=1, augment="none", threads=1))
        export_model(run, out)
    return out


@pytest.fixture
def models_env(linear_registry: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ECGFILL_MODELS", str(linear_registry))
    import ecgfill.models.registry as registry
    import ecgfill.reconstruct as reconstruct

    monkeypatch.setattr(registry, "model_dirs", lambda: [linear_registry])  # no shipped models
    monkeypatch.setattr(reconstruct, "_AUTO_CHOICE", {})
    monkeypatch.setattr(reconstruct, "_MODEL_CACHE", {})
    return linear_registry
