"""`ecgfill reconstruct`: the batch job users run."""

from __future__ import annotations

from pathlib import Path

import typer

from ecgfill.commands._batch import Inputs, OutputDir, OutputFormat, Overwrite
from ecgfill.commands._common import (
    Backend,
    Device,
    HighBand,
    JsonOutput,
    Workers,
    check_backend,
    handle_errors,
)

NAME = "reconstruct"
HELP = (
    "Reconstruct complete 12-lead records from reduced-lead recordings (WFDB or EDF in, "
    "12-lead WFDB or EDF+ out). Measured leads are copied unchanged, limb leads derived exactly, "
    "only the missing leads are predicted."
)


@handle_errors
def command(
    inputs: Inputs,
    output_dir: OutputDir,
    model: str = typer.Option(
        "auto", "--model", "-m",
        help="'auto' picks the shipped model for each record's measured leads; or a model name or path.",
    ),
    leads: str = typer.Option(
        None, "--leads", help="Channels that count as measured, e.g. I,II,V4 (others ignored)."
    ),
    channel_map: str = typer.Option(
        None, "--map", help="Name device channels as standard leads, e.g. ECG1=II,ECG2=V5."
    ),
    force: bool = typer.Option(False, "--force", help="Reconstruct even records that have 12 leads."),
    backend: Backend = "onnx",
    device: Device = "cpu",
    threads: int = typer.Option(None, "--threads", min=1, help="Inference threads per worker."),
    workers: Workers = 1,
    shard: str = typer.Option(
        None, "--shard", help="i/N: process only the i-th of N stable slices of the sorted inputs."
    ),
    overwrite: Overwrite = False,
    interval: float = typer.Option(
        None, "--interval", help="Also write <record>_lower and <record>_upper: the calibrated "
        "prediction interval at this level in (0, 1), e.g. 0.9 (0.5 Hz high-passed band).",
    ),
    plot_dir: Path = typer.Option(
        None, "--plot", help="Also draw each output record (with its band) as a PNG here."
    ),
    calibrate_with: str = typer.Option(
        None, "--calibrate-with", help="A 12-lead record of the same patient (any rate or "
        "format): correct the reconstruction for the patient (personal calibration).",
    ),
    calibration_map: str = typer.Option(
        None, "--calibration-map", help="CSV with columns input,reference (paths relative to "
        "the CSV): each input record's own 12-lead reference, for batches of many patients.",
    ),
    high_band: HighBand = True,
    output_format: OutputFormat = "wfdb",
    json_output: JsonOutput = False,
) -> None:
    from functools import partial

    from ecgfill.calibrate import calibration_options
    from ecgfill.commands._batch import parse_leads, parse_shard, run_file_batch
    from ecgfill.commands.plot import with_plot
    from ecgfill.reconstruct import ReconstructSettings, check_setup, reconstruct_job

    check_backend(backend, device)
    if threads is None and workers > 1:
        import os

        threads = max(1, (os.cpu_count() or 1) // workers)  # no oversubscription across workers
    settings = ReconstructSettings(
        model=model, leads=parse_leads(leads), backend=backend, device=device, threads=threads,
        force=force, interval=_level(interval), channel_map=_parse_map(channel_map),
        high_band=high_band,
        **calibration_options(calibrate_with, calibration_map),
    )
    check_setup(settings, workers)  # setup errors: one line, exit 2, before any record is read
    run_file_batch(
        inputs, output_dir, with_plot(plot_dir, partial(reconstruct_job, settings)), fmt=output_format,
        overwrite=overwrite, workers=workers, json_output=json_output, label="Reconstructing",
        shard=parse_shard(shard),
    )


def _level(value: float | None) -> float | None:
    from ecgfill.bands import check_level
    from ecgfill.errors import UsageError

    try:
        check_level(value)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return value


def _parse_map(text: str | None) -> tuple[tuple[str, str], ...]:
    from ecgfill.errors import UsageError
    from ecgfill.io.names import parse_channel_map

    if text is None:
        return ()
    try:
        return tuple(parse_channel_map(text).items())
    except ValueError as exc:
        raise UsageError(f"--map: {exc}") from None
