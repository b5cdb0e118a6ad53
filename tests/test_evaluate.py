"""`ecgfill evaluate` end to end with a stand-in model: lead roles, both modes, report schema,
model comparison, CSV, plots and the command's exit codes."""

from __future__ import annotations

import csv
import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from ecgfill.cli import app
from ecgfill.errors import UsageError
from ecgfill.evaluate.features import FEATURES
from ecgfill.evaluate.metrics import SIGNAL_METRICS
from ecgfill.evaluate.report import build_report, csv_columns, write_csv
from ecgfill.evaluate.run import (
    EvaluateOptions,
    evaluate_folders,
    evaluate_models,
    lead_roles,
    match_records,
    reconstruct_with,
    score_record,
)
from ecgfill.io import read_record, write_record
from ecgfill.io.discover import RecordInput
from ecgfill.leads import CHEST_LEADS, INDEPENDENT_LEADS, STANDARD_LEADS
from ecgfill.record import ECGRecord
from ecgfill.synth import SynthParams, synthesize

FS = 250.0
SECONDS = 6.0
N_REFS = 4
INPUTS = ("I", "II", "V4")
STATS_KEYS = {"mean", "median", "ci95", "n"}
FEATURE_STATS_KEYS = {"abs_error", "bias", "within_tolerance", "n", "unmeasured",
                      "reference_unmeasured"}
PAIRED_KEYS = {"mean_diff", "median_diff", "ci95", "n", "wilcoxon_p", "cohens_d"}
SUMMARY_KEYS = {"learned_leads", "chest_leads", "derived_leads", "missing_leads", "n_records",
                "n_failed", "model", "input_leads", "learned", "derived", "exact", "mode",
                "reference", "split", "reference_highpass", "bootstrap", "seed"}


class OracleModel:
    """The model interface, answering from a table of the true records: each prediction is the
    truth times ``scale`` plus seeded noise (``name``, ``version``, leads, ``fs``, ``card``)."""

    def __init__(self, truths: list[ECGRecord], input_leads: tuple[str, ...], *,
                 scale: float = 1.0, noise: float = 0.0, name: str = "oracle") -> None:
        from ecgfill.models import output_leads_for

        self.name, self.version, self.fs, self.card = name, "1.0", FS, {"name": name}
        self.input_leads = input_leads
        self.output_leads = output_leads_for(input_leads)
        self.scale, self.noise = scale, noise
        self.table = {}
        for truth in truths:
            full = truth.with_limb_leads()
            key = self._key(full.select(input_leads).signal)
            self.table[key] = full.select(self.output_leads).signal

    @staticmethod
    def _key(x: np.ndarray) -> bytes:
        return np.round(np.asarray(x, dtype=np.float64) * 1000).astype(np.int64).tobytes()

    def predict(self, x: np.ndarray) -> np.ndarray:
        rng = np.random.default_rng(0)
        out = np.stack([self.table[self._key(xi)] for xi in x]) * self.scale
        return (out + self.noise * rng.standard_normal(out.shape)).astype(np.float32)


def _synth(i: int) -> ECGRecord:
    params = SynthParams(heart_rate_bpm=60 + 9 * i, noise_mv=0.01, axis_deg=15 * i)
    return synthesize(SECONDS, FS, params, seed=i)


@pytest.fixture(scope="module")
def refs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Reference records on disk (12 leads, one stored with 8 leads as PTB-XL is)."""
    root = tmp_path_factory.mktemp("refs")
    for i in range(N_REFS):
        record = _synth(i)
        if i == 0:
            record = record.select(INDEPENDENT_LEADS)
        write_record(record, root / f"site{i % 2}" / f"rec{i}")
    return root


@pytest.fixture(scope="module")
def truths(refs: Path) -> list[ECGRecord]:
    return [read_record(p) for p in sorted(refs.rglob("*.hea"))]


def test_lead_roles_tell_learned_derived_and_exact() -> None:
    def record(origins: dict[str, str]) -> ECGRecord:
        return ECGRecord(np.zeros((12, 10)), FS, STANDARD_LEADS,
                         tuple(origins.get(n, "reconstructed") for n in STANDARD_LEADS))

    limbs = dict.fromkeys(("III", "aVR", "aVL", "aVF"), "derived")
    roles = lead_roles(record({"I": "measured", "II": "measured", "V4": "measured", **limbs}))
    assert [n for n, r in roles.items() if r == "exact"] == ["III", "aVR", "aVL", "aVF"]
    assert [n for n, r in roles.items() if r == "input"] == ["I", "II", "V4"]
    roles = lead_roles(record({"I": "measured", **limbs}))  # II predicted: limb leads depend on it
    assert [n for n, r in roles.items() if r == "derived"] == ["III", "aVR", "aVL", "aVF"]
    assert roles["II"] == "learned"
    roles = lead_roles(record({"I": "measured", "III": "measured", "II": "derived",
                               "aVR": "derived", "aVL": "derived", "aVF": "derived"}))
    assert roles["II"] == "exact"


def test_perfect_reconstruction_scores_learned_and_derived_apart() -> None:
    truth = _synth(1)
    model = OracleModel([truth], ("I",))
    recon = reconstruct_with(truth.select(("I",)), model)
    score = score_record("r", truth, recon)
    assert score.leads_with("input") == ["I"]
    assert score.leads_with("learned") == list(INDEPENDENT_LEADS[1:])
    assert score.leads_with("derived") == ["III", "aVR", "aVL", "aVF"]
    assert set(score.metrics) == set(STANDARD_LEADS) - {"I"}
    for lead, values in score.metrics.items():
        assert values["pearson_r"] == pytest.approx(1.0, abs=1e-6), lead
        assert values["mae_mv"] == pytest.approx(0.0, abs=1e-5), lead
    assert set(score.features) == {"global", *score.metrics}
    assert score.features["global"]["qrs_ms"][0] == pytest.approx(
        score.features["global"]["qrs_ms"][1], abs=1e-9)


def test_records_mode_report_schema(refs: Path, truths: list[ECGRecord]) -> None:
    model = OracleModel(truths, INPUTS, scale=0.8, noise=0.02, name="shrinker")
    [evaluation] = evaluate_models([str(refs)], [model], EvaluateOptions(keep_worst=1))
    assert not evaluation.failures and len(evaluation.scores) == N_REFS
    report = build_report(evaluation, n_boot=100, seed=3)
    json.dumps(report, allow_nan=False)
    assert set(report) == {"leads", "summary", "features", "failures"}
    learned = [n for n in INDEPENDENT_LEADS if n not in INPUTS]
    assert list(report["leads"]) == learned  # inputs and exact limb leads are not scored
    for entry in report["leads"].values():
        assert set(entry) == {"origin", "n", *SIGNAL_METRICS}
        assert entry["origin"] == "learned" and entry["n"] == N_REFS
        assert all(set(entry[m]) == STATS_KEYS for m in SIGNAL_METRICS)
        assert entry["amp_ratio"]["mean"] == pytest.approx(0.8, abs=0.05)
    summary = report["summary"]
    assert set(summary) == SUMMARY_KEYS
    assert summary["n_records"] == N_REFS and summary["n_failed"] == 0
    assert summary["model"] == "shrinker 1.0" and summary["input_leads"] == list(INPUTS)
    assert summary["exact"] == ["III", "aVR", "aVL", "aVF"] and summary["derived"] == []
    assert summary["derived_leads"] is None
    assert set(summary["learned_leads"]) == set(SIGNAL_METRICS)
    r = summary["learned_leads"]["pearson_r"]
    assert r["ci95"][0] <= r["mean"] <= r["ci95"][1]
    chest = np.mean([report["leads"][n]["pearson_r"]["mean"] for n in learned if n in CHEST_LEADS])
    assert summary["chest_leads"]["pearson_r"]["mean"] == pytest.approx(chest)
    features = report["features"]
    assert set(features) == {"tolerances", "global", "leads", "learned_leads", "derived_leads",
                             "beats"}
    assert set(features["global"]) == set(FEATURES)
    assert all(set(v) == FEATURE_STATS_KEYS for v in features["global"].values())
    assert features["global"]["qrs_ms"]["within_tolerance"] == 1.0
    assert features["beats"]["matched"] > 0
    assert list(evaluation.kept) and len(evaluation.kept) == 1


def test_bootstrap_is_reproducible(refs: Path, truths: list[ECGRecord]) -> None:
    model = OracleModel(truths, INPUTS, noise=0.05)
    [evaluation] = evaluate_models([str(refs)], [model], EvaluateOptions(features=False))
    a = build_report(evaluation, n_boot=200, seed=1)
    assert a == build_report(evaluation, n_boot=200, seed=1)
    b = build_report(evaluation, n_boot=200, seed=2)
    assert a["summary"]["learned_leads"]["mae_mv"]["ci95"] != \
        b["summary"]["learned_leads"]["mae_mv"]["ci95"]
    assert "features" not in a


def test_single_lead_input_reports_derived_leads(refs: Path, truths: list[ECGRecord]) -> None:
    model = OracleModel(truths, ("I",), noise=0.03)
    [evaluation] = evaluate_models([str(refs)], [model], EvaluateOptions(features=False, limit=2))
    report = build_report(evaluation, n_boot=50)
    assert len(evaluation.scores) == 2
    assert {report["leads"][n]["origin"] for n in ("III", "aVR", "aVL", "aVF")} == {"derived"}
    assert report["leads"]["II"]["origin"] == "learned"
    assert report["summary"]["derived_leads"]["pearson_r"]["mean"] > 0.9
    # "missing leads": each record's mean over all 11 leads it lacked, learned and derived
    per_record = [np.mean([s.metrics[n]["pearson_r"] for n in STANDARD_LEADS if n != "I"])
                  for s in evaluation.scores]
    assert report["summary"]["missing_leads"]["pearson_r"]["mean"] == pytest.approx(np.mean(per_record))


def test_compare_two_models(refs: Path, truths: list[ECGRecord]) -> None:
    good = OracleModel(truths, INPUTS, noise=0.01, name="good")
    bad = OracleModel(truths, INPUTS, scale=0.6, noise=0.05, name="bad")
    evaluations = evaluate_models([str(refs)], [good, bad], EvaluateOptions(features=False))
    report = build_report(evaluations[0], n_boot=100, compare=evaluations[1])
    comparison = report["comparison"]
    assert comparison["model"] == "bad 1.0" and comparison["n_records"] == N_REFS
    assert set(comparison["leads"]) == set(report["leads"])
    paired = comparison["summary"]["learned_leads"]["pearson_r"]
    assert set(paired) == PAIRED_KEYS
    assert paired["mean_diff"] > 0 and paired["n"] == N_REFS
    assert comparison["summary"]["learned_leads"]["mae_mv"]["mean_diff"] < 0
    assert comparison["report"]["summary"]["model"] == "bad 1.0"


def test_models_must_share_input_leads(refs: Path, truths: list[ECGRecord]) -> None:
    with pytest.raises(UsageError, match="same input leads"):
        evaluate_models([str(refs)], [OracleModel(truths, INPUTS), OracleModel(truths, ("I",))])


def _write_dataset(root: Path, truths: list[ECGRecord], splits: list[str], n_valid: list[int]) -> Path:
    n = int(SECONDS * FS)
    signals = np.zeros((len(truths), 12, n), dtype=np.float32)
    rows = []
    for i, (truth, split, valid) in enumerate(zip(truths, splits, n_valid, strict=True)):
        signals[i, :, :valid] = truth.with_limb_leads().select(STANDARD_LEADS).signal[:, :valid]
        rows.append({"id": f"rec{i}", "source": f"rec{i}.hea", "patient_id": str(i),
                     "split": split, "n_valid": valid, "index": i})
    root.mkdir()
    np.save(root / "signals.npy", signals)
    with (root / "manifest.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    (root / "dataset.json").write_text(json.dumps({"fs": FS, "seconds": SECONDS}))
    stats = {"leads": list(STANDARD_LEADS), "mean": [0.0] * 12, "std": [1.0] * 12}
    (root / "stats.json").write_text(json.dumps(stats))
    return root


def test_dataset_mode_scores_valid_samples_of_the_split(
    tmp_path: Path, truths: list[ECGRecord]
) -> None:
    n = int(SECONDS * FS)
    short = n - 250
    dataset = _write_dataset(tmp_path / "ds", truths, ["val", "train", "val", "val"],
                             [n, n, short, 0])
    model = OracleModel([replace(t, signal=t.signal[:, :short]) for t in truths] + truths, INPUTS)
    [evaluation] = evaluate_models([str(dataset)], [model], EvaluateOptions(), split="val")
    assert [s.name for s in evaluation.scores] == ["rec2", "rec0"]  # grouped by valid length
    assert {s.n_samples for s in evaluation.scores} == {n, short}
    assert all(v["pearson_r"] == pytest.approx(1.0, abs=1e-6)
               for s in evaluation.scores for v in s.metrics.values())
    report = build_report(evaluation, n_boot=50)
    assert report["summary"]["mode"] == "dataset" and report["summary"]["split"] == "val"
    with pytest.raises(UsageError, match="no valid samples in split 'test'"):
        evaluate_models([str(dataset)], [model], split="test")
    with pytest.raises(UsageError, match="needs --split"):
        evaluate_models([str(dataset)], [model])


def test_split_needs_a_dataset(refs: Path, truths: list[ECGRecord]) -> None:
    with pytest.raises(UsageError, match="--split applies"):
        evaluate_models([str(refs)], [OracleModel(truths, INPUTS)], split="val")


@pytest.fixture
def reconstructed(tmp_path: Path, refs: Path, truths: list[ECGRecord]) -> Path:
    """``reconstruct``-style outputs of the references (I, II, V4 measured)."""
    out = tmp_path / "recon"
    model = OracleModel(truths, INPUTS, noise=0.02, name="oracle")
    for path, truth in zip(sorted(refs.rglob("*.hea")), truths, strict=True):
        recon = reconstruct_with(truth.with_limb_leads().select(INPUTS), model)
        write_record(recon, out / path.relative_to(refs).with_suffix(""))
    return out


def test_folders_mode_matches_and_reads_provenance(refs: Path, reconstructed: Path) -> None:
    evaluation = evaluate_folders([str(refs)], reconstructed, EvaluateOptions())
    assert not evaluation.failures and len(evaluation.scores) == N_REFS
    assert evaluation.model == "oracle 1.0" and evaluation.input_leads == INPUTS
    report = build_report(evaluation, n_boot=50)
    assert report["summary"]["mode"] == "folders"
    assert list(report["leads"]) == [n for n in INDEPENDENT_LEADS if n not in INPUTS]
    assert report["summary"]["learned_leads"]["pearson_r"]["mean"] > 0.95


def test_folders_mode_reports_missing_and_unmarked_reconstructions(
    refs: Path, reconstructed: Path
) -> None:
    (reconstructed / "site0" / "rec0.hea").unlink()
    (reconstructed / "site0" / "rec0.dat").unlink()
    shutil.copy(refs / "site1" / "rec1.hea", reconstructed / "site1" / "rec1.hea")
    shutil.copy(refs / "site1" / "rec1.dat", reconstructed / "site1" / "rec1.dat")
    evaluation = evaluate_folders([str(refs)], reconstructed, EvaluateOptions(features=False))
    problems = dict(evaluation.failures)
    assert "no reconstruction" in problems["site0/rec0"]
    assert "no reconstructed or derived leads" in problems["site1/rec1"]
    assert len(evaluation.scores) == N_REFS - 2


def test_match_records_by_path_then_unique_name(tmp_path: Path) -> None:
    def item(root: str, rel: str) -> RecordInput:
        base = tmp_path / root
        (base / rel).parent.mkdir(parents=True, exist_ok=True)
        (base / rel).touch()
        return RecordInput(base / rel, base)

    refs = [item("r", "a/x.hea"), item("r", "b/x.hea"), item("r", "c/y.hea"), item("r", "z.hea")]
    recs = [item("o", "a/x.hea"), item("o", "flat/y.hea"), item("o", "other/x.hea")]
    pairs = {ref.relative().as_posix(): rec for ref, rec in match_records(refs, recs)}
    assert pairs["a/x"].relative().as_posix() == "a/x"
    assert pairs["b/x"] is None  # name x is not unique
    assert pairs["c/y"].relative().as_posix() == "flat/y"
    assert pairs["z"] is None


def test_csv_rows(tmp_path: Path, refs: Path, truths: list[ECGRecord]) -> None:
    model = OracleModel(truths, INPUTS, noise=0.02)
    evaluations = evaluate_models([str(refs)], [model], EvaluateOptions(limit=2))
    path = tmp_path / "out" / "rows.csv"
    count = write_csv(path, evaluations)
    with path.open() as fh:
        rows = list(csv.DictReader(fh))
    learned = [n for n in INDEPENDENT_LEADS if n not in INPUTS]
    assert count == len(rows) == 2 * (len(learned) + 1)
    assert list(rows[0]) == csv_columns(True)
    assert {r["lead"] for r in rows} == {*learned, "global"}
    v1 = next(r for r in rows if r["lead"] == "V1")
    assert v1["origin"] == "learned" and 0.9 < float(v1["pearson_r"]) <= 1.0
    assert float(v1["qrs_ms_truth"]) > 0


def test_plots_are_written(tmp_path: Path, refs: Path, truths: list[ECGRecord]) -> None:
    pytest.importorskip("matplotlib")
    from ecgfill.evaluate.plots import write_plots

    model = OracleModel(truths, INPUTS, scale=0.7, noise=0.02)
    evaluations = evaluate_models([str(refs)], [model], EvaluateOptions(
        features=False, keep_worst=1, keep_names=frozenset({"site1/rec3"})))
    written = write_plots(evaluations, tmp_path / "plots")
    names = sorted(p.name for p in written)
    assert "distributions.png" in names and "ecg_site1__rec3.png" in names
    assert len(names) == 3
    for path in written:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000


# -- the command ------------------------------------------------------------------------------


def run(*args: str) -> tuple[int, dict | None, str]:
    result = CliRunner().invoke(app, ["evaluate", *args])
    lines = [ln for ln in result.stdout.splitlines() if ln.startswith("{")]
    return result.exit_code, json.loads(lines[0]) if lines else None, result.stderr


def test_command_folders_json_and_csv(tmp_path: Path, refs: Path, reconstructed: Path) -> None:
    code, report, err = run(str(refs), "--reconstructed", str(reconstructed), "--json",
                            "--csv", str(tmp_path / "rows.csv"), "--bootstrap", "50",
                            "--no-features")
    assert code == 0, err
    assert report is not None and report["summary"]["n_records"] == N_REFS
    assert "features" not in report
    assert f"{N_REFS} records" in err and (tmp_path / "rows.csv").is_file()


def test_command_exit_codes(tmp_path: Path, refs: Path, reconstructed: Path) -> None:
    (reconstructed / "site0" / "rec2.hea").unlink()
    code, report, err = run(str(refs), "--reconstructed", str(reconstructed), "--json",
                            "--no-features", "--bootstrap", "10")
    assert code == 1 and report is not None
    assert report["failures"] == [{"record": "site0/rec2",
                                   "error": report["failures"][0]["error"]}]
    assert "site0/rec2" in err
    code, _, err = run(str(refs), "--reconstructed", str(reconstructed), "--model", "x")
    assert code == 2 and "--model" in err
    code, _, err = run(str(refs), "--split", "holdout")
    assert code == 2 and "--split" in err
    code, _, err = run(str(refs), "--model", "auto")
    assert code == 2 and "--input-leads" in err
    code, _, err = run(str(tmp_path / "nothing"), "--reconstructed", str(reconstructed))
    assert code == 1 and "no record could be evaluated" in err


def test_command_model_mode_with_compare(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, refs: Path, truths: list[ECGRecord]
) -> None:
    import ecgfill.api as api

    models = {"good": OracleModel(truths, INPUTS, noise=0.01, name="good"),
              "bad": OracleModel(truths, INPUTS, scale=0.5, noise=0.05, name="bad")}
    monkeypatch.setattr(api, "_load", lambda name, leads, *_: models[name])
    code, report, err = run(str(refs), "--model", "good", "--compare", "bad", "--json",
                            "--bootstrap", "50", "--no-features", "--plot-worst", "0")
    assert code == 0, err
    assert report["summary"]["model"] == "good 1.0"
    assert report["comparison"]["summary"]["learned_leads"]["pearson_r"]["mean_diff"] > 0
    assert "paired difference" in err
