"""ONNX export (single file, dynamic batch and length) and the onnxruntime runner."""

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


def export_onnx(net: Any, path: Path, card: Mapping[str, Any]) -> None:
    """Write ``net`` (a ReconstructionNet, mV in, mV out) as one ONNX file with the card
    embedded in its metadata. Inputs ``x`` [batch, leads, samples] and, for a VAE, ``noise``
    [batch, latent, samples / multiple]; output ``y``."""
    import onnx
    import torch

    net = net.eval().cpu()
    length = max(64, 4 * net.multiple)
    x = torch.randn(2, net.in_matrix.shape[1], length)
    noise = net.zero_noise(x)
    names = ["x"] + (["noise"] if noise is not None else [])
    axes: dict[str, dict[int, str]] = {"x": {0: "batch", 2: "samples"},
                                       "y": {0: "batch", 2: "samples"}}
    if noise is not None:
        axes["noise"] = {0: "batch", 2: "latent_samples"}
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notices
        torch.onnx.export(
            net, (x, noise) if noise is not None else (x,), buffer,
            input_names=names, output_names=["y"], dynamic_axes=axes,
            opset_version=OPSET, do_constant_folding=True, dynamo=False,
        )
    model = onnx.load_from_string(buffer.getvalue())
    entry = model.metadata_props.add()
    entry.key, entry.value = CARD_METADATA_KEY, json.dumps(embedded_card(card))
    model.producer_name = "ecgfill"
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


class OnnxModel(ReconstructionModel):
    """onnxruntime backend. With ``device="cuda"`` the session must run on the CUDA provider;
    a silent fall-back to CPU is an error."""

    def __init__(self, card: Mapping[str, Any] | None, path: Path, device: str = "cpu",
                 threads: int | None = None) -> None:
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
            self.session = ort.InferenceSession(str(path), options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own untyped errors
            first = first_line(exc)
            raise ModelError(f"{path}: cannot load ONNX model ({first})") from None
        if device.startswith("cuda") and self.session.get_providers()[0] != "CUDAExecutionProvider":
            raise ModelError(f"{path}: device cuda requested but onnxruntime fell back to "
                             f"{self.session.get_providers()[0]} (check CUDA/cuDNN libraries)")
        meta = self.session.get_modelmeta().custom_metadata_map.get(CARD_METADATA_KEY)
        if meta is None:
            raise ModelError(f"{path}: ONNX file carries no ecgfill model card")
        embedded = json.loads(meta)
        if card is None:
            card = embedded
        check_card_matches(card, embedded, path)
        super().__init__(card, path)
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
