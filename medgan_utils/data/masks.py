"""New lesion masks from real ones (elastic and affine deformation), and per-mask lesion statistics.

Notebook 05 conditions a mask → image generator on masks; to draw *new* images it needs new but plausible
masks. :func:`deform_masks` bends and moves the real ones:

* ``kind="elastic"`` (Simard, Steinkraus & Platt 2003): a random displacement field, white noise
  smoothed by a Gaussian of ``sigma`` px (``scipy.ndimage.gaussian_filter``) and rescaled so that its
  standard deviation is ``alpha`` px, warps each mask with ``torch.nn.functional.grid_sample``. A large
  ``sigma`` gives smooth, global bends; a small one ragged edges. (Unlike Simard's ``alpha``, which
  multiplies the smoothed noise directly, ours is the displacement's size in pixels whatever ``sigma``.)
* ``kind="affine"``: per mask a rotation of ±``max_degrees`` and a zoom in ``scale`` about the lesion's
  centroid (so the lesion does not swing out of the image), then a shift of ±``max_shift`` of the side.
* ``kind="both"``: affine, then elastic.

Masks are resampled bilinearly and thresholded at 0.5, which keeps edges smoother than nearest-neighbour
sampling; the output is binary {0, 1}. An empty mask stays empty. Every random number comes from the
``torch.Generator`` passed in, so the same seed gives the same masks. Square masks are assumed (a rotation
of a non-square mask is done in normalised coordinates and stretches it).
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

__all__ = ["deform_masks", "deform_pairs", "lesion_stats", "DEFORM_KINDS"]

DEFORM_KINDS = ("elastic", "affine", "both")


def _as_batch(masks) -> tuple[torch.Tensor, tuple]:
    """Masks as a float N×1×H×W CPU tensor {0, 1} (values > 0.5 are lesion), and the original shape."""
    t = torch.as_tensor(masks).detach()
    shape = tuple(t.shape)
    if t.ndim == 3:
        t = t.unsqueeze(1)
    if t.ndim != 4 or t.shape[1] != 1:
        raise ValueError(f"masks must be N×1×H×W or N×H×W, got shape {shape}.")
    return (t.float().cpu() > 0.5).float(), shape


def _uniform(n: int, lo: float, hi: float, generator: torch.Generator) -> torch.Tensor:
    return torch.rand(n, generator=generator, dtype=torch.float64) * (hi - lo) + lo


def _affine_grid(m: torch.Tensor, generator: torch.Generator, max_degrees: float, max_shift: float,
                 scale: tuple) -> torch.Tensor:
    """Sampling grid of a random rotation + zoom about each lesion's centroid, then a shift."""
    n, _, h, w = m.shape
    angle = _uniform(n, -max_degrees, max_degrees, generator) * math.pi / 180
    zoom = _uniform(n, *scale, generator)
    shift = torch.stack([_uniform(n, -2 * max_shift, 2 * max_shift, generator) for _ in range(2)], 1)
    xs = (torch.arange(w, dtype=torch.float64) * 2 + 1) / w - 1      # pixel centres, align_corners=False
    ys = (torch.arange(h, dtype=torch.float64) * 2 + 1) / h - 1
    area = m[:, 0].double().sum((1, 2))
    safe = area.clamp(min=1)
    mass = m[:, 0].double()
    centre = torch.stack([(mass.sum(1) * xs).sum(1) / safe, (mass.sum(2) * ys).sum(1) / safe], 1)
    centre[area == 0] = 0
    cos, sin = torch.cos(angle), torch.sin(angle)
    # output p = c + zoom·R(q - c) + shift  ⇔  input q = A p + t with A = Rᵀ/zoom, t = c - A(c + shift)
    a = torch.stack([torch.stack([cos, sin], 1), torch.stack([-sin, cos], 1)], 1) / zoom[:, None, None]
    t = centre - (a @ (centre + shift)[..., None])[..., 0]
    theta = torch.cat([a, t[..., None]], 2).float()
    return F.affine_grid(theta, list(m.shape), align_corners=False)


def _elastic_grid(m: torch.Tensor, generator: torch.Generator, alpha: float, sigma: float) -> torch.Tensor:
    """Identity grid plus a smooth random displacement of standard deviation ``alpha`` px."""
    n, _, h, w = m.shape
    noise = (torch.rand(n, 2, h, w, generator=generator, dtype=torch.float64) * 2 - 1).numpy()
    field = ndimage.gaussian_filter(noise, sigma=(0, 0, sigma, sigma), mode="reflect")
    field /= field.std(axis=(1, 2, 3), keepdims=True) + 1e-12
    disp = torch.from_numpy(field).float() * float(alpha)                  # pixels, N×2×H×W (dx, dy)
    disp = disp * torch.tensor([2.0 / w, 2.0 / h]).view(1, 2, 1, 1)       # → normalised coordinates
    eye = torch.eye(2, 3).unsqueeze(0).repeat(n, 1, 1)
    return F.affine_grid(eye, list(m.shape), align_corners=False) + disp.permute(0, 2, 3, 1)


def _warp(m: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    return (F.grid_sample(m, grid, mode="bilinear", padding_mode="zeros", align_corners=False) >= 0.5).float()


def deform_masks(masks, generator: torch.Generator, kind: str = "elastic", alpha: float | None = None,
                 sigma: float | None = None, max_degrees: float = 15.0, max_shift: float = 0.1,
                 scale: tuple = (0.85, 1.15)) -> torch.Tensor:
    """New binary masks (float {0, 1}, same shape and device as ``masks``) from real ones.

    Args:
        masks: N×1×H×W or N×H×W, values > 0.5 are lesion (tensor or array).
        generator: a ``torch.Generator`` (CPU): every random draw comes from it.
        kind: ``"elastic"``, ``"affine"`` or ``"both"`` (see the module docstring).
        alpha: standard deviation of the elastic displacement in px (default 3 % of the side: 2 px at 64 px).
        sigma: Gaussian smoothing of the elastic noise in px (default 8 % of the side: 5 px at 64 px).
        max_degrees: largest rotation (affine).
        max_shift: largest shift as a fraction of the side (affine).
        scale: range of the zoom factor (affine); its square bounds the change of lesion area.
    """
    if kind not in DEFORM_KINDS:
        raise ValueError(f"kind must be one of {DEFORM_KINDS}, got {kind!r}.")
    if not isinstance(generator, torch.Generator):
        raise TypeError("generator must be a torch.Generator, e.g. torch.Generator().manual_seed(0).")
    device = masks.device if isinstance(masks, torch.Tensor) else torch.device("cpu")
    m, shape = _as_batch(masks)
    side = min(m.shape[-2:])
    alpha = 0.03 * side if alpha is None else float(alpha)
    sigma = 0.08 * side if sigma is None else float(sigma)
    if alpha < 0 or sigma <= 0 or not (0 < scale[0] <= scale[1]):
        raise ValueError(f"need alpha >= 0, sigma > 0 and 0 < scale[0] <= scale[1]; got alpha={alpha}, "
                         f"sigma={sigma}, scale={scale}.")
    if len(m) == 0:
        return m.reshape(shape).to(device)
    if kind in ("affine", "both"):
        m = _warp(m, _affine_grid(m, generator, max_degrees, max_shift, scale))
    if kind in ("elastic", "both"):
        m = _warp(m, _elastic_grid(m, generator, alpha, sigma))
    return m.reshape(shape).to(device)


def deform_pairs(images, masks, generator: torch.Generator, kind: str = "both", alpha: float | None = None,
                 sigma: float | None = None, max_degrees: float = 15.0, max_shift: float = 0.1,
                 scale: tuple = (0.85, 1.15)) -> tuple[torch.Tensor, torch.Tensor]:
    """Real (image, mask) pairs deformed **jointly**: the displacement field of :func:`deform_masks` (same
    arguments, same random draws for the same generator state) warps the image (bilinear, border values kept) and
    its mask alike, so the pair stays aligned. The classical-augmentation control for synthetic pairs."""
    if kind not in DEFORM_KINDS:
        raise ValueError(f"kind must be one of {DEFORM_KINDS}, got {kind!r}.")
    m, shape = _as_batch(masks)
    x = torch.as_tensor(images).detach().float().cpu()
    if x.ndim != 4 or x.shape[0] != m.shape[0] or x.shape[-2:] != m.shape[-2:]:
        raise ValueError(f"images must be N×C×H×W matching the masks {tuple(m.shape)}, got {tuple(x.shape)}.")
    side = min(m.shape[-2:])
    alpha = 0.03 * side if alpha is None else float(alpha)
    sigma = 0.08 * side if sigma is None else float(sigma)
    if len(m) == 0:
        return x.clone(), m.reshape(shape)
    if kind in ("affine", "both"):
        grid = _affine_grid(m, generator, max_degrees, max_shift, scale)
        m = _warp(m, grid)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    if kind in ("elastic", "both"):
        grid = _elastic_grid(m, generator, alpha, sigma)
        m = _warp(m, grid)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return x.to(torch.as_tensor(images).dtype), m.reshape(shape)


def lesion_stats(masks) -> dict[str, np.ndarray]:
    """Per mask: ``area_fraction`` (lesion pixels / all pixels), ``bbox_height`` and ``bbox_width`` (px of the
    lesion's bounding box, all lesion pixels together) and ``empty``. Empty masks get area 0 and a 0×0 box."""
    m, _ = _as_batch(masks)
    b = m[:, 0].numpy() > 0.5
    rows, cols = b.any(2), b.any(1)

    def extent(hit: np.ndarray) -> np.ndarray:
        first = hit.argmax(1)
        last = hit.shape[1] - 1 - hit[:, ::-1].argmax(1)
        return np.where(hit.any(1), last - first + 1, 0)

    return {"area_fraction": b.reshape(len(b), -1).mean(1) if len(b) else np.zeros(0),
            "bbox_height": extent(rows), "bbox_width": extent(cols), "empty": ~b.reshape(len(b), -1).any(1)}
