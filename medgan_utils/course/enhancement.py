"""Classical restorers for notebook 06, tuned on validation, and the per-image evaluation of an enhancer.

The classical baselines come from scikit-image: non-local means (Buades et al. 2005) and total-variation
denoising (Chambolle 2004) for noise and speckle; for super-resolution the bicubic upsampling that made the
network's input is itself the baseline. Their one strength parameter is picked by validation PSNR.
"""
from __future__ import annotations

import numpy as np
import torch
from skimage.restoration import denoise_nl_means, denoise_tv_chambolle

from ..evaluation.image_quality import hallucination_fraction, noise_level, psnr, ssim

__all__ = ["CLASSICAL_METHODS", "classical_restore", "image_scores", "tune_classical"]

CLASSICAL_METHODS = {"denoise": ("nlm", "tv"), "despeckle": ("nlm", "tv"), "superres": ("bicubic",)}
_GRIDS = {"nlm": (0.6, 0.8, 1.0, 1.3, 1.7, 2.2), "tv": (0.02, 0.05, 0.1, 0.2, 0.4, 0.8), "bicubic": (None,)}


def _restore_one(u: np.ndarray, method: str, strength, sigma: float) -> np.ndarray:
    if method == "nlm":   # h is `strength` times the degradation's noise σ (intensity units 0..1)
        return denoise_nl_means(u, h=strength * sigma, sigma=sigma, patch_size=3, patch_distance=5, fast_mode=True)
    if method == "tv":
        return denoise_tv_chambolle(u, weight=strength)
    return u


def classical_restore(degraded: torch.Tensor, method: str, strength=None, sigma: float = 0.0) -> torch.Tensor:
    """Restore each image of ``degraded`` (N, C, H, W in [-1, 1]) with ``method``: ``"nlm"`` (needs the noise
    level ``sigma`` of :func:`noise_level`, in the images' [-1, 1] units), ``"tv"`` or ``"bicubic"`` (the input
    unchanged: it is already the bicubic upsampling)."""
    if method not in _GRIDS:
        raise ValueError(f"Unknown classical method {method!r}. Fix: one of {sorted(_GRIDS)}.")
    if method == "bicubic":
        return degraded.clone()
    u = ((degraded.detach().float().cpu() + 1) / 2).numpy()
    sigma_unit = max(float(sigma) / 2, 1e-3)
    out = np.stack([[_restore_one(ch.astype(np.float64), method, strength, sigma_unit) for ch in img] for img in u])
    return torch.from_numpy(out).float().mul(2).sub(1).clamp(-1, 1).to(degraded.device)


def tune_classical(method: str, degraded: torch.Tensor, clean: torch.Tensor) -> tuple[object, dict]:
    """The strength of ``method`` with the best mean PSNR on (validation) pairs, and each candidate's PSNR."""
    sigma = noise_level(degraded, clean)
    scores = {s: float(psnr(classical_restore(degraded, method, s, sigma), clean).mean()) for s in _GRIDS[method]}
    best = max(scores, key=lambda s: scores[s])
    return best, scores


def image_scores(enhanced: torch.Tensor, clean: torch.Tensor, sigma: float, k: float = 2.0) -> dict:
    """Mean PSNR, SSIM and hallucination fraction (pixels beyond k · σ) of ``enhanced`` against ``clean``."""
    return {"psnr": float(psnr(enhanced, clean).mean()), "ssim": float(ssim(enhanced, clean).mean()),
            "hallucinated": float(hallucination_fraction(enhanced, clean, sigma, k).mean())}
