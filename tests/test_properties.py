"""Property-based tests (hypothesis): header parsing, lead names, resampling, write -> read."""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from corpus import NAME, write_wfdb
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from ecgfill.dsp import resample, resampled_length
from ecgfill.errors import RecordError
from ecgfill.io import open_writer, read_record, write_record
from ecgfill.io.names import normalize_lead_name, parse_lead_list
from ecgfill.leads import STANDARD_LEADS
from ecgfill.record import ECGRecord

FILES = settings(max_examples=60, deadline=None,
                 suppress_health_check=[HealthCheck.too_slow])
PURE = settings(max_examples=200, deadline=None)

# Storage formats wfdb-python writes, with the digital range (the minimum of 16/24/32 and of
# the FLAC formats is the invalid-sample marker, so it is left out).
FORMAT_LIMITS = {"80": 127, "16": 32767, "24": 2**23 - 1, "32": 2**31 - 1, "212": 2047,
                 "508": 127, "516": 32767, "524": 2**23 - 1}
UNIT_TO_MV = {"mV": 1.0, "uV": 1e-3, "V": 1e3}
SPELLINGS = {name: [name] for name in STANDARD_LEADS} | {
    "I": ["I", "D1", "DI", "Lead I", "MLI"], "II": ["II", "D2", "MLII", "lead_ii"],
    "III": ["III", "D3", "DIII"], "V1": ["V1", "C1"], "V4": ["V4", "C4"], "V6": ["V6", "C6"],
}


@contextmanager
def scratch() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="ecgfill-prop-") as folder:
        yield Path(folder)


# --------------------------------------------------------------------------------------------
# Header parsing through read_record


@st.composite
def wfdb_records(draw: st.DrawFn) -> dict[str, object]:
    """A WFDB record description: leads (any spelling), format, gain, baseline, units, rate."""
    leads = draw(st.lists(st.sampled_from(STANDARD_LEADS), min_size=1, max_size=5, unique=True))
    fmt = draw(st.sampled_from(sorted(FORMAT_LIMITS)))
    limit = FORMAT_LIMITS[fmt]
    n = draw(st.integers(1, 300))
    digital = draw(st.lists(st.integers(-limit, limit), min_size=n * len(leads),
                            max_size=n * len(leads)))
    baseline = draw(st.integers(-min(limit, 1000), min(limit, 1000)))
    return {
        "labels": [draw(st.sampled_from(SPELLINGS[lead])) for lead in leads],
        "leads": leads,
        "fmt": fmt,
        "digital": np.array(digital, dtype=np.int64).reshape(n, len(leads)),
        "gain": draw(st.sampled_from([1.0, 2.5, 100.0, 200.0, 1000.0, 6553.6])),
        "baseline": baseline,
        "units": draw(st.sampled_from(sorted(UNIT_TO_MV))),
        "fs": draw(st.sampled_from([50.0, 100.0, 128.0, 250.0, 257.5, 500.0, 1000.0])),
        "drop_length": draw(st.booleans()) and not fmt.startswith("5"),
    }


@FILES
@given(spec=wfdb_records())
def test_generated_headers_read_back_exactly(spec: dict) -> None:
    import wfdb

    digital, leads = spec["digital"], spec["leads"]
    n_sig = digital.shape[1]
    with scratch() as folder:
        wfdb.wrsamp(NAME, fs=spec["fs"], units=[spec["units"]] * n_sig, sig_name=spec["labels"],
                    d_signal=digital, fmt=[spec["fmt"]] * n_sig, adc_gain=[spec["gain"]] * n_sig,
                    baseline=[spec["baseline"]] * n_sig, write_dir=str(folder))
        header = folder / f"{NAME}.hea"
        if spec["drop_length"]:  # WFDB allows it: the length then follows from the file size
            lines = header.read_text().splitlines()
            lines[0] = " ".join(lines[0].split()[:3])
            header.write_text("\n".join(lines) + "\n")
        record = read_record(header)
    order = sorted(range(n_sig), key=lambda k: STANDARD_LEADS.index(leads[k]))
    assert record.leads == tuple(leads[k] for k in order)
    assert record.fs == spec["fs"] and record.n_samples == digital.shape[0]
    expected = (digital[:, order].T - spec["baseline"]) / spec["gain"] * UNIT_TO_MV[spec["units"]]
    np.testing.assert_allclose(record.signal, expected, rtol=1e-6, atol=1e-6 * np.abs(expected).max())


HEADER_DAMAGE = st.one_of(
    st.tuples(st.just("replace"), st.integers(0, 40), st.text(max_size=12)),
    st.tuples(st.just("delete"), st.integers(0, 40), st.just("")),
    st.tuples(st.just("insert"), st.integers(0, 400), st.text(min_size=1, max_size=8)),
    st.tuples(st.just("truncate"), st.integers(0, 400), st.just("")),
)


@FILES
@given(damage=st.lists(HEADER_DAMAGE, min_size=1, max_size=4))
def test_damaged_headers_fail_only_with_record_errors(damage: list[tuple[str, int, str]]) -> None:
    """Token edits, insertions and truncation of a valid header: the reader either reads a
    record in mV with canonical leads, or raises RecordError naming the header."""
    with scratch() as folder:
        header = write_wfdb(folder)
        text = header.read_text()
        for kind, where, value in damage:
            tokens = text.split(" ")
            if kind == "replace":
                tokens[where % len(tokens)] = value
                text = " ".join(tokens)
            elif kind == "delete":
                del tokens[where % len(tokens)]
                text = " ".join(tokens)
            elif kind == "insert":
                text = text[:where] + value + text[where:]
            else:
                text = text[:where]
        assume(text != header.read_text())
        header.write_text(text, encoding="utf-8", errors="surrogateescape")
        try:
            record = read_record(header)
        except RecordError as exc:
            assert exc.path == str(header) and "\n" not in exc.problem
            return
    assert set(record.leads) <= set(STANDARD_LEADS) and record.n_samples >= 1
    assert record.fs > 0 and not np.isinf(record.signal).any()


# --------------------------------------------------------------------------------------------
# Lead names


def decorate(draw: st.DrawFn, spelling: str) -> tuple[str, float]:
    """A label as devices write it: any case, an ECG/EKG prefix, separators, an inversion."""
    text = "".join(c.upper() if draw(st.booleans()) else c.lower() for c in spelling)
    text = draw(st.sampled_from(["", "ECG ", "EKG-", "ecg_", "Lead:"])) + text
    text = draw(st.sampled_from(["", " ", "\t"])) + text + draw(st.sampled_from(["", " "]))
    inverted = draw(st.booleans())
    return ("-" + text.strip() if inverted else text), (-1.0 if inverted else 1.0)


@PURE
@given(data=st.data(), lead=st.sampled_from(STANDARD_LEADS))
def test_every_spelling_normalises_to_its_lead(data: st.DataObject, lead: str) -> None:
    label, sign = decorate(data.draw, data.draw(st.sampled_from(SPELLINGS[lead])))
    assert normalize_lead_name(label) == (lead, sign)


@PURE
@given(label=st.text(max_size=20))
def test_normaliser_never_fails_and_answers_a_standard_lead(label: str) -> None:
    found = normalize_lead_name(label)
    assert found is None or (found[0] in STANDARD_LEADS and found[1] in (-1.0, 1.0))
    if found is not None:  # canonical names are fixed points
        assert normalize_lead_name(found[0]) == (found[0], 1.0)


@PURE
@given(leads=st.permutations(STANDARD_LEADS), size=st.integers(1, 12), data=st.data())
def test_lead_lists_parse_in_any_spelling(leads: list[str], size: int, data: st.DataObject) -> None:
    chosen = leads[:size]
    text = ",".join(data.draw(st.sampled_from(SPELLINGS[n])) for n in chosen)
    assert parse_lead_list(text) == tuple(chosen)
    with pytest.raises(ValueError, match="given twice"):
        parse_lead_list(f"{text},{chosen[0]}")


# --------------------------------------------------------------------------------------------
# Resampling

RATES = st.sampled_from([100.0, 128.0, 250.0, 257.0, 360.0, 500.0, 1000.0])


@PURE
@given(fs_in=RATES, fs_out=RATES, n=st.integers(0, 3000), leads=st.integers(1, 3))
def test_resample_length_type_and_constants(fs_in: float, fs_out: float, n: int, leads: int) -> None:
    level = np.linspace(-2.0, 3.0, leads, dtype=np.float32)[:, None]
    out = resample(np.repeat(level, n, axis=1), fs_in, fs_out)
    assert out.dtype == np.float32 and out.shape == (leads, resampled_length(n, fs_in, fs_out))
    np.testing.assert_allclose(out, np.repeat(level, out.shape[1], axis=1), atol=2e-4)


@PURE
@given(fs_in=RATES, fs_out=RATES, seed=st.integers(0, 2**32 - 1), a=st.floats(-5, 5),
       b=st.floats(-5, 5))
def test_resample_is_linear_and_exact_at_equal_rates(fs_in: float, fs_out: float, seed: int,
                                                     a: float, b: float) -> None:
    rng = np.random.default_rng(seed)
    x, y = rng.standard_normal((2, 2, 700)).astype(np.float32)
    combined = resample(a * x + b * y, fs_in, fs_out)
    np.testing.assert_allclose(combined, a * resample(x, fs_in, fs_out) + b * resample(y, fs_in, fs_out),
                               atol=1e-4 * (abs(a) + abs(b) + 1))
    np.testing.assert_array_equal(resample(x, fs_in, fs_in), x)


@PURE
@given(fs_in=RATES, fs_out=RATES, hz=st.floats(0.5, 20.0), phase=st.floats(0, 6.3))
def test_resample_keeps_slow_sines(fs_in: float, fs_out: float, hz: float, phase: float) -> None:
    """Content well below both Nyquist rates comes through (away from the ends)."""
    seconds = 4.0
    t_in = np.arange(round(seconds * fs_in)) / fs_in
    out = resample(np.sin(2 * np.pi * hz * t_in + phase)[None], fs_in, fs_out)[0]
    t_out = np.arange(out.size) / fs_out
    inner = (t_out > 0.5) & (t_out < seconds - 0.5)
    np.testing.assert_allclose(out[inner], np.sin(2 * np.pi * hz * t_out[inner] + phase), atol=2e-3)


# --------------------------------------------------------------------------------------------
# Writer: write -> read


@st.composite
def ecg_records(draw: st.DrawFn, with_nan: bool = True, integer_fs: bool = False) -> ECGRecord:
    leads = draw(st.lists(st.sampled_from(STANDARD_LEADS), min_size=1, max_size=12, unique=True))
    n = draw(st.integers(1, 400))
    values = draw(st.lists(st.floats(-32.0, 32.0, width=32), min_size=n * len(leads),
                           max_size=n * len(leads)))
    signal = np.array(values, dtype=np.float32).reshape(len(leads), n)
    if with_nan:
        holes = draw(st.lists(st.integers(0, signal.size - 1), max_size=5))
        signal.reshape(-1)[holes] = np.nan
    fs = float(draw(st.integers(1, 5000))) if integer_fs else draw(
        st.floats(1.0, 5000.0).map(lambda v: round(v, 3)))
    origins = tuple(draw(st.sampled_from(["measured", "derived", "reconstructed"])) for _ in leads)
    model = draw(st.sampled_from([None, "unet-x 2024.01.01"]))
    return ECGRecord(signal, fs, tuple(leads), origins=origins, model=model)


@FILES
@given(record=ecg_records())
def test_wfdb_write_read_round_trip(record: ECGRecord) -> None:
    with scratch() as folder:
        write_record(record, folder / "x")
        back = read_record(folder / "x.hea")
    order = sorted(range(len(record.leads)), key=lambda k: STANDARD_LEADS.index(record.leads[k]))
    assert back.leads == tuple(record.leads[k] for k in order) and back.fs == record.fs
    assert back.origins == tuple(record.origins[k] for k in order)
    if any(o == "reconstructed" for o in record.origins):
        assert back.model == record.model
    np.testing.assert_allclose(back.signal, record.signal[order], rtol=0, atol=0.0005 + 1e-5)


@FILES
@given(record=ecg_records(), cuts=st.lists(st.integers(1, 399), max_size=4, unique=True))
def test_streamed_writes_equal_one_write(record: ECGRecord, cuts: list[int]) -> None:
    """Chunks written one by one give the same bytes as the whole record at once."""
    bounds = [0, *sorted(c for c in cuts if c < record.n_samples), record.n_samples]
    with scratch() as folder:
        write_record(record, folder / "whole")
        with open_writer(folder / "parts") as writer:
            for lo, hi in zip(bounds, bounds[1:], strict=False):
                writer.write(ECGRecord(record.signal[:, lo:hi], record.fs, record.leads,
                                       record.origins, model=record.model))
        for suffix in (".dat", ".hea"):
            whole = (folder / f"whole{suffix}").read_bytes()
            parts = (folder / f"parts{suffix}").read_bytes().replace(b"parts", b"whole")
            assert whole == parts


@FILES
@given(record=ecg_records(with_nan=False, integer_fs=True))
def test_edf_write_read_round_trip(record: ECGRecord) -> None:
    with scratch() as folder, warnings.catch_warnings():
        warnings.simplefilter("error")  # pyedflib warns on stderr when a rate is not exact
        write_record(record, folder / "x", fmt="edf")
        back = read_record(folder / "x.edf")
    order = sorted(range(len(record.leads)), key=lambda k: STANDARD_LEADS.index(record.leads[k]))
    assert back.leads == tuple(record.leads[k] for k in order) and back.fs == record.fs
    assert back.n_samples >= record.n_samples  # the last data record may be padded
    np.testing.assert_allclose(back.signal[:, : record.n_samples], record.signal[order], rtol=0,
                               atol=0.0005 + 1e-5)
