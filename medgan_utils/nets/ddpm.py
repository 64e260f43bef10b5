"""A small DDPM (Ho et al. 2020): a U-Net noise predictor ε_θ(x_t, t) and the linear β schedule.

The U-Net has two resolutions below the input (28 → 14 → 7 px at 28 px), residual blocks with group norm,
and a sinusoidal embedding of the step ``t`` added to every block. The schedule holds β_t, α_t = 1 - β_t and
ᾱ_t = Π α_s for ``t = 0 .. T-1``; :meth:`DDPMSchedule.add_noise` draws ``x_t = √ᾱ_t x_0 + √(1 - ᾱ_t) ε``.
"""
from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["NoisePredictor", "DDPMSchedule", "make_noise_predictor", "timestep_embedding"]


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of integer steps ``t`` (as in the Transformer and DDPM), shape ``(len(t), dim)``."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([args.sin(), args.cos()], dim=1)


class ResBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, t_dim: int):
        super().__init__()
        self.norm1, self.conv1 = nn.GroupNorm(8, c_in), nn.Conv2d(c_in, c_out, 3, padding=1)
        self.time = nn.Linear(t_dim, c_out)
        self.norm2, self.conv2 = nn.GroupNorm(8, c_out), nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()
        self.act = nn.SiLU()

    def forward(self, x, t_emb):
        h = self.conv1(self.act(self.norm1(x))) + self.time(t_emb)[:, :, None, None]
        return self.skip(x) + self.conv2(self.act(self.norm2(h)))


class NoisePredictor(nn.Module):
    """ε_θ(x_t, t): a two-level U-Net; ``base`` channels at full size, 2·base and 2·base below."""

    def __init__(self, channels: int = 1, base: int = 32, t_dim: int = 128):
        super().__init__()
        self.t_dim = t_dim
        self.t_mlp = nn.Sequential(nn.Linear(t_dim, t_dim), nn.SiLU(), nn.Linear(t_dim, t_dim))
        c1, c2 = base, 2 * base
        self.inp = nn.Conv2d(channels, c1, 3, padding=1)
        self.down1, self.down2 = ResBlock(c1, c1, t_dim), ResBlock(c1, c2, t_dim)
        self.mid = ResBlock(c2, c2, t_dim)
        self.up2, self.up1 = ResBlock(2 * c2, c1, t_dim), ResBlock(2 * c1, c1, t_dim)
        self.pool, self.upsample = nn.AvgPool2d(2), nn.Upsample(scale_factor=2, mode="nearest")
        self.out = nn.Sequential(nn.GroupNorm(8, c1), nn.SiLU(), nn.Conv2d(c1, channels, 3, padding=1))

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        emb = self.t_mlp(timestep_embedding(t, self.t_dim))
        h1 = self.down1(self.inp(x), emb)                     # full size
        h2 = self.down2(self.pool(h1), emb)                   # 1/2
        h = self.mid(self.pool(h2), emb)                      # 1/4
        h = self.up2(torch.cat([self.upsample(h), h2], 1), emb)
        h = self.up1(torch.cat([self.upsample(h), h1], 1), emb)
        return self.out(h)


class DDPMSchedule:
    """Linear β from ``beta_1`` to ``beta_T`` over ``T`` steps (Ho et al.: 1e-4 → 0.02 over 1000 steps; for
    fewer steps both ends are scaled by 1000 / T so that the total noise stays comparable)."""

    def __init__(self, T: int = 1000, beta_1: float = 1e-4, beta_T: float = 0.02, device=None):
        scale = 1000.0 / int(T)
        self.T = int(T)
        self.betas = torch.linspace(beta_1 * scale, min(beta_T * scale, 0.999), self.T, dtype=torch.float32,
                                    device=device)
        self.alphas = 1 - self.betas
        self.alpha_bars = torch.cumprod(self.alphas, dim=0)

    def add_noise(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """``x_t = √ᾱ_t · x_0 + √(1 - ᾱ_t) · ε``."""
        ab = self.alpha_bars[t].view(-1, *([1] * (x0.ndim - 1)))
        return ab.sqrt() * x0 + (1 - ab).sqrt() * noise


def make_noise_predictor(channels: int = 1, base: int = 32, seed: int | None = None) -> NoisePredictor:
    """A seeded :class:`NoisePredictor` (the global RNG is left alone)."""
    with torch.random.fork_rng(devices=[], enabled=seed is not None):
        if seed is not None:
            torch.manual_seed(int(seed))
        return NoisePredictor(channels, base)
