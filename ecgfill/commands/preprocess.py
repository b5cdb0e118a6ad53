"""`ecgfill preprocess`."""

from __future__ import annotations

from pathlib import Path

import typer

from ecgfill import console
from ecgfill.commands._common import JsonOutput, Workers, handle_errors
from ecgfill.errors import UsageError

NAME = "preprocess"
HELP = (
    "Turn folders of ECG records into a training dataset (signals.npy + manifest): leads in "
    "standard order, resampled, cropped, split into train/val/test without splitting patients."
)


@handle_errors
def command(
    paths: list[str] = typer.Argument(
        ...,
        metavar="INPUT... OUTPUT_DIR",
        help="Record files, directories (recursive), globs or '-' (paths on stdin), then the "
        "dataset directory to create.",
    ),
    fs: float = typer.Option(
        None, "--fs", help="Target sampling rate in Hz [default: the most common input rate]."
    ),
    seconds: float = typer.Option(10.0, "--seconds", help="Length per record (crop or zero-pad)."),
    splits: Path = typer.Option(
        None, "--splits", help="CSV with patient_id and optionally strat_fold per record "
        "(matched by ecg_id, filename_lr/filename_hr or record).",
    ),
    train_folds: str = typer.Option("1-8", "--train-folds", help="strat_fold values for train."),
    val_folds: str = typer.Option("9", "--val-folds", help="strat_fold values for validation."),
    test_folds: str = typer.Option("10", "--test-folds", help="strat_fold values for test."),
    workers: Workers = 1,
    highpass: float = typer.Option(
        None, "--highpass", help="Baseline-wander high-pass cutoff in Hz (e.g. 0.5); recorded "
        "in dataset.json so inference applies the same.",
    ),
    resample_method: str = typer.Option(
        "polyphase", "--resample", help="Resampling method: polyphase or fourier."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing dataset."),
    json_output: JsonOutput = False,
) -> None:
    from ecgfill.preprocess import FoldSplits, PreprocessConfig, parse_folds, preprocess

    if len(paths) < 2:
        raise UsageError("give at least one INPUT and the OUTPUT_DIR")
    try:
        folds = FoldSplits(parse_folds(train_folds), parse_folds(val_folds), parse_folds(test_folds))
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    config = PreprocessConfig(
        fs=fs, seconds=seconds, splits_csv=splits, folds=folds, workers=workers,
        highpass_hz=highpass, resample_method=resample_method, overwrite=overwrite,
    )
    summary = preprocess(paths[:-1], paths[-1], config)
    counts = summary.counts
    if json_output:
        console.emit_json(summary.to_json())
    console.info(
        f"{counts['records']} records -> {summary.output}: {counts['train']} train, "
        f"{counts['val']} val, {counts['test']} test, {counts['excluded']} excluded "
        f"({counts['unreadable']} unreadable); {summary.n_samples} samples at {summary.fs:g} Hz "
        f"in {summary.seconds:.1f} s"
    )
    for reason, n in counts["exclude_reasons"].items():
        console.info(f"  excluded {reason}: {n}")
    if counts["unreadable"] or not counts["included"]:
        raise typer.Exit(console.EXIT_FAILED)
