"""Figures the notebooks share: image grids, per-class montages, curves."""
from __future__ import annotations

import matplotlib.pyplot as plt
import torch
from torchvision.utils import make_grid

from ..data.imageset import to_display

__all__ = ["to_display", "image_grid", "show_grid", "montage_by_class", "plot_curves"]




def image_grid(images: torch.Tensor, nrow: int = 8, padding: int = 2) -> torch.Tensor:
    """A C×H×W grid (values in [0, 1]) of [-1, 1] images, via ``torchvision.utils.make_grid``."""
    return make_grid(to_display(images), nrow=nrow, padding=padding, pad_value=1.0)


def show_grid(images: torch.Tensor, nrow: int = 8, title: str | None = None, ax=None, figsize=None):
    """Show [-1, 1] images as one grid; returns the matplotlib axes."""
    grid = image_grid(images, nrow=nrow)
    if ax is None:
        _, ax = plt.subplots(figsize=figsize or (min(12, nrow * 1.2), min(12, (len(images) / nrow + 1) * 1.2)))
    if grid.shape[0] == 1 or torch.allclose(grid[0], grid[1]) and torch.allclose(grid[1], grid[2]):
        ax.imshow(grid[0].numpy(), cmap="gray", vmin=0, vmax=1)
    else:
        ax.imshow(grid.permute(1, 2, 0).numpy())
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    return ax


def montage_by_class(ds, per_class: int = 8, title: str | None = None, generator: torch.Generator | None = None):
    """One row of ``per_class`` random images for each class of an :class:`~medgan_utils.data.ImageSet`."""
    g = generator or torch.Generator().manual_seed(0)
    labels = ds.labels.cpu()
    classes = sorted(ds.label_names)
    fig, axes = plt.subplots(len(classes), 1, figsize=(per_class * 1.1, 1.4 * len(classes) + 0.4), squeeze=False)
    for ax, c in zip(axes[:, 0], classes):
        idx = (labels == c).nonzero().flatten() if labels.ndim == 1 else (labels[:, c] == 1).nonzero().flatten()
        if len(idx) == 0:
            ax.set_axis_off()
            ax.set_title(f"{c}: {ds.label_names[c]} (no samples)", fontsize=9)
            continue
        pick = idx[torch.randperm(len(idx), generator=g)[:per_class]]
        show_grid(ds.images[pick.to(ds.images.device)], nrow=per_class, ax=ax)
        ax.set_title(f"label {c}: {ds.label_names[c]} ({len(idx)} images)", fontsize=9, loc="left")
    fig.suptitle(title or f"{ds.name} ({ds.split}, {ds.size} px, {ds.source})")
    fig.tight_layout()
    return fig


def plot_curves(history: dict, keys, ax=None, title: str | None = None, reference: float | None = None, xlabel: str = "step"):
    """Plot ``history[k]`` for each key in ``keys`` (lists of numbers); optional horizontal reference line."""
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.2))
    for k in keys:
        ax.plot(history[k], label=k, lw=1.2)
    if reference is not None:
        ax.axhline(reference, color="k", ls="--", lw=0.8, label=f"{reference:g}")
    ax.set_xlabel(xlabel)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    return ax
