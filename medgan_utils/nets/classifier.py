"""Diagnosis classifiers for 28-px images: a compact CNN for CPUs and MedMNIST v2's ResNet-18.

* :class:`CompactCNN`: two blocks of (3×3 conv, batch norm, ReLU) ×2 + max-pool, then
  global average pooling, dropout and a linear layer. Width 16: about 17 k parameters; a
  BreastMNIST epoch takes well under a second on two CPU cores.
* :func:`resnet18_small`: torchvision's ResNet-18 with a 3×3 stride-1 first convolution
  and no max-pool, the usual adaptation of ResNets to small images, as used for
  MedMNIST v2's 28-px benchmark (Yang et al. 2023). About 11 M parameters: a GPU model.
"""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["CompactCNN", "resnet18_small", "make_classifier", "CLASSIFIERS"]

CLASSIFIERS = ("cnn", "resnet18")


def _conv_block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(True),
        nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(True),
        nn.MaxPool2d(2))


class CompactCNN(nn.Module):
    """A small CNN classifier: logits of ``n_classes`` classes for C × H × W images in [-1, 1]."""

    def __init__(self, in_channels: int = 1, n_classes: int = 2, width: int = 16, dropout: float = 0.2):
        super().__init__()
        self.body = nn.Sequential(_conv_block(in_channels, width), _conv_block(width, 2 * width))
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout),
                                  nn.Linear(2 * width, n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def resnet18_small(in_channels: int = 1, n_classes: int = 2) -> nn.Module:
    """ResNet-18 for small images: a 3×3 stride-1 stem and no max-pool, so 28 px keeps its detail."""
    from torchvision.models import resnet18

    net = resnet18(weights=None, num_classes=n_classes)
    net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
    net.maxpool = nn.Identity()
    return net


def make_classifier(name: str, in_channels: int, n_classes: int, seed: int | None = None) -> nn.Module:
    """``'cnn'`` or ``'resnet18'``, initialised under ``seed`` without touching the global RNG."""
    key = str(name).strip().lower()
    if key not in CLASSIFIERS:
        raise ValueError(f"Unknown classifier {name!r}. Fix: use one of {', '.join(CLASSIFIERS)}.")
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(int(seed))
        return CompactCNN(in_channels, n_classes) if key == "cnn" else resnet18_small(in_channels, n_classes)
