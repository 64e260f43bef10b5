"""Does a generator copy its training images? The nearest-neighbour memorisation audit.

For every generated image the nearest *training* image is found; the same is
done for real held-out images, which show how close two different real
images usually are. Distances are minimised over small shifts and a
horizontal flip, so shifted or mirrored copies are caught; re-exposed copies
(another brightness or contrast) can still slip through in pixel space, and
the feature-space version is there for those. What the audit cannot say: a
low-fidelity generator is also far from every training image (distance is
confounded with fidelity, so read it next to precision), and a
nearest-neighbour distance is not a membership-inference test (notebook 08).
"""
from __future__ import annotations

import math

import torch

from ..data.imageset import to_display
from .distances import as_features
from .features import extract_features, images_of
from .neighbours import nearest_neighbours

__all__ = ["memorisation_audit", "plot_memorisation_pairs"]


def _nn_summary(gen_d: torch.Tensor, gen_i: torch.Tensor, test_d: torch.Tensor, quantile: float,
                near_exact: float, k_pairs: int) -> dict:
    thr = float(torch.quantile(test_d.double(), quantile))
    copies = (gen_d < thr) | (gen_d <= near_exact)
    test_copies = (test_d < thr) | (test_d <= near_exact)
    g_med, t_med = float(gen_d.median()), float(test_d.median())
    ratio = g_med / t_med if t_med > 0 else (0.0 if g_med == 0 else float("inf"))
    order = torch.argsort(gen_d, stable=True)[:k_pairs]
    return {
        "gen_nn_median": g_med, "test_nn_median": t_med, "ratio": ratio,
        "n_copies": int(copies.sum()), "copy_fraction": float(copies.float().mean()),
        "test_copy_fraction": float(test_copies.float().mean()),
        "threshold": thr, "threshold_quantile": quantile, "near_exact": near_exact,
        "n_generated": len(gen_d), "n_test": len(test_d),
        "pairs": [[int(g), int(gen_i[g])] for g in order],
        "pair_distances": [float(gen_d[g]) for g in order],
        "gen_nn_dist": gen_d, "gen_nn_index": gen_i, "test_nn_dist": test_d,
    }


def _interior(x: torch.Tensor, margin: int) -> torch.Tensor:
    return x[..., margin:x.shape[-2] - margin, margin:x.shape[-1] - margin] if margin else x


def _variants(x: torch.Tensor, max_shift: int, flips: bool):
    """The interior of ``x`` (N×C×H×W, a ``max_shift`` border dropped) under every shift up to ``max_shift``
    px each way, with and without a horizontal flip: the compared pixels always exist, nothing wraps around."""
    m = max_shift
    H, W = x.shape[-2:]
    for flip in ((False, True) if flips else (False,)):
        src = x.flip(-1) if flip else x
        for dy in range(-m, m + 1):
            for dx in range(-m, m + 1):
                yield src[..., m + dy:H - m + dy, m + dx:W - m + dx]


def _nearest_under_transforms(query: torch.Tensor, ref_flat: torch.Tensor, max_shift: int, flips: bool, device):
    """Smallest distance (and index) to the flattened reference interiors ``ref_flat``, over every shift and
    flip of each query image."""
    best_d = torch.full((len(query),), float("inf"))
    best_i = torch.zeros(len(query), dtype=torch.long)
    for v in _variants(query.float().cpu(), max_shift, flips):
        d, i = nearest_neighbours(v.flatten(1), ref_flat, device)
        better = d < best_d
        best_d[better], best_i[better] = d[better], i[better]
    return best_d, best_i


def memorisation_audit(generated, train, test, *, feature_net: FeatureNet | None = None, k_pairs: int = 8,
                       quantile: float = 0.01, near_exact: float = 0.01, device=None, max_shift: int = 1,
                       flips: bool = True, gen_features=None, train_features=None, test_features=None) -> dict:
    """Does the generator copy its training images?

    For every generated image, find its nearest *training* image; do the same for
    every real *test* image. Test images were never trained on, so their
    nearest-training distances show how close two different real images
    usually are. A generator that samples fresh images gives about the same
    distances (``ratio`` ≈ 1); one that memorises gives much smaller ones
    (``ratio`` ≪ 1).

    Pixel space (the primary result): RMS distance per pixel on the display scale
    [0, 1] (the scale of notebook 01), ``||x - y||_2 / sqrt(C·H·W)``, minimised over
    shifts of up to ``max_shift`` px and a horizontal flip of the query image (so a
    shifted or mirrored copy still counts as close), computed on the image interior
    (a ``max_shift`` border dropped, so every compared pixel exists in both images);
    held-out images get the same search. A generated image counts as a copy
    (``n_copies``) if it is closer to a training image than the ``quantile``
    (1 %) of the test→train distances, or near-exact (RMS ≤ ``near_exact``).
    By construction about 1 % of test images fall below the threshold
    (``test_copy_fraction``), which is the reference for ``copy_fraction``.

    With ``feature_net`` (or precomputed ``*_features``) the same analysis in
    feature space is returned under ``"feature"``.

    Returns:
        dict with ``gen_nn_median``, ``test_nn_median``, ``ratio``, ``n_copies``,
        ``copy_fraction``, ``test_copy_fraction``, ``threshold``, ``pairs``
        (``[generated_index, train_index]`` for the ``k_pairs`` closest
        generated images, for :func:`plot_memorisation_pairs`),
        ``pair_distances``, the per-sample tensors ``gen_nn_dist``,
        ``gen_nn_index``, ``test_nn_dist``, ``space`` and ``feature`` (or None).
    """
    g_img, tr_img, te_img = images_of(generated), images_of(train), images_of(test)
    if g_img.shape[1:] != tr_img.shape[1:] or te_img.shape[1:] != tr_img.shape[1:]:
        raise ValueError(
            f"Generated {tuple(g_img.shape[1:])}, train {tuple(tr_img.shape[1:])} and test "
            f"{tuple(te_img.shape[1:])} images must have the same C×H×W for a pixel-space audit "
            "(resize the generated images with torch.nn.functional.interpolate)."
        )
    tr_flat = _interior(tr_img.float().cpu(), max_shift).flatten(1)
    gd, gi = _nearest_under_transforms(g_img, tr_flat, max_shift, flips, device)
    td, _ = _nearest_under_transforms(te_img, tr_flat, max_shift, flips, device)
    scale = 2 * math.sqrt(tr_flat.shape[1])  # RMS on the [0, 1] display scale
    out = _nn_summary(gd / scale, gi, td / scale, quantile, near_exact, k_pairs)
    out["space"] = (f"pixel (RMS per pixel on the [0, 1] scale, best over shifts of up to {max_shift} px"
                    f"{' and a horizontal flip' if flips else ''}; the outer {max_shift} px excluded)")
    out["feature"] = None
    if feature_net is not None or gen_features is not None:
        if gen_features is None or train_features is None or test_features is None:
            if feature_net is None:
                raise ValueError("Pass feature_net, or all three of gen_/train_/test_features.")
            gen_features = extract_features(feature_net, g_img) if gen_features is None else gen_features
            train_features = extract_features(feature_net, tr_img) if train_features is None else train_features
            test_features = extract_features(feature_net, te_img) if test_features is None else test_features
        fg, ftr, fte = as_features(gen_features), as_features(train_features), as_features(test_features)
        fgd, fgi = nearest_neighbours(fg, ftr, device)
        ftd, _ = nearest_neighbours(fte, ftr, device)
        feat = _nn_summary(fgd, fgi, ftd, quantile, 0.0, k_pairs)
        feat["space"] = "feature (L2 in the feature net's embedding)"
        out["feature"] = feat
    return out


def plot_memorisation_pairs(audit: dict, generated, train, n: int = 8, title: str | None = None):
    """Figure: the generated images closest to the training set (top) above their nearest training image.

    Each column is titled with the pixel-space RMS distance; a red title marks a
    pair counted as a copy. Returns the matplotlib figure.
    """
    import matplotlib.pyplot as plt

    g_img, tr_img = images_of(generated), images_of(train)
    pairs = audit["pairs"][:n]
    dists = audit.get("pair_distances", [None] * len(pairs))[:n]
    thr = audit.get("threshold", 0.0)
    cols = max(1, len(pairs))
    fig, axes = plt.subplots(2, cols, figsize=(1.3 * cols + 0.8, 3.0), squeeze=False)
    for j, ((gi, ti), d) in enumerate(zip(pairs, dists)):
        for row, img in enumerate((g_img[gi], tr_img[ti])):
            ax = axes[row, j]
            im = to_display(img[None])[0]
            if im.shape[0] == 1:
                ax.imshow(im[0].numpy(), cmap="gray", vmin=0, vmax=1)
            else:
                ax.imshow(im.permute(1, 2, 0).numpy())
            ax.set_xticks([])
            ax.set_yticks([])
        if d is not None:
            is_copy = d < thr or d <= audit.get("near_exact", 0.0)
            axes[0, j].set_title(f"d={d:.3f}", fontsize=8, color="red" if is_copy else "black")
    axes[0, 0].set_ylabel("generated", fontsize=9)
    axes[1, 0].set_ylabel("nearest train", fontsize=9)
    fig.suptitle(title or (f"Closest generated–training pairs (copy threshold d < {thr:.3f}; "
                           f"test median {audit.get('test_nn_median', float('nan')):.3f})"), fontsize=9)
    fig.tight_layout()
    return fig
