"""Diagnostic-level evaluation: labels, AUROC and its bootstrap, FID, the collector, a tiny
classifier trained on synthetic records with fake labels, and ``ecgfill evaluate --diagnostic``."""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from ecgfill.cli import app
from ecgfill.errors import EcgfillError, ModelError
from ecgfill.evaluate.diagnostic import (
    SETS,
    DiagnosticCollector,
    DiagnosticSet,
    auroc,
    diagnostic_report,
    frechet_distance,
    input_only,
    render_diagnostic,
    roc_curve,
    weighted_auroc,
)
from ecgfill.evaluate.run import EvaluateOptions, evaluate_models
from ecgfill.io.names import ptbxl_ecg_id
from ecgfill.leads import STANDARD_LEADS
from ecgfill.models.classifier import (
    DEFAULT_CLASSIFIER,
    SUPERCLASSES,
    ClassifierConfig,
    LabelTable,
    find_classifier,
    load_classifier,
    load_superclass_labels,
)
from ecgfill.record import ECGRecord
from ecgfill.train.classifier import ClassifierTrainOptions, train_classifier

FS = 100.0
N_RECORDS = 40
STATEMENTS = [  # code, diagnostic, diagnostic_class (a subset of PTB-XL's table)
    ("NORM", "1.0", "NORM"), ("IMI", "1.0", "MI"), ("NDT", "1.0", "STTC"),
    ("CRBBB", "1.0", "CD"), ("LVH", "1.0", "HYP"), ("SR", "", ""), ("AFIB", "", ""),
]
CODES_BY_CLASS = {"NORM": "NORM", "MI": "IMI", "STTC": "NDT", "CD": "CRBBB", "HYP": "LVH"}


def _write_labels(folder: Path, rows: dict[int, dict[str, float]]) -> Path:
    """A PTB-XL-layout label file (ecg_id, scp_codes, strat_fold) and scp_statements.csv."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "scp_statements.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["", "description", "diagnostic", "form", "rhythm", "diagnostic_class"])
        for code, diagnostic, cls in STATEMENTS:
            writer.writerow([code, code.lower(), diagnostic, "", "", cls])
    path = folder / "ptbxl_database.csv"
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["ecg_id", "patient_id", "strat_fold", "scp_codes"])
        for ecg_id, codes in rows.items():
            writer.writerow([ecg_id, ecg_id, 1 + ecg_id % 10, repr(codes)])
    return path


def _fake_codes(n: int, seed: int = 0) -> dict[int, dict[str, float]]:
    """Random multi-label codes for ecg_id 1..n, at least one superclass per record."""
    rng = np.random.default_rng(seed)
    rows: dict[int, dict[str, float]] = {}
    for ecg_id in range(1, n + 1):
        present = rng.random(len(SUPERCLASSES)) < 0.4
        present[rng.integers(len(SUPERCLASSES))] = True  # at least one superclass
        codes = {CODES_BY_CLASS[c]: float(rng.choice([0.0, 50.0, 100.0]))
                 for c, p in zip(SUPERCLASSES, present, strict=True) if p}
        rows[ecg_id] = {**codes, "SR": 0.0}
    return rows


# ------------------------------------------------------------------------------------------
# Labels


def test_record_names_give_ptbxl_ids() -> None:
    assert ptbxl_ecg_id("00000/00001_lr") == 1
    assert ptbxl_ecg_id("records100/21000/21837_lr.hea") == 21837
    assert ptbxl_ecg_id("HR00042") == 42
    assert ptbxl_ecg_id("00017_hr") == 17
    assert ptbxl_ecg_id("synth00003") is None
    assert ptbxl_ecg_id("site0/rec1") is None


@pytest.mark.parametrize("name", ["mitdb/100", "100", "records/00100.hea"])
def test_other_databases_are_not_ptbxl_records(tmp_path: Path, name: str) -> None:
    """One strict PTB-XL name parser (issue 16): MIT-BIH's record 100 is not PTB-XL's 100,
    for the classifier's labels and for preprocess's splits alike."""
    from ecgfill.preprocess import SplitTable

    assert ptbxl_ecg_id(name) is None
    labels = LabelTable(("NORM",), {1: np.array([True]), 100: np.array([True])}, {}, "x.csv")
    assert labels.lookup(name) == ("unlabelled", None)
    assert labels.lookup("00100_lr")[0] == "labelled"
    splits = tmp_path / "folds.csv"
    splits.write_text("ecg_id,patient_id,strat_fold\n1,7,1\n100,8,10\n")
    assert SplitTable(splits).lookup(Path(name)) is None


def test_labels_follow_the_benchmark_convention(tmp_path: Path) -> None:
    path = _write_labels(tmp_path, {
        1: {"NORM": 100.0, "SR": 0.0},
        2: {"IMI": 0.0, "LVH": 50.0},  # likelihood 0 still counts (benchmark convention)
        3: {"SR": 0.0, "AFIB": 100.0},  # no diagnostic code: no superclass
    })
    table = load_superclass_labels(path)
    assert table.classes == SUPERCLASSES
    status, row = table.lookup("00000/00001_lr")
    assert status == "labelled" and row is not None
    assert [c for c, v in zip(SUPERCLASSES, row, strict=True) if v] == ["NORM"]
    _, row = table.lookup("00002_lr")
    assert row is not None and [c for c, v in zip(SUPERCLASSES, row, strict=True) if v] == [
        "MI", "HYP"]
    assert table.lookup("00003_lr") == ("no_superclass", None)
    assert table.lookup("00004_lr") == ("unlabelled", None)
    assert table.lookup("rec0") == ("unlabelled", None)
    assert table.folds[3] == 4


def test_label_file_problems_name_the_file(tmp_path: Path) -> None:
    path = _write_labels(tmp_path / "a", {1: {"NORM": 100.0}})
    (tmp_path / "a" / "scp_statements.csv").unlink()
    with pytest.raises(EcgfillError, match="scp_statements.csv"):
        load_superclass_labels(path)
    bad = tmp_path / "b.csv"
    bad.write_text("ecg_id,codes\n1,x\n")
    with pytest.raises(EcgfillError, match="b.csv: lacks columns scp_codes"):
        load_superclass_labels(bad, _write_labels(tmp_path / "c", {}).with_name(
            "scp_statements.csv"))


@pytest.mark.realdata
def test_real_ptbxl_label_counts(shared_data: Path) -> None:
    table = load_superclass_labels(shared_data / "ptb-xl" / "ptbxl_database.csv")
    rows = np.array(list(table.labels.values()))
    assert len(rows) == 19601
    assert dict(zip(SUPERCLASSES, rows.sum(axis=0).tolist(), strict=True)) == {
        "NORM": 8551, "MI": 4919, "STTC": 4714, "CD": 4402, "HYP": 2387}
    assert int((~rows.any(axis=1)).sum()) == 371
    assert 10 not in set(table.folds.values())


# ------------------------------------------------------------------------------------------
# Metrics


def _pairwise_auroc(y: np.ndarray, s: np.ndarray) -> float:
    pos, neg = s[y], s[~y]
    wins = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(wins / (len(pos) * len(neg)))


def test_auroc_matches_the_pairwise_definition_with_ties() -> None:
    rng = np.random.default_rng(0)
    y = rng.random(200) < 0.3
    s = np.round(rng.random(200) + 0.5 * y, 1)  # coarse: many ties
    assert auroc(y, s) == pytest.approx(_pairwise_auroc(y, s), abs=1e-12)
    assert auroc(y, y.astype(float)) == 1.0 and auroc(y, -y.astype(float)) == 0.0
    assert np.isnan(auroc(np.ones(5, bool), np.arange(5.0)))


def test_weighted_auroc_equals_auroc_of_the_resample() -> None:
    rng = np.random.default_rng(1)
    y = rng.random(60) < 0.5
    s = np.round(rng.random(60), 1)
    idx = rng.integers(0, 60, size=(3, 60))
    weights = np.stack([np.bincount(i, minlength=60) for i in idx])
    got = weighted_auroc(y, s, weights)
    assert got == pytest.approx([_pairwise_auroc(y[i], s[i]) for i in idx], abs=1e-12)


def test_frechet_distance_of_gaussians() -> None:
    rng = np.random.default_rng(2)
    a = rng.standard_normal((4000, 3))
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    shifted = a + np.array([1.0, 0.0, 2.0])
    assert frechet_distance(a, shifted) == pytest.approx(5.0, rel=1e-6)
    # 1-D: (mu1 - mu2)^2 + (sigma1 - sigma2)^2
    b = 3.0 * rng.standard_normal((4000, 1))
    x = rng.standard_normal((4000, 1))
    expected = (x.mean() - b.mean()) ** 2 + (x.std(ddof=1) - b.std(ddof=1)) ** 2
    assert frechet_distance(x, b) == pytest.approx(expected, rel=1e-6)
    assert frechet_distance(a[:1], a) is None


def _fake_set(recon_noise: float, n: int = 400, seed: int = 0) -> DiagnosticSet:
    rng = np.random.default_rng(seed)
    y = rng.random((n, len(SUPERCLASSES))) < 0.3
    real = np.clip(0.35 * y + 0.65 * rng.random(y.shape), 0, 1)
    recon = real if recon_noise == 0 else np.clip(real + recon_noise * rng.standard_normal(
        y.shape), 0, 1)
    feats = rng.standard_normal((n, 4))
    return DiagnosticSet(
        SUPERCLASSES, [f"{i:05d}_lr" for i in range(n)], y,
        {"real": real, "reconstructed": recon, "input_only": rng.random(y.shape)},
        {"real": feats, "reconstructed": feats + recon_noise, "input_only": feats + 1.0},
        {"unlabelled": 3, "no_superclass": 1}, "clf 1", "labels.csv")


def test_report_of_a_perfect_reconstruction_is_non_inferior() -> None:
    block = diagnostic_report(_fake_set(0.0), n_boot=200, seed=1)
    json.dumps(block, allow_nan=False)
    assert {"macro_auroc", "per_class", "fid", "n_labelled", "non_inferior"} <= set(block)
    assert set(block["macro_auroc"]) == set(SETS)
    assert set(block["per_class"]) == set(SUPERCLASSES)
    assert block["macro_auroc"]["reconstructed"] == block["macro_auroc"]["real"]
    assert block["macro_auroc"]["real"] > 0.75
    assert block["macro_auroc"]["input_only"] == pytest.approx(0.5, abs=0.06)
    assert block["delta_macro_auroc"]["reconstructed"] == {"value": 0.0, "ci95": [0.0, 0.0]}
    lo, hi = block["delta_macro_auroc"]["input_only"]["ci95"]
    assert lo < block["delta_macro_auroc"]["input_only"]["value"] < hi < 0
    assert block["non_inferior"] is True and block["fid"] == pytest.approx(0.0, abs=1e-9)
    assert block["fid_input_only"] == pytest.approx(4.0, rel=1e-6)
    assert block["n_labelled"] == 400 and block["n_left_out"] == {"unlabelled": 3,
                                                                  "no_superclass": 1}
    norm = block["per_class"]["NORM"]
    assert set(norm) == {*SETS, "ci95", "delta", "n_positive"}
    assert norm["ci95"]["real"][0] < norm["real"] < norm["ci95"]["real"][1]
    assert len(render_diagnostic(block)) == 3


def test_report_without_labelled_records_has_no_numbers() -> None:
    empty = _fake_set(0.0, n=0)
    block = diagnostic_report(empty, n_boot=20)
    assert block["n_labelled"] == 0 and block["non_inferior"] is None
    assert block["macro_auroc"] == dict.fromkeys(SETS) and block["fid"] is None
    json.dumps(block, allow_nan=False)


def test_report_flags_a_degraded_reconstruction() -> None:
    block = diagnostic_report(_fake_set(0.6), n_boot=200, seed=1)
    delta = block["delta_macro_auroc"]["reconstructed"]
    assert delta["value"] < -0.05 and delta["ci95"][0] < -0.05
    assert block["non_inferior"] is False and block["fid"] > 0
    assert diagnostic_report(_fake_set(0.6), n_boot=0)["non_inferior"] is None


# ------------------------------------------------------------------------------------------
# A tiny classifier on synthetic records


@pytest.fixture(scope="module")
def ptbxl_like(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A synthetic preprocess dataset whose ids are PTB-XL names, and fake labels for ids
    1..N-2 (N-1 has no superclass, N has no row)."""
    from ecgfill.train.data import write_synthetic_dataset

    root = tmp_path_factory.mktemp("ptbxl-like")
    dataset = write_synthetic_dataset(root / "ds", N_RECORDS, 4.0, FS, seed=5,
                                      splits=(0.5, 0.5))
    manifest = dataset / "manifest.csv"
    rows = list(csv.DictReader(manifest.open()))
    for i, row in enumerate(rows):
        row["id"] = f"00000/{i + 1:05d}_lr"
    with manifest.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    codes = _fake_codes(N_RECORDS - 2)
    codes[N_RECORDS - 1] = {"SR": 0.0}
    return dataset, _write_labels(root / "labels", codes)


@pytest.fixture(scope="module")
def tiny_classifier(ptbxl_like: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
                    ) -> Path:
    dataset, labels = ptbxl_like
    out = tmp_path_factory.mktemp("classifier")
    train_classifier(ClassifierTrainOptions(
        dataset, labels, out, name="tiny-classifier",
        config=ClassifierConfig(widths=(4, 8), hidden=6, dropout=0.0), epochs=2, batch_size=8,
        crop_seconds=2.0, command="pytest tiny classifier"))
    return out / "tiny-classifier.json"


def test_training_writes_a_consistent_classifier(tiny_classifier: Path) -> None:
    from ecgfill.models.base import sha256_file

    card = json.loads(tiny_classifier.read_text())
    assert card["format"] == "ecgfill-classifier" and card["classes"] == list(SUPERCLASSES)
    assert card["training"]["command"] == "pytest tiny classifier"
    assert card["training"]["epochs"] == 2 and len(card["training"]["history"]) == 2
    assert card["training"]["dataset"]["train_records"] == N_RECORDS // 2
    assert card["training"]["dataset"]["val_records"] == N_RECORDS // 2 - 2
    assert 0.0 <= card["validation"]["macro_auroc"] <= 1.0
    for name, digest in card["sha256"].items():
        assert sha256_file(tiny_classifier.with_name(name)) == digest
    x = np.random.default_rng(0).standard_normal((3, 12, 350)).astype(np.float32) * 0.2
    onnx_probs, onnx_feats = load_classifier(tiny_classifier).predict(x)
    torch_probs, torch_feats = load_classifier(tiny_classifier, backend="torch").predict(x)
    assert onnx_probs.shape == (3, 5) and onnx_feats.shape == (3, 6)
    assert np.allclose(onnx_probs, torch_probs, atol=1e-5)
    assert np.allclose(onnx_feats, torch_feats, atol=1e-4)
    assert ((onnx_probs > 0) & (onnx_probs < 1)).all()


def test_classifier_checks_its_files(tiny_classifier: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "c"
    shutil.copytree(tiny_classifier.parent, copy)
    onnx_file = copy / "tiny-classifier.onnx"
    onnx_file.write_bytes(onnx_file.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(ModelError, match="SHA-256 mismatch"):
        load_classifier(copy / "tiny-classifier.json")
    with pytest.raises(ModelError, match="no classifier named 'absent'"):
        load_classifier("absent")
    with pytest.raises(ModelError, match="at least 1 s"):
        load_classifier(tiny_classifier).predict(np.zeros((1, 12, 50), np.float32))


def _as_reconstruction(truth: ECGRecord, inputs: tuple[str, ...]) -> ECGRecord:
    origins = tuple("measured" if n in inputs else "reconstructed" for n in truth.leads)
    return replace(truth, origins=origins)


def test_collector_pairs_real_reconstructed_and_input_only(
    ptbxl_like: tuple[Path, Path], tiny_classifier: Path
) -> None:
    from ecgfill.train.data import open_dataset

    dataset, labels = ptbxl_like
    ds = open_dataset(dataset)
    classifier = load_classifier(tiny_classifier)
    collector = DiagnosticCollector(classifier, load_superclass_labels(labels), n_models=2,
                                    batch=7)
    inputs = ("I", "II", "V4")
    truths = {}
    for i in range(N_RECORDS):
        name = ds.manifest[i]["id"]
        truths[name] = ECGRecord(np.array(ds.signals[i]), FS, STANDARD_LEADS)
        collector.observe(0, name, truths[name], _as_reconstruction(truths[name], inputs))
        noisy = replace(truths[name], signal=truths[name].signal + 0.3)
        collector.observe(1, name, truths[name], _as_reconstruction(noisy, inputs))
    perfect, shifted = collector.results()
    assert len(perfect.names) == N_RECORDS - 2 and perfect.names == shifted.names
    assert perfect.left_out == {"unlabelled": 1, "no_superclass": 1}
    assert np.allclose(perfect.probs["reconstructed"], perfect.probs["real"])
    assert np.array_equal(perfect.probs["real"], shifted.probs["real"])
    assert not np.allclose(shifted.probs["reconstructed"], shifted.probs["real"])
    name = perfect.names[4]
    zeroed = input_only(truths[name], inputs)
    expected, _ = classifier.predict_records([zeroed])
    assert np.allclose(perfect.probs["input_only"][4], expected[0])
    kept = [STANDARD_LEADS.index(n) for n in inputs]
    assert np.count_nonzero(np.delete(zeroed.signal, kept, axis=0)) == 0
    assert np.array_equal(zeroed.signal[kept], truths[name].signal[kept])
    block = diagnostic_report(perfect, n_boot=50)
    assert block["fid"] == pytest.approx(0.0, abs=1e-6) and block["non_inferior"] is True


def test_collector_runs_inside_evaluate_models(
    ptbxl_like: tuple[Path, Path], tiny_classifier: Path, linear_registry: Path
) -> None:
    from ecgfill.models import load_model

    dataset, labels = ptbxl_like
    collector = DiagnosticCollector(load_classifier(tiny_classifier),
                                    load_superclass_labels(labels))
    model = load_model(linear_registry / "linear-i-ii-v4.json")
    [evaluation] = evaluate_models([str(dataset)], [model], EvaluateOptions(
        features=False, observe=collector.observe), split="val")
    [result] = collector.results()
    assert len(result.names) + sum(result.left_out.values()) == len(evaluation.scores) == 20
    assert result.left_out == {"unlabelled": 1, "no_superclass": 1}
    assert result.features["reconstructed"].shape == (18, 6)


# ------------------------------------------------------------------------------------------
# The command


def test_evaluate_diagnostic_json(ptbxl_like: tuple[Path, Path], tiny_classifier: Path,
                                  linear_registry: Path, tmp_path: Path) -> None:
    dataset, labels = ptbxl_like
    result = CliRunner().invoke(app, [
        "evaluate", str(dataset), "--split", "val", "--model",
        str(linear_registry / "linear-ii-v1-v5.json"), "--compare",
        str(linear_registry / "linear-ii-v1-v5.json"), "--no-features", "--bootstrap", "50",
        "--diagnostic", "--labels", str(labels), "--classifier", str(tiny_classifier), "--json",
        "--plot", str(tmp_path), "--plot-worst", "0",
    ])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout.strip().splitlines()[-1])
    block = report["diagnostic"]
    assert block["n_labelled"] == 18 and block["n_left_out"]["unlabelled"] == 1
    assert set(block["macro_auroc"]) == set(SETS)
    assert all(0.0 <= v <= 1.0 for v in block["macro_auroc"].values())
    assert set(block["per_class"]) == set(SUPERCLASSES)
    assert isinstance(block["non_inferior"], bool) and block["fid"] >= 0
    assert report["comparison"]["report"]["diagnostic"]["macro_auroc"] == block["macro_auroc"]
    assert "diagnostic AUROC" in result.stderr
    assert (tmp_path / "diagnostic_roc.png").stat().st_size > 0
    assert (tmp_path / "diagnostic_roc_2.png").is_file()


def test_roc_curve_runs_through_every_threshold() -> None:
    fpr, tpr = roc_curve(np.array([1, 0, 1, 0, 0], bool), np.array([0.9, 0.8, 0.8, 0.3, 0.1]))
    assert fpr.tolist() == [0.0, 0.0, 1 / 3, 2 / 3, 1.0]
    assert tpr.tolist() == [0.0, 0.5, 1.0, 1.0, 1.0]
    assert np.trapezoid(tpr, fpr) == pytest.approx(auroc(np.array([1, 0, 1, 0, 0], bool),
                                                         np.array([0.9, 0.8, 0.8, 0.3, 0.1])))


@pytest.mark.parametrize(("args", "message"), [
    (["--labels", "x.csv"], "--labels needs --diagnostic"),
    (["--diagnostic"], "--diagnostic needs --labels"),
])
def test_diagnostic_usage_errors(ptbxl_like: tuple[Path, Path], linear_registry: Path,
                                 args: list[str], message: str) -> None:
    dataset, _ = ptbxl_like
    result = CliRunner().invoke(app, ["evaluate", str(dataset), "--split", "val", "--model",
                                      str(linear_registry / "linear-i-ii-v4.json"), *args])
    assert result.exit_code == 2 and message in result.stderr


def test_shipped_classifier_backends_agree() -> None:
    try:
        card = find_classifier(DEFAULT_CLASSIFIER)
    except ModelError:
        pytest.skip("the shipped classifier is not built yet")
    from ecgfill.synth import synthesize_batch

    x = synthesize_batch(2, 10.0, FS, seed=1)
    onnx_out = load_classifier(card).predict(x)
    torch_out = load_classifier(card, backend="torch").predict(x)
    for a, b in zip(onnx_out, torch_out, strict=True):
        assert np.allclose(a, b, atol=1e-4)
    assert onnx_out[0].shape == (len(x), len(SUPERCLASSES))


def test_training_script_records_its_command_and_stops_on_time(
    ptbxl_like: tuple[Path, Path], tmp_path: Path
) -> None:
    import runpy

    dataset, labels = ptbxl_like
    script = Path(__file__).resolve().parents[1] / "scripts" / "train_classifier.py"
    main = runpy.run_path(str(script))["main"]
    argv = [str(dataset), str(labels), str(tmp_path), "--name", "timed", "--widths", "4",
            "--hidden", "4", "--epochs", "50", "--batch-size", "4", "--max-minutes", "0.0001",
            "--crop-seconds", "2"]
    assert main(argv) == 0
    card = json.loads((tmp_path / "timed.json").read_text())
    assert card["training"]["command"].startswith("python scripts/train_classifier.py ")
    assert card["training"]["command"].endswith("--crop-seconds 2")
    assert card["training"]["stop_reason"] == "time limit of 0.0001 min"
    assert card["training"]["steps"] == 1 and card["training"]["epochs"] == 1
    assert main([str(dataset), str(tmp_path / "missing.csv"), str(tmp_path)]) == 1
