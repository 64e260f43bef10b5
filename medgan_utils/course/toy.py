"""Toy problems for GAN theory: 1-D mixtures, divergences on a grid, the ring of Gaussians.

Densities here are NumPy (for exact, plotted formulas); samplers return torch
tensors (for training). Everything is small enough to run in seconds on a CPU.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn


# ---------------------------------------------------------------------------
# 1-D Gaussian mixtures
# ---------------------------------------------------------------------------

def gaussian_pdf(x, mean: float = 0.0, std: float = 1.0) -> np.ndarray:
    """Density of ``N(mean, std²)`` at ``x`` (array-like)."""
    x = np.asarray(x, dtype=float)
    return np.exp(-0.5 * ((x - mean) / std) ** 2) / (std * math.sqrt(2 * math.pi))


@dataclass(frozen=True)
class Mixture1D:
    """A 1-D Gaussian mixture ``Σ_k w_k N(means_k, stds_k²)`` with a known density.

    ``Mixture1D.gaussian(m, s)`` builds a single Gaussian. Weights are
    normalised to sum to one.
    """

    means: tuple[float, ...]
    stds: tuple[float, ...]
    weights: tuple[float, ...] | None = None

    def __post_init__(self):
        means = tuple(float(m) for m in np.atleast_1d(self.means))
        stds = tuple(float(s) for s in np.atleast_1d(self.stds))
        if len(stds) == 1 and len(means) > 1:
            stds = stds * len(means)
        w = np.ones(len(means)) if self.weights is None else np.asarray(self.weights, dtype=float)
        if not (len(means) == len(stds) == len(w)):
            raise ValueError("means, stds and weights must have the same length.")
        if np.any(np.asarray(stds) <= 0) or np.any(w < 0) or w.sum() <= 0:
            raise ValueError("stds must be positive and weights non-negative with a positive sum.")
        object.__setattr__(self, "means", means)
        object.__setattr__(self, "stds", stds)
        object.__setattr__(self, "weights", tuple(float(v) for v in w / w.sum()))

    @classmethod
    def gaussian(cls, mean: float = 0.0, std: float = 1.0) -> "Mixture1D":
        return cls((mean,), (std,), (1.0,))

    def pdf(self, x) -> np.ndarray:
        """The density at ``x`` (NumPy array-like)."""
        x = np.asarray(x, dtype=float)
        return sum(w * gaussian_pdf(x, m, s) for m, s, w in zip(self.means, self.stds, self.weights))

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` samples as a float32 tensor of shape ``(n, 1)``."""
        w = torch.tensor(self.weights, dtype=torch.float64)
        comp = torch.multinomial(w, n, replacement=True, generator=generator)
        mean = torch.tensor(self.means, dtype=torch.float32)[comp]
        std = torch.tensor(self.stds, dtype=torch.float32)[comp]
        return (mean + std * torch.randn(n, generator=generator)).unsqueeze(1)

    def shifted(self, delta: float) -> "Mixture1D":
        """The same mixture moved by ``delta``."""
        return Mixture1D(tuple(m + delta for m in self.means), self.stds, self.weights)


# ---------------------------------------------------------------------------
# Divergences and the optimal discriminator on a grid
# ---------------------------------------------------------------------------

def _normalise(p: np.ndarray, x: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=float), 0.0, None)
    mass = np.trapezoid(p, x) if hasattr(np, "trapezoid") else np.trapz(p, x)
    if mass <= 0:
        raise ValueError("density has zero mass on the grid.")
    return p / mass


def _integrate(f: np.ndarray, x: np.ndarray) -> float:
    return float(np.trapezoid(f, x) if hasattr(np, "trapezoid") else np.trapz(f, x))


def _xlogy_ratio(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """``p·log(p/q)`` with the convention ``0·log(0/q) = 0``."""
    out = np.zeros_like(p)
    mask = p > 0
    out[mask] = p[mask] * np.log(p[mask] / q[mask])
    return out


def kl_on_grid(p, q, x) -> float:
    """``KL(p ‖ q) = ∫ p log(p/q) dx`` in nats, by the trapezoid rule on the grid ``x``.

    Both densities are renormalised to integrate to one on the grid. Infinite if
    ``p > 0`` somewhere ``q = 0``.
    """
    x = np.asarray(x, dtype=float)
    p, q = _normalise(p, x), _normalise(q, x)
    if np.any((p > 0) & (q <= 0)):
        return float("inf")
    return _integrate(_xlogy_ratio(p, q), x)


def jsd_on_grid(p, q, x) -> float:
    """Jensen-Shannon divergence in nats: ``½KL(p ‖ m) + ½KL(q ‖ m)``, ``m = (p + q)/2``.

    ``p`` and ``q`` are density values on the grid ``x`` (renormalised there).
    It is 0 for identical densities and ``log 2`` (its maximum) for densities
    with disjoint supports.
    """
    x = np.asarray(x, dtype=float)
    p, q = _normalise(p, x), _normalise(q, x)
    m = 0.5 * (p + q)
    return 0.5 * _integrate(_xlogy_ratio(p, m), x) + 0.5 * _integrate(_xlogy_ratio(q, m), x)


def optimal_discriminator(p_data, p_g) -> np.ndarray:
    """``D*(x) = p_data(x) / (p_data(x) + p_g(x))`` (Goodfellow et al. 2014, Prop. 1).

    Where both densities are zero D* is undefined; this returns 0.5 there.
    """
    p_data = np.asarray(p_data, dtype=float)
    p_g = np.asarray(p_g, dtype=float)
    denom = p_data + p_g
    out = np.full(np.broadcast(p_data, p_g).shape, 0.5)
    np.divide(p_data, denom, out=out, where=denom > 0)
    return out


def value_on_grid(p_data, p_g, d, x) -> float:
    """``V(D, G) = ∫ p_data log D + p_g log(1 - D) dx`` on a grid, with ``0·log 0 = 0``.

    ``d`` is the discriminator's probability at each grid point. Where ``d`` is
    exactly 1 but ``p_g > 0`` (or exactly 0 but ``p_data > 0``) the value is
    ``-inf``, as the formula says; in far tails a ``D*`` computed in floating
    point can round to 1, so keep the grid where both densities are resolvable.
    """
    p_data, p_g, d = (np.asarray(a, dtype=float) for a in (p_data, p_g, d))
    with np.errstate(divide="ignore"):
        a = np.where(p_data > 0, p_data * np.log(np.where(p_data > 0, d, 1.0)), 0.0)
        b = np.where(p_g > 0, p_g * np.log(np.where(p_g > 0, 1.0 - d, 1.0)), 0.0)
    return _integrate(a + b, np.asarray(x, dtype=float))


# ---------------------------------------------------------------------------
# Ring of Gaussians (2-D) and mode coverage
# ---------------------------------------------------------------------------

def ring_centers(n_modes: int = 8, radius: float = 2.0) -> torch.Tensor:
    """Centres of ``n_modes`` Gaussians evenly spaced on a circle, shape ``(n_modes, 2)``."""
    angles = torch.arange(n_modes, dtype=torch.float64) * (2 * math.pi / n_modes)
    return (radius * torch.stack([angles.cos(), angles.sin()], dim=1)).float()


def sample_ring(n: int, n_modes: int = 8, radius: float = 2.0, std: float = 0.02,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """``n`` samples from an equal mixture of ``N(c_k, std²·I)`` over the ring centres ``c_k``.

    The ring of 8 Gaussians is the classic mode-collapse benchmark (Metz et al.
    2017 used radius 2 and std 0.02). Returns a float32 tensor ``(n, 2)``.
    """
    centers = ring_centers(n_modes, radius)
    idx = torch.randint(0, n_modes, (n,), generator=generator)
    return centers[idx] + std * torch.randn(n, 2, generator=generator)


def mode_coverage(samples, centers, sigma: float, n_sigma: float = 3.0,
                  min_count: int | None = None, min_share: float = 0.1) -> tuple[int, float]:
    """How many modes generated ``samples`` cover, and how many samples are of high quality.

    Rule: each sample is assigned to its nearest centre. A sample is *high
    quality* if it lies within ``n_sigma·sigma`` (default 3σ) of that centre.
    A mode counts as *covered* if at least ``threshold`` high-quality samples
    fall on it, where ``threshold = min_count`` if given, otherwise
    ``max(1, ceil(min_share · N / K))``: by default a mode needs a tenth of the
    samples a perfect generator would put there (N samples, K modes).

    Args:
        samples: ``(N, d)`` array or tensor of generated points.
        centers: ``(K, d)`` mode centres.
        sigma: the standard deviation of each mode.
    Returns:
        ``(modes_covered, high_quality_fraction)``: an int in ``[0, K]`` and the
        share of all N samples within ``n_sigma·sigma`` of their nearest centre (the
        *on-mode share* notebook 07 reports beside the modes covered: few modes with
        samples on the data is collapse, a low share is a generator off the data).
    """
    s = torch.as_tensor(samples, dtype=torch.float64).detach().cpu()
    c = torch.as_tensor(centers, dtype=torch.float64).detach().cpu()
    if s.ndim != 2 or c.ndim != 2 or s.shape[1] != c.shape[1]:
        raise ValueError(f"samples {tuple(s.shape)} and centers {tuple(c.shape)} must be (N, d) and (K, d).")
    n, k = s.shape[0], c.shape[0]
    if n == 0:
        return 0, 0.0
    dist = torch.cdist(s, c)
    nearest_d, nearest = dist.min(dim=1)
    good = nearest_d <= n_sigma * sigma
    counts = torch.bincount(nearest[good], minlength=k)
    threshold = int(min_count) if min_count is not None else max(1, math.ceil(min_share * n / k))
    return int((counts >= threshold).sum()), float(good.double().mean())


# ---------------------------------------------------------------------------
# Small MLPs for toy GANs
# ---------------------------------------------------------------------------

def mlp(in_dim: int, out_dim: int, hidden: int = 128, depth: int = 2, act: str = "relu") -> nn.Sequential:
    """A plain MLP: ``depth`` hidden layers of width ``hidden``, then a linear output.

    ``act`` is ``'relu'``, ``'leaky_relu'`` (slope 0.2) or ``'tanh'``.
    """
    acts = {"relu": lambda: nn.ReLU(), "leaky_relu": lambda: nn.LeakyReLU(0.2), "tanh": lambda: nn.Tanh()}
    if act not in acts:
        raise ValueError(f"act must be one of {sorted(acts)}.")
    layers, d = [], in_dim
    for _ in range(depth):
        layers += [nn.Linear(d, hidden), acts[act]()]
        d = hidden
    layers.append(nn.Linear(d, out_dim))
    return nn.Sequential(*layers)


def make_generator(latent_dim: int = 2, out_dim: int = 2, hidden: int = 128, depth: int = 2) -> nn.Sequential:
    """Toy generator ``z ∈ R^latent_dim → x ∈ R^out_dim`` (ReLU MLP, linear output)."""
    return mlp(latent_dim, out_dim, hidden, depth, act="relu")


def make_discriminator(in_dim: int = 2, hidden: int = 128, depth: int = 2) -> nn.Sequential:
    """Toy discriminator ``x → logit`` (LeakyReLU MLP, one linear output, no sigmoid)."""
    return mlp(in_dim, 1, hidden, depth, act="leaky_relu")


__all__ = [
    "gaussian_pdf", "Mixture1D", "kl_on_grid", "jsd_on_grid", "optimal_discriminator", "value_on_grid",
    "ring_centers", "sample_ring", "mode_coverage", "mlp", "make_generator", "make_discriminator",
]
