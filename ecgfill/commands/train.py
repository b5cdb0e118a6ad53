"""`ecgfill train`: parse options, call :func:`ecgfill.train.train`."""

from __future__ import annotations

from pathlib import Path

import typer

from ecgfill.commands._common import Device, JsonOutput, handle_errors
from ecgfill.console import emit_json, info
from ecgfill.errors import UsageError

NAME = "train"
HELP = (
    "Train a reconstruction model (linear, unet, vae) on a preprocessed dataset. Checkpoints "
    "(last.pt, best.pt), metrics.jsonl and, with --export-onnx, <name>.onnx/.pt/.json go to "
    "RUN_DIR. On CUDA (--device cuda) with mixed precision (AMP); multi-GPU: torchrun "
    "--nproc_per_node N -m ecgfill train ..."
)


@handle_errors
def command(
    dataset_dir: Path = typer.Argument(..., help="Dataset directory from `ecgfill preprocess`."),
    run_dir: Path = typer.Argument(..., help="Directory for checkpoints, logs and exports."),
    arch: str = typer.Option(
        ..., "--arch", help="Model family: linear, unet, vae, or anyset (one model for every "
        "lead subset; --set core=none gives the linear any-subset baseline)."),
    input_leads: str = typer.Option(
        ..., "--input-leads", help="Measured leads, e.g. I,II,V4; 'any' for --arch anyset."),
    epochs: int = typer.Option(30, "--epochs", min=1, help="Maximum epochs (not for linear)."),
    batch_size: int = typer.Option(32, "--batch-size", min=1, help="Records per step."),
    lr: float = typer.Option(3e-3, "--lr", help="Peak learning rate of the one-cycle schedule."),
    max_minutes: float = typer.Option(
        None, "--max-minutes", help="Stop cleanly after this much wall time (the learning-rate "
        "cycle is fitted into it); the best checkpoint stays usable."
    ),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in RUN_DIR."),
    seed: int = typer.Option(0, "--seed", help="Random seed (data order, augmentation, init)."),
    device: Device = "cpu",
    export_onnx: bool = typer.Option(
        False, "--export-onnx", help="Write <name>.onnx, <name>.pt and the card <name>.json."
    ),
    name: str = typer.Option(None, "--name", help="Model name [default: <arch>-<leads>]."),
    window_seconds: float = typer.Option(
        None, "--window-seconds", help="Training crop length [default: the whole record]."
    ),
    augment: str = typer.Option(
        "crop,scale,wander,noise", "--augment",
        help="Comma list of crop, scale[=0.2], wander[=0.1 mV], noise[=0.02 mV], star[=0.1] "
        "(beat-wise resampling), or none.",
    ),
    train_limit: int = typer.Option(
        None, "--train-limit", min=1, help="Use a random subset of this many training records."
    ),
    val_limit: int = typer.Option(
        None, "--val-limit", min=1, help="Validate on a random subset of this many records."
    ),
    patience: int = typer.Option(8, "--patience", min=1, help="Early-stopping patience (epochs)."),
    weight_decay: float = typer.Option(1e-2, "--weight-decay", help="AdamW weight decay."),
    threads: int = typer.Option(None, "--threads", min=1, help="PyTorch CPU threads."),
    set_options: list[str] = typer.Option(
        None, "--set", help="Model hyper-parameter KEY=VALUE, repeatable (e.g. channels=16,32,64)."
    ),
    json_output: JsonOutput = False,
) -> None:
    from ecgfill.io.names import parse_lead_list
    from ecgfill.train import TrainOptions, train

    try:
        leads = ("any",) if input_leads.strip().lower() == "any" else parse_lead_list(input_leads)
    except ValueError as exc:
        raise UsageError(f"--input-leads: {exc}") from None
    if device != "cpu" and not device.startswith("cuda"):
        raise UsageError(f"--device must be cpu or cuda, not {device!r}")
    model_options: dict[str, str] = {}
    for item in set_options or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--set {item!r}: expected KEY=VALUE")
        model_options[key.strip()] = value.strip()
    options = TrainOptions(
        dataset_dir=dataset_dir, run_dir=run_dir, arch=arch, input_leads=leads, epochs=epochs,
        batch_size=batch_size, lr=lr, weight_decay=weight_decay, max_minutes=max_minutes,
        resume=resume, seed=seed, device=device, export_onnx=export_onnx, name=name,
        window_seconds=window_seconds, augment=augment, train_limit=train_limit,
        val_limit=val_limit, patience=patience, threads=threads, model_options=model_options,
    )
    result = train(options)
    if not result.main:
        return
    best = result.best
    info(f"best val r {best.get('r')} (chest {best.get('r_chest')}) at epoch {best.get('epoch')}; "
         f"checkpoints in {result.run_dir}")
    if json_output:
        emit_json(result.to_json())
