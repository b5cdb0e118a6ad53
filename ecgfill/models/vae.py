"""The VAE family, after WearECG (Guan et al. 2025), kept small.

Encoder: stem conv, residual blocks (GroupNorm, SiLU, conv) with strided-conv down-sampling,
then residual blocks around multi-head self-attention; a latent ``[latent_dim, T']`` (``T' = T /
2**(levels-1)``) with the reparameterisation trick. The decoder mirrors it with transposed-conv
up-sampling. Its output is a correction added to the ridge-initialised linear path. Loss: MSE +
``beta`` x KL. At inference the latent noise is an explicit input: zeros give the latent mean,
K standard-normal draws give a mean and a spread.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from ecgfill.models.family import ModelFamily, pyramid_multiple


@dataclass
class VAEConfig:
    """Hyper-parameters of the VAE family."""

    channels: tuple[int, ...] = (16, 32, 64, 96)
    kernel_size: int = 5
    groups: int = 8
    heads: int = 4
    latent_dim: int = 4
    beta: float = 1e-4
    lag_seconds: float = 0.1  # half-width of the linear skip path
    ridge_init: bool = True
    ridge: float = 1e-3

    def __post_init__(self) -> None:
        if not self.channels or any(c % self.groups for c in self.channels):
            raise ValueError(f"every channel count must be a multiple of groups={self.groups}")
        if self.channels[-1] % self.heads:
            raise ValueError("the last channel count must be a multiple of heads")
        if self.kernel_size % 2 == 0 or self.latent_dim < 1:
            raise ValueError("kernel_size must be odd and latent_dim >= 1")


def build_core(config: VAEConfig, n_inputs: int, n_outputs: int) -> nn.Module:
    return VAE1d(config, n_inputs, n_outputs)


FAMILY = ModelFamily(
    name="vae", config=VAEConfig, multiple=pyramid_multiple, build_core=build_core,
    ridge_init=lambda config: config.ridge_init,
    loss_weights=lambda config: {"kl": config.beta},
    latent_channels=lambda config: config.latent_dim,
)


class ResBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, kernel: int, groups: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.GroupNorm(groups, c_in), nn.SiLU(),
            nn.Conv1d(c_in, c_out, kernel, padding=kernel // 2),
            nn.GroupNorm(groups, c_out), nn.SiLU(),
            nn.Conv1d(c_out, c_out, kernel, padding=kernel // 2),
        )
        self.shortcut = nn.Identity() if c_in == c_out else nn.Conv1d(c_in, c_out, 1)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.shortcut(h) + self.body(h)


class SelfAttention(nn.Module):
    """Multi-head self-attention over time with a residual connection."""

    def __init__(self, channels: int, heads: int, groups: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm = nn.GroupNorm(groups, channels)
        self.qkv = nn.Conv1d(channels, 3 * channels, 1)
        self.proj = nn.Conv1d(channels, channels, 1)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        b, c, t = h.shape
        q, k, v = self.qkv(self.norm(h)).reshape(b, 3, self.heads, c // self.heads, t).unbind(1)
        scores = torch.matmul(q.transpose(-1, -2), k) / math.sqrt(c // self.heads)  # [b,h,t,t]
        out = torch.matmul(v, scores.softmax(dim=-1).transpose(-1, -2))  # [b,h,d,t]
        return h + self.proj(out.reshape(b, c, t))


class VAE1d(nn.Module):
    """The VAE core: normalised network leads -> (normalised output correction, KL per record)."""

    def __init__(self, config: VAEConfig, n_inputs: int, n_outputs: int) -> None:
        super().__init__()
        ch, k, g = config.channels, config.kernel_size, config.groups
        self.latent_channels = config.latent_dim
        encoder: list[nn.Module] = [nn.Conv1d(n_inputs, ch[0], k, padding=k // 2)]
        for i, c in enumerate(ch):
            encoder.append(ResBlock(ch[i - 1] if i else ch[0], c, k, g))
            if i + 1 < len(ch):
                encoder.append(nn.Conv1d(c, c, 4, stride=2, padding=1))
        encoder += [
            ResBlock(ch[-1], ch[-1], k, g), SelfAttention(ch[-1], config.heads, g),
            nn.GroupNorm(g, ch[-1]), nn.SiLU(), nn.Conv1d(ch[-1], 2 * config.latent_dim, 3, padding=1),
        ]
        self.encoder = nn.Sequential(*encoder)
        decoder: list[nn.Module] = [
            nn.Conv1d(config.latent_dim, ch[-1], 3, padding=1),
            ResBlock(ch[-1], ch[-1], k, g), SelfAttention(ch[-1], config.heads, g),
        ]
        for i in reversed(range(len(ch) - 1)):
            decoder.append(nn.ConvTranspose1d(ch[i + 1], ch[i + 1], 4, stride=2, padding=1))
            decoder.append(ResBlock(ch[i + 1], ch[i], k, g))
        decoder += [nn.GroupNorm(g, ch[0]), nn.SiLU(), nn.Conv1d(ch[0], n_outputs, k, padding=k // 2)]
        self.decoder = nn.Sequential(*decoder)
        nn.init.zeros_(decoder[-1].weight)  # start as the linear path alone
        nn.init.zeros_(decoder[-1].bias)

    def forward(
        self, z: torch.Tensor, noise: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.encoder(z).chunk(2, dim=1)
        logvar = logvar.clamp(-20.0, 10.0)
        if noise is None:
            noise = torch.randn_like(mu) if self.training else torch.zeros_like(mu)
        latent = mu + torch.exp(0.5 * logvar) * noise
        kl = 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(dim=(1, 2))
        return self.decoder(latent), kl
