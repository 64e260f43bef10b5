"""Simulated image degradations for notebook 06 (enhancement), each deterministic under a seed.

Images are tensors in the course's range [-1, 1], shape (N, C, H, W). Every function works on the display
intensity u = (x + 1) / 2 in [0, 1] and returns the same range and shape as its input.

* :func:`low_dose`: a low-dose X-ray. Each pixel's expected photon count is ``photons · u``; the detector sees
  Poisson counts plus Gaussian read noise of ``read_noise`` counts; the image is counts / photons. So the
  simulated intensity has mean u and variance u / photons + (read_noise / photons)² (before clipping).
* :func:`low_resolution`: area-downsampling by ``scale`` and bicubic upsampling back to the original size (the
  input of a pre-upsampling super-resolution network, and the bicubic baseline itself).
* :func:`speckle`: multiplicative speckle u · n with n ~ Gamma(looks, 1 / looks): mean 1, variance 1 / looks
  (fully developed speckle averaged over ``looks`` independent looks).

What a simulation cannot show: a real scanner's noise is shaped by its reconstruction or beamforming
(correlated, non-stationary, log-compressed in ultrasound), and real low-resolution images are not
area-downsampled copies of a higher-resolution acquisition.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..core.errors import SettingError

__all__ = ["ENHANCEMENT_TASKS", "degrade", "low_dose", "low_resolution", "speckle"]

ENHANCEMENT_TASKS = ("denoise", "superres", "despeckle")


def _unit(images: torch.Tensor) -> torch.Tensor:
    return ((images.float() + 1) / 2).clamp(0, 1)


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed))


def low_dose(images: torch.Tensor, photons: float, read_noise: float = 0.0, *, seed: int,
             clip: bool = True) -> torch.Tensor:
    """Poisson photon noise at ``photons`` counts for a white pixel, plus Gaussian read noise (in counts)."""
    if not photons > 0 or read_noise < 0:
        raise SettingError(f"low_dose needs photons > 0 and read_noise >= 0, got {photons} and {read_noise}. "
                           "Fix: e.g. DOSE_LEVELS = [20, 50, 200].")
    g = _generator(seed)
    u = _unit(images).cpu().double()
    counts = torch.poisson(u * float(photons), generator=g)
    if read_noise:
        counts = counts + float(read_noise) * torch.randn(u.shape, generator=g, dtype=u.dtype)
    out = counts / float(photons)
    if clip:
        out = out.clamp(0, 1)
    return (out * 2 - 1).to(images.dtype).to(images.device)


def low_resolution(images: torch.Tensor, scale: int) -> torch.Tensor:
    """Area-downsample by ``scale``, then bicubic-upsample back to the input's size (clipped to [-1, 1])."""
    scale = int(scale)
    h, w = images.shape[-2:]
    if scale < 2 or h % scale or w % scale:
        raise SettingError(f"SCALE must be an integer >= 2 that divides the image size {h}x{w}, got {scale}. "
                           "Fix: SCALE = 2 (or 4 at 64 px and up).")
    small = F.interpolate(images.float(), size=(h // scale, w // scale), mode="area")
    return F.interpolate(small, size=(h, w), mode="bicubic", align_corners=False).clamp(-1, 1).to(images.dtype)


def speckle(images: torch.Tensor, looks: int, *, seed: int, clip: bool = True) -> torch.Tensor:
    """Multiplicative Gamma speckle with ``looks`` looks: the mean of ``looks`` unit exponentials per pixel."""
    looks = int(looks)
    if looks < 1:
        raise SettingError(f"speckle needs looks >= 1, got {looks}. Fix: e.g. SPECKLE_LOOKS = [1, 2, 4].")
    g = _generator(seed)
    u = _unit(images).cpu().double()
    uniform = torch.rand((looks, *u.shape), generator=g, dtype=u.dtype).clamp_min(1e-12)
    gain = (-uniform.log()).mean(dim=0)
    out = u * gain
    if clip:
        out = out.clamp(0, 1)
    return (out * 2 - 1).to(images.dtype).to(images.device)


def degrade(images: torch.Tensor, task: str, level, *, seed: int, read_noise: float = 0.0) -> torch.Tensor:
    """The degradation of ``task``: ``denoise`` (``level`` = photons), ``superres`` (``level`` = scale) or
    ``despeckle`` (``level`` = looks)."""
    if task == "denoise":
        return low_dose(images, float(level), read_noise, seed=seed)
    if task == "superres":
        return low_resolution(images, int(level))
    if task == "despeckle":
        return speckle(images, int(level), seed=seed)
    raise SettingError(f"Unknown enhancement task {task!r}. Fix: one of {list(ENHANCEMENT_TASKS)}.")
