"""Who trains on what: stratified fractions, synthetic class counts, the count-matched control, leak removal,
classical augmentation, and a test split that opens once.

Everything here works on indices and labels, so a test can prove where each image came from.
"""
from __future__ import annotations

import hashlib
import math

import torch

from ..core.errors import SettingError

__all__ = ["stratified_fraction", "synthetic_class_counts", "count_matched_indices", "image_hashes",
           "drop_leaked_duplicates", "classical_augment", "AUGMENT_STRENGTHS", "augment_at", "grouped_split",
           "SealedSplit", "SealedSplitReopened"]


def _counts(labels: torch.Tensor, n_classes: int | None = None) -> torch.Tensor:
    labels = torch.as_tensor(labels).cpu().long().view(-1)
    return torch.bincount(labels, minlength=int(n_classes or int(labels.max()) + 1))


def stratified_fraction(labels, fraction: float, seed: int = 0, min_per_class: int = 2) -> torch.Tensor:
    """Sorted indices of a stratified ``fraction`` of ``labels`` (each class keeps ``ceil(fraction · n_c)``).

    With the same seed, smaller fractions are subsets of larger ones (each class is shuffled once and cut).
    Raises when a class would keep fewer than ``min_per_class`` images.
    """
    fraction = float(fraction)
    if not 0 < fraction <= 1:
        raise SettingError(f"A training fraction must lie in (0, 1], got {fraction}. Fix: use e.g. 0.1, 0.25 or 1.0.")
    labels = torch.as_tensor(labels).cpu().long().view(-1)
    gen = torch.Generator().manual_seed(int(seed))
    keep = []
    for c, n_c in enumerate(_counts(labels).tolist()):
        if n_c == 0:
            continue
        members = torch.nonzero(labels == c).view(-1)
        k = math.ceil(fraction * n_c)
        if k < min_per_class:
            raise SettingError(f"Class {c} has {n_c} training images, so fraction {fraction:g} keeps only {k} "
                               f"(at least {min_per_class} are needed). Fix: use a larger fraction, or add "
                               f"images of class {c}.")
        keep.append(members[torch.randperm(n_c, generator=gen)[:k]])
    return torch.sort(torch.cat(keep)).values


def synthetic_class_counts(real_labels, n_synthetic: int, n_classes: int, balanced: bool = False) -> list[int]:
    """How many synthetic images of each class to draw.

    ``balanced=False``: in proportion to the real class counts. ``balanced=True``: top up the rarest classes first,
    so that real + synthetic counts are as equal as possible, then spread the rest evenly.
    Counts sum to ``n_synthetic`` exactly (largest-remainder rounding).
    """
    real = _counts(real_labels, n_classes).double()
    n_synthetic = int(n_synthetic)
    if balanced:
        total = real.sum() + n_synthetic
        want = torch.clamp(total / n_classes - real, min=0)       # what would equalise the classes
        if want.sum() > n_synthetic:                                  # not enough to equalise: water-fill
            lo, hi = 0.0, float(total)
            for _ in range(60):
                level = (lo + hi) / 2
                lo, hi = (level, hi) if torch.clamp(level - real, min=0).sum() < n_synthetic else (lo, level)
            want = torch.clamp(lo - real, min=0)
        share = want
    else:
        share = real / real.sum() * n_synthetic
    share = share * (n_synthetic / share.sum()) if share.sum() > 0 else torch.full_like(real, n_synthetic / n_classes)
    base = torch.floor(share)
    order = torch.argsort(share - base, descending=True)
    out = base.long()
    out[order[: n_synthetic - int(base.sum())]] += 1
    return out.tolist()


def count_matched_indices(real_labels, synthetic_counts: list[int], seed: int = 0) -> torch.Tensor:
    """The count-matched control: every real image once, plus ``synthetic_counts[c]`` real images of class ``c``
    drawn again with replacement, so the arm has the synthetic arm's size and class mix, and no new images."""
    labels = torch.as_tensor(real_labels).cpu().long().view(-1)
    gen = torch.Generator().manual_seed(int(seed))
    extra = []
    for c, k in enumerate(synthetic_counts):
        members = torch.nonzero(labels == c).view(-1)
        if k and not len(members):
            raise SettingError(f"Class {c} has no real image to resample. Fix: use a larger training fraction.")
        if k:
            extra.append(members[torch.randint(len(members), (int(k),), generator=gen)])
    return torch.cat([torch.arange(len(labels)), *extra])


def image_hashes(images: torch.Tensor) -> list[str]:
    """MD5 of each image quantised to 8-bit levels ([-1, 1] → 0..255): equal hashes mean identical images."""
    q = images.detach().float().cpu().add(1).mul(127.5).round().clamp(0, 255).to(torch.uint8).flatten(1).numpy()
    return [hashlib.md5(row.tobytes()).hexdigest() for row in q]


def drop_leaked_duplicates(train, **others) -> tuple[object, list[dict]]:
    """``train`` without the images that also occur (exactly) in another split, and what was dropped.

    The other splits stay as published, so results remain comparable with the literature; only the training
    copy goes. ``others`` are ImageSets or lists of hashes, e.g. ``val=val, test=sealed_test.hashes()``.
    """
    seen = {}
    for split, data in others.items():
        for i, h in enumerate(data if isinstance(data, list) else image_hashes(data.images)):
            seen.setdefault(h, (split, i))
    dropped, keep = [], []
    for i, h in enumerate(image_hashes(train.images)):
        if h in seen:
            dropped.append({"train_index": i, "train_label": int(train.labels[i]), "also_in": seen[h][0],
                            "index_there": seen[h][1]})
        else:
            keep.append(i)
    return train.select(keep), dropped


#: Named strengths of :func:`classical_augment`, mildest first (the notebook picks one on validation).
AUGMENT_STRENGTHS = {
    "mild": {"max_degrees": 5.0, "max_shift": 0.04, "scale": (0.95, 1.05), "intensity": 0.05},
    "medium": {"max_degrees": 10.0, "max_shift": 0.08, "scale": (0.9, 1.1), "intensity": 0.1},
    "strong": {"max_degrees": 20.0, "max_shift": 0.12, "scale": (0.8, 1.2), "intensity": 0.2},
}


def classical_augment(x: torch.Tensor, generator: torch.Generator, max_degrees: float = 10.0,
                      max_shift: float = 0.08, scale: tuple = (0.9, 1.1), flip: bool = True,
                      intensity: float = 0.1, padding_mode: str = "reflection") -> torch.Tensor:
    """A new batch: per image a random horizontal flip, a small affine map (rotation ±``max_degrees``, shift
    ±``max_shift`` of the width, zoom in ``scale``) and a contrast/brightness change of ±``intensity``.

    Pixels the map pulls from outside the image are filled by mirroring it (``padding_mode="reflection"``), so
    no black corner or border appears that real images never have (``"zeros"`` shows the artefact)."""
    n, dev = len(x), x.device

    def uniform(lo, hi):
        return (torch.rand(n, generator=generator) * (hi - lo) + lo).to(dev)

    angle = uniform(-max_degrees, max_degrees) * math.pi / 180
    zoom = uniform(*scale)
    sign = torch.where(uniform(0, 1) < 0.5, -1.0, 1.0) if flip else torch.ones(n, device=dev)
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.stack([torch.stack([cos * sign, -sin, uniform(-2 * max_shift, 2 * max_shift)], 1),
                         torch.stack([sin * sign, cos, uniform(-2 * max_shift, 2 * max_shift)], 1)], 1)
    grid = torch.nn.functional.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    out = torch.nn.functional.grid_sample(x + 1, grid, padding_mode=padding_mode, align_corners=False) - 1
    contrast = uniform(1 - intensity, 1 + intensity).view(n, 1, 1, 1)
    bright = uniform(-intensity, intensity).view(n, 1, 1, 1)
    return (out * contrast + bright).clamp(-1, 1)


def augment_at(strength: str):
    """:func:`classical_augment` at a named strength of :data:`AUGMENT_STRENGTHS`, as an ``augment(x, gen)``."""
    if strength not in AUGMENT_STRENGTHS:
        raise SettingError(f"Unknown augmentation strength {strength!r}. Fix: choose from "
                           f"{', '.join(AUGMENT_STRENGTHS)}.")
    settings = AUGMENT_STRENGTHS[strength]

    def augment(x, generator):
        return classical_augment(x, generator, **settings)

    augment.__name__ = f"classical_augment_{strength}"
    return augment


def _split_targets(labels: torch.Tensor, sizes: dict) -> dict:
    """Per split, per class: how many images of each class the split should get (largest remainder)."""
    counts = _counts(labels).double()
    share = counts / counts.sum()
    targets = {}
    for split, n in sizes.items():
        want = share * int(n)
        base = torch.floor(want)
        order = torch.argsort(want - base, descending=True)
        t = base.long()
        t[order[: int(n) - int(base.sum())]] += 1
        targets[split] = t
    return targets


def grouped_split(labels, groups, sizes: dict, seed: int = 0) -> dict:
    """Split the images into ``sizes`` (e.g. ``{"train": 452, "val": 64, "test": 131}``) so that every group
    (a cluster of near copies) lies in **one** split, stratified by class.

    Groups are taken largest first (shuffled by ``seed`` within a size) and each goes to the split whose quota
    for the group's main class is least filled, among the splits with room for it. The class mix of every split
    then matches the whole within about one group's size. Returns ``{split: sorted index tensor}``.
    """
    labels = torch.as_tensor(labels).cpu().long().view(-1)
    groups = torch.as_tensor(groups).cpu().long().view(-1)
    if len(groups) != len(labels):
        raise SettingError(f"groups ({len(groups)}) and labels ({len(labels)}) differ in length.")
    if sum(int(v) for v in sizes.values()) != len(labels) or any(int(v) < 0 for v in sizes.values()):
        raise SettingError(f"The split sizes {sizes} must be ≥ 0 and add up to the {len(labels)} images.")
    targets = _split_targets(labels, sizes)
    gen = torch.Generator().manual_seed(int(seed))
    ids = torch.unique(groups)
    ids = ids[torch.randperm(len(ids), generator=gen)]
    members = {int(g): torch.nonzero(groups == g).view(-1) for g in ids}
    order = sorted(members, key=lambda g: -len(members[g]))  # stable: the shuffle breaks ties
    filled = {s: torch.zeros_like(t) for s, t in targets.items()}
    out = {s: [] for s in sizes}
    for g in order:
        idx = members[g]
        main = int(torch.bincount(labels[idx]).argmax())
        room = [s for s in sizes if int(sizes[s]) - sum(len(i) for i in out[s]) >= len(idx)] or list(sizes)
        pick = min(room, key=lambda s: (float(filled[s][main]) / int(targets[s][main]) if int(targets[s][main])
                                        else math.inf, -(int(sizes[s]) - sum(len(i) for i in out[s]))))
        out[pick].append(idx)
        filled[pick] += torch.bincount(labels[idx], minlength=len(filled[pick]))
    return {s: torch.sort(torch.cat(v)).values if v else torch.zeros(0, dtype=torch.long) for s, v in out.items()}


class SealedSplitReopened(SettingError):
    """The test split was opened a second time."""


class SealedSplit:
    """A split that can be opened **once** (for the final table); its image hashes are readable before that,
    for duplicate checks. ``SealedSplit(lambda: load_dataset(name, "test", size))``."""

    def __init__(self, load, name: str = "test"):
        self._load, self.name = load, name
        self.opened_for: str | None = None
        self.times_opened = 0  # results.json records it: 1 in a clean run

    def map(self, transform) -> "SealedSplit":
        """A new sealed split that applies ``transform`` to the data when opened (e.g. resizing); this one
        must still be closed."""
        if self.opened_for is not None:
            raise SealedSplitReopened(f"The {self.name} split is already open. Fix: map it before opening it.")
        load = self._load
        return SealedSplit(lambda: transform(load()), self.name)

    def hashes(self) -> list[str]:
        """Image hashes only (no labels): enough to find leaks, useless for model selection."""
        return image_hashes(self._load().images)

    def images_only(self) -> torch.Tensor:
        """The images without labels or masks, for hygiene checks such as near-duplicate search."""
        return self._load().images

    def open(self, purpose: str):
        if self.opened_for is not None:
            raise SealedSplitReopened(
                f"The {self.name} split was already opened for {self.opened_for!r}. It is opened once, for the final "
                "table; select models on the validation split. Fix: rerun the notebook from the top.")
        self.opened_for = str(purpose)
        self.times_opened += 1
        return self._load()
