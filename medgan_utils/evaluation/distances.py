"""Distances between two sets of image features: Fréchet distance, KID, and k-NN precision and recall.

* **Fréchet distance** (:func:`frechet_distance`): fit one Gaussian to each
  feature set and compare them,
  ``FD = ||mu_a - mu_b||^2 + Tr(C_a + C_b - 2 (C_a C_b)^{1/2})``.
* **KID** (:func:`kid`): the unbiased estimate of the squared maximum mean
  discrepancy with the cubic polynomial kernel ``k(x, y) = (x·y / d + 1)^3``,
  averaged over random subsets. It has no bias from the sample size, so ~0
  really means "same distribution".
* **Precision and recall** (:func:`precision_recall`) on k-nearest-neighbour
  manifolds (Kynkäänniemi et al., NeurIPS 2019): precision is the share of
  generated samples inside the real manifold (fidelity), recall the share of
  real samples inside the generated manifold (coverage).
"""
from __future__ import annotations

import hashlib
from collections import OrderedDict

import numpy as np
import torch

from .neighbours import inside_any_ball, kth_neighbour_distance

__all__ = ["frechet_distance", "frechet_distance_from_stats", "trace_sqrt_product", "kid", "polynomial_kernel", "unbiased_mmd2", "knn_radii",
           "precision_recall", "as_features"]


def _as_numpy64(feats) -> np.ndarray:
    if isinstance(feats, torch.Tensor):
        feats = feats.detach().cpu().double().numpy()
    arr = np.asarray(feats, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"Features must be a 2-D array (N, D), got shape {arr.shape}.")
    return arr


def as_features(feats) -> torch.Tensor:
    t = feats.detach() if isinstance(feats, torch.Tensor) else torch.as_tensor(np.asarray(feats))
    if t.ndim != 2:
        raise ValueError(f"Features must be a 2-D array (N, D), got shape {tuple(t.shape)}.")
    return t.float().cpu()


def _psd_sqrt(c: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric PSD matrix (tiny negative eigenvalues clipped to 0)."""
    w, v = np.linalg.eigh((c + c.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def trace_sqrt_product(c1: np.ndarray, c2: np.ndarray) -> float:
    """``Tr((C1 C2)^{1/2})`` for covariance matrices, stably.

    ``C1 C2`` is not symmetric, but it is similar to the symmetric PSD matrix
    ``S C2 S`` with ``S = C1^{1/2}``, so its eigenvalues are real and ≥ 0 and the
    trace of its square root is the sum of their square roots. Working with
    symmetric eigen-decompositions avoids the complex round-off of a general
    matrix square root and copes with singular (rank-deficient) covariances.
    """
    s = _psd_sqrt(c1)
    m = s @ c2 @ s
    ev = np.linalg.eigvalsh((m + m.T) / 2)
    return float(np.sqrt(np.clip(ev, 0, None)).sum())


def frechet_distance_from_stats(mu1, c1, mu2, c2, method: str = "eigh") -> float:
    """Fréchet distance between the Gaussians N(mu1, c1) and N(mu2, c2); see :func:`frechet_distance`."""
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    c1, c2 = np.atleast_2d(np.asarray(c1, np.float64)), np.atleast_2d(np.asarray(c2, np.float64))
    if mu1.shape != mu2.shape or c1.shape != c2.shape:
        raise ValueError(f"Feature dimensions differ: {mu1.shape} vs {mu2.shape}.")
    diff = mu1 - mu2
    if method == "eigh":
        tr_sqrt = trace_sqrt_product(c1, c2)
    elif method == "sqrtm":
        from scipy import linalg

        covmean = linalg.sqrtm(c1 @ c2)
        if not np.all(np.isfinite(covmean)):  # singular product: nudge the diagonals
            eps = 1e-6 * max(np.trace(c1), np.trace(c2), 1e-12) / len(c1)
            offset = np.eye(len(c1)) * eps
            covmean = linalg.sqrtm((c1 + offset) @ (c2 + offset))
        covmean = np.real(covmean)  # imaginary parts are round-off
        tr_sqrt = float(np.trace(covmean))
    else:
        raise ValueError(f"Unknown method {method!r}; use 'eigh' or 'sqrtm'.")
    fd = float(diff @ diff + np.trace(c1) + np.trace(c2) - 2.0 * tr_sqrt)
    return max(fd, 0.0)


def frechet_distance(feats_a, feats_b, *, method: str = "eigh") -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (N_a×D and N_b×D).

    ``FD = ||mu_a - mu_b||^2 + Tr(C_a) + Tr(C_b) - 2 Tr((C_a C_b)^{1/2})``, in
    float64. ``method='eigh'`` (default) takes the matrix square root through
    symmetric eigen-decompositions (:func:`trace_sqrt_product`), which is stable
    for singular covariances (fewer samples than dimensions); ``'sqrtm'`` uses
    :func:`scipy.linalg.sqrtm` and drops round-off imaginary parts. The result is
    clipped at 0. FD is biased upwards for small samples, so compare values only
    at equal sample sizes.
    """
    a, b = _as_numpy64(feats_a), _as_numpy64(feats_b)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"Feature dimensions differ: {a.shape[1]} vs {b.shape[1]}.")
    if len(a) < 2 or len(b) < 2:
        raise ValueError("Fréchet distance needs at least 2 samples per set.")
    return frechet_distance_from_stats(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False),
                                       method=method)


def polynomial_kernel(a: torch.Tensor, b: torch.Tensor, degree: int = 3, coef0: float = 1.0) -> torch.Tensor:
    """KID's kernel ``k(x, y) = (x·y / D + coef0)^degree`` for every pair of rows (batched over leading dims)."""
    return (a @ b.transpose(-1, -2)).div_(a.shape[-1]).add_(coef0).pow_(degree)


def _mean_without_self_pairs(k: torch.Tensor, idx=None) -> torch.Tensor:
    if idx is None:  # the diagonal: each sample with itself
        m = k.shape[-1]
        return (k.sum((-2, -1)) - k.diagonal(dim1=-2, dim2=-1).sum(-1)) / (m * (m - 1))
    same = idx[:, None] == idx[None, :]  # a bootstrap draw may repeat a sample: every copy's pair is left out
    return k[idx][:, idx][~same].mean()


def unbiased_mmd2(kaa: torch.Tensor, kbb: torch.Tensor, kab: torch.Tensor, ia=None, ib=None) -> torch.Tensor:
    """The unbiased MMD² of two samples from their kernel matrices (batched over leading dims):
    ``mean_{i≠j} k(a_i, a_j) + mean_{i≠j} k(b_i, b_j) − 2 mean_{i,j} k(a_i, b_j)``.

    With row indices ``ia``, ``ib`` (a bootstrap draw of 2-D kernels, rows possibly repeated) the kernels are read
    at those rows, and pairs of one sample with itself are left out, so a repeated row never counts ``k(x, x)``.
    """
    cross = kab.mean((-2, -1)) if ia is None else kab[ia][:, ib].mean()
    return _mean_without_self_pairs(kaa, ia) + _mean_without_self_pairs(kbb, ib) - 2 * cross


def kid(feats_a, feats_b, num_subsets: int = 50, subset_size: int = 500, seed: int = 0, *,
        degree: int = 3, coef0: float = 1.0) -> tuple[float, float]:
    """Kernel Inception Distance (Bińkowski et al. 2018) on any features: ``(mean, std)``.

    For each of ``num_subsets`` random subsets of ``m = min(subset_size, N_a, N_b)``
    samples per set (drawn without replacement, seeded), the unbiased estimate

    ``MMD² = mean_{i≠j} k(a_i, a_j) + mean_{i≠j} k(b_i, b_j) - 2 mean_{i,j} k(a_i, b_j)``

    with the polynomial kernel ``k(x, y) = (x·y / D + coef0)^degree``. The mean
    over subsets is unbiased, so it scatters around 0 (and can be slightly
    negative) for two samples of one distribution; ``std`` is the spread across
    subsets.
    """
    a = as_features(feats_a).double()
    b = as_features(feats_b).double()
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"Feature dimensions differ: {a.shape[1]} vs {b.shape[1]}.")
    m = min(int(subset_size), len(a), len(b))
    if m < 2:
        raise ValueError("KID needs at least 2 samples per set.")
    g = torch.Generator().manual_seed(int(seed))
    idx_a = torch.stack([torch.randperm(len(a), generator=g)[:m] for _ in range(int(num_subsets))])
    idx_b = torch.stack([torch.randperm(len(b), generator=g)[:m] for _ in range(int(num_subsets))])
    step = max(1, (1 << 22) // (m * m))  # subsets per batch: kernel blocks of at most 32 MB
    within_a = _within_term(a, idx_a, step, degree, coef0)  # one reference set against many: computed once
    vals = torch.empty(int(num_subsets), dtype=torch.float64)
    for s in range(0, int(num_subsets), step):
        x, y = a[idx_a[s:s + step]], b[idx_b[s:s + step]]
        # unbiased_mmd2's sum, in its order, with the reference set's term from the cache
        vals[s:s + step] = (within_a[s:s + step] + _mean_without_self_pairs(polynomial_kernel(y, y, degree, coef0))
                            - 2 * polynomial_kernel(x, y, degree, coef0).mean((-2, -1)))
    std = float(vals.std()) if len(vals) > 1 else 0.0
    return float(vals.mean()), std


_WITHIN_CACHE: "OrderedDict[tuple, torch.Tensor]" = OrderedDict()


def _within_term(a: torch.Tensor, idx: torch.Tensor, step: int, degree: int, coef0: float) -> torch.Tensor:
    """``mean_{i≠j} k(a_i, a_j)`` for each subset ``idx[s]`` of ``a``, memoised on the features' bytes and the
    subsets: scoring many generators against one training set (06's 26 enhancers) computes it once."""
    key = (hashlib.blake2b(a.detach().cpu().contiguous().numpy().tobytes(), digest_size=16).hexdigest(), tuple(a.shape),
           hashlib.blake2b(idx.contiguous().numpy().tobytes(), digest_size=16).hexdigest(), int(step), int(degree), float(coef0))
    if key not in _WITHIN_CACHE:
        out = torch.empty(len(idx), dtype=torch.float64)
        for s in range(0, len(idx), step):
            x = a[idx[s:s + step]]
            out[s:s + step] = _mean_without_self_pairs(polynomial_kernel(x, x, degree, coef0))
        _WITHIN_CACHE[key] = out
        while len(_WITHIN_CACHE) > 8:
            _WITHIN_CACHE.popitem(last=False)
    _WITHIN_CACHE.move_to_end(key)
    return _WITHIN_CACHE[key]



def knn_radii(feats, k: int = 3, *, device=None) -> torch.Tensor:
    """Distance of each sample to its k-th nearest other sample (the k-NN ball radii of :func:`precision_recall`)."""
    return kth_neighbour_distance(as_features(feats), int(k), device)


def precision_recall(real_feats, fake_feats, k: int = 3, *, device=None, real_radii=None) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019) on k-NN manifolds.

    Each sample spans a ball reaching its k-th nearest neighbour within its own
    set; the union of a set's balls estimates its manifold.

    * precision = share of fake samples inside the real manifold (are samples realistic?);
    * recall = share of real samples inside the fake manifold (is the data's variety covered?).

    Distances are computed in chunks with ``torch.cdist`` (on ``device`` if given),
    so memory stays bounded for tens of thousands of samples. ``real_radii``
    (from :func:`knn_radii` with the same ``k``) skips recomputing the real balls
    when one real set is compared with several fake ones.
    """
    real, fake = as_features(real_feats), as_features(fake_feats)
    if real.shape[1] != fake.shape[1]:
        raise ValueError(f"Feature dimensions differ: {real.shape[1]} vs {fake.shape[1]}.")
    k = int(k)
    r_rad = kth_neighbour_distance(real, k, device) if real_radii is None else torch.as_tensor(real_radii).float()
    if len(r_rad) != len(real):
        raise ValueError(f"real_radii has {len(r_rad)} entries for {len(real)} real samples.")
    f_rad = kth_neighbour_distance(fake, k, device)
    precision = inside_any_ball(fake, real, r_rad, device).float().mean()
    recall = inside_any_ball(real, fake, f_rad, device).float().mean()
    return float(precision), float(recall)
