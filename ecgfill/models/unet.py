"""The 1D U-Net family, after Olaiya & Manivannan (2025), sized for CPUs.

Encoder: per level ``convs_per_level`` x (Conv1d -> BatchNorm -> ReLU), max-pooling between
levels; a shared decoder with transposed-conv up-sampling and skip connections; a shared 1x1 head
or per-lead heads. The U-Net's output is a correction added to the ridge-initialised linear path
of :class:`~ecgfill.models.linear.ReconstructionNet`, so training starts from the linear
solution. ``physics_weight`` adds the loss on limb leads derived from predicted I/II.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ecgfill.models.base import flops_per_second
from ecgfill.models.family import ModelFamily, pyramid_multiple

# The hybrid U-Net paper's size class: encoder 64->512 channels, depth 4 (four poolings, a
# 1024-channel bottleneck), two convs per level, kernel 5: 17.09 M parameters with 3 inputs and
# 5 outputs, matching the paper's 17.1 M. Used only to report FLOP ratios.
REFERENCE_CHANNELS: tuple[int, ...] = (64, 128, 256, 512, 1024)
REFERENCE_KERNEL = 5


@dataclass
class UNetConfig:
    """Hyper-parameters of the U-Net family; ``len(channels)`` levels (``len - 1`` poolings)."""

    channels: tuple[int, ...] = (16, 32, 64, 128)
    kernel_size: int = 9
    convs_per_level: int = 2
    per_lead_heads: bool = False
    head_channels: int = 8
    physics_weight: float = 0.0
    lag_seconds: float = 0.1  # half-width of the linear skip path
    ridge_init: bool = True  # start the linear skip path at the ridge solution
    ridge: float = 1e-3
    norm: str = "batch"  # or "group"

    def __post_init__(self) -> None:
        if self.norm not in ("batch", "group"):
            raise ValueError("norm must be batch or group")
        if not self.channels or min(self.channels) < 1:
            raise ValueError("channels must be a non-empty list of positive sizes")
        if self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise ValueError("kernel_size must be odd")
        if self.convs_per_level < 1 or self.head_channels < 1:
            raise ValueError("convs_per_level and head_channels must be >= 1")


def build_core(config: UNetConfig, n_inputs: int, n_outputs: int) -> nn.Module:
    return UNet1d(config, n_inputs, n_outputs)


FAMILY = ModelFamily(
    name="unet", config=UNetConfig, multiple=pyramid_multiple, build_core=build_core,
    ridge_init=lambda config: config.ridge_init,
    loss_weights=lambda config: {"physics": config.physics_weight},
)


NORM_GROUPS = 8


def norm_layer(kind: str, channels: int) -> nn.Module:
    """BatchNorm, or GroupNorm (per record: the same in training and inference whatever a batch
    mixes, which a network conditioned on a per-batch lead mask needs)."""
    if kind == "group":
        return nn.GroupNorm(min(NORM_GROUPS, channels), channels)
    return nn.BatchNorm1d(channels)


def conv_block(c_in: int, c_out: int, kernel: int, n_convs: int,
               norm: str = "batch") -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(n_convs):
        layers += [
            nn.Conv1d(c_in if i == 0 else c_out, c_out, kernel, padding=kernel // 2, bias=False),
            norm_layer(norm, c_out),
            nn.ReLU(inplace=True),
        ]
    return nn.Sequential(*layers)


class UNet1d(nn.Module):
    """The U-Net core: normalised network leads -> normalised correction of the outputs."""

    latent_channels = 0

    def __init__(self, config: UNetConfig, n_inputs: int, n_outputs: int,
                 zero_head: bool = True) -> None:
        super().__init__()
        ch, k, n = config.channels, config.kernel_size, config.convs_per_level
        self.encoders = nn.ModuleList(
            conv_block(n_inputs if i == 0 else ch[i - 1], ch[i], k, n, config.norm)
            for i in range(len(ch))
        )
        self.pool = nn.MaxPool1d(2)
        self.ups = nn.ModuleList(
            nn.ConvTranspose1d(ch[i + 1], ch[i], 2, stride=2) for i in range(len(ch) - 1)
        )
        self.decoders = nn.ModuleList(conv_block(2 * ch[i], ch[i], k, n, config.norm)
                                      for i in range(len(ch) - 1))
        if config.per_lead_heads:
            hidden = config.head_channels * n_outputs
            self.head = nn.Sequential(
                nn.Conv1d(ch[0], hidden, 3, padding=1),
                nn.ReLU(inplace=True),
                nn.Conv1d(hidden, n_outputs, 1, groups=n_outputs),
            )
        else:
            self.head = nn.Sequential(nn.Conv1d(ch[0], n_outputs, 1))
        if zero_head:  # start as the linear path alone
            nn.init.zeros_(self.head[-1].weight)
            nn.init.zeros_(self.head[-1].bias)

    def forward(self, z: torch.Tensor, noise: torch.Tensor | None = None) -> tuple[torch.Tensor, None]:
        skips = []
        h = z
        for i, encoder in enumerate(self.encoders):
            h = encoder(self.pool(h) if i else h)
            skips.append(h)
        for i in reversed(range(len(self.ups))):
            h = self.decoders[i](torch.cat([self.ups[i](h), skips[i]], dim=1))
        return self.head(h), None


def reference_flops_per_second(fs: float, n_inputs: int, n_outputs: int, window: int) -> float:
    """FLOPs per second of signal of the paper-sized reference U-Net (see REFERENCE_*)."""
    config = UNetConfig(channels=REFERENCE_CHANNELS, kernel_size=REFERENCE_KERNEL)
    core = UNet1d(config, n_inputs, n_outputs, zero_head=False)

    class _Bare(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.core = core

        def forward(self, x: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
            return self.core(x)[0]

    return flops_per_second(_Bare(), n_inputs, fs, window, pyramid_multiple(config))


def reference_parameters(n_inputs: int = 3, n_outputs: int = 5) -> int:
    config = UNetConfig(channels=REFERENCE_CHANNELS, kernel_size=REFERENCE_KERNEL)
    return int(sum(p.numel() for p in UNet1d(config, n_inputs, n_outputs).parameters()))
