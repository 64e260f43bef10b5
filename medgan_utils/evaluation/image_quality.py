"""Image quality and hallucination measures for enhancement (notebook 06).

PSNR and SSIM come from torchmetrics, per image, for images in [-1, 1] (``data_range=2``). PSNR of two
identical images is infinite; :func:`psnr` caps it at :data:`PSNR_CAP_DB` so that means stay finite.

The hallucination measures compare an enhanced image with the clean one:

* :func:`hallucination_fraction`: the fraction of pixels where the *local mean* error (restored − clean,
  averaged over a ``window`` × ``window`` neighbourhood) exceeds ``k`` · σ / ``window``: the noise level σ of
  the degradation (the RMS of degraded − clean, :func:`noise_level`) as it would be after the same averaging, if
  the error were independent pixel noise. Leftover pixel noise rarely crosses that line; structured changes
  (an edge moved or blurred away, a texture or a bright spot added or erased) do. The degraded input itself
  scores a few per cent; an identity "enhancer" applied to a clean image scores 0.
* :func:`lesion_changes`: with a segmenter's masks on the clean and on the enhanced image and the true lesion
  mask, the lesion pixels the enhancement *added* outside the true lesion, and the true-lesion pixels it
  *erased*.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

__all__ = ["PSNR_CAP_DB", "hallucination_fraction", "lesion_changes", "noise_level", "psnr", "ssim", "structured_error"]

PSNR_CAP_DB = 100.0


def _pair(pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if pred.shape != target.shape:
        raise ValueError(f"pred and target shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}.")
    return pred.detach().float().cpu(), target.detach().float().cpu()


def psnr(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR in dB for images in [-1, 1], capped at :data:`PSNR_CAP_DB` (identical images)."""
    pred, target = _pair(pred, target)
    values = peak_signal_noise_ratio(pred, target, data_range=2.0, reduction="none", dim=(1, 2, 3))
    return values.nan_to_num(posinf=PSNR_CAP_DB).clamp(max=PSNR_CAP_DB)


def ssim(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-image SSIM (Gaussian window 11, σ 1.5) for images in [-1, 1]."""
    pred, target = _pair(pred, target)
    return structural_similarity_index_measure(pred, target, data_range=2.0, reduction="none")


def noise_level(degraded: torch.Tensor, clean: torch.Tensor) -> float:
    """The degradation's noise level σ: the RMS of degraded − clean over all pixels."""
    degraded, clean = _pair(degraded, clean)
    return float((degraded - clean).pow(2).mean().sqrt())


def structured_error(enhanced: torch.Tensor, clean: torch.Tensor, sigma: float, k: float = 2.0,
                     window: int = 3) -> dict:
    """Per image, the fraction of pixels whose ``window`` × ``window`` mean error (enhanced − clean) exceeds
    k · σ / window: ``added`` where the restorer made the image brighter than the truth (structure or texture put
    in), ``removed`` where it made it darker (structure taken out). Leftover pixel noise rarely crosses the line;
    a blurred edge or an invented or erased spot does."""
    enhanced, clean = _pair(enhanced, clean)
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0, got {sigma}: measure it with noise_level(degraded, clean).")
    local = F.avg_pool2d(enhanced - clean, window, stride=1, padding=window // 2, count_include_pad=False)
    line = k * float(sigma) / window
    return {"added": (local > line).float().mean(dim=(1, 2, 3)),
            "removed": (local < -line).float().mean(dim=(1, 2, 3))}


def hallucination_fraction(enhanced: torch.Tensor, clean: torch.Tensor, sigma: float, k: float = 2.0,
                           window: int = 3) -> torch.Tensor:
    """Per image, the fraction of pixels whose ``window`` × ``window`` mean error exceeds k · σ / window in either
    direction: the total :func:`structured_error` (added + removed)."""
    parts = structured_error(enhanced, clean, sigma, k, window)
    return parts["added"] + parts["removed"]


def lesion_changes(mask_clean: torch.Tensor, mask_enhanced: torch.Tensor, true_mask: torch.Tensor) -> dict:
    """Per image: ``added``, lesion pixels found on the enhanced image but not on the clean one, outside the true
    lesion, as a fraction of the image; ``erased``, true-lesion pixels found on the clean image but not on the
    enhanced one, as a fraction of the true lesion (0 for an image without a lesion)."""
    a, b = _pair(mask_clean, mask_enhanced)
    t = true_mask.detach().float().cpu()
    a, b, t = a > 0.5, b > 0.5, t > 0.5
    added = (b & ~a & ~t).float().mean(dim=(1, 2, 3))
    lesion = t.float().sum(dim=(1, 2, 3))
    erased = (a & ~b & t).float().sum(dim=(1, 2, 3)) / lesion.clamp_min(1)
    return {"added": added, "erased": erased}
