"""`ecgfill preprocess` on generated records: layout, splits, exclusions, repair, determinism."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from ecgfill import dsp
from ecgfill import preprocess as pp
from ecgfill.cli import app
from ecgfill.errors import UsageError
from ecgfill.io import probe_fs, read_record, write_record
from ecgfill.io.names import ptbxl_ecg_id
from ecgfill.leads import STANDARD_LEADS
from ecgfill.preprocess import FoldSplits, PreprocessConfig, SplitCandidate, preprocess
from ecgfill.preprocess import run as preprocess_run
from ecgfill.preprocess.dataset import ordered_map, shrink_npy_rows
from ecgfill.preprocess.splits import SplitRow, hash_split
from ecgfill.synth import synthesize

EIGHT = ("I", "II", "V1", "V2", "V3", "V4", "V5", "V6")


def write_synthetic(
    directory: Path,
    name: str,
    *,
    fs: float = 100.0,
    seconds: float = 10.0,
    seed: int = 0,
    leads: tuple[str, ...] = STANDARD_LEADS,
    comments: tuple[str, ...] = (),
    nan_span: tuple[int, int] | None = None,
) -> Path:
    """A synthetic record written as WFDB; ``nan_span`` blanks samples of lead II."""
    record = synthesize(seconds, fs, seed=seed).select(leads)
    record.comments = list(comments)
    if nan_span:
        record.signal[leads.index("II"), nan_span[0] : nan_span[1]] = np.nan
    write_record(record, directory / name)
    return directory / f"{name}.hea"


def read_manifest(out: Path) -> list[dict[str, str]]:
    with (out / "manifest.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


def by_id(rows: list[dict[str, str]]) -> dict[str, dict[str, str]]:
    return {row["id"]: row for row in rows}


def write_csv(path: Path, rows: list[dict[str, object]]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture
def mixed_dir(tmp_path: Path) -> Path:
    """8-lead 100 Hz, 12-lead 500 Hz, a short one, one without V1, one with no limb pair."""
    src = tmp_path / "src"
    src.mkdir()
    write_synthetic(src, "eight", leads=EIGHT, seed=1)
    write_synthetic(src, "twelve500", fs=500, seed=2)
    write_synthetic(src, "short", seconds=3.0, seed=3)
    write_synthetic(src, "no_v1", leads=tuple(n for n in STANDARD_LEADS if n != "V1"), seed=4)
    write_synthetic(src, "one_limb", leads=("I", *EIGHT[2:]), seed=5)
    return src


def test_dataset_layout(mixed_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "ds"
    summary = preprocess([str(mixed_dir)], out, PreprocessConfig(fs=100), command="test")
    assert sorted(p.name for p in out.iterdir()) == [
        "dataset.json", "manifest.csv", "signals.npy", "stats.json",
    ]
    signals = np.load(out / "signals.npy", mmap_mode="r")
    assert signals.dtype == np.float32 and signals.shape == (3, 12, 1000)
    rows = read_manifest(out)
    assert tuple(rows[0]) == pp.MANIFEST_COLUMNS
    assert [r["id"] for r in rows] == sorted(r["id"] for r in rows)  # sorted input order
    rows_by_id = by_id(rows)
    assert rows_by_id["no_v1"]["split"] == "excluded" and rows_by_id["no_v1"]["index"] == ""
    assert rows_by_id["no_v1"]["exclude_reason"] == "missing_chest_leads: V1"
    assert rows_by_id["one_limb"]["exclude_reason"].startswith("missing_limb_leads:")
    included = [r for r in rows if r["index"]]
    assert sorted(int(r["index"]) for r in included) == [0, 1, 2]
    assert {r["split"] for r in included} <= set(pp.SPLITS)
    assert rows_by_id["twelve500"]["fs_original"] == "500"

    info = json.loads((out / "dataset.json").read_text())
    assert {"ecgfill_version", "command", "fs", "seconds", "filters", "counts", "splits"} <= set(info)
    assert info["fs"] == 100 and info["seconds"] == 10 and info["command"] == "test"
    assert info["counts"]["included"] == 3 and info["counts"]["excluded"] == 2
    assert info["counts"]["exclude_reasons"] == {"missing_chest_leads": 1, "missing_limb_leads": 1}
    assert summary.counts["records"] == 5

    stats = json.loads((out / "stats.json").read_text())
    assert stats["leads"] == list(STANDARD_LEADS)
    train = [r for r in included if r["split"] == "train"]
    valid = np.concatenate(
        [signals[int(r["index"]), :, : int(r["n_valid"])] for r in train], axis=1
    ).astype(np.float64)
    assert np.allclose(stats["mean"], valid.mean(axis=1), atol=1e-9)
    assert np.allclose(stats["std"], valid.std(axis=1), atol=1e-9)


def test_rows_hold_the_records_in_standard_order(mixed_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "ds"
    preprocess([str(mixed_dir)], out, PreprocessConfig(fs=100))
    rows = by_id(read_manifest(out))
    signals = np.load(out / "signals.npy")
    eight = signals[int(rows["eight"]["index"])]
    original = read_record(mixed_dir / "eight.hea")
    assert np.array_equal(eight[[0, 1, 6, 7, 8, 9, 10, 11]], original.signal)  # same rate: exact
    assert np.allclose(eight[2], eight[1] - eight[0], atol=1e-6)  # III = II - I derived
    assert np.allclose(eight[3], -(eight[0] + eight[1]) / 2, atol=1e-6)  # aVR
    resampled = signals[int(rows["twelve500"]["index"])]
    expected = dsp.resample(read_record(mixed_dir / "twelve500.hea").signal, 500, 100)
    assert np.allclose(resampled[:, :900], expected[:, :900], atol=1e-5)


def test_long_records_are_cropped_without_edge_effects(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    write_synthetic(src, "long", fs=500, seconds=60.0, seed=7)
    out = tmp_path / "ds"
    preprocess([str(src)], out, PreprocessConfig(fs=100))
    row = read_manifest(out)[0]
    assert row["n_valid"] == "1000" and row["flags"] == ""
    whole = dsp.resample(read_record(src / "long.hea").signal, 500, 100)[:, :1000]
    assert np.allclose(np.load(out / "signals.npy")[0], whole, atol=1e-6)


def test_short_records_are_zero_padded_and_flagged(mixed_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "ds"
    preprocess([str(mixed_dir)], out, PreprocessConfig(fs=100))
    row = by_id(read_manifest(out))["short"]
    assert row["n_valid"] == "300" and "short:3.0s" in row["flags"].split(";")
    signal = np.load(out / "signals.npy")[int(row["index"])]
    assert not signal[:, 300:].any() and signal[:, :300].any()


def test_nan_gaps_are_repaired_when_short_and_excluded_when_long(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    write_synthetic(src, "short_gap", fs=500, nan_span=(1000, 1015), seed=1)  # 30 ms
    write_synthetic(src, "long_gap", fs=500, nan_span=(1000, 1100), seed=2)  # 200 ms
    out = tmp_path / "ds"
    preprocess([str(src)], out, PreprocessConfig())
    rows = by_id(read_manifest(out))
    assert rows["long_gap"]["split"] == "excluded"
    assert rows["long_gap"]["exclude_reason"] == "nan_gap: lead II misses 200 ms (limit 50 ms)"
    assert rows["short_gap"]["flags"].startswith("nan_ratio:")
    repaired = np.load(out / "signals.npy")[int(rows["short_gap"]["index"])]
    lead_ii = repaired[1]
    ramp = np.linspace(lead_ii[999], lead_ii[1015], 17)
    assert np.allclose(lead_ii[999:1016], ramp, atol=2e-6)  # linear through the gap
    assert np.isfinite(repaired).all()


def test_flags_flat_and_clipped_leads() -> None:
    fs = 500.0
    signal = synthesize(10, fs, seed=3).signal.copy()
    signal[6] = 0.25  # flat V1
    signal[1, 2000:2050] = signal[1].max() + 1.0  # 100 ms stuck at the top rail
    signal[2, 3000:3003] = signal[2].min() - 1.0  # 6 ms at the bottom: a spike, not clipping
    signal[7] = 0.0
    signal[7, ::400] = -np.linspace(1.0, 1.5, 13)  # V2: narrow negative spikes on a flat
    flags = pp.quality_flags(signal, STANDARD_LEADS, fs)  # baseline, its maximum
    assert flags == ("flat:V1", "clipped:II")  # not III (short), not V2 (baseline, not a rail)
    assert pp.quality_flags(synthesize(10, fs, seed=3).signal, STANDARD_LEADS, fs) == ()


def _fold_records(src: Path, n: int) -> list[dict[str, object]]:
    rows = []
    for k in range(1, n + 1):
        write_synthetic(src, f"{k:05d}_lr", seconds=2.0, seed=k, leads=EIGHT)
        rows.append({"ecg_id": k, "patient_id": f"{100 + k}.0", "strat_fold": (k - 1) % 10 + 1})
    return rows


def test_splits_follow_the_folds_and_fold_ten_can_be_left_out(tmp_path: Path) -> None:
    src = tmp_path / "records100"
    src.mkdir()
    csv_rows = _fold_records(src, 20)
    folds_csv = write_csv(tmp_path / "folds.csv", csv_rows)
    out = tmp_path / "ds"
    config = PreprocessConfig(seconds=2.0, splits_csv=folds_csv)
    preprocess([str(src)], out, config)
    rows = by_id(read_manifest(out))
    for k, csv_row in enumerate(csv_rows, start=1):
        row = rows[f"{k:05d}_lr"]
        fold = int(csv_row["strat_fold"])
        assert row["strat_fold"] == str(fold)
        assert row["patient_id"] == f"{100 + k}"  # "105.0" normalised
        assert row["split"] == ("train" if fold <= 8 else "val" if fold == 9 else "test")

    held_out = FoldSplits(frozenset(range(1, 9)), frozenset({9}), frozenset())
    preprocess([str(src)], tmp_path / "ds2", PreprocessConfig(seconds=2.0, splits_csv=folds_csv,
                                                               folds=held_out))
    rows = by_id(read_manifest(tmp_path / "ds2"))
    fold_ten = [r for r in rows.values() if r["strat_fold"] == "10"]
    assert fold_ten and all(r["split"] == "excluded" and r["index"] == "" for r in fold_ten)
    assert all(r["exclude_reason"].startswith("fold_not_selected:") for r in fold_ten)
    assert np.load(tmp_path / "ds2" / "signals.npy").shape[0] == 18


def test_csv_matches_by_filename_and_challenge_name(tmp_path: Path) -> None:
    nested = tmp_path / "data" / "records100" / "00000"
    nested.mkdir(parents=True)
    write_synthetic(nested, "00007_lr", seconds=2.0, leads=EIGHT)
    write_synthetic(tmp_path / "data", "HR00008", seconds=2.0, fs=500)
    folds_csv = write_csv(tmp_path / "folds.csv", [
        {"ecg_id": 99, "patient_id": 1, "strat_fold": 9, "filename_lr": "records100/00000/00007_lr"},
        {"ecg_id": 8, "patient_id": 2, "strat_fold": 10, "filename_lr": "records100/00000/00008_lr"},
    ])
    table = pp.SplitTable(folds_csv)
    assert table.lookup(nested / "00007_lr.hea") == SplitRow("1", 9)
    assert table.lookup(tmp_path / "data" / "HR00008.hea") == SplitRow("2", 10)
    assert table.lookup(tmp_path / "data" / "A0008.hea") is None
    assert ptbxl_ecg_id("00001_lr") == ptbxl_ecg_id("HR00001") == 1
    assert ptbxl_ecg_id("A0001") is None


def test_patients_never_span_two_splits(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for k in range(24):
        write_synthetic(src, f"rec{k:02d}", seconds=2.0, seed=k, comments=(f"patient_id: P{k % 6}",))
    out = tmp_path / "ds"
    preprocess([str(src)], out, PreprocessConfig(seconds=2.0))
    rows = read_manifest(out)
    splits_of: dict[str, set[str]] = {}
    for row in rows:
        splits_of.setdefault(row["patient_id"], set()).add(row["split"])
    assert set(splits_of) == {f"P{i}" for i in range(6)}
    assert all(len(s) == 1 for s in splits_of.values())


def test_conflicting_folds_send_the_whole_patient_to_the_held_out_split() -> None:
    candidates = [
        SplitCandidate("a", "p1", 1), SplitCandidate("b", "p1", 10), SplitCandidate("c", "p1", None),
        SplitCandidate("d", "p2", 3), SplitCandidate("e", None, None),
    ]
    splits, info = pp.assign_splits(candidates, FoldSplits())
    assert splits[:3] == ["test", "test", "test"] and splits[3] == "train"
    assert info["moved_to_keep_patients_together"] == 2
    assert info["by"] == {"patient_id_hash": 1, "record_hash": 1, "strat_fold": 3}


def test_hash_split_is_stable_and_proportional() -> None:
    fractions = FoldSplits().fractions()
    splits = [hash_split(f"record:{k}", fractions) for k in range(3000)]
    assert splits == [hash_split(f"record:{k}", fractions) for k in range(3000)]
    share = {s: splits.count(s) / len(splits) for s in pp.SPLITS}
    assert abs(share["train"] - 0.8) < 0.03 and abs(share["test"] - 0.1) < 0.02


def test_same_bytes_twice_and_with_two_workers(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for k in range(20):  # more than one chunk of the worker pool
        write_synthetic(src, f"r{k:02d}", fs=(100.0, 500.0, 250.0)[k % 3], seconds=2.5, seed=k)
    outs = []
    for name, workers in (("one", 1), ("again", 1), ("two", 2)):
        outs.append(tmp_path / name)
        preprocess([str(src)], outs[-1], PreprocessConfig(fs=250, seconds=2.0, workers=workers),
                   command="same command")
    for filename in ("signals.npy", "manifest.csv", "stats.json", "dataset.json"):
        blobs = {(out / filename).read_bytes() for out in outs}
        assert len(blobs) == 1, filename


def test_recorded_command_leaves_out_what_does_not_change_the_output() -> None:
    folds = FoldSplits(frozenset({1, 2}), frozenset({3}), frozenset())
    one = PreprocessConfig(fs=500, splits_csv=Path("f.csv"), folds=folds, workers=1)
    two = PreprocessConfig(fs=500, splits_csv=Path("f.csv"), folds=folds, workers=2, overwrite=True)
    line = one.command_line(["in dir"], "out")
    assert line == two.command_line(["in dir"], "out")
    assert line == (
        "ecgfill preprocess 'in dir' out --fs 500 --seconds 10 --splits f.csv --resample polyphase"
        " --train-folds 1,2 --val-folds 3 --test-folds ''"
    )


def test_default_rate_is_the_most_common_input_rate(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    write_synthetic(src, "a", fs=500, seconds=2.0)
    write_synthetic(src, "b", fs=500, seconds=2.0)
    write_synthetic(src, "c", fs=360, seconds=2.0)
    write_record(synthesize(2.0, 250, seed=4), src / "d", fmt="edf")
    paths = sorted(src.glob("*.hea")) + [src / "d.edf"]
    assert [probe_fs(p) for p in paths] == [500.0, 500.0, 360.0, 250.0]
    summary = preprocess([str(src)], tmp_path / "ds", PreprocessConfig(seconds=2.0))
    assert summary.fs == 500 and summary.n_samples == 1000 and summary.counts["included"] == 4


def test_highpass_is_applied_and_recorded(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    record = synthesize(10, 250, seed=1)
    record.signal += 1.5  # a large offset the high-pass removes
    write_record(record, src / "offset")
    out = tmp_path / "ds"
    preprocess([str(src)], out, PreprocessConfig(highpass_hz=0.5))
    info = json.loads((out / "dataset.json").read_text())
    assert dsp.Highpass.from_dict(info["filters"]["highpass"]) == dsp.Highpass(0.5)
    row = np.load(out / "signals.npy")[0]
    assert np.abs(row.mean(axis=1)).max() < 0.1


def test_unreadable_record_is_an_error_line_and_an_excluded_row(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    write_synthetic(src, "good", seconds=2.0)
    (src / "bad.hea").write_text("bad 12 500 5000\nnot a signal line\n")
    out = tmp_path / "ds"
    result = CliRunner().invoke(app, ["preprocess", str(src), str(out), "--seconds", "2", "--json"])
    assert result.exit_code == 1
    assert "bad.hea" in result.stderr and len(result.stderr.strip().splitlines()) >= 1
    summary = json.loads(result.stdout)
    assert summary["included"] == 1 and summary["unreadable"] == 1
    row = by_id(read_manifest(out))["bad"]
    assert row["split"] == "excluded" and row["exclude_reason"].startswith("unreadable:")


def test_cli_refuses_to_clobber_and_checks_folds(mixed_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "ds"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    runner = CliRunner()
    result = runner.invoke(app, ["preprocess", str(mixed_dir), str(out)])
    assert result.exit_code == 2 and "--overwrite" in result.stderr
    result = runner.invoke(app, ["preprocess", str(mixed_dir), str(out), "--overwrite"])
    assert result.exit_code == 0, result.stderr
    assert not (out / "keep.txt").exists() and (out / "signals.npy").is_file()
    result = runner.invoke(app, ["preprocess", str(mixed_dir), str(tmp_path / "x"),
                                 "--train-folds", "1-9", "--val-folds", "9"])
    assert result.exit_code == 2 and "fold 9" in result.stderr
    result = runner.invoke(app, ["preprocess", str(mixed_dir), str(mixed_dir), "--overwrite"])
    assert result.exit_code == 2 and "contains input record" in result.stderr


def test_a_failed_run_leaves_no_partial_dataset(
    mixed_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(preprocess_run, "write_manifest", broken)
    with pytest.raises(KeyboardInterrupt):
        preprocess([str(mixed_dir)], tmp_path / "ds", PreprocessConfig(fs=100))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]


def test_shrink_npy_rows(tmp_path: Path) -> None:
    path = tmp_path / "a.npy"
    data = np.arange(5 * 2 * 3, dtype=np.float32).reshape(5, 2, 3)
    mm = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=data.shape)
    mm[:] = data
    mm.flush()
    del mm
    shrink_npy_rows(path, 3)
    assert np.array_equal(np.load(path), data[:3])
    shrink_npy_rows(path, 0)
    assert np.load(path).shape == (0, 2, 3)


def test_ordered_map_keeps_order_across_workers() -> None:
    items = list(range(-60, 60))
    assert list(ordered_map(abs, items, workers=2, chunk=7)) == [abs(i) for i in items]


def test_config_rejects_bad_options() -> None:
    with pytest.raises(UsageError, match="--seconds"):
        PreprocessConfig(seconds=0)
    with pytest.raises(UsageError, match="--resample"):
        PreprocessConfig(resample_method="linear")
    with pytest.raises(ValueError, match="fold"):
        pp.parse_folds("1-x")
    assert pp.parse_folds("1-3,5") == frozenset({1, 2, 3, 5}) and pp.parse_folds("") == frozenset()


@pytest.mark.realdata
def test_ptbxl_records_with_their_folds(shared_data: Path, tmp_path: Path) -> None:
    folder = shared_data / "ptb-xl" / "records100" / "00000"
    out = tmp_path / "ds"
    summary = preprocess(
        [str(p) for p in sorted(folder.glob("*.hea"))[:40]], out,
        PreprocessConfig(splits_csv=shared_data / "ptb-xl" / "ptbxl_folds.csv", workers=2),
    )
    assert summary.fs == 100 and summary.counts["included"] == 40
    with (shared_data / "ptb-xl" / "ptbxl_folds.csv").open() as handle:
        folds = {f"{int(r['ecg_id']):05d}_lr": int(r["strat_fold"]) for r in csv.DictReader(handle)}
    for row in read_manifest(out):
        assert int(row["strat_fold"]) == folds[row["id"]]
        assert row["split"] == ("val" if folds[row["id"]] == 9 else "train")
    signals = np.load(out / "signals.npy")
    assert np.allclose(signals[:, 2], signals[:, 1] - signals[:, 0], atol=1e-5)
