"""The one nearest-neighbour search of the course: chunked ``torch.cdist``, bounded memory.

Used by the precision/recall manifolds, the memorisation audit, the
duplicate search of notebook 01 and the near-duplicate check across splits
(:func:`near_duplicate_pairs`).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

_CHUNK_ELEMENTS = 1 << 24  # entries of one distance block (64 MB in float32)

__all__ = ["nearest_neighbours", "kth_neighbour_distance", "inside_any_ball", "near_duplicate_pairs",
           "near_copy_clusters", "standardised_thumbnails", "NEAR_DUPLICATE_MAX", "NEAR_DUPLICATE_RELATIVE"]

NEAR_DUPLICATE_MAX = 0.25      # RMS distance of standardised thumbnails: Pearson r >= 1 - 0.25²/2 ≈ 0.97
NEAR_DUPLICATE_RELATIVE = 0.5  # ... and at most half the typical distance between distinct reference images


def _rows_per_chunk(n_ref: int) -> int:
    return max(1, _CHUNK_ELEMENTS // max(1, n_ref))


def kth_neighbour_distance(x: torch.Tensor, k: int, device=None) -> torch.Tensor:
    """Distance of each row of ``x`` to its k-th nearest *other* row (chunked ``torch.cdist``)."""
    n = len(x)
    if n <= k:
        raise ValueError(f"Need more than k={k} samples for k-NN radii, got {n}.")
    dev = torch.device(device) if device is not None else x.device
    xr = x.to(dev)
    out = torch.empty(n, dtype=x.dtype)
    step = _rows_per_chunk(n)
    for i in range(0, n, step):
        d = torch.cdist(xr[i:i + step], xr)
        rows = torch.arange(len(d), device=dev)
        d[rows, rows + i] = float("inf")  # exclude the point itself
        out[i:i + len(d)] = d.topk(k, dim=1, largest=False).values[:, k - 1].cpu()
    return out


def inside_any_ball(query: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor, device=None) -> torch.Tensor:
    """Boolean (N_query,): is the query within ``radii[j]`` of some centre j?"""
    dev = torch.device(device) if device is not None else query.device
    c, r = centres.to(dev), radii.to(dev)
    out = torch.empty(len(query), dtype=torch.bool)
    step = _rows_per_chunk(len(c))
    for i in range(0, len(query), step):
        d = torch.cdist(query[i:i + step].to(dev), c)
        out[i:i + len(d)] = (d <= r[None, :]).any(1).cpu()
    return out


def nearest_neighbours(query: torch.Tensor, ref: torch.Tensor, device=None, *,
                       exclude_self: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Euclidean distance and index of each query row's nearest row of ``ref`` (rows are flattened vectors).

    The search uses chunked ``torch.cdist``; the distance to the chosen neighbour is
    then recomputed directly, so exact copies give exactly 0. With ``exclude_self``
    (query and ref the same set) a row is not matched with itself.
    """
    if exclude_self and len(query) != len(ref):
        raise ValueError("exclude_self needs query and reference to be the same set")
    dev = torch.device(device) if device is not None else query.device
    r = ref.to(dev)
    idx = torch.empty(len(query), dtype=torch.long)
    step = _rows_per_chunk(len(r))
    for i in range(0, len(query), step):
        d = torch.cdist(query[i:i + step].to(dev), r)
        if exclude_self:
            rows = torch.arange(len(d), device=dev)
            d[rows, rows + i] = float("inf")
        idx[i:i + len(d)] = d.argmin(1).cpu()
    dist = (query.cpu() - ref.cpu()[idx]).norm(dim=1)
    return dist, idx


def standardised_thumbnails(images: torch.Tensor, size: int = 16) -> torch.Tensor:
    """Rows N×(C·size²): each image area-averaged to size×size, then shifted and scaled to mean 0, std 1.

    Area averaging removes noise, JPEG artefacts and sub-thumbnail-pixel shifts; standardising removes
    brightness and contrast changes. A constant image becomes a row of zeros.
    """
    x = torch.as_tensor(images).detach().float().cpu()
    x = x.unsqueeze(1) if x.ndim == 3 else x
    if x.ndim != 4:
        raise ValueError(f"images must be N×C×H×W or N×H×W, got shape {tuple(x.shape)}.")
    rows = F.interpolate(x, size=(int(size), int(size)), mode="area").flatten(1)
    rows = rows - rows.mean(1, keepdim=True)
    return rows / rows.std(1, unbiased=False, keepdim=True).clamp_min(1e-8)


def near_duplicate_pairs(query_images: torch.Tensor, reference_images: torch.Tensor, size: int = 16,
                         threshold: float | None = None, *, exclude_self: bool = False,
                         device=None) -> tuple[list[dict], float]:
    """Query images that are near copies of a reference image (e.g. test images also in train, re-encoded).

    Both sets become :func:`standardised_thumbnails` (so images of different sizes compare, e.g. 28-px
    BreastMNIST against 128-px BUSI); each query's nearest reference is found with
    :func:`nearest_neighbours`, and the distance is the RMS difference of the thumbnails. For standardised
    rows that distance d and the Pearson correlation r of the thumbnails are tied: d² = 2(1 − r), so d is
    0 for a copy, about √2 for unrelated images and 2 for a negative.

    Default ``threshold`` (a pair is flagged when d < threshold):
    ``min(NEAR_DUPLICATE_MAX, NEAR_DUPLICATE_RELATIVE × median nearest-neighbour distance within the
    reference set)`` = min(0.25, 0.5 × m). The absolute bound, r ≥ 0.97 between 16×16 thumbnails, keeps
    copies with noise, re-compression, brightness changes or shifts of a pixel or two and rejects distinct
    cases of ordinary datasets. The relative bound protects datasets whose distinct images are all alike
    (m small): there a pair must also be twice as close as distinct reference images typically are to
    each other. m is measured within the reference set (usually the large training split), so a query set
    full of duplicates does not move the threshold. Pass ``threshold`` to override; review flagged pairs
    by eye (``plot_memorisation_pairs``-style) before dropping anything.

    Args:
        exclude_self: query and reference are the same set; an image is not paired with itself
            (each duplicate pair then appears twice, once from each side).
    Returns:
        ``(pairs, threshold)``: pairs as dicts ``{"query_index", "reference_index", "distance"}``, closest
        first, and the threshold used.
    """
    q, r = standardised_thumbnails(query_images, size), standardised_thumbnails(reference_images, size)
    if q.shape[1] != r.shape[1]:
        raise ValueError(f"query and reference images have different channel counts ({q.shape[1] // size**2} vs "
                         f"{r.shape[1] // size**2}). Fix: convert both to gray or both to RGB.")
    if len(q) == 0 or len(r) == 0:
        return [], float(threshold if threshold is not None else NEAR_DUPLICATE_MAX)
    scale = q.shape[1] ** 0.5
    if threshold is None:
        threshold = NEAR_DUPLICATE_MAX
        if len(r) > 1:
            within = nearest_neighbours(r, r, device=device, exclude_self=True)[0] / scale
            threshold = min(threshold, NEAR_DUPLICATE_RELATIVE * float(within.median()))
    dist, idx = nearest_neighbours(q, r, device=device, exclude_self=exclude_self)
    dist = dist / scale
    flagged = torch.nonzero(dist < float(threshold)).flatten().tolist()
    pairs = [{"query_index": i, "reference_index": int(idx[i]), "distance": float(dist[i])} for i in flagged]
    return sorted(pairs, key=lambda p: p["distance"]), float(threshold)


def _union_find_labels(n: int, pairs) -> np.ndarray:
    parent = np.arange(n)

    def root(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a, b in pairs:
        ra, rb = root(int(a)), root(int(b))
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    roots = np.array([root(i) for i in range(n)])
    return np.unique(roots, return_inverse=True)[1]


def near_copy_clusters(images: torch.Tensor, size: int = 16, threshold: float | None = None,
                       device=None) -> dict:
    """Group a pool of images into clusters of near copies (the same lesion, frame or re-encoded file).

    Two passes: an exact-hash pass (8-bit quantised pixels) joins identical images, and the thumbnail rule of
    :func:`near_duplicate_pairs` joins every pair whose standardised-thumbnail RMS distance is below
    ``threshold`` (default ``min(0.25, 0.5 × median nearest-neighbour distance in the pool)``). Clusters are the
    connected components, so a chain of near copies is one cluster. Returns ``{"cluster": (N,) int array,
    "pairs": [(i, j, distance), ...] with i < j, "threshold": float, "n_clusters": int}``.
    """
    from ..data.sampling import image_hashes

    rows = standardised_thumbnails(images, size)
    n = len(rows)
    scale = rows.shape[1] ** 0.5 if n else 1.0
    if threshold is None:
        threshold = NEAR_DUPLICATE_MAX
        if n > 1:
            within = nearest_neighbours(rows, rows, device=device, exclude_self=True)[0] / scale
            threshold = min(threshold, NEAR_DUPLICATE_RELATIVE * float(within.median()))
    pairs = []
    dev = torch.device(device) if device is not None else rows.device
    r = rows.to(dev)
    step = _rows_per_chunk(n)
    for i in range(0, n, step):
        d = torch.cdist(r[i:i + step], r) / scale
        a, b = torch.nonzero(d < float(threshold), as_tuple=True)
        a = a.cpu() + i
        keep = a < b.cpu()
        pairs += [(int(x), int(y), float(d[x - i, y])) for x, y in zip(a[keep].tolist(), b.cpu()[keep].tolist())]
    first_seen: dict[str, int] = {}
    for i, h in enumerate(image_hashes(images) if n else []):
        if h in first_seen:
            pairs.append((first_seen[h], i, 0.0))
        else:
            first_seen[h] = i
    cluster = _union_find_labels(n, [(a, b) for a, b, _ in pairs]) if n else np.zeros(0, dtype=int)
    return {"cluster": cluster, "pairs": sorted(set(pairs)), "threshold": float(threshold),
            "n_clusters": int(cluster.max()) + 1 if n else 0}
