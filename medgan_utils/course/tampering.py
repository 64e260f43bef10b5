"""CT-GAN-style tampering (Mirsky et al., USENIX Security 2019) with an in-painting generator conditioned on the
image, and a simple noise-residual tamper detector (notebook 08).

CT-GAN in-paints from the surrounding scan: the generator sees the image with the region to edit cut out, the
region, and the lesion map wanted there (:func:`inpainting_input`), and fills the hole.

* **inject**: a donor lesion mask is placed in a lesion-free part of the image; its neighbourhood is cut out and
  in-painted with the lesion map (old lesions + the new one); the neighbourhood is pasted back.
* **remove**: the lesion's neighbourhood is cut out and in-painted with an empty lesion map; pasted back.
* **local** pastes the neighbourhood with a hard edge; **blended** fades it in with a Gaussian-feathered alpha.

``generate(conditions) -> images`` is any model of ``inpainting_input`` (N×3×H×W) → image (N×1×H×W), trained on
:func:`inpainting_pairs` of training images (notebook 08 uses 05's pix2pix step). Images lie in [-1, 1], masks
in {0, 1}. :func:`residual_features` describes the noise left after a 3×3 median filter inside a region and in a
ring around it: generated texture is smoother than ultrasound speckle. :func:`paired_detector_auc` scores a tamper
detector with a bootstrap over images that keeps each tampered / untouched pair together.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from ..core.errors import SettingError

__all__ = ["TAMPER_KINDS", "BLEND_MODES", "dilate", "place_lesion", "paste", "inject_lesions", "remove_lesions",
           "residual_features", "region_recall", "inpainting_input", "inpainting_pairs", "paired_detector_auc"]

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


def inpainting_input(images: torch.Tensor, regions: torch.Tensor, lesions: torch.Tensor) -> torch.Tensor:
    """The in-painter's input, N×3×H×W: the image with the region set to 0 (mid grey), the region and the lesion
    map wanted, both as ±1. Nothing of the image inside the region gets through."""
    hole = (regions > 0.5).float()
    return torch.cat([images * (1 - hole), hole * 2 - 1, (lesions > 0.5).float() * 2 - 1], 1)


def inpainting_pairs(images: torch.Tensor, masks: torch.Tensor, *, seed: int = 0, margin: int = 3,
                     clearance: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """``(conditions, targets)`` to train an in-painter on training images: every lesion cut out with its lesion
    map (it learns to draw a lesion), and every image with a donor-shaped hole in a lesion-free spot and no lesion
    there (it learns to draw tissue). The target is always the untouched image."""
    gen = torch.Generator().manual_seed(int(seed))
    has = torch.nonzero(masks.flatten(1).amax(1) > 0).view(-1)
    if not len(has):
        raise SettingError("No training image has a lesion to learn from. Fix: pass images with their lesion masks.")
    donors = masks[has].roll(1, 0)  # lesion shapes of other patients
    conds, targets = [inpainting_input(images[has], dilate(masks[has], margin), masks[has])], [images[has]]
    free = [(i, place_lesion(masks[i], donors[i % len(donors)], gen, clearance)) for i in range(len(images))]
    free = [(i, p) for i, p in free if p is not None]
    if free:
        idx = torch.tensor([i for i, _ in free])
        holes = dilate(torch.stack([p for _, p in free]), margin)
        conds.append(inpainting_input(images[idx], holes, masks[idx]))
        targets.append(images[idx])
    return torch.cat(conds), torch.cat(targets)


def paired_detector_auc(tampered: np.ndarray, untouched: np.ndarray, image_ids, *, n_boot: int = 1000,
                        seed: int = 0) -> dict:
    """AUC of a detector's scores on tampered regions (positives) against the same regions untouched (negatives),
    with a bootstrap that resamples *images* and keeps every pair of a drawn image together (an image may hold an
    injection pair and a removal pair). Returns :func:`~medgan_utils.evaluation.evidence.bootstrap_contrast`'s
    dict (estimate, ci, ...)."""
    from ..evaluation.evidence import bootstrap_contrast, fast_auc

    t, u = np.asarray(tampered, float).ravel(), np.asarray(untouched, float).ravel()
    ids = np.asarray(image_ids).ravel()
    if not len(t) == len(u) == len(ids) or len(t) < 2:
        raise SettingError(f"paired_detector_auc needs one tampered and one untouched score per pair and at least "
                           f"two pairs, got {len(t)}, {len(u)} and {len(ids)} image ids. Fix: pass aligned arrays.")
    images = np.unique(ids)
    pairs_of = [np.flatnonzero(ids == i) for i in images]

    def auc(_, idx):
        rows = np.concatenate([pairs_of[i] for i in idx])
        return fast_auc(np.r_[np.ones(len(rows)), np.zeros(len(rows))], np.r_[t[rows], u[rows]])

    out = bootstrap_contrast(auc, {0: None}, n_items=len(images), bounds=(0, 1), n_boot=n_boot, seed=seed)
    out["method"] = f"bootstrap over {len(images)} images, tampered / untouched pairs kept together ({n_boot} resamples)"
    return {**out, "n_pairs": int(len(t)), "n_images": int(len(images))}


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
    regions = dilate(lesions, margin)
    fake = generate(inpainting_input(images[idx], regions, torch.clamp(masks[idx] + lesions, 0, 1)))
    return {"images": paste(images[idx], fake, regions, mode), "lesions": lesions, "regions": regions,
            "index": idx, "generated": fake}


def remove_lesions(generate, images: torch.Tensor, masks: torch.Tensor, mode: str, *, margin: int = 3) -> dict:
    """In-paint every image's lesion area with an empty lesion map. Returns ``images``, ``lesions`` (the removed
    masks), ``regions`` and ``index`` (the images that had a lesion)."""
    idx = torch.nonzero(masks.flatten(1).amax(1) > 0).view(-1)
    if not len(idx):
        raise SettingError("No image has a lesion to remove. Fix: pass images with non-empty masks.")
    regions = dilate(masks[idx], margin)
    fake = generate(inpainting_input(images[idx], regions, torch.zeros_like(masks[idx])))
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
