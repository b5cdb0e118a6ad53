"""The one inference interface, the model card, checkpoints and the PyTorch backend.

Physics first: of the 12 leads only I, II and V1-V6 are independent. A model predicts exactly the
independent leads its inputs do not give (:mod:`ecgfill.models.network_leads`); every limb lead
is derived later by lead algebra. Finding and loading installed models is
:mod:`ecgfill.models.registry`; the onnxruntime backend is :mod:`ecgfill.models.onnx_backend`.

torch is imported inside the functions that need it (it costs seconds at start-up), and so is
:mod:`ecgfill.models.linear`, which imports torch at module level.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pickle
import typing
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ecgfill.blend import crossfade_weights, window_starts
from ecgfill.errors import EcgfillError, ModelError, first_line
from ecgfill.leads import LeadPlan
from ecgfill.models.family import FAMILIES, family
from ecgfill.models.network_leads import output_leads_for

CARD_FORMAT = "ecgfill-model"
CHECKPOINT_FORMAT = "ecgfill-checkpoint"
CARD_FORMAT_VERSION = 1
ARCHES: tuple[str, ...] = FAMILIES
PTBXL_ATTRIBUTION = "PTB-XL v1.0.3, CC-BY-4.0, Wagner et al. 2020"
# Fields that must agree between a card and the card embedded in its weight file.
CARD_IDENTITY_KEYS: tuple[str, ...] = (
    "name", "arch", "input_leads", "output_leads", "fs", "window", "config",
)
# Upper bound on samples per network call in predict (bounded memory for long inputs).
MAX_BATCH_SAMPLES = 1 << 18


# --------------------------------------------------------------------------------------------
# Model families and their configs


def _parse_field(value: str, kind: Any) -> Any:
    origin = typing.get_origin(kind)
    if kind is bool:
        if value.lower() in ("1", "true", "yes", "on"):
            return True
        if value.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"not a boolean: {value!r}")
    if origin is tuple:
        item = typing.get_args(kind)[0]
        parts = value.split(",") if isinstance(value, str) else value
        return tuple(_parse_field(v, item) if isinstance(v, str) else item(v) for v in parts
                     if not isinstance(v, str) or v.strip())
    return kind(value)


def make_config(arch: str, overrides: Mapping[str, Any] | None = None) -> Any:
    """The family's config dataclass with ``overrides`` applied (strings are parsed by type)."""
    config_cls = family(arch).config
    hints = typing.get_type_hints(config_cls)
    names = {f.name for f in dataclasses.fields(config_cls)}
    values: dict[str, Any] = {}
    for key, value in (overrides or {}).items():
        if key not in names:
            raise EcgfillError(
                f"{arch} has no option {key!r} (options: {', '.join(sorted(names))})"
            )
        try:
            values[key] = _parse_field(value, hints[key]) if isinstance(value, str | list) else value
        except (TypeError, ValueError) as exc:
            raise EcgfillError(f"{arch} option {key}: {exc}") from None
    try:
        return config_cls(**values)
    except (TypeError, ValueError) as exc:
        raise EcgfillError(f"{arch} options: {exc}") from None


def config_to_dict(config: Any) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(config).items()}


# --------------------------------------------------------------------------------------------
# Cards and files


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_card(path: Path, fmt: str = CARD_FORMAT, what: str = "model",
              required: Iterable[str] = (*CARD_IDENTITY_KEYS, "normalization")) -> dict[str, Any]:
    """A card of format ``fmt`` from JSON (a model card by default; the diagnostic
    classifier's has its own); ModelError when unreadable, of another format or lacking a
    ``required`` field."""
    try:
        card = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path}: cannot read {what} card ({exc})") from None
    if not isinstance(card, dict) or card.get("format") != fmt:
        raise ModelError(f"{path}: not an ecgfill {what} card")
    return check_card_fields(card, path, what, required)


def check_card_fields(card: dict[str, Any], path: Path, what: str = "model",
                      required: Iterable[str] = (*CARD_IDENTITY_KEYS, "normalization")
                      ) -> dict[str, Any]:
    """``card``, or ModelError when it lacks a ``required`` field."""
    missing = [k for k in required if k not in card]
    if missing:
        raise ModelError(f"{path}: {what} card lacks {', '.join(missing)}")
    return card


def check_card_matches(card: Mapping[str, Any], embedded: Mapping[str, Any], path: Path,
                       keys: Iterable[str] = CARD_IDENTITY_KEYS) -> None:
    """ModelError when a card and the card stored inside its weight file disagree on ``keys``."""
    for key in keys:
        if _jsonable(card.get(key)) != _jsonable(embedded.get(key)):
            raise ModelError(
                f"{path}: the card's {key} ({card.get(key)}) does not match the weight file's "
                f"({embedded.get(key)})"
            )


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value))


def embedded_card(card: Mapping[str, Any]) -> dict[str, Any]:
    """The card as stored inside weight files (without the weight files' own checksums)."""
    return {k: v for k, v in card.items() if k != "sha256"}


def verify_sha256(card: Mapping[str, Any], weights: Path) -> None:
    """ModelError unless the weight file's SHA-256 is the one recorded in the card."""
    expected = (card.get("sha256") or {}).get(weights.name)
    if not expected:
        raise ModelError(f"{weights}: the model card records no SHA-256 for this file")
    actual = sha256_file(weights)
    if actual != expected:
        raise ModelError(
            f"{weights}: SHA-256 mismatch (card {expected[:12]}…, file {actual[:12]}…); "
            "the file is corrupt or was changed"
        )




# --------------------------------------------------------------------------------------------
# The inference interface


class ReconstructionModel(ABC):
    """Maps ``[batch, n_inputs, T]`` in mV at ``fs`` to the missing independent leads in mV.

    Backends implement :meth:`_run`; padding, windowing with a smooth cross-fade and bounded
    memory are handled here, identically for every backend.
    """

    def __init__(self, card: Mapping[str, Any], source: Path) -> None:
        self.card: dict[str, Any] = dict(card)
        self.source = source
        self.name: str = card["name"]
        self.version: str = str(card.get("version", ""))
        self.arch: str = card["arch"]
        self.input_leads: tuple[str, ...] = tuple(card["input_leads"])
        self.output_leads: tuple[str, ...] = tuple(card["output_leads"])
        self.fs: float = float(card["fs"])
        self.multiple: int = int(card.get("multiple", 1))
        self.window: int = int(card["window"])
        self.latent_channels: int = int(card.get("latent_channels", 0))
        # Filters the training data went through (``dataset.json["filters"]``); the same are
        # applied to the model's inputs before prediction (see ecgfill.reconstruct).
        self.input_filters: dict[str, Any] = dict(card.get("input_filters") or {})
        if self.output_leads != output_leads_for(self.input_leads):
            raise ModelError(
                f"{source}: output leads {','.join(self.output_leads)} are not the independent "
                f"leads missing from {','.join(self.input_leads)}"
            )
        if self.window % self.multiple:
            raise ModelError(f"{source}: window {self.window} is not a multiple of {self.multiple}")

    @property
    def stochastic(self) -> bool:
        return self.latent_channels > 0

    def bind(self, leads: Iterable[str]) -> ReconstructionModel:
        """This model for a record that measures ``leads``; ModelError when they cannot feed
        its inputs (an any-subset runner returns the model bound to the leads instead)."""
        try:
            plan = LeadPlan.of(leads)
        except ValueError as exc:
            raise ModelError(str(exc)) from None
        if not plan.can_feed(self.input_leads):
            raise ModelError(f"model {self.name} takes leads {','.join(self.input_leads)}; "
                             f"the record has {','.join(plan.measured)}")
        return self

    @abstractmethod
    def _run(self, x: np.ndarray, noise: np.ndarray | None) -> np.ndarray:
        """Network on float32 ``[b, n_inputs, L]`` (L a multiple of ``multiple``) -> mV."""

    def predict(
        self, x: np.ndarray, samples: int = 1, seed: int = 0
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Missing leads ``[B, n_outputs, T]`` in mV for ``x`` ``[B, n_inputs, T]`` (any T >= 1).

        With ``samples=K > 1`` (stochastic models only) returns ``(mean, std)`` over K latent
        draws; ``samples=1`` uses the latent mean. ``x`` may be a memory map.
        """
        x = self._check_input(x)
        batch, _, length = x.shape
        mean = np.empty((batch, len(self.output_leads), length), dtype=np.float32)
        std = np.empty_like(mean) if samples > 1 else None
        for start, block_mean, block_std in self.iter_predict(x, samples=samples, seed=seed):
            stop = start + block_mean.shape[-1]
            mean[..., start:stop] = block_mean
            if std is not None and block_std is not None:
                std[..., start:stop] = block_std
        return (mean, std) if std is not None else mean

    def iter_predict(
        self, x: np.ndarray, samples: int = 1, seed: int = 0
    ) -> Iterator[tuple[int, np.ndarray, np.ndarray | None]]:
        """Yield ``(start, mean, std)`` blocks covering ``[0, T)`` in order, finished as soon as
        no later window touches them, so a caller can stream very long records."""
        x = self._check_input(x)
        if samples < 1:
            raise ModelError(f"samples must be >= 1, got {samples}")
        if samples > 1 and not self.stochastic:
            raise ModelError(f"model {self.name} ({self.arch}) is deterministic; samples > 1 "
                             "needs a vae model")
        rng = np.random.default_rng(seed)
        length = x.shape[-1]
        if length <= self.window:
            yield 0, *self._predict_short(x, samples, rng)
            return
        yield from self._predict_long(x, samples, rng)

    # -- internals -------------------------------------------------------------------------

    def _check_input(self, x: np.ndarray) -> np.ndarray:
        if not isinstance(x, np.ndarray) or x.ndim != 3 or x.shape[1] != len(self.input_leads):
            shape = getattr(x, "shape", None)
            raise ModelError(
                f"model {self.name} expects [batch, {len(self.input_leads)} leads "
                f"({','.join(self.input_leads)}), samples], got shape {shape}"
            )
        if x.shape[0] < 1 or x.shape[2] < 1:
            raise ModelError(f"model {self.name}: empty input of shape {x.shape}")
        return x

    def _run_samples(
        self, x: np.ndarray, samples: int, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Mean (and std over ``samples`` latent draws) for a padded batch, chunked in memory."""
        batch, _, length = x.shape
        per_call = max(1, MAX_BATCH_SAMPLES // (length * samples))
        means, stds = [], []
        for lo in range(0, batch, per_call):
            chunk = np.ascontiguousarray(x[lo:lo + per_call], dtype=np.float32)
            if not np.isfinite(chunk).all():
                raise ModelError(f"model {self.name}: input has non-finite samples")
            n = chunk.shape[0]
            noise = None
            if self.stochastic:
                shape = (samples * n, self.latent_channels, length // self.multiple)
                noise = (np.zeros(shape, np.float32) if samples == 1
                         else rng.standard_normal(shape, dtype=np.float32))
            if samples == 1:
                means.append(self._run(chunk, noise))
                continue
            out = self._run(np.concatenate([chunk] * samples), noise)
            out = out.reshape(samples, n, *out.shape[1:])
            means.append(out.mean(axis=0))
            stds.append(out.std(axis=0))
        mean = np.concatenate(means)
        return mean, (np.concatenate(stds) if stds else None)

    def _predict_short(
        self, x: np.ndarray, samples: int, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray | None]:
        length = x.shape[-1]
        padded = -(-length // self.multiple) * self.multiple
        xp = np.asarray(x, dtype=np.float32)
        if padded != length:
            xp = np.pad(xp, ((0, 0), (0, 0), (0, padded - length)), mode="edge")
        mean, std = self._run_samples(xp, samples, rng)
        return mean[..., :length], (std[..., :length] if std is not None else None)

    def _predict_long(
        self, x: np.ndarray, samples: int, rng: np.random.Generator
    ) -> Iterator[tuple[int, np.ndarray, np.ndarray | None]]:
        batch, _, length = x.shape
        starts = window_starts(length, self.window)
        weights = crossfade_weights(starts, self.window)
        per_group = max(1, MAX_BATCH_SAMPLES // (self.window * batch * samples))
        n_parts = 2 if samples > 1 else 1  # mean, and std for several samples
        # carry: the weighted sum over [next window's start, previous window's end)
        carry = np.zeros((n_parts, batch, len(self.output_leads), 0), dtype=np.float32)
        for g in range(0, len(starts), per_group):
            group = starts[g:g + per_group]
            windows = np.concatenate([x[..., s:s + self.window] for s in group])
            mean, std = self._run_samples(windows.astype(np.float32, copy=False), samples, rng)
            parts = mean[None] if std is None else np.stack([mean, std])
            for j, start in enumerate(group):
                k = g + j
                acc = np.zeros((*carry.shape[:3], self.window), dtype=np.float32)
                acc[..., :carry.shape[-1]] = carry
                acc += weights[k] * parts[:, j * batch:(j + 1) * batch]
                done = (starts[k + 1] if k + 1 < len(starts) else length) - start
                yield start, acc[0, ..., :done], (acc[1, ..., :done] if n_parts == 2 else None)
                carry = acc[..., done:]


# --------------------------------------------------------------------------------------------
# PyTorch: networks, checkpoints, FLOPs


def build_network(card: Mapping[str, Any]) -> Any:
    """An untrained :class:`~ecgfill.models.linear.ReconstructionNet` for a card."""
    from ecgfill.models.linear import ReconstructionNet

    arch = card["arch"]
    config = make_config(arch, card.get("config") or {})
    norm = card["normalization"]
    stats = {name: (m, s) for name, m, s in zip(norm["leads"], norm["mean"], norm["std"],
                                                 strict=True)}
    return ReconstructionNet(
        input_leads=tuple(card["input_leads"]),
        output_leads=tuple(card["output_leads"]),
        stats=stats,
        fs=float(card["fs"]),
        arch=arch,
        config=config,
    )


def save_checkpoint(path: Path, payload: Mapping[str, Any]) -> None:
    """Write a torch checkpoint atomically (tmp file then rename)."""
    import torch

    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(dict(payload), tmp)
    os.replace(tmp, path)


def load_checkpoint(
    path: Path, formats: tuple[str, ...] = (CARD_FORMAT, CHECKPOINT_FORMAT),
    what: str = "model or checkpoint",
) -> dict[str, Any]:
    """A checkpoint or model file, loaded with ``weights_only=True`` (never arbitrary pickles);
    ModelError unless it is a dict of one of ``formats`` with its card and weights."""
    import torch

    try:
        payload = torch.load(Path(path), map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, pickle.UnpicklingError, EOFError) as exc:
        raise ModelError(f"{path}: cannot load PyTorch weights ({first_line(exc)})") from None
    if not isinstance(payload, dict) or payload.get("format") not in formats:
        raise ModelError(f"{path}: not an ecgfill {what}")
    if "card" not in payload or "state_dict" not in payload:
        raise ModelError(f"{path}: checkpoint lacks its card or weights")
    return payload


def count_parameters(net: Any) -> int:
    return int(sum(p.numel() for p in net.parameters()))


def flops_per_second(net: Any, n_inputs: int, fs: float, window: int,
                     multiple: int | None = None) -> float:
    """Multiply-add FLOPs (2 per MAC) of one forward pass per second of signal, counted on one
    window rounded up to the network's multiple (attention makes this depend on the window)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    step = multiple or int(getattr(net, "multiple", 1))
    window = -(-window // step) * step
    x = torch.zeros(1, n_inputs, window)
    noise = net.zero_noise(x) if hasattr(net, "zero_noise") else None
    was_training = net.training
    net.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        net(x, noise)
    net.train(was_training)
    return float(counter.get_total_flops()) / (window / fs)


class TorchModel(ReconstructionModel):
    """PyTorch backend: the network from a ``.pt`` model file or training checkpoint."""

    def __init__(self, card: Mapping[str, Any] | None, path: Path, device: str = "cpu",
                 threads: int | None = None) -> None:
        import torch

        payload = load_checkpoint(path)
        if card is None:
            card = payload["card"]
        check_card_matches(card, payload["card"], path)
        super().__init__(card, path)
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise ModelError(f"{path}: device cuda requested but PyTorch sees no CUDA device")
        if threads:
            torch.set_num_threads(int(threads))
        self.device = torch.device(device)
        self.net = build_network(payload["card"])
        try:
            self.net.load_state_dict(payload["state_dict"])
        except RuntimeError as exc:
            raise ModelError(f"{path}: weights do not fit the card's network ({exc})") from None
        self.net.to(self.device).eval()

    def _run(self, x: np.ndarray, noise: np.ndarray | None) -> np.ndarray:
        import torch

        with torch.inference_mode():
            xt = torch.from_numpy(x).to(self.device)
            nt = torch.from_numpy(noise).to(self.device) if noise is not None else None
            return self.net(xt, nt).float().cpu().numpy()
