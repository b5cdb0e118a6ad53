"""Readers and writer on generated records: formats, quirks, units, names, checksums."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import wfdb

from ecgfill.errors import RecordError
from ecgfill.io import read_record, write_record
from ecgfill.io.discover import find_records, shard
from ecgfill.leads import STANDARD_LEADS
from ecgfill.record import ECGRecord


def wrsamp(directory: Path, name: str, digital: np.ndarray, names: list[str], fmt: str = "16",
           gain: float = 1000, units: str = "mV", fs: float = 500, **kw: object) -> Path:
    """Write a WFDB record with explicit digital values (never the data-dependent p_signal path)."""
    n = digital.shape[1]
    wfdb.wrsamp(name, fs=fs, units=[units] * n, sig_name=names, d_signal=digital, fmt=[fmt] * n,
                adc_gain=[gain] * n, baseline=[0] * n, write_dir=str(directory), **kw)
    return directory / f"{name}.hea"


def digital_of(record: ECGRecord) -> np.ndarray:
    return np.rint(record.signal.astype(np.float64) * 1000).astype(np.int64).T


def test_writer_is_byte_identical_to_wrsamp(tmp_path: Path, random_record: ECGRecord) -> None:
    record = ECGRecord(random_record.signal, 500.0, STANDARD_LEADS)
    write_record(record, tmp_path / "ours")
    wrsamp(tmp_path, "ref", digital_of(record), list(STANDARD_LEADS))
    assert (tmp_path / "ours.dat").read_bytes() == (tmp_path / "ref.dat").read_bytes()
    ours = (tmp_path / "ours.hea").read_text().splitlines()
    ref = (tmp_path / "ref.hea").read_text().splitlines()
    assert [ln.replace("ours", "ref") for ln in ours[:13]] == ref[:13]


def test_round_trip_to_one_microvolt(tmp_path: Path, random_record: ECGRecord) -> None:
    write_record(random_record, tmp_path / "r")
    back = read_record(tmp_path / "r.hea")
    assert back.leads == random_record.leads and back.fs == random_record.fs
    assert np.abs(back.signal - random_record.signal).max() <= 0.0005 + 1e-6
    rec = wfdb.rdrecord(str(tmp_path / "r"), physical=False)
    assert rec.checksum == [int(c) for c in np.sum(rec.d_signal, axis=0) % 65536]
    assert rec.init_value == [int(v) for v in rec.d_signal[0]]
    assert rec.adc_gain == [1000.0] * 12 and rec.baseline == [0] * 12 and rec.fmt == ["16"] * 12


def test_rewrite_keeps_digital_values_exactly(tmp_path: Path, random_record: ECGRecord) -> None:
    write_record(random_record, tmp_path / "a")
    write_record(read_record(tmp_path / "a.hea"), tmp_path / "b")
    assert (tmp_path / "a.dat").read_bytes() == (tmp_path / "b.dat").read_bytes()


def test_provenance_and_origins_round_trip(tmp_path: Path, random_record: ECGRecord) -> None:
    rec = random_record.select(["I", "II", "V4"]).with_limb_leads()
    rec.model = "unet-test 1.0"
    write_record(rec, tmp_path / "p")
    text = (tmp_path / "p.hea").read_text()
    assert "# ecgfill" in text and "derived III,aVR,aVL,aVF" in text
    back = read_record(tmp_path / "p.hea")
    assert back.origins == rec.origins and back.model == "unet-test 1.0"


def test_clipping_is_reported_not_raised(tmp_path: Path) -> None:
    sig = np.zeros((2, 100), np.float32)
    sig[0, 10] = 50.0
    sig[1, 20] = -40.0
    rec = ECGRecord(sig, 100.0, ("I", "II"))
    write_record(rec, tmp_path / "c")
    back = read_record(tmp_path / "c.hea")
    assert back.signal[0, 10] == pytest.approx(32.767) and back.signal[1, 20] == pytest.approx(-32.767)
    assert any("clipped" in w for w in rec.warnings)


def test_nan_written_as_invalid_and_read_back(tmp_path: Path) -> None:
    sig = np.ones((2, 50), np.float32)
    sig[1, 5:8] = np.nan
    write_record(ECGRecord(sig, 100.0, ("I", "II")), tmp_path / "n")
    back = read_record(tmp_path / "n.hea")
    assert np.isnan(back.signal[1, 5:8]).all() and np.isfinite(back.signal[0]).all()
    assert any("3 non-finite" in w for w in back.warnings)


def test_atomic_write_leaves_nothing_on_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import ecgfill.io.wfdb_writer as writer_module

    def boom(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(writer_module.os, "replace", boom)
    with pytest.raises(OSError):
        write_record(ECGRecord(np.zeros((1, 10)), 100.0, ("I",)), tmp_path / "x")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("fmt", ["16", "212", "24", "32", "516", "524"])
def test_storage_formats(tmp_path: Path, fmt: str) -> None:
    rng = np.random.default_rng(3)
    digital = rng.integers(-1500, 1500, (700, 3))
    hea = wrsamp(tmp_path, "f", digital, ["I", "II", "V2"], fmt=fmt)
    rec = read_record(hea)
    np.testing.assert_allclose(rec.signal.T * 1000, digital, atol=1e-3)


@pytest.mark.parametrize(("units", "gain", "factor"), [("uV", 1.0, 1e-3), ("V", 1e6, 1e3), ("mv", 200, 1.0)])
def test_units_to_millivolts(tmp_path: Path, units: str, gain: float, factor: float) -> None:
    digital = np.arange(-50, 50).reshape(50, 2)
    rec = read_record(wrsamp(tmp_path, "u", digital, ["I", "II"], gain=gain, units=units))
    np.testing.assert_allclose(rec.signal.T, digital / gain * factor, rtol=1e-6)


def test_names_aliases_unknowns_and_inversion(tmp_path: Path) -> None:
    digital = np.tile(np.arange(10)[:, None], (1, 4))
    rec = read_record(wrsamp(tmp_path, "a", digital, ["i", "-aVR", "RESP", "vx"]))
    assert rec.leads == ("I", "aVR") and rec.other_channels == ("RESP", "vx")
    np.testing.assert_allclose(rec.lead("aVR"), -rec.lead("I"))
    assert any("non-ECG channels" in w for w in rec.warnings)


def test_duplicated_lead_is_an_error(tmp_path: Path) -> None:
    hea = wrsamp(tmp_path, "d", np.zeros((10, 2), int), ["II", "ECG II"])
    with pytest.raises(RecordError, match="duplicated lead name II"):
        read_record(hea)


def test_no_standard_leads_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(RecordError, match="no standard ECG leads"):
        read_record(wrsamp(tmp_path, "d", np.zeros((10, 2), int), ["foo", "bar"]))


def test_flat_lead_is_reported(tmp_path: Path) -> None:
    digital = np.stack([np.arange(20) * 10, np.zeros(20, int)], axis=1)
    warnings = read_record(wrsamp(tmp_path, "f", digital, ["I", "II"])).warnings
    assert warnings == ["lead II is flat (peak-to-peak 0 µV): electrode off?"]


def _challenge_record(directory: Path, name: str, digital: np.ndarray) -> Path:
    """A CinC Challenge record: MATLAB v4 .mat (``val``) and a header naming ``NAME.mat``."""
    from scipy.io import savemat

    savemat(directory / f"{name}.mat", {"val": digital.T.astype(np.int16)}, format="4")
    checks = np.sum(digital, axis=0) % 65536
    lines = [f"{name}.mat 12 500 {digital.shape[0]} 05-May-2020 14:50:55"]
    lines += [f"{name}.mat 16+24 1000/mV 16 0 {digital[0, c]} {checks[c]} 0 {lead}"
              for c, lead in enumerate(STANDARD_LEADS)]
    (directory / f"{name}.hea").write_text("\n".join(lines) + "\n#Age: 50\n#Dx: 426783006\n")
    return directory / f"{name}.hea"


def test_challenge_mat_with_suffixed_record_line(tmp_path: Path) -> None:
    digital = np.random.default_rng(0).integers(-900, 900, (1000, 12))
    rec = read_record(_challenge_record(tmp_path, "E00271", digital))
    np.testing.assert_allclose(rec.signal.T * 1000, digital, atol=1e-3)
    assert "Age: 50" in rec.comments
    assert sorted(p.name for p in tmp_path.iterdir()) == ["E00271.hea", "E00271.mat"]


def test_multi_segment_record(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    segs = [rng.integers(-500, 500, (n, 2)) for n in (300, 200)]
    for k, seg in enumerate(segs):
        wrsamp(tmp_path, f"m_{k}", seg, ["I", "II"])
    (tmp_path / "m.hea").write_text("m/2 2 500 500\nm_0 300\nm_1 200\n")
    rec = read_record(tmp_path / "m.hea")
    np.testing.assert_allclose(rec.signal.T * 1000, np.concatenate(segs), atol=1e-3)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("missing_dat", "missing data file"),
        ("truncated_dat", "fewer samples than the header"),
        ("corrupt_header", "corrupt header"),
        ("zero_length", "zero-length"),
        ("bad_checksum", "checksum mismatch"),
        ("huge_length", "refusing"),
    ],
)
def test_damaged_wfdb_records(tmp_path: Path, damage: str, message: str) -> None:
    hea = wrsamp(tmp_path, "b", np.arange(200).reshape(100, 2), ["I", "II"])
    dat = tmp_path / "b.dat"
    text = hea.read_text()
    if damage == "missing_dat":
        dat.unlink()
    elif damage == "truncated_dat":
        dat.write_bytes(dat.read_bytes()[:101])
    elif damage == "corrupt_header":
        hea.write_text(text.replace("b 2 500 100", "b two 500 100"))
    elif damage == "zero_length":
        hea.write_text(text.replace("b 2 500 100", "b 2 500 0"))
    elif damage == "bad_checksum":
        raw = bytearray(dat.read_bytes())
        raw[40] ^= 0xFF
        dat.write_bytes(bytes(raw))
    elif damage == "huge_length":
        hea.write_text(text.replace("b 2 500 100", "b 2 500 99999999999"))
    with pytest.raises(RecordError, match=message) as info:
        read_record(hea)
    assert "b.hea" in str(info.value) or "b" in info.value.path


def test_edf_round_trip_and_labels(tmp_path: Path, random_record: ECGRecord) -> None:
    rec = random_record.select(["I", "II", "V4"])
    write_record(rec, tmp_path / "e", fmt="edf")
    back = read_record(tmp_path / "e.edf")
    assert back.leads == ("I", "II", "V4") and back.fs == rec.fs
    assert np.abs(back.signal - rec.signal).max() < 2e-3  # 16-bit over each lead's range


def test_edf_with_microvolts_and_extra_channels(tmp_path: Path) -> None:
    import pyedflib

    path = tmp_path / "x.edf"
    data = [np.sin(np.arange(1000) / 20) * 1000, np.cos(np.arange(1000) / 20) * 1000, np.zeros(1000)]
    headers = [
        {"label": lab, "dimension": dim, "sample_frequency": 250, "physical_min": -2000,
         "physical_max": 2000, "digital_min": -32768, "digital_max": 32767}
        for lab, dim in (("ECG I", "uV"), ("avr", "uV"), ("Resp", "mV"))
    ]
    with pyedflib.EdfWriter(str(path), 3, file_type=pyedflib.FILETYPE_EDFPLUS) as writer:
        writer.setSignalHeaders(headers)
        writer.writeSamples(data)
    rec = read_record(path)
    assert rec.leads == ("I", "aVR") and rec.other_channels == ("Resp",) and rec.fs == 250
    np.testing.assert_allclose(rec.lead("I"), data[0] / 1000, atol=1e-3)


def test_unreadable_edf(tmp_path: Path) -> None:
    bad = tmp_path / "bad.edf"
    bad.write_bytes(b"0       garbage" * 10)
    with pytest.raises(RecordError, match="cannot read EDF"):
        read_record(bad)


def test_discovery_mirrors_tree_and_shards(tmp_path: Path) -> None:
    for sub in ("a", "b/c"):
        (tmp_path / sub).mkdir(parents=True)
        wrsamp(tmp_path / sub, "r1", np.zeros((10, 1), int), ["I"])
        wrsamp(tmp_path / sub, "r2", np.zeros((10, 1), int), ["I"])
    (tmp_path / "b" / "loop").symlink_to(tmp_path, target_is_directory=True)
    items = find_records([str(tmp_path), str(tmp_path / "a" / "r1.dat"), str(tmp_path / "nope")])
    errors = [i for i in items if i.error]
    assert [e.error for e in errors] == ["input path does not exist"]
    good = [i for i in items if not i.error]
    assert len(good) == 4  # r1.dat resolves to the same record as found in the tree
    rel = sorted(str(i.output_base(Path("out"))) for i in good)
    assert rel == ["out/a/r1", "out/a/r2", "out/b/c/r1", "out/b/c/r2"]
    parts = [shard(good, k, 3) for k in (1, 2, 3)]
    assert sorted(str(i.path) for p in parts for i in p) == sorted(str(i.path) for i in good)
    assert find_records(["-"], stdin_lines=[str(tmp_path / "a" / "r2.hea"), ""])[0].path.name == "r2.hea"


# --------------------------------------------------------------------------------------------
# wfdb-python: the one internal API left (chunk reads), and our own header parsing


@pytest.mark.parametrize("fmt", ["16", "212", "24", "32", "516"])
def test_chunked_reads_match_public_rdrecord(tmp_path: Path, fmt: str,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The fast single-segment path (wfdb-python's internal ``_rd_segment``) gives exactly the
    samples of the public ``wfdb.rdrecord``, and so does the fallback without it."""
    from ecgfill.io import wfdb_reader

    assert wfdb_reader.fast_segment_reads(), "this wfdb-python lacks the reader the fast path uses"
    digital = np.random.default_rng(5).integers(-500, 500, (1700, 3))
    hea = wrsamp(tmp_path, "c", digital, ["I", "II", "V2"], fmt=fmt)
    bounds = [(0, 1700), (0, 333), (333, 1024), (1024, 1700)]
    fast = []
    with wfdb_reader.WfdbReader(hea) as reader:
        for start, stop in bounds:
            public = wfdb.rdrecord(str(hea.with_suffix("")), sampfrom=start, sampto=stop,
                                   physical=False)
            chunk = reader._read_segment(start, stop)
            np.testing.assert_array_equal(chunk.d_signal, public.d_signal)
            fast.append(reader.read(start, stop).signal)
    monkeypatch.setattr(wfdb_reader, "fast_segment_reads", lambda: False)
    with wfdb_reader.WfdbReader(hea) as reader:
        for (start, stop), expected in zip(bounds, fast, strict=True):
            np.testing.assert_array_equal(reader.read(start, stop).signal, expected)


@pytest.mark.parametrize("parts", [
    ["07:30:00"], ["7:30:05.25", "29/02/2024"], ["23:59:59.123456", "01/12/1999"],
    ["24:00:00"], ["07:30"], ["07:30:00", "30/02/2024"], ["07:30:00", "2024-02-29"],
    ["07:30:00", "29/02/2024", "x"], ["29-Feb-2024", "07:30:00"],
])
def test_record_line_time_and_date(tmp_path: Path, parts: list[str]) -> None:
    """What our own check passes on, wfdb-python's public reader parses, to the same start;
    the rest is left out of the copy it gets, and the record still reads."""
    from ecgfill.io.times import parse_start
    from ecgfill.io.wfdb_header import wfdb_accepts_time_date

    hea = wrsamp(tmp_path, "t", np.zeros((50, 1), dtype=int), ["I"])
    lines = hea.read_text().splitlines()
    lines[0] = " ".join([*lines[0].split()[:4], *parts])
    hea.write_text("\n".join(lines) + "\n")
    if wfdb_accepts_time_date(parts):
        header = wfdb.rdheader(str(hea.with_suffix("")))
        start, _ = parse_start(parts)
        assert (header.base_datetime or header.base_time) == start
    assert read_record(hea).n_samples == 50


def test_storage_format_tables_match_wfdb() -> None:
    """Our WFDB storage-format tables (signal(5)) agree with wfdb-python's own."""
    from ecgfill.io import wfdb_header

    signal = pytest.importorskip("wfdb.io._signal")
    assert wfdb_header.BYTES_PER_SAMPLE == signal.BYTES_PER_SAMPLE
    assert wfdb_header.BIT_RESOLUTION == signal.BIT_RES
    assert {k: v for k, v in signal.INVALID_SAMPLE_VALUE.items()
                                          if v is not None} == wfdb_header.INVALID_SAMPLE
