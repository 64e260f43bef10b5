"""The one nearest-neighbour search of the course: chunked ``torch.cdist``, bounded memory.

Used by the precision/recall manifolds, the memorisation audit and the
duplicate search of notebook 01.
"""
from __future__ import annotations

import torch

_CHUNK_ELEMENTS = 1 << 24  # entries of one distance block (64 MB in float32)

__all__ = ["nearest_neighbours", "kth_neighbour_distance", "inside_any_ball"]


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
