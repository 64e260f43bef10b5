"""Segmentation metrics on binary masks: Dice, IoU and the 95th-percentile Hausdorff distance (HD95).

Inputs are torch tensors or numpy arrays of **binary** masks (0/1, or bool), H×W, 1×H×W, or
N×1×H×W / N×H×W for :func:`segmentation_metrics`; turn a network's logits or probabilities into
masks with :func:`binarise` first (a non-binary input raises, so logits are never scored by mistake).
Results are plain floats (per image) or numpy arrays (per batch).

* Dice = 2|P∩T| / (|P| + |T|) and IoU = |P∩T| / |P∪T| (Jaccard), per image.
* HD95 (in pixels): the surface of a mask is the mask minus its binary erosion (``scipy.ndimage``,
  4-connected structure; pixels outside the image count as background, so a mask touching the border
  has its surface there). For every surface pixel of P the Euclidean distance to the nearest surface
  pixel of T is read from ``scipy.ndimage.distance_transform_edt``, and likewise from T to P. HD95 is
  the 95th percentile (numpy's linear interpolation) of the **union of both directed distance sets**,
  as ``medpy.metric.binary.hd95`` computes it. (MONAI's ``compute_hausdorff_distance(percentile=95)``
  instead takes the larger of the two directed 95th percentiles, which is never smaller than the
  union's, up to interpolation. Where a mask is empty medpy raises and MONAI returns NaN or inf: see below.)

Conventions for empty masks (lesion-free "normal" images make them common):

* both empty: Dice 1, IoU 1, HD95 0 (a correct "no lesion");
* exactly one empty: Dice 0, IoU 0, and HD95 = the image diagonal √(H² + W²) in pixels, the largest
  distance two pixels of the image can have (an upper bound), so a worst-case but finite value keeps means finite.
  :func:`segmentation_metrics` counts these images in ``"hd95_one_empty"``: report that count next to
  mean HD95, because each such image contributes the diagonal.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from scipy import ndimage

__all__ = ["binarise", "dice", "iou", "hd95", "segmentation_metrics", "dice_scores"]


def binarise(x, threshold: float = 0.5, from_logits: bool = True):
    """Masks {0, 1} (float, same type and shape as ``x``): ``sigmoid(x) > threshold`` for logits, else
    ``x > threshold`` (probabilities)."""
    if isinstance(x, torch.Tensor):
        p = torch.sigmoid(x.detach().float()) if from_logits else x.detach().float()
        return (p > threshold).float()
    arr = np.asarray(x, dtype=np.float64)
    p = 1.0 / (1.0 + np.exp(-arr)) if from_logits else arr
    return (p > threshold).astype(np.float32)


def _as_mask(x, name: str) -> np.ndarray:
    """``x`` as a bool numpy array; values other than 0/1 raise (logits or probabilities need binarise)."""
    arr = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    if arr.dtype != bool:
        if arr.size and not np.isin(arr, (0, 1)).all():
            raise ValueError(f"{name} holds values other than 0 and 1 (e.g. {arr[~np.isin(arr, (0, 1))].flat[0]}). "
                             "Fix: turn logits or probabilities into masks first with binarise(...).")
        arr = arr.astype(bool)
    return arr


def _pair(pred, truth) -> tuple[np.ndarray, np.ndarray]:
    """Two bool masks of one image, H×W (a leading 1× is dropped), of the same shape."""
    p, t = _as_mask(pred, "pred"), _as_mask(truth, "truth")
    p = p[0] if p.ndim == 3 and p.shape[0] == 1 else p
    t = t[0] if t.ndim == 3 and t.shape[0] == 1 else t
    if p.ndim != 2 or p.shape != t.shape:
        raise ValueError(f"pred and truth must be masks of one image of the same shape (H×W or 1×H×W), got "
                         f"{p.shape} and {t.shape}. Fix: use segmentation_metrics for batches.")
    return p, t


def _dice(p: np.ndarray, t: np.ndarray) -> float:
    total = int(p.sum()) + int(t.sum())
    return 1.0 if total == 0 else 2.0 * int((p & t).sum()) / total


def _iou(p: np.ndarray, t: np.ndarray) -> float:
    union = int((p | t).sum())
    return 1.0 if union == 0 else int((p & t).sum()) / union


def _surface(mask: np.ndarray) -> np.ndarray:
    """The mask's boundary pixels: the mask minus its erosion (outside the image counts as background)."""
    return mask & ~ndimage.binary_erosion(mask, border_value=0)


def _hd95(p: np.ndarray, t: np.ndarray) -> tuple[float, bool]:
    """(HD95 in pixels, whether exactly one mask was empty)."""
    if not p.any() and not t.any():
        return 0.0, False
    if not p.any() or not t.any():
        return math.hypot(*p.shape), True
    sp, st = _surface(p), _surface(t)
    to_t = ndimage.distance_transform_edt(~st)  # each pixel's distance to the nearest surface pixel of t
    to_p = ndimage.distance_transform_edt(~sp)
    distances = np.concatenate([to_t[sp], to_p[st]])
    return float(np.percentile(distances, 95)), False


def dice(pred, truth) -> float:
    """Dice coefficient of two binary masks of one image (1 when both are empty)."""
    return _dice(*_pair(pred, truth))


def iou(pred, truth) -> float:
    """Intersection over union (Jaccard index) of two binary masks of one image (1 when both are empty)."""
    return _iou(*_pair(pred, truth))


def hd95(pred, truth) -> float:
    """Symmetric 95th-percentile Hausdorff distance in pixels (see the module docstring for the conventions)."""
    return _hd95(*_pair(pred, truth))[0]


def _batch(x, name: str) -> np.ndarray:
    arr = _as_mask(x, name)
    if arr.ndim == 4 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 3:
        raise ValueError(f"{name} must be N×1×H×W or N×H×W, got shape {arr.shape}.")
    return arr


def segmentation_metrics(pred_masks, true_masks) -> dict:
    """Per-image Dice, IoU and HD95 of a batch of binary masks (N×1×H×W or N×H×W).

    Returns ``{"dice": array (N,), "iou": array (N,), "hd95": array (N,), "hd95_one_empty": int}``,
    the last being how many images had exactly one empty mask (their HD95 is the image diagonal).
    """
    p, t = _batch(pred_masks, "pred_masks"), _batch(true_masks, "true_masks")
    if p.shape != t.shape:
        raise ValueError(f"pred_masks {p.shape} and true_masks {t.shape} differ in shape. Fix: pass one "
                         "predicted mask per true mask, at the same size.")
    hd = [_hd95(a, b) for a, b in zip(p, t)]
    return {"dice": np.array([_dice(a, b) for a, b in zip(p, t)], dtype=np.float64),
            "iou": np.array([_iou(a, b) for a, b in zip(p, t)], dtype=np.float64),
            "hd95": np.array([h for h, _ in hd], dtype=np.float64),
            "hd95_one_empty": int(sum(one for _, one in hd))}


def dice_scores(pred_masks, true_masks) -> np.ndarray:
    """Per-image Dice of a batch, in one vectorised pass (for model selection during training); the same
    values and empty-mask convention as ``segmentation_metrics(...)["dice"]``."""
    p, t = _batch(pred_masks, "pred_masks"), _batch(true_masks, "true_masks")
    if p.shape != t.shape:
        raise ValueError(f"pred_masks {p.shape} and true_masks {t.shape} differ in shape. Fix: one prediction per mask.")
    axes = tuple(range(1, p.ndim))
    inter = np.logical_and(p, t).sum(axis=axes)
    total = p.sum(axis=axes) + t.sum(axis=axes)
    return np.where(total > 0, 2.0 * inter / np.maximum(total, 1), 1.0)
