"""Simulated image degradations for notebook 06 (enhancement), each deterministic under a seed.

Images are tensors in the course's range [-1, 1], shape (N, C, H, W). Every function works on the display
intensity u = (x + 1) / 2 in [0, 1] and returns the same range and shape as its input.

* :func:`low_dose`: a low-dose X-ray, following Beer–Lambert. A radiograph's display value is (roughly) the
  line integral of attenuation along the ray, so bright means *attenuating*: p = k · u with k =
  :data:`ATTENUATION_K` (a white pixel lets e^(−k) ≈ 5 % of the photons through). A detector pixel counts
  Poisson(N₀ · e^(−p)) photons, N₀ = ``photons`` being the count with no patient in the beam (air), plus
  Gaussian read noise of ``read_noise`` counts; the image is u′ = −log(counts / N₀) / k, with counts floored at
  :data:`MIN_COUNTS`. The noise is largest where attenuation is highest (bone, mediastinum) and non-zero in air.
* :func:`low_resolution`: area-downsampling by ``scale`` and bicubic upsampling back to the original size (the
  input of a pre-upsampling super-resolution network, and the bicubic baseline itself).
* :func:`speckle`: ultrasound speckle on the echo *intensity*, before log compression. The display is taken to
  be log-compressed over :data:`DISPLAY_RANGE_DB` dB (u = 1 + 10 log10(I) / DR); fully developed speckle is
  |h ∗ z|² for complex Gaussian scatterers z blurred by a small Gaussian PSF h (σ = :data:`SPECKLE_PSF_SIGMA`
  px, axial × lateral), so neighbouring pixels are correlated; ``looks`` independent looks are averaged (mean 1,
  variance 1 / looks). The speckled intensity is compressed back to the display.

What a simulation cannot show: a real scanner's noise is shaped by its reconstruction or beamforming (streaks,
scatter, a spatially varying PSF, time-gain compensation), real BUSI images already carry the scanner's own speckle,
and real low-resolution images are not area-downsampled copies of a higher-resolution acquisition.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..core.errors import SettingError

__all__ = ["ATTENUATION_K", "DISPLAY_RANGE_DB", "ENHANCEMENT_TASKS", "MIN_COUNTS", "SPECKLE_PSF_SIGMA", "degrade",
           "low_dose", "low_resolution", "speckle", "speckle_gain"]

ENHANCEMENT_TASKS = ("denoise", "superres", "despeckle")
ATTENUATION_K = 3.0          # line integral of a white pixel: transmission e^-3 ≈ 5 %
MIN_COUNTS = 0.5             # a pixel that counts no photon is read as half a photon (log of 0 is undefined)
DISPLAY_RANGE_DB = 40.0      # the dynamic range the ultrasound display's log compression maps to [0, 1]
SPECKLE_PSF_SIGMA = (0.8, 1.6)   # the speckle grain's Gaussian PSF, in px: axial (rows) x lateral (columns)


def _unit(images: torch.Tensor) -> torch.Tensor:
    return ((images.float() + 1) / 2).clamp(0, 1)


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed))


def low_dose(images: torch.Tensor, photons: float, read_noise: float = 0.0, *, seed: int,
             k: float = ATTENUATION_K, clip: bool = True) -> torch.Tensor:
    """Beer–Lambert low-dose X-ray: ``photons`` (N₀) reach a pixel through air; a display value u attenuates them
    to N₀ · e^(−k·u); Poisson counts plus Gaussian read noise (in counts) are log-transformed back."""
    if not photons > 0 or read_noise < 0 or not k > 0:
        raise SettingError(f"low_dose needs photons > 0, read_noise >= 0 and k > 0, got {photons}, {read_noise} "
                           f"and {k}. Fix: e.g. DOSE_LEVELS = [20, 50, 200], READ_NOISE = 2.0.")
    g = _generator(seed)
    u = _unit(images).cpu().double()
    expected = float(photons) * torch.exp(-float(k) * u)                 # Beer–Lambert
    counts = torch.poisson(expected, generator=g)                         # photon counting noise
    if read_noise:
        counts = counts + float(read_noise) * torch.randn(u.shape, generator=g, dtype=u.dtype)
    out = -torch.log(counts.clamp_min(MIN_COUNTS) / float(photons)) / float(k)
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


def _psf_kernels(psf_sigma) -> tuple[torch.Tensor, torch.Tensor]:
    kernels = []
    for s in psf_sigma:
        r = max(1, math.ceil(3 * float(s)))
        t = torch.arange(-r, r + 1, dtype=torch.float64)
        kernels.append(torch.exp(-t ** 2 / (2 * float(s) ** 2)))
    return kernels[0], kernels[1]


def speckle_gain(shape, looks: int, *, seed: int, psf_sigma=SPECKLE_PSF_SIGMA) -> torch.Tensor:
    """Correlated speckle gain of mean 1 and variance 1 / looks: the mean over ``looks`` of |h ∗ z|² / Σh²."""
    g = _generator(seed)
    n, c, h, w = shape
    ka, kl = _psf_kernels(psf_sigma)
    ra, rl = len(ka) // 2, len(kl) // 2
    field = torch.randn((2, looks * n * c, 1, h + 2 * ra, w + 2 * rl), generator=g, dtype=torch.float64)
    blurred = F.conv2d(F.conv2d(field.flatten(0, 1), ka.view(1, 1, -1, 1)), kl.view(1, 1, 1, -1))  # valid: stationary
    power = (blurred.view(2, looks, n, c, h, w) ** 2).sum(0) / 2       # |h ∗ z|² with E|z|² = 1 per pixel
    return power.mean(0) / float((ka ** 2).sum() * (kl ** 2).sum())


def speckle(images: torch.Tensor, looks: int, *, seed: int, psf_sigma=SPECKLE_PSF_SIGMA,
            dynamic_range_db: float = DISPLAY_RANGE_DB, clip: bool = True) -> torch.Tensor:
    """Correlated multiplicative speckle with ``looks`` looks, applied to the echo intensity before the display's
    log compression over ``dynamic_range_db`` dB."""
    looks = int(looks)
    if looks < 1:
        raise SettingError(f"speckle needs looks >= 1, got {looks}. Fix: e.g. SPECKLE_LOOKS = [1, 2, 4].")
    if not dynamic_range_db > 0 or any(not float(s) > 0 for s in psf_sigma):
        raise SettingError(f"speckle needs a dynamic range > 0 dB and PSF widths > 0 px, got {dynamic_range_db} "
                           f"and {psf_sigma}. Fix: the defaults, {DISPLAY_RANGE_DB} dB and {SPECKLE_PSF_SIGMA}.")
    u = _unit(images).cpu().double()
    dr = float(dynamic_range_db)
    intensity = 10.0 ** ((u - 1) * dr / 10)                              # undo the log compression
    gain = speckle_gain(tuple(u.shape), looks, seed=seed, psf_sigma=psf_sigma)
    out = 1 + 10 * torch.log10((intensity * gain).clamp_min(1e-30)) / dr    # compress again
    if clip:
        out = out.clamp(0, 1)
    return (out * 2 - 1).to(images.dtype).to(images.device)


def degrade(images: torch.Tensor, task: str, level, *, seed: int, read_noise: float = 0.0) -> torch.Tensor:
    """The degradation of ``task``: ``denoise`` (``level`` = photons through air, N₀), ``superres``
    (``level`` = scale) or ``despeckle`` (``level`` = looks)."""
    if task == "denoise":
        return low_dose(images, float(level), read_noise, seed=seed)
    if task == "superres":
        return low_resolution(images, int(level))
    if task == "despeckle":
        return speckle(images, int(level), seed=seed)
    raise SettingError(f"Unknown enhancement task {task!r}. Fix: one of {list(ENHANCEMENT_TASKS)}.")
