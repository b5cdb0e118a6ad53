"""The any-subset family: one network for every combination of measured leads.

A :class:`~ecgfill.leads.LeadPlan` says which independent quantities are measured (a row of
``A`` over I, II, V1-V6 each). The network always works on the 8 independent leads:

1. the measurements lifted to 8 leads, ``x8 = pinv(A) m`` (zeros for what is not measured);
2. a **linear path**: the ridge regression of all 8 leads on the measured ones over ±lag
   samples, solved in closed form for the plan at load time from the lagged 8-lead covariance
   of the training set stored in the card (so the linear any-subset baseline is this path
   alone, and every subset starts from its own optimal linear solution);
3. an optional **U-Net core** that sees the linear estimate and a per-lead "measured" mask and
   adds a correction;
4. a **projection** onto the measurements: ``y = (I - pinv(A) A) y + x8``, so measured leads
   come out exactly and a single limb lead (e.g. III) constrains I and II together.

The plan enters the graph as tensors (``weight``, ``bias``, ``null``, ``mask``), so one ONNX
file serves every subset. :class:`SubsetModel` binds a loaded network to one plan and is a
:class:`~ecgfill.models.base.ReconstructionModel` like any dedicated model.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ecgfill.errors import ModelError
from ecgfill.leads import INDEPENDENT_LEADS, LEAD_INDEX, LeadPlan
from ecgfill.models.base import (
    ReconstructionModel,
    check_card_matches,
    load_checkpoint,
    make_config,
)
from ecgfill.models.family import ANY, ModelFamily, pyramid_multiple
from ecgfill.models.onnx_backend import open_session, session_card

N_LEADS = len(INDEPENDENT_LEADS)
PLAN_INPUTS: tuple[str, ...] = ("x", "weight", "bias", "null", "mask")


@dataclass
class AnySetConfig:
    """Hyper-parameters of the any-subset family; ``core="none"`` is the linear baseline."""

    core: str = "unet"
    channels: tuple[int, ...] = (16, 32, 64, 128)
    kernel_size: int = 9
    convs_per_level: int = 2
    lag_seconds: float = 0.25  # half-width of the linear path
    ridge: float = 1e-3  # relative to the mean diagonal of the lagged covariance
    # GroupNorm: every batch shares one lead layout, so BatchNorm's batch statistics would
    # remove the layout mask in training but not at inference (validation r fell as it trained)
    norm: str = "group"

    def __post_init__(self) -> None:
        if self.core not in ("unet", "none"):
            raise ValueError("core must be unet or none")
        if self.lag_seconds < 0 or self.ridge < 0:
            raise ValueError("lag_seconds and ridge must be >= 0")
        if self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise ValueError("kernel_size must be odd")


def multiple(config: AnySetConfig) -> int:
    return pyramid_multiple(config) if config.core == "unet" else 1


def _core(config: AnySetConfig, n_inputs: int, n_outputs: int) -> Any:
    """The U-Net core on the 8-lead estimate plus the 8-lead mask (or None)."""
    if config.core == "none":
        return None
    from ecgfill.models.unet import UNet1d, UNetConfig

    unet = UNetConfig(channels=config.channels, kernel_size=config.kernel_size,
                      convs_per_level=config.convs_per_level, norm=config.norm)
    return UNet1d(unet, 2 * n_inputs, n_outputs)


FAMILY = ModelFamily(
    name="anyset", config=AnySetConfig, multiple=multiple, build_core=_core,
    ridge_init=lambda config: True,  # the linear path is always the plan's closed-form ridge
    loss_weights=lambda config: {}, any_subset=True,
)


def lag_samples(config: AnySetConfig, fs: float) -> int:
    return max(0, round(config.lag_seconds * fs))


# --------------------------------------------------------------------------------------------
# The lagged covariance and the ridge for a plan


def lagged_covariance(
    batches: Iterable[tuple[np.ndarray, np.ndarray]], max_lag: int
) -> dict[str, Any]:
    """Mean and lagged covariance ``C[i, j, max_lag + tau] = E[x_i(t) x_j(t + tau)]`` of the 8
    independent leads over records ``[b, 8, T]`` (mV) and their valid masks ``[b, T]``."""
    total = None
    sums = np.zeros(N_LEADS)
    count = 0
    for x, valid in batches:
        x = np.where(valid[:, None, :], x, 0.0).astype(np.float64)
        n_fft = 1 << int(np.ceil(np.log2(x.shape[-1] + max_lag + 1)))
        spec = np.fft.rfft(x, n=n_fft, axis=-1)
        cross = np.einsum("bif,bjf->ijf", np.conj(spec), spec)
        corr = np.fft.irfft(cross, n=n_fft, axis=-1)  # [i, j, tau]: sum_t x_i(t) x_j(t + tau)
        block = np.concatenate([corr[..., n_fft - max_lag:], corr[..., :max_lag + 1]], axis=-1)
        total = block if total is None else total + block
        sums += x.sum(axis=(0, 2))
        count += int(valid.sum())
    if total is None or count == 0:
        raise ValueError("no samples for the lagged covariance")
    mean = sums / count
    cov = total / count - mean[:, None, None] * mean[None, :, None]
    return {"leads": list(INDEPENDENT_LEADS), "max_lag": max_lag, "samples": count,
            "mean": mean.tolist(), "cov": cov.tolist()}


def subset_ridge(
    covariance: Mapping[str, Any], a: np.ndarray, lag: int, ridge: float
) -> tuple[np.ndarray, np.ndarray]:
    """Ridge regression of the 8 independent leads on the measured quantities ``a @ x``
    (``a`` ``[k, 8]``) over lags ``-lag..lag``, from the lagged covariance alone.

    Returns a Conv1d weight ``[8, k, 2*lag+1]`` (padding ``lag``) and bias ``[8]`` in mV.
    """
    cov = np.asarray(covariance["cov"], dtype=np.float64)
    mean = np.asarray(covariance["mean"], dtype=np.float64)
    max_lag = int(covariance["max_lag"])
    if 2 * lag > max_lag:
        raise ModelError(f"the card's covariance reaches {max_lag} lags; the linear path needs "
                         f"{2 * lag}")
    k, kernel = a.shape[0], 2 * lag + 1
    gram = _feature_gram(cov, a, lag)
    offsets = np.arange(kernel) - lag  # feature (r, d): m_r(t + d)
    # E[m_r(t + d) x_o(t)] = (a C(-d))[r, o]
    rhs = np.einsum("ri,ijd->rdj", a, cov[:, :, max_lag - offsets]).reshape(k * kernel, N_LEADS)
    scale = float(np.mean(np.diag(gram))) or 1.0
    gram[np.diag_indices_from(gram)] += ridge * scale
    solution = np.linalg.solve(gram, rhs)  # [(r, d), o]
    weight = solution.reshape(k, kernel, N_LEADS).transpose(2, 0, 1)
    bias = mean - weight.sum(axis=2) @ (a @ mean)
    return weight, bias


def _feature_gram(cov: np.ndarray, a: np.ndarray, lag: int) -> np.ndarray:
    """``E[m_r(t + d) m_s(t + e)]`` over the features (measured quantity r, lag d in -lag..lag)
    of the measurements ``a @ x``, ``[(r, d), (s, e)]``, from the lagged covariance ``cov``."""
    max_lag = (cov.shape[-1] - 1) // 2
    k, kernel = a.shape[0], 2 * lag + 1
    # C(tau) projected on the measured quantities: ac[r, s, tau] = (a C(tau) a^T)[r, s]
    ac = np.einsum("ri,ijt,sj->rst", a, cov, a)
    offsets = np.arange(kernel) - lag
    diff = offsets[None, :] - offsets[:, None] + max_lag  # index of tau = e - d
    return ac[:, :, diff].transpose(0, 2, 1, 3).reshape(k * kernel, k * kernel)


def prediction_variance(
    covariance: Mapping[str, Any], a: np.ndarray, weight: np.ndarray, lag: int
) -> np.ndarray:
    """Variance ``[8]`` of the ridge prediction (``weight`` from :func:`subset_ridge`) on data with
    the card's lagged covariance: with each lead's own variance, how much of it is explained."""
    cov = np.asarray(covariance["cov"], dtype=np.float64)
    gram = _feature_gram(cov, a, lag)
    flat = weight.transpose(1, 2, 0).reshape(-1, weight.shape[0])  # [(r, d), o]
    return np.einsum("fo,fg,go->o", flat, gram, flat)


@dataclass(frozen=True)
class PlanTensors:
    """What one plan feeds the graph: lift ``[8, k]`` from measurements to ``x``, the linear
    path on ``x`` (``weight`` ``[8, 8, K]``, ``bias`` ``[8]``), the projection ``null``
    ``[8, 8]`` onto the measurements and the per-lead ``mask`` ``[8]`` (1 measured, 0 not,
    between for I and II under a single limb lead)."""

    lift: np.ndarray
    weight: np.ndarray
    bias: np.ndarray
    null: np.ndarray
    mask: np.ndarray

    def feed(self, x8: np.ndarray) -> dict[str, np.ndarray]:
        return {"x": x8.astype(np.float32, copy=False), "weight": self.weight,
                "bias": self.bias, "null": self.null, "mask": self.mask}


def plan_tensors(plan: LeadPlan, covariance: Mapping[str, Any], lag: int,
                 ridge: float) -> PlanTensors:
    a = plan.constraints()
    weight, bias = subset_ridge(covariance, a, lag, ridge)
    lift = plan.lift
    projector = lift @ a
    return PlanTensors(
        lift=lift.astype(np.float32),
        weight=np.einsum("ork,ri->oik", weight, a).astype(np.float32),
        bias=bias.astype(np.float32),
        null=(np.eye(N_LEADS) - projector).astype(np.float32),
        mask=np.clip(np.diag(projector), 0.0, 1.0).astype(np.float32),
    )


# --------------------------------------------------------------------------------------------
# Lead layouts to train on, weighted toward real devices

SHIPPED_SETS: tuple[tuple[str, ...], ...] = (
    ("I", "II", "V4"), ("II", "V1", "V5"), ("I", "II", "V3"), ("I",),
)
DEVICE_SETS: tuple[tuple[str, ...], ...] = (
    ("I",), ("II",), ("III",), ("aVF",), ("aVL",), ("V1",), ("V2",), ("V5",),
    ("I", "II"), ("II", "V5"), ("II", "V1"), ("I", "V2"), ("I", "V1"), ("II", "V2"),
    ("II", "III"), ("I", "aVF"), ("V1", "V5"), ("III", "V4"), ("II", "V4"), ("I", "V4"),
    ("I", "II", "V1"), ("I", "II", "V2"), ("I", "II", "V5"), ("I", "II", "V6"),
    ("I", "II", "V1", "V4"), ("I", "II", "V2", "V4"), ("I", "II", "V1", "V5"),
    ("V1", "V2", "V3", "V4", "V5", "V6"), ("II", "V1", "V2", "V5"),
)
LIMB_CHOICES: tuple[str, ...] = ("I", "II", "III", "aVR", "aVL", "aVF")
CHEST_CHOICES: tuple[str, ...] = ("V1", "V2", "V3", "V4", "V5", "V6")
# (share of batches, kind)
LAYOUT_MIX: tuple[tuple[float, str], ...] = (
    (0.25, "shipped"), (0.35, "device"), (0.15, "limb+chest"), (0.25, "random"),
)


def sample_plan(rng: np.random.Generator) -> LeadPlan:
    """A lead layout to train on: the shipped sets, common device layouts, the frontal plane
    with 0-3 chest leads, or any random incomplete subset of the 12 leads."""
    while True:
        kind = LAYOUT_MIX[rng.choice(len(LAYOUT_MIX), p=[w for w, _ in LAYOUT_MIX])][1]
        if kind == "shipped":
            leads = SHIPPED_SETS[rng.integers(len(SHIPPED_SETS))]
        elif kind == "device":
            leads = DEVICE_SETS[rng.integers(len(DEVICE_SETS))]
        elif kind == "limb+chest":
            n_chest = int(rng.integers(0, 4))
            leads = ("I", "II", *rng.choice(CHEST_CHOICES, n_chest, replace=False).tolist())
        else:
            n_limb = int(rng.choice([0, 1, 2], p=[0.3, 0.4, 0.3]))
            n_chest = int(rng.integers(0 if n_limb else 1, 7))
            leads = (*rng.choice(LIMB_CHOICES, n_limb, replace=False).tolist(),
                     *rng.choice(CHEST_CHOICES, n_chest, replace=False).tolist())
        plan = LeadPlan.of(leads)
        if not plan.is_complete:
            return plan


VALIDATION_SETS: tuple[tuple[str, ...], ...] = (
    *SHIPPED_SETS, ("II",), ("I", "II"), ("II", "V5"), ("I", "II", "V1"), ("III", "V4"),
    ("V1", "V2", "V3", "V4", "V5", "V6"),
)


# --------------------------------------------------------------------------------------------
# The network (PyTorch)


def build_network(card: Mapping[str, Any]) -> Any:
    """An :class:`AnySetNet` for a card (imports torch)."""
    config = make_config("anyset", card.get("config") or {})
    norm = card["normalization"]
    stats = dict(zip(norm["leads"], zip(norm["mean"], norm["std"], strict=True), strict=True))
    return make_net(config, stats, float(card["fs"]))


def make_net(config: AnySetConfig, stats: Mapping[str, tuple[float, float]], fs: float) -> Any:
    import torch
    from torch import nn

    class AnySetNet(nn.Module):
        """Lifted measurements and plan tensors in, all 8 independent leads out (mV)."""

        latent_channels = 0

        def __init__(self) -> None:
            super().__init__()
            self.config = config
            self.lag = lag_samples(config, fs)
            self.multiple = multiple(config)
            self.register_buffer("mean", torch.tensor(
                [stats[n][0] for n in INDEPENDENT_LEADS], dtype=torch.float32).reshape(-1, 1))
            self.register_buffer("std", torch.tensor(
                [stats[n][1] for n in INDEPENDENT_LEADS], dtype=torch.float32).reshape(-1, 1))
            self.core = _core(config, N_LEADS, N_LEADS)

        def forward(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                    null: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
            linear = torch.nn.functional.conv1d(x, weight, bias, padding=self.lag)
            estimate = torch.einsum("ij,bjt->bit", null, linear) + x
            if self.core is None or mask is None:
                return estimate
            z = (estimate - self.mean) / self.std
            flags = mask.reshape(1, -1, 1).expand(z.shape[0], -1, z.shape[-1])
            correction, _ = self.core(torch.cat([z, flags], dim=1))
            y = estimate + correction * self.std
            return torch.einsum("ij,bjt->bit", null, y) + x

    return AnySetNet()


def torch_feed(tensors: PlanTensors, device: Any) -> dict[str, Any]:
    import torch

    return {k: torch.from_numpy(v).to(device) for k, v in
            (("weight", tensors.weight), ("bias", tensors.bias), ("null", tensors.null),
             ("mask", tensors.mask))}


def measured_rows(plan: LeadPlan) -> list[int]:
    """Rows of a 12-lead array holding the plan's measured quantities."""
    return [LEAD_INDEX[n] for n in plan.inputs]


# --------------------------------------------------------------------------------------------
# Inference: a loaded network bound to a plan


class AnySetRunner:
    """A loaded any-subset network (ONNX or PyTorch) with its card; :meth:`bind` gives the
    :class:`ReconstructionModel` for one lead plan."""

    def __init__(self, card: Mapping[str, Any], path: Path, backend: str, device: str = "cpu",
                 threads: int | None = None) -> None:
        self.card = dict(card)
        self.name: str = card["name"]
        self.version = str(card.get("version", ""))
        self.arch: str = card["arch"]
        self.input_leads = ANY
        self.fs = float(card["fs"])
        self.input_filters: dict[str, Any] = dict(card.get("input_filters") or {})
        self.path = path
        self.backend = backend
        self.config = make_config("anyset", card.get("config") or {})
        self.lag = lag_samples(self.config, float(card["fs"]))
        self.covariance = card.get("covariance")
        if not isinstance(self.covariance, dict) or "cov" not in self.covariance:
            raise ModelError(f"{path}: any-subset model card lacks its covariance")
        self._bound: dict[str, SubsetModel] = {}
        if backend == "onnx":
            self.session = open_session(path, device, threads)
            session_card(self.session, card, path)
            self.inputs = [i.name for i in self.session.get_inputs()]
            if not set(self.inputs) <= set(PLAN_INPUTS) or "x" not in self.inputs:
                raise ModelError(f"{path}: graph inputs {self.inputs} are not an any-subset "
                                 "model's")
        else:
            import torch

            if threads:
                torch.set_num_threads(int(threads))
            self.device = torch.device(device)
            payload = load_checkpoint(path)
            check_card_matches(card, payload["card"], path)
            self.net = build_network(payload["card"])
            self.net.load_state_dict(payload["state_dict"])
            self.net.to(self.device).eval()

    def run(self, x8: np.ndarray, tensors: PlanTensors) -> np.ndarray:
        if self.backend == "onnx":
            feed = tensors.feed(x8)
            return self.session.run(["y"], {k: feed[k] for k in self.inputs})[0]
        import torch

        with torch.inference_mode():
            xt = torch.from_numpy(np.ascontiguousarray(x8, dtype=np.float32)).to(self.device)
            return self.net(xt, **torch_feed(tensors, self.device)).float().cpu().numpy()

    def bind(self, leads: Iterable[str]) -> SubsetModel:
        """The model for measured ``leads`` (cached per lead set)."""
        try:
            plan = LeadPlan.of(leads)
        except ValueError as exc:
            raise ModelError(str(exc)) from None
        if plan.is_complete:
            raise ModelError(f"leads {plan.key} already give all 12 leads")
        if plan.key not in self._bound:
            self._bound[plan.key] = SubsetModel(self, plan)
        return self._bound[plan.key]


class SubsetModel(ReconstructionModel):
    """An any-subset network bound to one lead plan: inputs ``plan.inputs``, outputs
    ``plan.predicted``."""

    def __init__(self, runner: AnySetRunner, plan: LeadPlan) -> None:
        card = {**runner.card, "input_leads": list(plan.inputs),
                "output_leads": list(plan.predicted)}
        super().__init__(card, runner.path)
        self.runner = runner
        self.plan = plan
        self.tensors = plan_tensors(plan, runner.covariance, runner.lag, runner.config.ridge)
        self.rows = [INDEPENDENT_LEADS.index(n) for n in plan.predicted]

    def _run(self, x: np.ndarray, noise: np.ndarray | None) -> np.ndarray:
        x8 = np.einsum("ik,bkt->bit", self.tensors.lift, x)
        return self.runner.run(x8, self.tensors)[:, self.rows]
