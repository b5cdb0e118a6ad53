"""The library's front door, ``ecgfill.api``: arrays in (lead aliases, transposed and
mismatched shapes refused in one line) and the evaluate entry point."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ecgfill import api
from ecgfill.errors import EcgfillError, RecordError, UsageError
from ecgfill.leads import STANDARD_LEADS
from ecgfill.synth import synthesize

FS = 100.0
INPUTS = ("I", "II", "V4")
ALIASES = ("D1", "ECG II", "c4")  # I, II, V4 as devices and files spell them


def test_array_round_trip_with_aliases(models_env: Path) -> None:
    truth = synthesize(6.0, FS, seed=5)
    signal = np.stack([truth.lead(n) for n in INPUTS])
    full = api.reconstruct_array(signal, ALIASES, FS)
    assert full.leads == STANDARD_LEADS and full.signal.shape == (12, signal.shape[1])
    for name, row in zip(INPUTS, signal, strict=True):
        assert full.origins[full.leads.index(name)] == "measured"
        assert np.array_equal(full.lead(name), row)  # measured rows come back unchanged
    assert set(full.leads_with("reconstructed")) == {"V1", "V2", "V3", "V5", "V6"}
    assert set(full.leads_with("derived")) == {"III", "aVR", "aVL", "aVF"}
    same = api.reconstruct(truth.select(list(INPUTS)))  # the array path is the record path
    assert np.array_equal(full.signal, same.signal) and full.model == same.model


def test_array_in_any_order_and_inverted_lead() -> None:
    truth = synthesize(3.0, FS, seed=6)
    rows = np.stack([truth.lead("V4"), -truth.lead("aVR"), truth.lead("I")])
    record = api.record_from_array(rows, ["V4", "-aVR", "lead I"], FS)
    assert record.leads == ("I", "aVR", "V4")  # standard order, as the readers give
    assert np.array_equal(record.lead("aVR"), truth.lead("aVR"))
    single = api.record_from_array(truth.lead("II"), ["MLII"], FS)  # one lead may be 1-D
    assert single.leads == ("II",) and single.n_samples == truth.n_samples


def test_transposed_array_is_refused_in_one_line() -> None:
    signal = np.zeros((300, 3), dtype=np.float32)
    with pytest.raises(UsageError, match=r"looks transposed") as caught:
        api.reconstruct_array(signal, ALIASES, FS)
    message = str(caught.value)
    assert "\n" not in message and "(300, 3)" in message and "signal.T" in message


def test_lead_count_mismatch_and_bad_names_are_refused() -> None:
    with pytest.raises(UsageError, match=r"4 rows but 3 lead names") as caught:
        api.record_from_array(np.zeros((4, 300)), ALIASES, FS)
    assert "\n" not in str(caught.value)
    with pytest.raises(UsageError, match=r"2-D array"):
        api.record_from_array(np.zeros((1, 3, 300)), ALIASES, FS)
    with pytest.raises(UsageError, match=r"unknown lead name 'X7'"):
        api.record_from_array(np.zeros((3, 300)), ["I", "II", "X7"], FS)
    with pytest.raises(RecordError, match=r"duplicated lead name I"):
        api.record_from_array(np.zeros((2, 300)), ["I", "D1"], FS)
    with pytest.raises(UsageError, match=r"sampling rate"):
        api.record_from_array(np.zeros((3, 300)), ALIASES, 0.0)
    with pytest.raises(RecordError, match=r"single sample"):
        api.record_from_array(np.zeros((3, 1)), ALIASES, FS)


@pytest.fixture
def references(tmp_path: Path) -> Path:
    """Three complete 12-lead references on disk."""
    for i in range(3):
        api.write_record(synthesize(6.0, FS, seed=40 + i), tmp_path / "refs" / f"rec{i}")
    return tmp_path / "refs"


def test_evaluate_a_model_and_a_folder_of_reconstructions(
    models_env: Path, references: Path, tmp_path: Path
) -> None:
    from ecgfill.evaluate.run import EvaluateOptions

    options = EvaluateOptions(features=False)
    (evaluation,) = api.evaluate([references], "auto", input_leads="D1,II,C4", options=options)
    assert evaluation.mode == "records" and evaluation.input_leads == INPUTS
    assert len(evaluation.scores) == 3 and not evaluation.failures
    scored = evaluation.scores[0].leads_with("learned")
    assert set(scored) == {"V1", "V2", "V3", "V5", "V6"}
    assert all(-1 <= evaluation.scores[0].metrics[n]["pearson_r"] <= 1 for n in scored)

    out = tmp_path / "recon"
    for i in range(3):
        truth = api.read_record(references / f"rec{i}.hea")
        api.write_record(api.reconstruct(truth.select(list(INPUTS))), out / f"rec{i}")
    (folders,) = api.evaluate([references], reconstructed=out, options=options)
    assert folders.mode == "folders" and len(folders.scores) == 3
    assert folders.scores[0].metrics["V1"]["pearson_r"] == pytest.approx(
        evaluation.scores[0].metrics["V1"]["pearson_r"], abs=1e-3)


def test_evaluate_refuses_conflicting_arguments(references: Path, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"--model cannot be used with --reconstructed"):
        api.evaluate([references], "linear-i", reconstructed=tmp_path)
    with pytest.raises(UsageError, match=r"auto needs --input-leads"):
        api.evaluate([references])
    with pytest.raises(EcgfillError, match=r"--input-leads: unknown lead name 'X9'"):
        api.evaluate([references], input_leads=["I", "X9"])
