"""Clinical warnings: each problem is found, clean records (synthetic and real) raise none."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from corpus import MODEL_FS, Case, build_corpus

from ecgfill.io import read_record
from ecgfill.leads import STANDARD_LEADS
from ecgfill.quality import QualityScan, clinical_warnings, quality_warnings
from ecgfill.record import ECGRecord
from ecgfill.synth import SynthParams, synthesize, synthesize_batch


@pytest.fixture(scope="module")
def cases(tmp_path_factory: pytest.TempPathFactory) -> list[Case]:
    return build_corpus(tmp_path_factory.mktemp("quality-corpus"))


def noisy(seconds: float = 10.0, fs: float = 500.0, **params: float) -> ECGRecord:
    return synthesize(seconds, fs, SynthParams(**{"noise_mv": 0.01, **params}), seed=3)


def test_corpus_cases_warn_as_labelled(cases: list[Case]) -> None:
    """Each suspicious corpus file gets its warning; every other readable one gets none."""
    checked = 0
    for item in cases:
        if item.error:
            continue
        warnings = clinical_warnings(read_record(item.path), MODEL_FS)
        if item.clinical:
            assert any(re.search(item.clinical, w) for w in warnings), (item.name, warnings)
        else:
            assert warnings == [], (item.name, warnings)
        checked += 1
    assert checked >= 20


@pytest.mark.parametrize("fs", [100.0, 250.0, 500.0, 1000.0])
def test_clean_synthetic_records_raise_nothing(fs: float) -> None:
    """Noise-free records have exactly flat baselines and random rhythm, axis and shape."""
    for signal in synthesize_batch(12, 10.0, fs, seed=int(fs)):
        assert clinical_warnings(ECGRecord(signal, fs, STANDARD_LEADS), fs) == []


@pytest.mark.parametrize("heart_rate", [40.0, 75.0, 150.0])
def test_heart_rates_raise_nothing(heart_rate: float) -> None:
    params = SynthParams(heart_rate_bpm=heart_rate, qt_ms=min(400.0, 60000 / heart_rate - 80),
                         pr_ms=min(160.0, 20000 / heart_rate), noise_mv=0.02, amplitude_mv=2.0)
    assert clinical_warnings(synthesize(10.0, 500.0, params, seed=1)) == []


@pytest.mark.parametrize("fs", [100.0, 500.0, 1000.0])
def test_clipping_is_found_on_every_clipped_lead(fs: float) -> None:
    record = noisy(fs=fs, amplitude_mv=2.5)
    clipped = record.signal.max(axis=1) > 1.6
    record.signal = np.minimum(record.signal, 1.5)
    flagged = {w.split()[1] for w in clinical_warnings(record) if "clipped at 1.5 mV" in w}
    assert flagged == {n for n, c in zip(record.leads, clipped, strict=True) if c}
    assert len(flagged) >= 3


def test_values_held_at_the_record_ends_are_not_clipping() -> None:
    """Recorders often hold the last value for a moment; that is not a cut-off peak."""
    record = noisy(amplitude_mv=2.5)
    record.signal[:, -100:] = record.signal[:, -100:-99].copy() + 2.0
    record.signal[:, :60] = record.signal[:, :1] - 2.0
    assert not any("clipped" in w for w in clinical_warnings(record))


def test_flat_leads_and_flat_stretches() -> None:
    record = noisy(seconds=10.0, fs=500.0)
    record.signal[3] = 0.005 * np.sin(np.arange(record.n_samples))  # 10 µV: nothing cardiac
    record.signal[7, 1000:2600] = 0.0  # V2 off for 3.2 s
    record.signal[8, 1000:1500] = 0.0  # V3 off for 1 s: a pause could be that long
    warnings = clinical_warnings(record)
    assert "lead aVR is flat (peak-to-peak 10 µV): electrode off?" in warnings
    assert any(re.fullmatch(r"lead V2 is flat for 3\.\d s of 10\.0 s \(from 2\.00 s\): electrode off\?", w)
               for w in warnings)
    assert not any(w.startswith("lead V3") for w in warnings)


def test_reader_warnings_are_not_repeated() -> None:
    record = noisy()
    record.signal[1] = 0.0
    record.signal[2] = np.nan
    record.warnings = quality_warnings(record.signal, record.leads)
    assert record.warnings == ["lead II is flat (peak-to-peak 0 µV): electrode off?",
                               "lead III has no finite samples"]
    assert not any(w.startswith(("lead II ", "lead III ")) for w in clinical_warnings(record))


@pytest.mark.parametrize(("wander_mv", "flagged"), [(0.2, False), (0.5, False), (1.2, True)])
def test_baseline_wander(wander_mv: float, flagged: bool) -> None:
    warnings = clinical_warnings(noisy(baseline_wander_mv=wander_mv))
    assert any("strong baseline wander" in w for w in warnings) == flagged


def test_implausible_amplitudes() -> None:
    tall = noisy(amplitude_mv=3.0)  # R waves of about 3-4 mV: large but cardiac
    assert clinical_warnings(tall) == []
    wrong_units = noisy()
    wrong_units.signal *= 1000.0  # µV read as mV
    warnings = clinical_warnings(wrong_units)
    assert any(re.fullmatch(r"lead II reaches \d+\.\d mV from its baseline, beyond what a heart "
                            r"produces \(wrong units in the file, or an artefact\?\)", w)
               for w in warnings)


def test_short_records() -> None:
    assert clinical_warnings(noisy(seconds=1.0)) == [
        "record lasts only 1.00 s: too short to hold two heartbeats"
    ]


@pytest.mark.parametrize(
    ("fs", "expected"),
    [
        (500.0, []),
        (250.0, []),
        (1000.0, []),
        (100.0, ["sampled at 100 Hz, far below the model's 500 Hz: the reconstruction cannot "
                 "show detail above 50 Hz"]),
        (2000.0, []),  # the model's 250 Hz band holds the diagnostic 150 Hz
    ],
)
def test_sampling_rate_against_the_model(fs: float, expected: list[str]) -> None:
    record = noisy(fs=fs)
    assert clinical_warnings(record, 500.0) == expected
    assert clinical_warnings(record) == []  # no model, no rate check


def test_band_warning_only_where_the_output_lacks_band_the_input_has() -> None:
    """A 100 Hz model at 500 Hz lacks 50-150 Hz unless the high band is added (top 150 Hz)."""
    record = noisy(fs=500.0)
    scan = QualityScan(record.leads, record.fs, record.n_samples)
    scan.add(record.signal)
    assert scan.clinical_warnings(100.0) == [
        "sampled at 500 Hz, above the model's 100 Hz: reconstructed leads carry nothing above "
        "50 Hz, unlike the measured ones (up to 150 Hz)"]
    assert scan.clinical_warnings(100.0, top_hz=47.5)[0].endswith(
        "nothing above 47.5 Hz, unlike the measured ones (up to 150 Hz)")
    assert scan.clinical_warnings(100.0, top_hz=150.0) == []
    slow = noisy(fs=120.0)  # 60 Hz in, 47.5 Hz out: not worth a warning
    assert clinical_warnings(slow, 100.0) == []


def test_nan_samples_do_not_break_the_checks() -> None:
    record = noisy()
    record.signal[4, ::7] = np.nan
    record.signal[5, :] = np.nan
    assert clinical_warnings(record) == []


@pytest.mark.realdata
def test_real_records(shared_data: Path) -> None:
    """Real 12-lead records: no clipping or flat-lead alarms, and the wander warning tracks
    PTB-XL's own baseline-drift annotation."""
    import pandas as pd

    table = pd.read_csv(shared_data / "ptb-xl" / "ptbxl_database.csv")
    sample = table.sample(300, random_state=0)
    flagged = {True: [], False: []}
    for row in sample.itertuples():
        record = read_record(shared_data / "ptb-xl" / f"{row.filename_lr}.hea").with_limb_leads()
        warnings = clinical_warnings(record, 100.0)
        assert not any("clipped" in w or "flat" in w for w in warnings), (row.filename_lr, warnings)
        flagged[isinstance(row.baseline_drift, str)].append(any("wander" in w for w in warnings))
    assert np.mean(flagged[True]) > 3 * np.mean(flagged[False])
    assert np.mean(flagged[False]) < 0.1
    challenge = sorted((shared_data / "ptb-xl" / "records500-cinc2021").glob("*.hea"))
    for header in challenge + sorted((shared_data / "cpsc2018").glob("*.hea")):
        warnings = clinical_warnings(read_record(header), 500.0)
        assert not any("clipped" in w or "flat" in w or "sampled" in w for w in warnings), warnings


def test_one_rule_for_flat_and_clipped_everywhere() -> None:
    """The readers, the batch warnings and preprocess's flags call the same leads flat and
    clipped (issue 16: flat was 1 µV in one place, 20 µV in another; clipping had two rules)."""
    from ecgfill.preprocess import quality_flags

    record = noisy(fs=100.0, amplitude_mv=2.5)
    record.signal[7] = 0.005 * np.sin(np.arange(record.n_samples))  # V2: 10 µV
    clipped = [n for n, row in zip(record.leads, record.signal, strict=True) if row.max() > 1.6]
    record.signal = np.minimum(record.signal, 1.5)
    reader = quality_warnings(record.signal, record.leads)
    record.warnings = reader
    clinical = clinical_warnings(record)
    assert [w.split()[1] for w in reader + clinical if " is flat " in w] == ["V2"]
    assert [w.split()[1] for w in clinical if "clipped" in w] == clipped
    assert quality_flags(record.signal, record.leads, record.fs) == (
        "flat:V2", "clipped:" + ",".join(clipped))
