"""Models trained on high-passed data: their inputs are filtered the same way at prediction, the
measured leads never are, and evaluation filters the references to match."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ecgfill.dsp import Highpass, apply_filters
from ecgfill.errors import UsageError
from ecgfill.evaluate.report import build_report
from ecgfill.evaluate.run import EvaluateOptions, evaluate_models
from ecgfill.io import write_record
from ecgfill.leads import INDEPENDENT_LEADS
from ecgfill.models import output_leads_for
from ecgfill.reconstruct import reconstruct_record
from ecgfill.record import ECGRecord
from ecgfill.synth import synthesize

FS = 250.0
HIGHPASS = Highpass(0.5).to_dict()


class CopyModel:
    """Predicts every missing lead as a copy of its first input lead; remembers its inputs."""

    def __init__(self, input_leads: tuple[str, ...], highpass: dict | None, name: str = "copy"):
        self.name, self.version, self.fs = name, "1", FS
        self.input_leads = input_leads
        self.output_leads = output_leads_for(input_leads)
        self.input_filters = {"highpass": highpass}
        self.card = {"name": name, "input_filters": self.input_filters}
        self.seen: list[np.ndarray] = []

    def predict(self, x: np.ndarray) -> np.ndarray:
        self.seen.append(np.array(x))
        return np.repeat(x[:, :1], len(self.output_leads), axis=1).astype(np.float32)


def _wandering_record(seconds: float = 8.0) -> ECGRecord:
    record = synthesize(seconds, FS, seed=3)
    t = np.arange(record.n_samples) / FS
    wander = 0.8 + 0.5 * np.sin(2 * np.pi * 0.1 * t)  # offset plus slow drift, all leads
    return ECGRecord((record.signal + wander).astype(np.float32), FS, record.leads)


def test_inputs_are_filtered_and_measured_leads_untouched() -> None:
    record = _wandering_record().select(("I", "II", "V4"))
    model = CopyModel(("I", "II", "V4"), HIGHPASS)
    full, _ = reconstruct_record(record, model)
    expected_input = apply_filters(record.signal, FS, {"highpass": HIGHPASS})
    np.testing.assert_allclose(model.seen[0][0], expected_input, atol=1e-6)
    for name in ("I", "II", "V4"):
        np.testing.assert_array_equal(full.lead(name), record.lead(name))
    assert abs(float(np.mean(full.lead("V1")))) < 0.02  # predicted from the filtered input
    assert float(np.mean(full.lead("II"))) > 0.5  # the measured lead keeps its offset


def test_unfiltered_model_sees_raw_inputs() -> None:
    record = _wandering_record().select(("I", "II", "V4"))
    model = CopyModel(("I", "II", "V4"), None)
    reconstruct_record(record, model)
    np.testing.assert_array_equal(model.seen[0][0], record.signal)


def test_record_references_are_filtered_before_scoring(tmp_path: Path) -> None:
    truth = _wandering_record()
    write_record(truth, tmp_path / "rec")
    seen: list[ECGRecord] = []
    options = EvaluateOptions(features=False, observe=lambda k, name, t, r: seen.append(t))
    model = CopyModel(("I", "II", "V4"), HIGHPASS)
    [evaluation] = evaluate_models([str(tmp_path)], [model], options)
    expected = apply_filters(truth.select(INDEPENDENT_LEADS).signal, FS, {"highpass": HIGHPASS})
    np.testing.assert_allclose(seen[0].select(INDEPENDENT_LEADS).signal, expected, atol=2e-3)
    report = build_report(evaluation, n_boot=10)
    assert report["summary"]["reference_highpass"]["cutoff_hz"] == 0.5


def test_compared_models_must_share_the_filter(tmp_path: Path) -> None:
    write_record(_wandering_record(), tmp_path / "rec")
    models = [CopyModel(("I", "II", "V4"), HIGHPASS, "a"), CopyModel(("I", "II", "V4"), None, "b")]
    with pytest.raises(UsageError, match="share their input filter"):
        evaluate_models([str(tmp_path)], models)


def test_dataset_filter_must_match_the_model(tmp_path: Path) -> None:
    from ecgfill.train.data import write_synthetic_dataset

    dataset = write_synthetic_dataset(tmp_path / "ds", 6, 4.0, FS)
    meta = json.loads((dataset / "dataset.json").read_text())
    assert meta["filters"]["highpass"] is None
    with pytest.raises(UsageError, match="trained with 0.5 Hz high-pass but dataset .* has no"):
        evaluate_models([str(dataset)], [CopyModel(("I", "II", "V4"), HIGHPASS)], split="val")


def test_dataset_with_the_same_filter_under_another_implementation_note_is_accepted(
    tmp_path: Path,
) -> None:
    """Cards made from older datasets carry another implementation note for the same filter."""
    from ecgfill.train.data import write_synthetic_dataset

    dataset = write_synthetic_dataset(tmp_path / "ds", 6, 4.0, FS)
    meta = json.loads((dataset / "dataset.json").read_text())
    meta["filters"]["highpass"] = {**HIGHPASS, "implementation": "scipy.signal.sosfiltfilt"}
    (dataset / "dataset.json").write_text(json.dumps(meta))
    model = CopyModel(("I", "II", "V4"), HIGHPASS)
    [evaluation] = evaluate_models([str(dataset)], [model], EvaluateOptions(features=False),
                                   split="train")
    assert evaluation.scores and evaluation.reference_highpass["cutoff_hz"] == 0.5
