"""The linear family (ridge regression over the input leads with a window of time lags, as a
Conv1d) and :class:`ReconstructionNet`, the wrapper every family shares.

Every network is ``linear path + optional non-linear core``: inputs in mV go through the lead
transform (I and II solved from the limb leads) and per-lead normalisation, a Conv1d linear path
(fitted in closed form by ridge regression) predicts the missing leads, and a U-Net or VAE core
adds a correction. Outputs are de-normalised back to mV, so one graph serves PyTorch and ONNX.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ecgfill.leads import LIMB_FROM_I_II
from ecgfill.models.family import ModelFamily, family
from ecgfill.models.network_leads import input_transform, network_input_leads

DERIVED_LIMB_LEADS: tuple[str, ...] = ("III", "aVR", "aVL", "aVF")
# Rows of the lagged design matrix built at once in the ridge fit (bounds its memory).
RIDGE_BLOCK_ELEMENTS = 1 << 24


@dataclass
class LinearConfig:
    """Ridge regression with time lags of ±``lag_seconds``."""

    lag_seconds: float = 0.25
    ridge: float = 1e-3  # relative to the mean diagonal of X^T X

    def __post_init__(self) -> None:
        if self.lag_seconds < 0 or self.ridge < 0:
            raise ValueError("lag_seconds and ridge must be >= 0")


FAMILY = ModelFamily(
    name="linear", config=LinearConfig, multiple=lambda config: 1,
    build_core=lambda config, n_inputs, n_outputs: None,  # no non-linear core
    ridge_init=lambda config: True, loss_weights=lambda config: {},
)


def lag_samples(lag_seconds: float, fs: float) -> int:
    return max(0, round(lag_seconds * fs))


class ReconstructionNet(nn.Module):
    """mV in, mV out: lead transform, normalisation, linear path and optional core."""

    def __init__(
        self,
        input_leads: tuple[str, ...],
        output_leads: tuple[str, ...],
        stats: Mapping[str, tuple[float, float]],
        fs: float,
        arch: str,
        config: Any,
    ) -> None:
        super().__init__()
        net_leads = network_input_leads(input_leads)
        self.arch = arch
        self.config = config
        self.output_leads = output_leads

        def column(values: Iterable[float]) -> torch.Tensor:
            return torch.tensor(list(values), dtype=torch.float32).reshape(-1, 1)

        self.register_buffer("in_matrix", torch.tensor(input_transform(input_leads),
                                                       dtype=torch.float32))
        self.register_buffer("in_mean", column(stats[n][0] for n in net_leads))
        self.register_buffer("in_std", column(stats[n][1] for n in net_leads))
        self.register_buffer("out_mean", column(stats[n][0] for n in output_leads))
        self.register_buffer("out_std", column(stats[n][1] for n in output_leads))
        self.register_buffer("limb_std", column(stats[n][1] for n in DERIVED_LIMB_LEADS))
        self.net_leads = net_leads
        self.lag = lag_samples(config.lag_seconds, fs)
        self.linear = nn.Conv1d(len(net_leads), len(output_leads), 2 * self.lag + 1,
                                padding=self.lag)
        fam = family(arch)
        self.core = fam.build_core(config, len(net_leads), len(output_leads))
        self.multiple = fam.multiple(config)
        self.latent_channels = fam.latent_channels(config)
        self.loss_weights = fam.loss_weights(config)
        if self.core is None:
            nn.init.zeros_(self.linear.weight)
            nn.init.zeros_(self.linear.bias)

    def normalize_inputs(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, n_inputs, T]`` mV -> normalised network leads ``[B, n_net, T]``."""
        return (torch.matmul(self.in_matrix, x) - self.in_mean) / self.in_std

    def normalize_targets(self, t: torch.Tensor) -> torch.Tensor:
        return (t - self.out_mean) / self.out_std

    def forward_normalized(
        self, x: torch.Tensor, noise: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Normalised outputs and, for a VAE, the per-record KL divergence."""
        z = self.normalize_inputs(x)
        y = self.linear(z)
        if self.core is None:
            return y, None
        correction, kl = self.core(z, noise)
        return y + correction, kl

    def forward(self, x: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        y, _ = self.forward_normalized(x, noise)
        return y * self.out_std + self.out_mean

    def zero_noise(self, x: torch.Tensor) -> torch.Tensor | None:
        """The latent noise giving the latent mean (None for deterministic networks)."""
        if not self.latent_channels:
            return None
        return x.new_zeros(x.shape[0], self.latent_channels, x.shape[-1] // self.multiple)

    def loss(
        self, x: torch.Tensor, t: torch.Tensor, mask: torch.Tensor,
        noise: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Training objective: masked MSE on normalised outputs, plus ``physics_weight`` x the
        MSE of the limb leads derived from predicted I/II, plus ``beta`` x KL per output
        sample (VAE). Returns the total and its parts."""
        y, kl = self.forward_normalized(x, noise)
        weight = mask.unsqueeze(1).to(y.dtype)
        denom = weight.sum().clamp_min(1.0)
        mse = (((y - self.normalize_targets(t)) ** 2) * weight).sum() / (denom * y.shape[1])
        total, parts = mse, {"mse": mse.detach()}
        physics_weight = self.loss_weights.get("physics", 0.0)
        if physics_weight > 0 and {"I", "II"} & set(self.output_leads):
            pred = self._derived_limbs(x, y * self.out_std + self.out_mean)
            true = self._derived_limbs(x, t)
            phys = ((((pred - true) / self.limb_std) ** 2) * weight).sum() / (denom * 4)
            total = total + physics_weight * phys
            parts["physics"] = phys.detach()
        if kl is not None:
            beta = self.loss_weights.get("kl", 0.0)
            kl_term = kl.mean() / (y.shape[1] * y.shape[2])
            total = total + beta * kl_term
            parts["kl"] = kl_term.detach()
        return total, parts

    def _derived_limbs(self, x: torch.Tensor, outputs_mv: torch.Tensor) -> torch.Tensor:
        """III, aVR, aVL, aVF from I and II, each taken from the outputs or the inputs."""
        net_mv = torch.matmul(self.in_matrix, x)

        def lead(name: str) -> torch.Tensor:
            if name in self.output_leads:
                return outputs_mv[:, self.output_leads.index(name)]
            return net_mv[:, self.net_leads.index(name)]

        lead_i, lead_ii = lead("I"), lead("II")
        return torch.stack([LIMB_FROM_I_II[n][0] * lead_i + LIMB_FROM_I_II[n][1] * lead_ii
                            for n in DERIVED_LIMB_LEADS], dim=1)


class TrainingObjective(nn.Module):
    """The training loss as a module, so DistributedDataParallel's forward hooks see it."""

    def __init__(self, net: ReconstructionNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor, t: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.net.loss(x, t, mask)[0]


def fit_ridge(
    batches: Iterable[tuple[np.ndarray, np.ndarray, np.ndarray]], lag: int, ridge: float
) -> tuple[np.ndarray, np.ndarray]:
    """Closed-form ridge regression of a Conv1d with kernel ``2*lag+1`` (zero padding).

    ``batches`` yields normalised inputs ``[b, C, T]``, targets ``[b, O, T]`` and a boolean
    valid mask ``[b, T]``; returns the Conv1d weight ``[O, C, 2*lag+1]`` and bias ``[O]``.
    """
    kernel = 2 * lag + 1
    xtx: np.ndarray | None = None
    xty: np.ndarray | None = None
    for z, y, mask in batches:
        n, channels, length = z.shape
        group = max(1, RIDGE_BLOCK_ELEMENTS // (length * channels * kernel))
        for lo in range(0, n, group):
            design, target = _lagged_rows(z[lo:lo + group], y[lo:lo + group],
                                          mask[lo:lo + group], lag)
            block_xtx = (design.T @ design).astype(np.float64)
            block_xty = (design.T @ target).astype(np.float64)
            xtx = block_xtx if xtx is None else xtx + block_xtx
            xty = block_xty if xty is None else xty + block_xty
    if xtx is None or xty is None:
        raise ValueError("no training samples for the ridge fit")
    n_features = xtx.shape[0] - 1
    scale = float(np.mean(np.diag(xtx)[:n_features])) or 1.0
    xtx[np.arange(n_features), np.arange(n_features)] += ridge * scale
    solution = np.linalg.solve(xtx, xty)  # [features + 1, O]
    weight = solution[:-1].T.reshape(xty.shape[1], -1, kernel)
    return weight.astype(np.float32), solution[-1].astype(np.float32)


def _lagged_rows(
    z: np.ndarray, y: np.ndarray, mask: np.ndarray, lag: int
) -> tuple[np.ndarray, np.ndarray]:
    """Design rows ``[valid samples, C*K + 1]`` (lags, then a bias column) and targets."""
    n, channels, length = z.shape
    padded = np.pad(z.astype(np.float32, copy=False), ((0, 0), (0, 0), (lag, lag)))
    windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * lag + 1, axis=2)
    rows = mask.reshape(-1).astype(bool)
    design = windows.transpose(0, 2, 1, 3).reshape(n * length, -1)[rows]
    design = np.concatenate([design, np.ones((design.shape[0], 1), np.float32)], axis=1)
    target = y.astype(np.float32, copy=False).transpose(0, 2, 1).reshape(n * length, -1)[rows]
    return design, target


def set_linear_path(net: ReconstructionNet, weight: np.ndarray, bias: np.ndarray) -> None:
    """Copy a ridge solution into the network's linear path."""
    with torch.no_grad():
        net.linear.weight.copy_(torch.from_numpy(weight))
        net.linear.bias.copy_(torch.from_numpy(bias))
