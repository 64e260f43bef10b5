"""Figures the notebooks share: image grids, per-class montages, curves, and animations that work offline."""
from __future__ import annotations

import re

import matplotlib.pyplot as plt
import torch
from torchvision.utils import make_grid

from ..data.imageset import to_display

__all__ = ["to_display", "image_grid", "show_grid", "montage_by_class", "plot_curves", "animation_html",
           "plot_reliability"]

#: matplotlib's player draws its buttons with Font Awesome from a CDN: offline (a workshop, the course website)
#: they are blank. These characters are in every common font.
PLAYER_GLYPHS = {"fa-minus": "\u2212", "fa-fast-backward": "\u21e4", "fa-step-backward": "\u2190",
                 "fa-play fa-flip-horizontal": "\u25c0", "fa-pause": "\u275a\u275a", "fa-play": "\u25b6",
                 "fa-step-forward": "\u2192", "fa-fast-forward": "\u21e5", "fa-plus": "+"}




def image_grid(images: torch.Tensor, nrow: int = 8, padding: int = 2) -> torch.Tensor:
    """A C×H×W grid (values in [0, 1]) of [-1, 1] images, via ``torchvision.utils.make_grid``."""
    return make_grid(to_display(images), nrow=nrow, padding=padding, pad_value=1.0)


def show_grid(images: torch.Tensor, nrow: int = 8, title: str | None = None, ax=None, figsize=None,
              row_labels=None, col_labels=None, fontsize: float = 8):
    """Show [-1, 1] images as one grid (``nrow`` images per row); returns the matplotlib axes.

    ``row_labels`` (one per row, drawn left of it) and ``col_labels`` (one per column, drawn above it) say what the
    rows and columns are: class, real or generated, seed. The title then sits above the column labels."""
    grid = image_grid(images, nrow=nrow)
    if ax is None:
        _, ax = plt.subplots(figsize=figsize or (min(12, nrow * 1.2), min(12, (len(images) / nrow + 1) * 1.2)))
    if grid.shape[0] == 1 or torch.allclose(grid[0], grid[1]) and torch.allclose(grid[1], grid[2]):
        ax.imshow(grid[0].numpy(), cmap="gray", vmin=0, vmax=1)
    else:
        ax.imshow(grid.permute(1, 2, 0).numpy())
    ax.set_axis_off()
    if row_labels is not None or col_labels is not None:
        _label_grid(ax, images, nrow, row_labels, col_labels, fontsize)
    if title:
        ax.set_title(title, pad=4 + (1.6 * fontsize if col_labels is not None else 0))
    return ax


def _label_grid(ax, images: torch.Tensor, nrow: int, row_labels, col_labels, fontsize: float, padding: int = 2):
    """Row labels left of each row and column labels above each column of a :func:`image_grid` (data coords)."""
    h, w = images.shape[-2:]
    rows = -(-len(images) // nrow)
    cols = min(nrow, len(images))
    for j, label in enumerate(list(col_labels or [])[:cols]):
        ax.text(padding + j * (w + padding) + w / 2, -padding, str(label), ha="center", va="bottom",
                fontsize=fontsize)
    for i, label in enumerate(list(row_labels or [])[:rows]):
        ax.text(-2 * padding, padding + i * (h + padding) + h / 2, str(label), ha="right", va="center",
                fontsize=fontsize)


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


def plot_curves(history: dict, keys, ax=None, title: str | None = None, reference: float | None = None,
                xlabel: str = "step", ylabel: str | None = None):
    """Plot ``history[k]`` for each key in ``keys`` (lists of numbers); optional horizontal reference line. The y
    axis is labelled ``ylabel``, else with the keys."""
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.2))
    for k in keys:
        ax.plot(history[k], label=k, lw=1.2)
    if reference is not None:
        ax.axhline(reference, color="k", ls="--", lw=0.8, label=f"{reference:g}")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel if ylabel is not None else ", ".join(map(str, keys)))
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    return ax


def animation_html(anim, default_mode: str | None = None) -> str:
    """``anim.to_jshtml()`` with no network dependency: the Font Awesome stylesheet link is dropped and each
    button icon becomes a plain character (see :data:`PLAYER_GLYPHS`). ``default_mode``: "once", "loop" or
    "reflect", as in matplotlib (None: "loop" when the animation repeats)."""
    html = anim.to_jshtml(default_mode=default_mode)
    html = re.sub(r'<link rel="stylesheet"\s+href="[^"]*font-awesome[^"]*">', "", html)
    for icon, glyph in PLAYER_GLYPHS.items():
        html = html.replace(f'<i class="fa {icon}"></i>', glyph)
    return html


def plot_reliability(ax, calib: dict, label: str, **style):
    """Draw a reliability diagram from :func:`~medgan_utils.evaluation.operating_point.calibration`: the
    observed frequency of the disease against the mean predicted probability, per bin (dot area ∝ images)."""
    bins = calib["bins"]
    x, y = [b["confidence"] for b in bins], [b["frequency"] for b in bins]
    line = ax.plot(x, y, "-", label=f"{label} (ECE {calib['ece']:.3f})", **style)[0]
    ax.scatter(x, y, s=[8 + 2 * b["n"] ** 0.8 for b in bins], color=line.get_color(), alpha=0.7)
    ax.plot([0, 1], [0, 1], ":", color="grey")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("predicted probability of the disease")
    ax.set_ylabel("observed frequency of the disease")
    return ax
