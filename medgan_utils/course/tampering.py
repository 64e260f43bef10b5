"""CT-GAN-style tampering (Mirsky et al., USENIX Security 2019) with a mask → image generator, and a simple
noise-residual tamper detector (notebook 08).

* **inject**: a donor lesion mask is placed in a lesion-free part of the image; the generator draws an image for
  the original mask plus the new lesion; the new lesion's neighbourhood is pasted into the original image.
* **remove**: the generator draws an image for an *empty* mask; the lesion's neighbourhood is pasted in.
* **local** pastes the neighbourhood with a hard edge; **blended** fades it in with a Gaussian-feathered alpha.

``generate(masks) -> images`` is any mask → image model (notebook 05's pix2pix generator): images are N×1×H×W
in [-1, 1], masks N×1×H×W in {0, 1}. :func:`residual_features` describes the noise left after a 3×3 median
filter inside a region and in a ring around it: generated texture is smoother than ultrasound speckle.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from ..core.errors import SettingError

__all__ = ["TAMPER_KINDS", "BLEND_MODES", "dilate", "place_lesion", "paste", "inject_lesions", "remove_lesions",
           "residual_features", "region_recall"]

TAMPER_KINDS = ("inject", "remove")
BLEND_MODES = ("local", "blended")


def dilate(masks: torch.Tensor, radius: int) -> torch.Tensor:
    """Binary dilation by a (2·radius+1)² square (max-pooling)."""
    if radius <= 0:
        return masks.float()
    return F.max_pool2d(masks.float(), 2 * radius + 1, stride=1, padding=radius)


def place_lesion(mask: torch.Tensor, donor: torch.Tensor, gen: torch.Generator, clearance: int = 3,
                 tries: int = 200) -> torch.Tensor | None:
    """The donor's lesion (1×H×W) moved to a random spot that keeps ``clearance`` px from ``mask``'s lesion and
    from the border, or ``None`` when no spot is free."""
    ys, xs = torch.nonzero(donor[0] > 0.5, as_tuple=True)
    if not len(ys):
        return None
    crop = donor[:, ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    h, w = crop.shape[-2:]
    H, W = mask.shape[-2:]
    if h + 2 * clearance >= H or w + 2 * clearance >= W:
        return None
    forbidden = dilate(mask[None], clearance)[0]
    for _ in range(tries):
        y = int(torch.randint(clearance, H - h - clearance + 1, (1,), generator=gen))
        x = int(torch.randint(clearance, W - w - clearance + 1, (1,), generator=gen))
        placed = torch.zeros_like(mask)
        placed[:, y:y + h, x:x + w] = crop
        if not (forbidden * placed).any():
            return placed
    return None


def _feather(region: torch.Tensor, sigma: float) -> torch.Tensor:
    radius = max(1, int(math.ceil(3 * sigma)))
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-t ** 2 / (2 * sigma ** 2))
    k = (k / k.sum()).to(region)
    x = F.pad(region.float(), (radius,) * 4, mode="replicate")
    x = F.conv2d(x, k.view(1, 1, 1, -1))
    return F.conv2d(x, k.view(1, 1, -1, 1)).clamp(0, 1)


def paste(original: torch.Tensor, generated: torch.Tensor, region: torch.Tensor, mode: str,
          sigma: float = 1.5) -> torch.Tensor:
    """``generated`` inside ``region`` and ``original`` outside: a hard edge (``'local'``) or feathered
    (``'blended'``, a Gaussian of ``sigma`` px on the region, which keeps the region's core fully generated)."""
    if mode not in BLEND_MODES:
        raise SettingError(f"Unknown blend mode {mode!r}. Fix: choose from {', '.join(BLEND_MODES)}.")
    alpha = region.float()
    if mode == "blended":  # fade out over about 2·sigma px beyond the region's edge
        alpha = torch.maximum(_feather(dilate(region, max(1, int(round(sigma)))), sigma), alpha)
    return original * (1 - alpha) + generated * alpha


def inject_lesions(generate, images: torch.Tensor, masks: torch.Tensor, donors: torch.Tensor, mode: str, *,
                   seed: int = 0, margin: int = 3, clearance: int = 3) -> dict:
    """Inject one donor lesion per image. Returns ``images`` (tampered), ``lesions`` (the injected lesion
    masks), ``regions`` (pasted areas) and ``index`` (the images where a free spot was found)."""
    gen = torch.Generator().manual_seed(int(seed))
    keep, placed = [], []
    for i in range(len(images)):
        p = place_lesion(masks[i], donors[i % len(donors)], gen, clearance)
        if p is not None:
            keep.append(i)
            placed.append(p)
    if not keep:
        raise SettingError("No image had room for a donor lesion. Fix: use smaller donor lesions or larger images.")
    idx = torch.tensor(keep)
    lesions = torch.stack(placed)
    fake = generate(torch.clamp(masks[idx] + lesions, 0, 1))
    regions = dilate(lesions, margin)
    return {"images": paste(images[idx], fake, regions, mode), "lesions": lesions, "regions": regions,
            "index": idx, "generated": fake}


def remove_lesions(generate, images: torch.Tensor, masks: torch.Tensor, mode: str, *, margin: int = 3) -> dict:
    """In-paint every image's lesion area from the generator's image for an empty mask. Returns ``images``,
    ``lesions`` (the removed masks), ``regions`` and ``index`` (the images that had a lesion)."""
    idx = torch.nonzero(masks.flatten(1).amax(1) > 0).view(-1)
    if not len(idx):
        raise SettingError("No image has a lesion to remove. Fix: pass images with non-empty masks.")
    fake = generate(torch.zeros_like(masks[idx]))
    regions = dilate(masks[idx], margin)
    return {"images": paste(images[idx], fake, regions, mode), "lesions": masks[idx].float(), "regions": regions,
            "index": idx, "generated": fake}


def region_recall(pred: torch.Tensor, lesions: torch.Tensor) -> np.ndarray:
    """Per image, the share of the lesion's pixels the predicted mask covers (NaN for an empty lesion)."""
    inter = (pred.float() * lesions.float()).flatten(1).sum(1)
    area = lesions.float().flatten(1).sum(1)
    return torch.where(area > 0, inter / area.clamp_min(1), torch.full_like(area, float("nan"))).numpy()


def residual_features(images: torch.Tensor, regions: torch.Tensor, ring: int = 4) -> np.ndarray:
    """Noise-residual statistics per image: log std and log mean |r| of r = x − median₃ₓ₃(x) inside the region
    and in a ``ring``-px band around it, and their differences (inside − ring). N × 6, float64."""
    x = F.pad(images.float(), (1, 1, 1, 1), mode="replicate")
    med = x.unfold(2, 3, 1).unfold(3, 3, 1).reshape(*images.shape, 9).median(dim=-1).values
    r = images.float() - med
    inside = regions.float() > 0.5
    band = (dilate(regions, ring) > 0.5) & ~inside
    feats = []
    for k in range(len(images)):
        a, b = r[k][inside[k]], r[k][band[k]]
        if len(a) < 2 or len(b) < 2:
            raise SettingError("A tamper region or its ring is empty. Fix: pass non-empty regions inside the image.")
        sa, sb = math.log(float(a.std()) + 1e-6), math.log(float(b.std()) + 1e-6)
        ma, mb = math.log(float(a.abs().mean()) + 1e-6), math.log(float(b.abs().mean()) + 1e-6)
        feats.append([sa, sb, sa - sb, ma, mb, ma - mb])
    return np.asarray(feats, dtype=np.float64)
