"""Splits without near copies: the same lesion never sits on both sides of a split.

:func:`leak_free_splits` loads a dataset's three splits, groups the images of all of them into clusters of near
copies (:func:`~medgan_utils.evaluation.neighbours.near_copy_clusters`: exact hashes and the thumbnail rule),
and then either

* ``mode="grouped"``: redraws the split so that every cluster lies in one split, stratified by class, at the
  published split sizes (:func:`~medgan_utils.data.sampling.grouped_split`). For BUSI the course's split is its
  own draw, so it may be redrawn; the same holds for a user's own data;
* ``mode="published"``: keeps the published validation and test splits (comparability with the literature) and
  drops every training image that has a near copy in validation or test;
* ``mode="as_published"``: changes nothing and only reports (to show what leakage does).

Near-copy pairs whose labels conflict are listed. The test split comes back sealed.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..core.errors import SettingError
from ..data.imageset import ImageSet
from ..data.load import load_dataset
from ..data.sampling import SealedSplit, grouped_split
from ..evaluation.neighbours import near_copy_clusters, nearest_neighbours, standardised_thumbnails

__all__ = ["SPLIT_MODES", "CourseSplits", "leak_free_splits", "lookup_baseline"]

SPLIT_MODES = ("grouped", "published", "as_published")
_ORDER = ("train", "val", "test")


@dataclass
class CourseSplits:
    """What :func:`leak_free_splits` returns: train and val as ImageSets, test sealed, and the hygiene report."""

    train: ImageSet
    val: ImageSet
    test: SealedSplit
    report: dict                      # metrics.split of results.json
    conflicts: list = field(default_factory=list)   # near-copy pairs across splits with different labels
    cross_pairs: list = field(default_factory=list)  # near-copy pairs across splits as published
    published_train: ImageSet | None = None         # the training split as published (for the look-up baseline)


def _concat(sets: list[ImageSet]) -> ImageSet:
    first = sets[0]
    masks = None if first.masks is None else torch.cat([s.masks for s in sets])
    out = first._replace(torch.cat([s.images for s in sets]), torch.cat([s.labels for s in sets]), masks)
    out.split = "pool"
    return out


def _strata(labels: torch.Tensor) -> torch.Tensor:
    return labels[:, 0] if labels.ndim > 1 else labels


def _cross_pairs(pairs, origin, labels) -> list[dict]:
    """Near-copy pairs that join two different splits as published (train–val, train–test, val–test)."""
    lab = _strata(labels)
    out = []
    for a, b, d in pairs:
        (sa, ia), (sb, ib) = origin[a], origin[b]
        if sa == sb:
            continue
        if _ORDER.index(sa) > _ORDER.index(sb):   # the earlier split second: ("test", i) against ("train", j)
            (sa, ia, a), (sb, ib, b) = (sb, ib, b), (sa, ia, a)
        out.append({"split": sb, "index": ib, "other_split": sa, "other_index": ia, "distance": d,
                    "label": int(lab[b]), "other_label": int(lab[a])})
    return sorted(out, key=lambda p: p["distance"])


def leak_free_splits(dataset, size: int, mode: str = "grouped", seed: int = 0, threshold: float | None = None,
                     **load_kwargs) -> CourseSplits:
    """Train, validation and a sealed test split of ``dataset`` at ``size`` px, without near copies across them.

    See the module text for the modes. ``report`` holds ``grouped``, ``mode``, ``near_copies``
    (``val_train``/``test_train``: validation and test images with a training near copy *in the splits
    returned*), ``published_near_copies`` (the same counts in the published split), ``dropped_train``,
    ``label_conflicts``, ``threshold`` and ``clusters``.
    """
    if mode not in SPLIT_MODES:
        raise SettingError(f"SPLIT={mode!r} is not a split mode. Fix: use one of {', '.join(SPLIT_MODES)}.")
    parts = {s: load_dataset(dataset, s, size, **load_kwargs) for s in _ORDER}
    pool = _concat([parts[s] for s in _ORDER])
    origin = [(s, i) for s in _ORDER for i in range(len(parts[s]))]
    found = near_copy_clusters(pool.images, threshold=threshold)
    cluster = torch.as_tensor(found["cluster"], dtype=torch.long)
    cross = _cross_pairs(found["pairs"], origin, pool.labels)
    published = {f"{s}_{o}": len({p["index"] for p in cross if (p["split"], p["other_split"]) == (s, o)})
                 for s, o in (("val", "train"), ("test", "train"), ("test", "val"))}
    conflicts = [p for p in cross if p["label"] != p["other_label"]]
    offsets = {"train": 0, "val": len(parts["train"]), "test": len(parts["train"]) + len(parts["val"])}
    if mode == "grouped":
        sizes = {s: len(parts[s]) for s in _ORDER}
        chosen = grouped_split(_strata(pool.labels), cluster, sizes, seed=seed)
        sets = {s: pool.select(chosen[s]) for s in _ORDER}
        for s in _ORDER:
            sets[s].split = s
            sets[s].info["split"] = f"grouped re-split (seed {seed}): no near-copy cluster crosses splits"
        dropped = 0
        member = {s: set(cluster[chosen[s]].tolist()) for s in _ORDER}
        after = {f"{s}_{o}": int(sum(int(c) in member[o] for c in cluster[chosen[s]]))
                 for s, o in (("val", "train"), ("test", "train"), ("test", "val"))}
    else:
        sets = dict(parts)
        held_out = set(cluster[offsets["val"]:].tolist())
        train_clusters = cluster[: len(parts["train"])]
        keep = [i for i, c in enumerate(train_clusters.tolist()) if mode == "as_published" or c not in held_out]
        dropped = len(parts["train"]) - len(keep)
        sets["train"] = parts["train"].select(keep)
        after = dict(published) if mode == "as_published" else {"val_train": 0, "test_train": 0,
                                                                   "test_val": published["test_val"]}
    test_set = sets["test"]
    report = {"grouped": mode == "grouped", "mode": mode, "near_copies": after,
              "published_near_copies": published, "dropped_train": dropped, "label_conflicts": len(conflicts),
              "threshold": found["threshold"], "clusters": found["n_clusters"],
              "sizes": {s: len(sets[s]) for s in _ORDER}}
    return CourseSplits(train=sets["train"], val=sets["val"], test=SealedSplit(lambda: test_set.select(
        torch.arange(len(test_set)))), report=report, conflicts=conflicts, cross_pairs=cross,
        published_train=parts["train"])


def lookup_baseline(query_images: torch.Tensor, train_images: torch.Tensor, size: int = 16) -> dict:
    """The leakage baseline: for each query image, its nearest training image by standardised thumbnails.

    Predict the twin's label or mask: where a split leaks, this look-up needs no training and beats a network
    on the leaked images. Returns ``{"index": (N,) tensor of training indices, "distance": (N,) RMS distance}``.
    """
    q, r = standardised_thumbnails(query_images, size), standardised_thumbnails(train_images, size)
    if q.shape[1] != r.shape[1]:
        raise SettingError("Query and training images differ in channels. Fix: compare images of one kind.")
    dist, idx = nearest_neighbours(q, r)
    return {"index": idx, "distance": dist / q.shape[1] ** 0.5}
