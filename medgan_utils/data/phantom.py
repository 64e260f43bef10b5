"""Synthetic breast-ultrasound-like phantoms: deterministic, any size, with masks and labels.

Each image has layered tissue texture, depth attenuation, multiplicative
speckle and one dark (hypoechoic) lesion:

* label 0, *benign-like*: a smooth, wider-than-tall ellipse with posterior
  acoustic enhancement (a brighter band below it);
* label 1, *malignant-like*: an irregular, spiculated outline with posterior
  acoustic shadowing (a darker band below it).

These are teaching stand-ins for the offline fallback and for unit tests. They
are not medical data and nothing learned on them says anything about patients.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

MALIGNANT_FRACTION = 1 / 3


def _smooth_noise(rng: np.random.Generator, n: int, size: int, scale: int) -> torch.Tensor:
    """Low-frequency noise: coarse Gaussian grid upsampled bicubically, N×1×S×S, ~unit variance."""
    coarse = torch.from_numpy(rng.standard_normal((n, 1, scale, scale)).astype(np.float32))
    return F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False)


def make_phantom(n: int, size: int = 64, seed: int = 0, channels: int = 1, malignant_fraction: float = MALIGNANT_FRACTION):
    """Generate ``n`` phantoms.

    Returns:
        images: float tensor n×C×S×S in [0, 1]
        masks: float tensor n×1×S×S in {0, 1} (the lesion)
        labels: long tensor (n,), 0 benign-like, 1 malignant-like
    The same ``(n, size, seed)`` always gives the same tensors.
    """
    n, size = int(n), int(size)
    if n < 0 or size < 8:
        raise ValueError(f"make_phantom needs n >= 0 and size >= 8, got n={n}, size={size}.")
    rng = np.random.default_rng(seed)
    labels = (rng.random(n) < malignant_fraction).astype(np.int64)
    # Coordinates in [-1, 1]; y grows with depth (top of image = probe).
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    xs, ys = xs[None], ys[None]

    # Tissue: horizontal layers + blotches, attenuating with depth.
    layers = torch.sin((ys * torch.from_numpy(rng.uniform(3, 6, (n, 1, 1)).astype(np.float32)))
                       + torch.from_numpy(rng.uniform(0, 6.28, (n, 1, 1)).astype(np.float32)))
    blotch = _smooth_noise(rng, n, size, max(3, size // 8))[:, 0]
    depth = 1.0 - 0.35 * (ys + 1) / 2
    tissue = (0.55 + 0.10 * layers + 0.08 * blotch) * depth

    # Lesion geometry.
    cx = torch.from_numpy(rng.uniform(-0.35, 0.35, (n, 1, 1)).astype(np.float32))
    cy = torch.from_numpy(rng.uniform(-0.25, 0.25, (n, 1, 1)).astype(np.float32))
    ax = torch.from_numpy(rng.uniform(0.22, 0.38, (n, 1, 1)).astype(np.float32))
    ay = ax * torch.from_numpy(rng.uniform(0.55, 0.8, (n, 1, 1)).astype(np.float32))
    rot = torch.from_numpy(rng.uniform(-0.4, 0.4, (n, 1, 1)).astype(np.float32))
    dx, dy = xs - cx, ys - cy
    u = dx * torch.cos(rot) + dy * torch.sin(rot)
    v = -dx * torch.sin(rot) + dy * torch.cos(rot)
    r = torch.sqrt((u / ax) ** 2 + (v / ay) ** 2)
    theta = torch.atan2(v / ay, u / ax)
    # Malignant: radius modulated by spikes and lobes; benign: almost none.
    lab = torch.from_numpy(labels.astype(np.float32))[:, None, None]
    k_spikes = torch.from_numpy(rng.integers(7, 13, (n, 1, 1)).astype(np.float32))
    phase = torch.from_numpy(rng.uniform(0, 6.28, (n, 1, 1)).astype(np.float32))
    spikes = torch.clamp(torch.cos(k_spikes * theta + phase), min=0) ** 6
    lobes = torch.sin(3 * theta + 2 * phase)
    boundary = 1.0 + lab * (0.45 * spikes + 0.15 * lobes) + (1 - lab) * 0.03 * lobes
    mask = (r < boundary).float()
    soft = torch.sigmoid((boundary - r) * (12 + 18 * (1 - lab)))  # benign edges are crisp, malignant fuzzy

    # Posterior acoustic features below the lesion: enhancement (benign) or shadowing (malignant).
    below = torch.sigmoid((v - 0.0) * 6) * torch.exp(-((u / (ax * 0.9)) ** 2)) * (r > 0.8).float()
    posterior = (1 - lab) * 0.18 * below - lab * 0.30 * below

    img = tissue * (1 - 0.85 * soft) + 0.05 * soft + posterior
    # Multiplicative speckle (Rayleigh), then a light blur for a granular look.
    speckle = torch.from_numpy(rng.rayleigh(0.8, (n, size, size)).astype(np.float32))
    img = (img * speckle)[:, None]
    if size >= 16:
        kernel = torch.tensor([[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]]) / 16
        img = F.conv2d(F.pad(img, (1, 1, 1, 1), mode="replicate"), kernel[None, None])
    img = img.clamp(0, 1)
    if channels == 3:
        img = img.repeat(1, 3, 1, 1)
    elif channels != 1:
        raise ValueError(f"channels must be 1 or 3, got {channels}.")
    return img.contiguous(), mask[:, None].contiguous(), torch.from_numpy(labels)
