"""The package's one copy of the DDPM training step and sampler (notebook 07 writes both out visibly).

``ddpm_step(model, opt, schedule, x0, generator)``: draw t ~ U{0..T-1} and ε ~ N(0, I) per image, form x_t,
and regress ε_θ(x_t, t) onto ε with the mean squared error (Ho et al. 2020's "simple" loss).
``ddpm_sample``: ancestral sampling from x_T ~ N(0, I) down to x_0 with σ_t² = β_t.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["ddpm_step", "ddpm_sample"]


def ddpm_step(model, opt, schedule, x0: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """One DDPM update; returns the loss (detached)."""
    t = torch.randint(0, schedule.T, (x0.shape[0],), device=x0.device, generator=generator)
    noise = torch.randn(x0.shape, device=x0.device, generator=generator)
    x_t = schedule.add_noise(x0, t, noise)
    loss = F.mse_loss(model(x_t, t), noise)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss.detach()


@torch.no_grad()
def ddpm_sample(model, schedule, n: int, shape, generator: torch.Generator | None = None, device="cpu"):
    """``n`` images of ``shape`` (C, H, W) by the DDPM reverse process, clamped to [-1, 1]."""
    x = torch.randn(n, *shape, device=device, generator=generator)
    for t in reversed(range(schedule.T)):
        tt = torch.full((n,), t, device=device, dtype=torch.long)
        eps = model(x, tt)
        a, ab, b = schedule.alphas[t], schedule.alpha_bars[t], schedule.betas[t]
        x = (x - b / (1 - ab).sqrt() * eps) / a.sqrt()
        if t > 0:
            x = x + b.sqrt() * torch.randn(x.shape, device=device, generator=generator)
    return x.clamp(-1, 1)
