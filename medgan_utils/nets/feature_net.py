"""The small CNN whose penultimate layer embeds images for the course's distribution metrics."""
from __future__ import annotations

import torch
import torch.nn as nn

__all__ = ["FeatureNet"]


class FeatureNet(nn.Module):
    """A small CNN classifier whose penultimate layer serves as an image embedding.

    Three blocks of (3×3 conv → batch norm → ReLU → 2×2 max-pool) with ``width``,
    ``2·width`` and ``4·width`` channels, global average pooling, a
    ``embed_dim``-d fully connected embedding with ReLU, and a linear head.
    Global pooling makes it work for any input size from 28 px up (e.g. 28–128).

    Args:
        in_channels: 1 (grayscale) or 3 (RGB).
        num_classes: number of logits (classes, or labels for a multi-label task).
        width: channels of the first block.
        embed_dim: size of the feature vector returned by :meth:`features`.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 2, width: int = 32, embed_dim: int = 128):
        super().__init__()
        self.config = {"in_channels": int(in_channels), "num_classes": int(num_classes), "width": int(width),
                       "embed_dim": int(embed_dim)}
        chans = [int(in_channels), width, 2 * width, 4 * width]
        blocks = []
        for cin, cout in zip(chans[:-1], chans[1:]):
            blocks += [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
                       nn.ReLU(inplace=True), nn.MaxPool2d(2)]
        self.body = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.embed = nn.Sequential(nn.Flatten(), nn.Linear(4 * width, embed_dim), nn.ReLU(inplace=True))
        self.head = nn.Linear(embed_dim, num_classes)

    @property
    def in_channels(self) -> int:
        return self.config["in_channels"]

    @property
    def feature_dim(self) -> int:
        return self.config["embed_dim"]

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, embed_dim) penultimate embedding of images ``x`` (N×C×H×W in [-1, 1])."""
        return self.embed(self.pool(self.body(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits (N, num_classes)."""
        return self.head(self.features(x))
