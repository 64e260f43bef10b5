"""Classical restorers for notebook 06, tuned on validation, and the per-image evaluation of an enhancer.

The classical baselines come from scikit-image: non-local means (Buades et al. 2005) and total-variation
denoising (Chambolle 2004) for noise and speckle; for super-resolution the bicubic upsampling that made the
network's input is itself the baseline. Both denoisers assume additive noise of one known level, so they run in a
**variance-stabilised domain** (:func:`noise_domain`), as the literature runs them:

* low-dose X-ray (Poisson + Gaussian read noise): back to counts, then the generalised Anscombe transform
  (variance ≈ 1), denoise, and the closed-form unbiased inverse of Mäkitalo & Foi (2013);
* speckle: the display is already log-compressed, so speckle is additive there; its known mean shift
  10 / ln 10 · (ψ(L) − ln L) / DR is removed and its known spread is the noise level.

Their one strength parameter is picked by validation PSNR on a grid that is widened until the best value is inside it.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from scipy.special import digamma, polygamma
from skimage.restoration import denoise_nl_means, denoise_tv_chambolle

from ..data.degrade import ATTENUATION_K, DISPLAY_RANGE_DB, MIN_COUNTS
from ..evaluation.image_quality import hallucination_fraction, noise_level, psnr, ssim

__all__ = ["CLASSICAL_METHODS", "NoiseDomain", "anscombe", "classical_restore", "image_scores", "inverse_anscombe",
           "noise_domain", "tune_classical"]

CLASSICAL_METHODS = {"denoise": ("nlm", "tv"), "despeckle": ("nlm", "tv"), "superres": ("bicubic",)}
_GRIDS = {"nlm": (0.6, 0.8, 1.0, 1.3, 1.7, 2.2), "tv": (0.02, 0.05, 0.1, 0.2, 0.4, 0.8), "bicubic": (None,)}
MAX_WIDENINGS = 4


def anscombe(counts, read_noise: float = 0.0):
    """Generalised Anscombe transform of Poisson counts plus Gaussian read noise (gain 1): variance ≈ 1."""
    return 2.0 * np.sqrt(np.maximum(np.asarray(counts, dtype=np.float64) + 3.0 / 8.0 + read_noise ** 2, 0.0))


def inverse_anscombe(y, read_noise: float = 0.0, unbiased: bool = True):
    """Counts from :func:`anscombe` values: the closed-form approximation of the exact unbiased inverse
    (Mäkitalo & Foi 2013), or the algebraic inverse (``unbiased=False``, an exact round trip)."""
    y = np.asarray(y, dtype=np.float64)
    if not unbiased:
        return (y / 2.0) ** 2 - 3.0 / 8.0 - read_noise ** 2
    y = np.maximum(y, 1e-3)
    c = math.sqrt(1.5)
    return np.maximum(y ** 2 / 4 + c / (4 * y) - 11 / (8 * y ** 2) + 5 * c / (8 * y ** 3) - 1 / 8 - read_noise ** 2, 0.0)


class NoiseDomain:
    """A map of display images u in [0, 1] to a domain where the noise is additive with level ``sigma``."""

    def __init__(self, forward, inverse, sigma: float, name: str):
        self.forward, self.inverse, self.sigma, self.name = forward, inverse, float(sigma), name

    def __repr__(self) -> str:
        return f"NoiseDomain({self.name}, sigma={self.sigma:.4f})"


def noise_domain(task: str, level, read_noise: float = 0.0) -> NoiseDomain | None:
    """The variance-stabilised domain of ``task`` at ``level`` (None for super-resolution: no noise model)."""
    if task == "denoise":
        n0, k = float(level), ATTENUATION_K
        top = float(anscombe(n0, read_noise))                     # air: the largest value, scaled to 1

        def forward(u):
            return anscombe(n0 * np.exp(-k * u), read_noise) / top

        def inverse(y):
            counts = np.maximum(inverse_anscombe(y * top, read_noise), MIN_COUNTS)
            return np.clip(-np.log(counts / n0) / k, 0, 1)
        return NoiseDomain(forward, inverse, 1.0 / top, f"Anscombe, N0 = {n0:g}, read noise {read_noise:g}")
    if task == "despeckle":
        looks, dr = int(level), DISPLAY_RANGE_DB
        shift = 10 / math.log(10) * (digamma(looks) - math.log(looks)) / dr
        spread = 10 / math.log(10) * math.sqrt(float(polygamma(1, looks))) / dr
        return NoiseDomain(lambda u: u - shift, lambda y: np.clip(y, 0, 1), spread,
                           f"log (display), {looks} look(s), {dr:g} dB")
    return None


def _restore_one(u: np.ndarray, method: str, strength, sigma: float) -> np.ndarray:
    if method == "nlm":   # h is `strength` times the noise σ of the domain the image is in
        return denoise_nl_means(u, h=strength * sigma, sigma=sigma, patch_size=3, patch_distance=5, fast_mode=True)
    if method == "tv":
        return denoise_tv_chambolle(u, weight=strength)
    return u


def classical_restore(degraded: torch.Tensor, method: str, strength=None, sigma: float = 0.0,
                      domain: NoiseDomain | None = None) -> torch.Tensor:
    """Restore each image of ``degraded`` (N, C, H, W in [-1, 1]) with ``method``: ``"nlm"``, ``"tv"`` or
    ``"bicubic"`` (the input unchanged: it is already the bicubic upsampling). With a ``domain``
    (:func:`noise_domain`) the denoiser runs there, at the domain's noise level; without one it runs on the display
    values at ``sigma``, the noise level of :func:`noise_level` in [-1, 1] units."""
    if method not in _GRIDS:
        raise ValueError(f"Unknown classical method {method!r}. Fix: one of {sorted(_GRIDS)}.")
    if method == "bicubic":
        return degraded.clone()
    u = ((degraded.detach().float().cpu() + 1) / 2).numpy().astype(np.float64)
    if domain is not None:
        u = domain.forward(u)
    sig = domain.sigma if domain is not None else max(float(sigma) / 2, 1e-3)
    out = np.stack([[_restore_one(ch, method, strength, sig) for ch in img] for img in u])
    if domain is not None:
        out = domain.inverse(out)
    return torch.from_numpy(out).float().mul(2).sub(1).clamp(-1, 1).to(degraded.device)


def tune_classical(method: str, degraded: torch.Tensor, clean: torch.Tensor,
                   domain: NoiseDomain | None = None) -> tuple[object, dict]:
    """The strength of ``method`` with the best mean PSNR on (validation) pairs, and each candidate's PSNR. When the
    best value sits at an end of the grid, the grid is widened geometrically (up to ``MAX_WIDENINGS`` times), so the
    chosen value is an inside optimum unless the returned scores say otherwise."""
    sigma = noise_level(degraded, clean)

    def score(s):
        return float(psnr(classical_restore(degraded, method, s, sigma, domain), clean).mean())

    scores = {s: score(s) for s in _GRIDS[method]}
    if method == "bicubic":
        return None, scores
    for _ in range(MAX_WIDENINGS):
        grid = sorted(scores)
        best = max(scores, key=lambda s: scores[s])
        if best == grid[0]:
            new = grid[0] ** 2 / grid[1]
        elif best == grid[-1]:
            new = grid[-1] ** 2 / grid[-2]
        else:
            break
        scores[round(new, 6)] = score(round(new, 6))
    scores = dict(sorted(scores.items()))
    return max(scores, key=lambda s: scores[s]), scores


def image_scores(enhanced: torch.Tensor, clean: torch.Tensor, sigma: float, k: float = 2.0) -> dict:
    """Mean PSNR, SSIM and hallucination fraction (pixels beyond k · σ) of ``enhanced`` against ``clean``."""
    return {"psnr": float(psnr(enhanced, clean).mean()), "ssim": float(ssim(enhanced, clean).mean()),
            "hallucinated": float(hallucination_fraction(enhanced, clean, sigma, k).mean())}
