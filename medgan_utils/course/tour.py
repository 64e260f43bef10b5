"""Helpers for the course's opening notebooks (00 setup, 01 background).

Small, dataset-agnostic measurements that the guided tour of the data needs:
class balance, intensity statistics per class, exact duplicates, lesion sizes,
pixel-space nearest neighbours, a timed matrix multiply, plus two figures (the
generator-versus-discriminator diagram and images with their masks outlined).

Everything works on any :class:`~medgan_utils.data.ImageSet`, real or phantom,
so the notebooks can print what was *actually* loaded.
"""
from __future__ import annotations

import hashlib
import time
from collections import defaultdict

import numpy as np
import torch

from ..core.device import synchronize
from ..data.imageset import to_display
from ..evaluation.neighbours import nearest_neighbours as search_nearest


def _labels_1d(labels: torch.Tensor) -> torch.Tensor:
    lab = torch.as_tensor(labels).detach().cpu()
    if lab.ndim != 1:
        raise ValueError(f"expected single-label targets of shape (N,), got {tuple(lab.shape)}")
    return lab.long()


def class_balance(labels, label_names: dict | None = None) -> dict:
    """Counts, fractions and the majority-class rate of single-label targets.

    Args:
        labels: an :class:`~medgan_utils.data.ImageSet` or a 1-D integer tensor/array.
        label_names: class index → name (taken from the ImageSet when one is given).
    Returns:
        ``{"n", "counts", "fractions", "majority_label", "majority_name", "majority_rate",
        "minority_label", "minority_name", "imbalance_ratio"}``. ``counts`` and ``fractions`` are keyed
        by class index; ``majority_rate`` is the accuracy of always predicting the most frequent class;
        ``imbalance_ratio`` is majority count / minority count (``inf`` if a class is empty).
    """
    if hasattr(labels, "labels") and hasattr(labels, "label_names"):
        label_names = label_names or labels.label_names
        labels = labels.labels
    lab = _labels_1d(labels)
    n = int(lab.numel())
    if n == 0:
        raise ValueError("class_balance needs at least one label")
    k = max(int(lab.max()) + 1, len(label_names or {}))
    counts = torch.bincount(lab, minlength=k).tolist()
    names = {i: (label_names or {}).get(i, str(i)) for i in range(k)}
    major = int(np.argmax(counts))
    minor = int(np.argmin(counts))
    return {
        "n": n,
        "counts": {i: int(c) for i, c in enumerate(counts)},
        "fractions": {i: c / n for i, c in enumerate(counts)},
        "majority_label": major,
        "majority_name": names[major],
        "majority_rate": counts[major] / n,
        "minority_label": minor,
        "minority_name": names[minor],
        "imbalance_ratio": counts[major] / counts[minor] if counts[minor] else float("inf"),
    }


def intensity_stats(ds) -> dict:
    """Grey-level statistics per class, on the display scale [0, 1] (0 = black, 1 = white).

    Returns ``{label: {"n", "pixel_mean", "pixel_sd", "image_mean_mean", "image_mean_sd"}}`` where
    ``pixel_*`` pool every pixel of the class and ``image_mean_*`` describe the spread of the
    per-image mean brightness (how much whole images differ from each other).
    """
    lab = _labels_1d(ds.labels)
    imgs = to_display(ds.images).flatten(1)  # N × (C·H·W) in [0, 1]
    out = {}
    for c in sorted(ds.label_names):
        sel = imgs[lab == c]
        if len(sel) == 0:
            out[c] = {"n": 0, "pixel_mean": float("nan"), "pixel_sd": float("nan"),
                      "image_mean_mean": float("nan"), "image_mean_sd": float("nan")}
            continue
        per_image = sel.mean(1)
        out[c] = {
            "n": int(len(sel)),
            "pixel_mean": float(sel.mean()),
            "pixel_sd": float(sel.std(unbiased=False)),
            "image_mean_mean": float(per_image.mean()),
            "image_mean_sd": float(per_image.std(unbiased=False)) if len(sel) > 1 else 0.0,
        }
    return out


def intensity_histograms(ds, bins: int = 32) -> tuple[np.ndarray, dict]:
    """Normalised grey-level histograms per class on [0, 1]: ``(bin_edges, {label: density})``.

    Each density integrates to 1 over [0, 1], so classes of different sizes compare directly.
    """
    lab = _labels_1d(ds.labels)
    imgs = to_display(ds.images).flatten(1)
    edges = np.linspace(0.0, 1.0, int(bins) + 1)
    out = {}
    for c in sorted(ds.label_names):
        vals = imgs[lab == c].flatten().numpy()
        hist, _ = np.histogram(vals, bins=edges, density=True) if vals.size else (np.zeros(int(bins)), None)
        out[c] = hist
    return edges, out


def find_duplicates(images: torch.Tensor) -> list[list[int]]:
    """Groups of indices whose images are identical after quantising to 8-bit grey levels.

    [-1, 1] images are mapped to 0..255 (as stored on disk) and hashed, so the
    check is exact, fast and independent of float rounding. Returns only groups
    with two or more members, each sorted, ordered by their first index.
    """
    q = to_display(images).mul(255).round().to(torch.uint8).flatten(1).numpy()
    groups: dict[str, list[int]] = defaultdict(list)
    for i, row in enumerate(q):
        groups[hashlib.md5(row.tobytes()).hexdigest()].append(i)
    return sorted((sorted(g) for g in groups.values() if len(g) > 1), key=lambda g: g[0])


def duplicates_across_splits(splits: dict) -> list[list[dict]]:
    """Exact duplicate images (see :func:`find_duplicates`) within and across the splits of one dataset.

    Args:
        splits: ``{"train": ImageSet, "val": ..., "test": ...}``, e.g. from :func:`~medgan_utils.data.load_splits`.
    Returns:
        one list per group of identical images, each member a dict ``{"split", "index", "label"}``
        (``index`` within its split), so leaks (a test image also in train) and label conflicts
        (the same image with two labels) can be read off directly.
    """
    names = list(splits)
    images = torch.cat([splits[s].images.detach().cpu() for s in names])
    owners = [(s, i, lab) for s in names for i, lab in enumerate(splits[s].labels.detach().cpu().tolist())]
    return [[{"split": owners[k][0], "index": owners[k][1], "label": owners[k][2]} for k in group]
            for group in find_duplicates(images)]


def nearest_neighbours(query: torch.Tensor, reference: torch.Tensor, exclude_self: bool = False
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """For each query image, the closest reference image in pixel space.

    Distances are root-mean-square differences on the display scale [0, 1], so 0 means
    identical and 1/255 ≈ 0.004 is one grey level everywhere. With ``exclude_self`` (query and
    reference the same set) an image is not matched with itself. Uses the course's one
    nearest-neighbour search, :func:`medgan_utils.evaluation.neighbours.nearest_neighbours`.

    Returns ``(distance, index)``, each of shape (len(query),).
    """
    q = to_display(query).flatten(1)
    r = to_display(reference).flatten(1)
    if q.shape[1] != r.shape[1]:
        raise ValueError(f"query and reference images differ in size: {q.shape[1]} vs {r.shape[1]} values")
    dist, idx = search_nearest(q, r, exclude_self=exclude_self)
    return dist / q.shape[1] ** 0.5, idx


def lesion_fraction(masks: torch.Tensor) -> torch.Tensor:
    """Fraction of each image covered by its mask, shape (N,), values in [0, 1]."""
    if masks is None:
        raise ValueError("this dataset has no masks")
    m = torch.as_tensor(masks).detach().float().cpu()
    return (m > 0.5).flatten(1).float().mean(1)


def time_matmul(device, n: int = 512, repeats: int = 10, dtype: torch.dtype = torch.float32,
                warmup: int = 2) -> dict:
    """Time ``repeats`` products of two n×n matrices on ``device``; report GFLOP/s.

    One n×n by n×n product costs 2·n³ floating-point operations. GPU work is
    asynchronous, so the clock is read only after ``torch.cuda.synchronize`` (or the
    MPS equivalent). Low-precision dtypes on CPU run through ``torch.autocast``.

    Returns ``{"device", "dtype", "n", "repeats", "seconds_per_matmul", "gflops"}``.
    """
    device = torch.device(device)
    n, repeats = int(n), int(repeats)
    if n < 1 or repeats < 1:
        raise ValueError("n and repeats must be positive")
    g = torch.Generator(device="cpu").manual_seed(0)
    a = torch.randn(n, n, generator=g).to(device)
    b = torch.randn(n, n, generator=g).to(device)
    low = dtype in (torch.bfloat16, torch.float16)
    if low and device.type != "cpu":
        a, b = a.to(dtype), b.to(dtype)

    def run(times):
        out = None
        for _ in range(times):
            if low and device.type == "cpu":
                with torch.autocast("cpu", dtype=dtype):
                    out = a @ b
            else:
                out = a @ b
        return out

    run(warmup)
    synchronize(device)
    start = time.perf_counter()
    out = run(repeats)
    synchronize(device)
    secs = (time.perf_counter() - start) / repeats
    assert out is not None and out.shape == (n, n)
    return {"device": str(device), "dtype": str(dtype).replace("torch.", ""), "n": n, "repeats": repeats,
            "seconds_per_matmul": secs, "gflops": 2 * n**3 / secs / 1e9}


# --------------------------------------------------------------------------- figures
def show_with_masks(ds, indices, ncols: int | None = None, color: str = "red", title: str | None = None):
    """Images of ``ds`` at ``indices`` with the outline of their mask drawn on top.

    Each panel is titled with its index, class name and lesion fraction. Returns the figure.
    """
    import matplotlib.pyplot as plt

    if ds.masks is None:
        raise ValueError(f"{ds.name} has no masks to overlay")
    indices = [int(i) for i in indices]
    ncols = ncols or len(indices)
    nrows = (len(indices) + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.2 * ncols, 2.7 * nrows + 0.3), squeeze=False)
    imgs = to_display(ds.images[indices])
    masks = ds.masks[indices].detach().float().cpu()
    frac = lesion_fraction(masks)
    labels = ds.labels[indices].cpu().tolist()
    for k, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if k >= len(indices):
            continue
        ax.imshow(imgs[k, 0].numpy(), cmap="gray", vmin=0, vmax=1)
        if masks[k, 0].max() > 0:
            ax.contour(masks[k, 0].numpy(), levels=[0.5], colors=color, linewidths=1.2)
        ax.set_title(f"#{indices[k]} {ds.label_names.get(labels[k], labels[k])}\nlesion {frac[k]:.0%}", fontsize=8)
    fig.suptitle(title or f"{ds.name} ({ds.split}, {ds.size} px, {ds.source}): mask outlines in {color}", fontsize=10)
    fig.tight_layout()
    return fig


def gan_diagram(ax=None, real_image=None, fake_image=None):
    """Draw the adversarial set-up: z → G → fake → D ← real; D → real/fake; gradients flowing back.

    Solid black arrows are the forward pass; dashed arrows are gradients: red for the
    discriminator's update, blue for the generator's (which passes *through* D without
    changing it). Optional 2-D arrays in [0, 1] are drawn as thumbnails of a real and a fake image.
    Returns the figure.
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    if ax is None:
        fig, ax = plt.subplots(figsize=(10, 4.0))
    else:
        fig = ax.figure
    ax.set_xlim(0, 11)
    ax.set_ylim(0, 5.4)
    ax.set_axis_off()

    def box(x, y, w, h, text, face, size=10, weight="normal"):
        ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.05,rounding_size=0.15",
                                    facecolor=face, edgecolor="black", linewidth=1.2))
        ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=size, weight=weight)
        return (x, y, w, h)

    def arrow(p, q, color="black", style="-", rad=0.0, text=None, text_xy=None, text_color=None):
        ax.add_patch(FancyArrowPatch(p, q, arrowstyle="-|>", mutation_scale=16, color=color, linewidth=1.6,
                                     linestyle=style, connectionstyle=f"arc3,rad={rad}"))
        if text:
            ax.text(*(text_xy or ((p[0] + q[0]) / 2, (p[1] + q[1]) / 2 + 0.2)), text, fontsize=8.5,
                    color=text_color or color, ha="center", va="center")

    box(0.1, 3.3, 1.6, 1.0, "noise z\n~ N(0, I)", "#eeeeee")
    box(2.3, 3.3, 1.7, 1.0, "Generator\nG", "#cfe2ff", size=11, weight="bold")
    box(4.6, 3.3, 1.7, 1.0, "fake image\nG(z)", "#fde2c8")
    box(4.6, 0.5, 1.7, 1.0, "real image x\n(training data)", "#d7f0d2")
    box(7.0, 1.9, 1.7, 1.0, "Discriminator\nD", "#f8d0d0", size=11, weight="bold")
    box(9.3, 1.9, 1.6, 1.0, "D(·) = P(real)\nreal or fake?", "#eeeeee", size=9)

    arrow((1.75, 3.8), (2.25, 3.8))
    arrow((4.05, 3.8), (4.55, 3.8))
    arrow((6.35, 3.6), (6.95, 2.75))
    arrow((6.35, 1.1), (6.95, 2.05))
    arrow((8.75, 2.4), (9.25, 2.4))
    # Gradients: the D loss updates D only; the G loss flows back through D (not updated) into G.
    arrow((10.1, 1.85), (7.85, 1.85), color="#c00000", style="--", rad=-0.45,
          text="∇ of D's loss: update D", text_xy=(9.0, 0.6))
    arrow((9.3, 2.75), (8.75, 2.75), color="#1f4fbf", style="--")
    arrow((7.0, 2.8), (3.15, 3.25), color="#1f4fbf", style="--", rad=-0.12,
          text="∇ of G's loss flows back through D\n(D's weights frozen) into G: update G",
          text_xy=(4.9, 2.45))
    ax.text(0.1, 0.15, "solid: forward pass    dashed: gradients (backward pass)", fontsize=8, color="#444444")

    # Optional thumbnails: a fake image above the fake box, a real one left of the real box.
    for img, rect in ((fake_image, (5.05, 4.4, 0.8, 0.8)), (real_image, (3.7, 0.6, 0.8, 0.8))):
        if img is None:
            continue
        sub = ax.inset_axes(list(rect), transform=ax.transData)
        sub.imshow(np.asarray(img, dtype=float), cmap="gray", vmin=0, vmax=1)
        sub.set_axis_off()
    ax.set_title("A GAN: the generator learns to fool the discriminator; the discriminator learns to tell them apart",
                 fontsize=10)
    return fig
