"""ONNX export (single file, dynamic batch and length) and the onnxruntime runner.

onnx, onnxruntime and torch are imported inside the functions that use them (start-up time).
"""

from __future__ import annotations

import io
import json
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ecgfill.errors import ModelError, first_line
from ecgfill.models.base import ReconstructionModel, check_card_matches, embedded_card

OPSET = 17
CARD_METADATA_KEY = "ecgfill_card"
OUTPUT_AXES: Mapping[str, dict[int, str]] = {"y": {0: "batch", 2: "samples"}}


def write_onnx(net: Any, inputs: Mapping[str, Any], axes: Mapping[str, dict[int, str]],
               path: Path, card: Mapping[str, Any],
               outputs: Mapping[str, dict[int, str]] = OUTPUT_AXES) -> None:
    """Export ``net`` called on ``inputs`` (name -> example tensor) with ``outputs`` (name ->
    dynamic axes; default ``y`` shaped like ``x``), dynamic input ``axes``, and the card
    embedded in the file's metadata."""
    import onnx
    import torch

    net = net.eval().cpu()
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notices
        torch.onnx.export(
            net, tuple(inputs.values()), buffer,
            input_names=list(inputs), output_names=list(outputs),
            dynamic_axes={**axes, **outputs},
            opset_version=OPSET, do_constant_folding=True, dynamo=False,
        )
    model = onnx.load_from_string(buffer.getvalue())
    entry = model.metadata_props.add()
    entry.key, entry.value = CARD_METADATA_KEY, json.dumps(embedded_card(card))
    model.producer_name = "ecgfill"
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def session_card(session: Any, card: Mapping[str, Any] | None, path: Path) -> dict[str, Any]:
    """The card embedded in an ONNX session, checked against ``card`` when one is given."""
    meta = session.get_modelmeta().custom_metadata_map.get(CARD_METADATA_KEY)
    if meta is None:
        raise ModelError(f"{path}: ONNX file carries no ecgfill model card")
    embedded = json.loads(meta)
    if card is None:
        return embedded
    check_card_matches(card, embedded, path)
    return dict(card)


def open_session(path: Path, device: str = "cpu", threads: int | None = None) -> Any:
    """An onnxruntime session for ``path``. With ``device="cuda"`` it must run on the CUDA
    provider; a silent fall-back to CPU is an error."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    # Idle worker threads would spin between the many small calls of a batch: same wall
    # time without it, a third less CPU (benchmarks/README.md).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if threads:
        options.intra_op_num_threads = int(threads)
        options.inter_op_num_threads = 1
    providers: list[Any] = ["CPUExecutionProvider"]
    if device.startswith("cuda"):
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise ModelError(f"{path}: device cuda requested but this onnxruntime has no CUDA "
                             "provider (install onnxruntime-gpu)")
        index = int(device.split(":")[1]) if ":" in device else 0
        providers = [("CUDAExecutionProvider", {"device_id": index}), "CPUExecutionProvider"]
    try:
        session = ort.InferenceSession(str(path), options, providers=providers)
    except Exception as exc:  # onnxruntime raises its own untyped errors
        raise ModelError(f"{path}: cannot load ONNX model ({first_line(exc)})") from None
    if device.startswith("cuda") and session.get_providers()[0] != "CUDAExecutionProvider":
        raise ModelError(f"{path}: device cuda requested but onnxruntime fell back to "
                         f"{session.get_providers()[0]} (check CUDA/cuDNN libraries)")
    return session


class OnnxModel(ReconstructionModel):
    """onnxruntime backend. With ``device="cuda"`` the session must run on the CUDA provider;
    a silent fall-back to CPU is an error."""

    def __init__(self, card: Mapping[str, Any] | None, path: Path, device: str = "cpu",
                 threads: int | None = None) -> None:
        self.session = open_session(path, device, threads)
        super().__init__(session_card(self.session, card, path), path)
        self._input_names = [i.name for i in self.session.get_inputs()]
        leads_dim = self.session.get_inputs()[0].shape[1]
        if leads_dim != len(self.input_leads) or ("noise" in self._input_names) != self.stochastic:
            raise ModelError(f"{path}: graph inputs do not match the card's "
                             f"{len(self.input_leads)} input leads")

    def _run(self, x: np.ndarray, noise: np.ndarray | None) -> np.ndarray:
        feed = {"x": x}
        if noise is not None:
            feed["noise"] = noise
        return self.session.run(["y"], feed)[0]
