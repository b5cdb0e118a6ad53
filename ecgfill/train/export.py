"""Export of a trained network to shipped-model files.

:func:`write_model_files` writes ``<name>.pt`` (weights_only-safe), ``<name>.onnx`` (the card in
its metadata, dynamic batch and length, checked against PyTorch) and the card ``<name>.json``
with their SHA-256s; :func:`export_model` does so for a reconstruction run's checkpoint, and
:mod:`ecgfill.train.classifier` for the diagnostic classifier.

torch and onnxruntime are imported inside the functions that use them (start-up time).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ecgfill.errors import EcgfillError
from ecgfill.io.atomic import write_text_atomic
from ecgfill.leads import LeadPlan
from ecgfill.models import anyset
from ecgfill.models.base import (
    CARD_FORMAT,
    build_network,
    embedded_card,
    load_checkpoint,
    save_checkpoint,
    sha256_file,
)
from ecgfill.models.onnx_backend import OUTPUT_AXES, open_session, write_onnx

ONNX_TOLERANCE_MV = 1e-3  # export refuses a graph further than this from PyTorch


def write_model_files(
    net: Any, card: dict[str, Any], out_dir: Path, inputs: Mapping[str, Any],
    axes: Mapping[str, dict[int, str]], *, fmt: str = CARD_FORMAT,
    outputs: Mapping[str, dict[int, str]] = OUTPUT_AXES, check_inputs: Mapping[str, Any] | None = None,
    tolerance: float = ONNX_TOLERANCE_MV, diff_key: str = "onnx_max_abs_diff_mv", unit: str = " mV",
) -> dict[str, Any]:
    """Write ``net`` (in eval mode, on the CPU) as ``<name>.pt`` (``fmt``, embedded card,
    weights), ``<name>.onnx`` (exported on ``inputs`` with dynamic ``axes`` and ``outputs``) and
    ``<name>.json``; refuses an ONNX graph further than ``tolerance`` from PyTorch on
    ``check_inputs`` (default ``inputs``). ``card`` gains ``diff_key`` and ``sha256``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    net = net.eval().cpu()
    name = card["name"]
    pt_path, onnx_path = out_dir / f"{name}.pt", out_dir / f"{name}.onnx"
    save_checkpoint(pt_path, {"format": fmt, "card": embedded_card(card),
                              "state_dict": net.state_dict()})
    write_onnx(net, inputs, axes, onnx_path, card, outputs)
    diff = onnx_parity(net, onnx_path, check_inputs or inputs, tuple(outputs))
    if not math.isfinite(diff) or diff > tolerance:
        raise EcgfillError(f"{onnx_path}: ONNX output differs from PyTorch by {diff:.2e}{unit}")
    card[diff_key] = diff
    card["sha256"] = {p.name: sha256_file(p) for p in (onnx_path, pt_path)}
    write_text_atomic(out_dir / f"{name}.json", json.dumps(card, indent=2, allow_nan=False) + "\n")
    return card


def onnx_parity(net: Any, onnx_path: Path, inputs: Mapping[str, Any],
                outputs: tuple[str, ...] = ("y",)) -> float:
    """Largest |ONNX − PyTorch| over ``outputs`` on the example ``inputs``."""
    import torch

    with torch.no_grad():
        expected = net(*inputs.values())
    expected = expected if isinstance(expected, tuple) else (expected,)
    got = open_session(onnx_path).run(list(outputs), {k: v.numpy() for k, v in inputs.items()})
    return max(float(np.abs(a - b.numpy()).max()) for a, b in zip(got, expected, strict=True))


def export_model(run_dir: Path | str, out_dir: Path | str | None = None,
                 name: str | None = None, checkpoint: str = "best.pt") -> dict[str, Any]:
    """Write ``<name>.pt``, ``<name>.onnx`` and the card ``<name>.json`` (with their SHA-256)
    from a run's checkpoint into ``out_dir``; returns the card. The ONNX graph is checked
    against PyTorch on a random input."""
    run_dir = Path(run_dir)
    out_dir = Path(out_dir) if out_dir is not None else run_dir
    payload = load_checkpoint(run_dir / checkpoint)
    card = dict(payload["card"])
    if name:
        card["name"] = name
    net, inputs, axes = _export_network(card)
    net.load_state_dict(payload["state_dict"])
    return write_model_files(net, card, out_dir, inputs, axes)


def _export_network(card: dict[str, Any]) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """The untrained network of a card, example inputs of an odd multiple length for the
    export and the parity check, and their dynamic axes."""
    import torch

    rng = np.random.default_rng(0)
    if card["arch"] == "anyset":
        net = anyset.build_network(card)
        length = max(64, net.multiple * 37)
        tensors = anyset.plan_tensors(LeadPlan.of(("III", "V2", "V5")), card["covariance"],
                                      net.lag, net.config.ridge)
        x = rng.standard_normal((2, 8, length)).astype(np.float32) * 0.5
        inputs = {k: torch.from_numpy(v) for k, v in tensors.feed(x).items()}
        if net.core is None:
            inputs.pop("mask")  # the linear path never reads it
        return net, inputs, {"x": {0: "batch", 2: "samples"}}
    net = build_network(card)
    length = net.multiple * 37
    x = torch.from_numpy(rng.standard_normal(
        (2, net.in_matrix.shape[1], length)).astype(np.float32) * 0.5)
    noise = net.zero_noise(x)
    if noise is None:
        return net, {"x": x}, {"x": {0: "batch", 2: "samples"}}
    return net, {"x": x, "noise": noise}, {"x": {0: "batch", 2: "samples"},
                                           "noise": {0: "batch", 2: "latent_samples"}}
