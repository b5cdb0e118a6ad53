"""Gaps are not invented (issue 16 item 4): where the measured leads hold no data (NaN), the leads
computed from them hold none either; only gaps up to 50 ms are interpolated for the model, and
every gap is reported."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from ecgfill.cli import app
from ecgfill.dsp import true_runs
from ecgfill.io import read_record, write_record
from ecgfill.leads import INDEPENDENT_LEADS, STANDARD_LEADS
from ecgfill.models import load_model
from ecgfill.reconstruct import GAP_CONTEXT_SECONDS, reconstruct_record
from ecgfill.record import ECGRecord
from ecgfill.synth import synthesize

FS = 250.0


def reduced(leads: tuple[str, ...], seconds: float = 12.0, seed: int = 4) -> ECGRecord:
    record = synthesize(seconds, FS, seed=seed).select(list(leads))
    record.signal += 0.3  # an offset: a zero-filled gap would be a step
    return record


def nan_runs(row: np.ndarray, fs: float = FS) -> list[tuple[float, float]]:
    """Where ``row`` has no data, in seconds."""
    from ecgfill.dsp import nan_runs as runs

    return [(start / fs, stop / fs) for start, stop in runs(row)]


def test_a_gap_in_a_model_input_leaves_every_lead_computed_from_it_nan(models_env: Path) -> None:
    model = load_model("linear-i-ii-v4")
    record = reduced(("I", "II", "V4"))
    clean, _ = reconstruct_record(record, model)
    record.signal[0, 1000:1250] = np.nan  # I: no data for 1 s from 4 s
    full, _ = reconstruct_record(record, model)
    around = [(4.0 - GAP_CONTEXT_SECONDS, 5.0 + GAP_CONTEXT_SECONDS)]
    for name, origin in zip(full.leads, full.origins, strict=True):
        runs = nan_runs(full.lead(name))
        if origin == "reconstructed":  # the model read I around every predicted sample there
            assert runs == around, name
        elif name in ("I", "III", "aVR", "aVL", "aVF"):  # measured I, and derived from it
            assert runs == [(4.0, 5.0)], name
        else:
            assert runs == [], name
    # elsewhere the prediction is what it would have been: the gap stays local
    keep = ~np.isnan(full.signal)
    assert np.abs(full.signal[keep] - clean.signal[keep]).max() < 0.002


class _Zeros:
    """A stand-in model on V1 alone that predicts zeros (to see what the completion does)."""

    name, version, fs, input_filters, card = "zeros", "1", FS, None, {}
    input_leads = ("V1",)
    output_leads = tuple(n for n in INDEPENDENT_LEADS if n != "V1")

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.zeros((1, len(self.output_leads), x.shape[-1]), np.float32)


def test_a_gap_in_the_measurement_predictions_are_corrected_to_is_nan() -> None:
    """With aVF and V1 measured, predicted I and II are corrected to reproduce aVF: where aVF
    has no data there is nothing to correct the predictions to (even over a gap of 40 ms),
    though the model never read aVF."""
    record = reduced(("aVF", "V1"))
    record.signal[0, 500:510] = np.nan
    full, _ = reconstruct_record(record, _Zeros())  # type: ignore[arg-type]
    for name in STANDARD_LEADS:
        assert nan_runs(full.lead(name)) == ([] if name == "V1" else [(2.0, 2.04)]), name


class _WindowMean:
    """A stand-in for a network with self-attention: in each of its windows (joined as every
    model's are) every output sample is the mean of the window's input."""

    name, version, fs, input_filters, window = "attention", "1", FS, None, 2500  # 10 s
    card = {"config": {"heads": 1}}
    input_leads = ("I", "II", "V4")
    output_leads = ("V1", "V2", "V3", "V5", "V6")

    def predict(self, x: np.ndarray) -> np.ndarray:
        from ecgfill.blend import crossfade_weights, window_starts

        n = x.shape[-1]
        out = np.zeros((1, len(self.output_leads), n), np.float32)
        starts = window_starts(n, self.window)
        for start, weight in zip(starts, crossfade_weights(starts, self.window), strict=True):
            out[..., start:start + self.window] += weight * x[0, :, start:start + self.window].mean()
        return out


def test_a_gap_reaches_what_an_attention_model_reads_with_it() -> None:
    """For a model that sees its whole window, a gap changes every prediction that a window
    holding it takes part in, and nothing else: exactly that is NaN."""
    record = reduced(("I", "II", "V4"), seconds=20.0)
    clean, _ = reconstruct_record(record, _WindowMean())  # type: ignore[arg-type]
    record.signal[2, 2000:2100] = np.nan  # V4: 0.4 s at 8 s
    full, _ = reconstruct_record(record, _WindowMean())  # type: ignore[arg-type]
    v1 = full.lead("V1")
    changed = ~np.isclose(v1, clean.lead("V1"), rtol=0, atol=1e-6)
    assert nan_runs(v1) == [(a / FS, b / FS) for a, b in true_runs(changed)]
    assert nan_runs(v1)[0][0] < 8.0 - GAP_CONTEXT_SECONDS  # further than a convolution's reach


def reconstruct_cli(path: Path, out: Path, *options: str) -> dict:
    result = CliRunner().invoke(app, ["reconstruct", str(path), str(out), "--json", *options])
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout.splitlines()[0])


def test_gaps_reach_the_output_file_and_are_reported(models_env: Path, tmp_path: Path) -> None:
    record = reduced(("I", "II", "V4"))
    record.signal[0, 1000:1250] = np.nan  # 1 s
    record.signal[2, 500:510] = np.nan  # 40 ms
    write_record(record, tmp_path / "in" / "r")
    outcome = reconstruct_cli(tmp_path / "in" / "r.hea", tmp_path / "out",
                              "--model", "linear-i-ii-v4")
    assert ("lead I has 250 non-finite samples (8.3%) in 1 gap, the longest 1.00 s at 4.00 s: "
            "the leads computed from it are NaN there too") in outcome["warnings"]
    assert ("lead V4 has 10 non-finite samples (0.3%) in 1 gap, the longest 0.04 s at 2.00 s: "
            "up to 50 ms each, interpolated in the model's input") in outcome["warnings"]
    written = read_record(tmp_path / "out" / "r.hea")  # WFDB's invalid sample, read as NaN
    assert nan_runs(written.lead("V1")) == [(2.0, 7.0)]  # predicted across V4's 40 ms
    assert nan_runs(written.lead("V4")) == [(2.0, 2.04)]  # as measured
    assert nan_runs(written.lead("III")) == [(4.0, 5.0)]


def test_edf_output_writes_no_data_at_the_digital_minimum(models_env: Path,
                                                           tmp_path: Path) -> None:
    """EDF has no invalid value: samples without data go to the digital minimum (-32767, not
    -32768 below it), and the warning says so."""
    import pyedflib

    record = reduced(("I", "II", "V4"))
    record.signal[0, 1000:1250] = np.nan
    write_record(record, tmp_path / "in" / "r")
    outcome = reconstruct_cli(tmp_path / "in" / "r.hea", tmp_path / "out",
                              "--model", "linear-i-ii-v4", "--format", "edf")
    assert any(w.startswith("EDF: lead V1 has 1250 samples without data (NaN), written at the "
                            "digital minimum (-32.767 mV)") for w in outcome["warnings"])
    with pyedflib.EdfReader(str(tmp_path / "out" / "r.edf")) as edf:
        v1 = edf.getSignalLabels().index("ECG V1")
        digital = edf.readSignal(v1, digital=True)
        assert edf.getDigitalMinimum(v1) == -32767
    assert (digital[500:1750] == -32767).all() and (digital[:500] > -32767).all()


@pytest.mark.realdata
def test_real_record_with_a_gap(shared_data: Path, models_env: Path, tmp_path: Path) -> None:
    """A PTB-XL record with two seconds of lead I lost reconstructs, NaN only around the gap."""
    source = read_record(shared_data / "ptb-xl/records100/00000/00001_lr.hea").select(["I", "II", "V4"])
    source.signal[0, 300:500] = np.nan
    full, _ = reconstruct_record(source, load_model("linear-i-ii-v4"))
    for name, origin in zip(full.leads, full.origins, strict=True):
        runs = nan_runs(full.lead(name), 100.0)
        expected = [(1.0, 7.0)] if origin == "reconstructed" else (
            [(3.0, 5.0)] if name in ("I", "III", "aVR", "aVL", "aVF") else [])
        assert runs == expected, name
