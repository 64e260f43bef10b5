"""The course's container for one split of a dataset: float image tensors in [-1, 1], labels, masks."""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np
import torch

from .registry import PHANTOM


def to_unit_range(arr: np.ndarray) -> torch.Tensor:
    """uint8 N×H×W(×C) → a new float tensor N×C×H×W in [-1, 1]."""
    t = torch.from_numpy(np.ascontiguousarray(arr))
    t = t.unsqueeze(1) if t.ndim == 3 else t.permute(0, 3, 1, 2)
    return t.float().div_(127.5).sub_(1.0).contiguous()


def to_display(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] images → [0, 1] floats on the CPU, for plotting."""
    return images.detach().float().cpu().add(1).div(2).clamp(0, 1)


@dataclass
class ImageSet:
    """One split of a dataset as tensors.

    Every loader call returns a new ``ImageSet`` with its own tensors, so a caller
    may change one without affecting the next caller.

    Attributes:
        images: float tensor N×C×H×W in [-1, 1].
        labels: long tensor (N,) for single-label sets, (N, K) for multi-label ones.
        masks: float tensor N×1×H×W in {0, 1} for segmentation sets, else ``None``.
        name: the dataset that was asked for.
        used: the dataset actually used (``'phantom'`` after a fallback).
        label_names: class index → meaning.
        info: provenance (path, MD5 status, licence, citation, task).
    """

    images: torch.Tensor
    labels: torch.Tensor
    name: str
    used: str
    split: str
    size: int
    label_names: dict
    masks: torch.Tensor | None = None
    info: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def channels(self) -> int:
        return int(self.images.shape[1])

    @property
    def is_real(self) -> bool:
        return self.used != PHANTOM

    @property
    def source(self) -> str:
        return "real" if self.is_real else "phantom"

    @property
    def device(self) -> torch.device:
        return self.images.device

    def class_counts(self) -> dict:
        """Samples per class (per label for multi-label sets)."""
        lab = self.labels.cpu()
        if lab.ndim > 1:
            return {self.label_names.get(i, str(i)): int(c) for i, c in enumerate(lab.sum(0).tolist())}
        counts = torch.bincount(lab, minlength=len(self.label_names)).tolist()
        return {self.label_names.get(i, str(i)): int(c) for i, c in enumerate(counts)}

    def _replace(self, images, labels, masks) -> "ImageSet":
        return ImageSet(images=images, labels=labels, name=self.name, used=self.used, split=self.split,
                        size=self.size, label_names=dict(self.label_names), masks=masks,
                        info=copy.deepcopy(self.info))

    def to(self, device, channels_last: bool = False) -> "ImageSet":
        """A copy with every tensor on ``device`` (optionally in channels_last memory format)."""
        device = torch.device(device)
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        masks = None if self.masks is None else self.masks.to(device).contiguous(memory_format=fmt)
        return self._replace(self.images.to(device).contiguous(memory_format=fmt), self.labels.to(device), masks)

    def subset(self, n: int | None = None, generator: torch.Generator | None = None) -> "ImageSet":
        """The first ``n`` samples of a seeded shuffle (all of them when ``n`` is None or ≥ N); always a copy."""
        if n is None or n >= len(self):
            return self.select(torch.arange(len(self)))
        g = generator or torch.Generator().manual_seed(0)
        return self.select(torch.randperm(len(self), generator=g)[: int(n)])

    def select(self, index) -> "ImageSet":
        """A copy holding the samples at ``index`` (a sequence or tensor of positions)."""
        idx = torch.as_tensor(index, dtype=torch.long).to(self.images.device)
        masks = None if self.masks is None else self.masks[idx]
        return self._replace(self.images[idx], self.labels[idx], masks)

    def __repr__(self) -> str:
        shape = "×".join(map(str, self.images.shape))
        extra = ", masks" if self.masks is not None else ""
        return (f"ImageSet({self.name!r} {self.split}, {shape}, used={self.used!r}, {self.source}{extra}, "
                f"device={self.device})")


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] images → ``uint8`` in [0, 255] on the same device (4× smaller than float32)."""
    return images.detach().float().add(1).mul(127.5).round().clamp(0, 255).to(torch.uint8)


def from_uint8(images: torch.Tensor) -> torch.Tensor:
    """``uint8`` images → float32 in [-1, 1], computed exactly as the loaders compute them."""
    return images.float().div_(127.5).sub_(1.0)
