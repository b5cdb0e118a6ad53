"""`ecgfill evaluate`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from ecgfill.commands._common import (
    Backend,
    Device,
    HighBand,
    JsonOutput,
    check_backend,
    handle_errors,
)

NAME = "evaluate"
HELP = (
    "Score reconstructions against complete 12-lead references, honestly: mask references to a "
    "model's input leads and reconstruct them (records or a preprocess dataset with --split), or "
    "compare a folder of reconstructions (--reconstructed). Input leads are never scored; limb "
    "leads derived from predictions are reported apart."
)
SPLITS = ("train", "val", "test")


@handle_errors
def command(
    references: list[str] = typer.Argument(
        ..., help="Complete references: record files, folders (recursive), globs, or one "
        "preprocess dataset directory (with --split).",
    ),
    model: str = typer.Option(
        None, "--model", "-m", help="'auto' (default: the shipped model for --input-leads), a "
        "model name, or a path to a model card or weights.",
    ),
    input_leads: str = typer.Option(
        None, "--input-leads", help="Leads the model gets, e.g. II,V1,V5 (default: the model's)."
    ),
    reconstructed: Path = typer.Option(
        None, "--reconstructed", help="Folder of reconstructed records (e.g. from `ecgfill "
        "reconstruct`) to compare with the references, matched by relative path or name.",
    ),
    split: str = typer.Option(None, "--split", help="Dataset split to evaluate: train, val or test."),
    compare: str = typer.Option(
        None, "--compare", help="A second model (name or path) run on the same records; the "
        "report adds paired differences (Wilcoxon p, Cohen's d, bootstrap CI).",
    ),
    json_output: JsonOutput = False,
    csv_path: Path = typer.Option(
        None, "--csv", help="Write one row per record and scored lead to this CSV file."
    ),
    plot_dir: Path = typer.Option(
        None, "--plot", help="Write PNG figures here: per-lead distributions and 12-lead "
        "printouts of the worst (and --plot-records) records, and ROC curves with --diagnostic. "
        "Needs matplotlib.",
    ),
    plot_records: str = typer.Option(
        None, "--plot-records", help="Comma-separated record names to plot as 12-lead printouts."
    ),
    plot_worst: int = typer.Option(
        3, "--plot-worst", min=0, help="How many of the worst records (lowest r) to plot."
    ),
    features: bool = typer.Option(
        True, "--features/--no-features", help="Measure clinical features (HR, PR, QRS, QT, P/T)."
    ),
    bootstrap: int = typer.Option(
        1000, "--bootstrap", min=0, help="Bootstrap resamples for the 95% intervals (0: none)."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the bootstrap (reports are reproducible)."),
    limit: int = typer.Option(None, "--limit", min=1, help="Evaluate at most this many records."),
    backend: Backend = "onnx",
    device: Device = "cpu",
    high_band: HighBand = True,
    diagnostic: bool = typer.Option(
        False, "--diagnostic", help="Also score diagnosis: the shipped 12-lead classifier's AUROC "
        "(NORM, MI, STTC, CD, HYP) on real, reconstructed and input-only records (other leads "
        "zeroed), ΔAUROC with bootstrap CIs, non-inferiority at margin 0.05, and the FID of its "
        "features. Needs --labels.",
    ),
    labels: Path = typer.Option(
        None, "--labels", help="Label file for --diagnostic, PTB-XL layout (ecg_id, scp_codes), "
        "with scp_statements.csv beside it; records without labels are left out and counted.",
    ),
    interval: float = typer.Option(
        None, "--interval", help="Also score the model's prediction intervals at this level in "
        "(0, 1): per lead coverage, mean width, coverage within QRS vs elsewhere.",
    ),
    classifier: str = typer.Option(
        None, "--classifier", help="Classifier for --diagnostic: a name or a path to its card, "
        ".onnx or .pt (default: classifier-ptbxl-superclass).",
    ),
    calibration: str = typer.Option(
        None, "--calibration", help="same-patient: score personal calibration; for each patient "
        "with >= 2 records, calibrate on the earliest and score the others (gain, CI, patients "
        "worse). A dataset with --split, or records with patient ids in their headers.",
    ),
) -> None:
    from ecgfill import console
    from ecgfill.api import evaluate, evaluation_models
    from ecgfill.errors import EcgfillError, UsageError
    from ecgfill.evaluate.report import build_report, print_report
    from ecgfill.evaluate.run import EvaluateOptions

    check_backend(backend, device)
    if split is not None and split not in SPLITS:
        raise UsageError(f"--split must be one of {', '.join(SPLITS)}, not {split!r}")
    if reconstructed is None or diagnostic:  # a model or the classifier will run: fail early
        from ecgfill.reconstruct import backend_problem

        problem = backend_problem(backend, device if reconstructed is None else "cpu")
        if problem:
            raise UsageError(problem)
    if calibration is not None:
        from ecgfill.evaluate.calibration import calibration_command

        conflicts = [flag for flag, value in (("--reconstructed", reconstructed), ("--compare",
                     compare), ("--diagnostic", diagnostic)) if value]
        primary_model = evaluation_models(model, input_leads, None, backend, device)[0][0]
        calibration_command(calibration, references, primary_model, split, bootstrap, seed,
                            limit, json_output, conflicts)
        return
    if interval is not None:
        from ecgfill.bands import check_level

        try:
            check_level(interval)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        if reconstructed is not None:
            raise UsageError("--interval scores a model's intervals; not with --reconstructed")
    keep_names = frozenset(n.strip() for n in (plot_records or "").split(",") if n.strip())
    collector = _diagnostic_collector(diagnostic, labels, classifier, backend,
                                      2 if compare and reconstructed is None else 1)
    with console.progress("Evaluating", None) as advance:
        options = EvaluateOptions(
            features=features, limit=limit, keep_worst=plot_worst if plot_dir else 0,
            keep_names=keep_names if plot_dir else frozenset(), progress=advance,
            observe=collector.observe if collector else None, high_band=high_band,
        )
        evaluations = evaluate(references, model, input_leads=input_leads, compare=compare,
                               reconstructed=reconstructed, split=split, backend=backend,
                               device=device, options=options)
    primary = evaluations[0]
    report = build_report(primary, n_boot=bootstrap, seed=seed,
                          compare=evaluations[1] if len(evaluations) > 1 else None)
    if interval is not None:
        from ecgfill.evaluate.coverage import print_interval

        models, leads = evaluation_models(model, input_leads, None, backend, device)  # cached
        report["interval"] = print_interval(references, models[0], leads, split, interval, limit)
    diagnostic_sets = collector.results() if collector is not None else []
    if diagnostic_sets:
        from ecgfill.evaluate.diagnostic import diagnostic_report

        if not diagnostic_sets[0].names:
            console.warn(f"--diagnostic: no evaluated record has a superclass label in {labels} "
                         "(record names must carry PTB-XL ecg_ids, e.g. 00001_lr or HR00001)")
        blocks = [diagnostic_report(s, bootstrap, seed) for s in diagnostic_sets]
        report["diagnostic"] = blocks[0]
        if len(blocks) > 1 and "comparison" in report:
            report["comparison"]["report"]["diagnostic"] = blocks[1]
    print_report(report)
    if csv_path is not None:
        from ecgfill.evaluate.report import write_csv

        rows = write_csv(csv_path, evaluations)
        console.info(f"wrote {rows} rows to {csv_path}")
    if plot_dir is not None and primary.scores:
        from ecgfill.evaluate.plots import write_plots

        written = write_plots(evaluations, plot_dir)
        if diagnostic_sets:
            from ecgfill.evaluate.diagnostic import plot_roc

            for k, (result, evaluation) in enumerate(zip(diagnostic_sets, evaluations,
                                                         strict=True)):
                if result.names:
                    suffix = "" if k == 0 else f"_{k + 1}"
                    written.append(plot_roc(result, plot_dir / f"diagnostic_roc{suffix}.png",
                                            f"{evaluation.model}: diagnostic ROC on "
                                            f"{len(result.names)} labelled records"))
        console.info(f"wrote {len(written)} figures to {plot_dir}")
    if json_output:
        console.emit_json(report)
    if not primary.scores:
        raise EcgfillError("no record could be evaluated")
    if any(e.failures for e in evaluations):
        raise typer.Exit(console.EXIT_FAILED)


def _diagnostic_collector(
    diagnostic: bool, labels: Path | None, classifier: str | None, backend: str, n_models: int
) -> Any:
    """The classifier-output collector for --diagnostic (None without it); checks the options."""
    from ecgfill.errors import ModelError, UsageError

    if not diagnostic:
        given = [flag for flag, value in (("--labels", labels), ("--classifier", classifier))
                 if value]
        if given:
            raise UsageError(f"{', '.join(given)} needs --diagnostic")
        return None
    if labels is None:
        raise UsageError("--diagnostic needs --labels (e.g. ptbxl_database.csv)")
    from ecgfill.evaluate.diagnostic import (
        DEFAULT_CLASSIFIER,
        DiagnosticCollector,
        load_classifier,
        load_superclass_labels,
    )

    try:
        loaded = load_classifier(classifier or DEFAULT_CLASSIFIER, backend=backend)
    except ModelError as exc:
        raise UsageError(f"--classifier: {exc}") from None
    return DiagnosticCollector(loaded, load_superclass_labels(labels), n_models=n_models)
