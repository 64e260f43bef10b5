"""A class-conditional DCGAN: a generator told which class to draw, and a projection discriminator.

Notebook 04 writes both classes out line by line; these are the package's copies
(a test ties the two bit for bit), used by the later notebooks.

* :class:`ConditionalGenerator`: the noise ``z`` and a learned embedding of the
  class ``y`` are concatenated, mapped to a ``2·base`` × s/4 × s/4 map, and
  upsampled twice with stride-2 transposed convolutions (DCGAN style: batch
  norm, ReLU, ``tanh`` output). At 28 px: 7 → 14 → 28.
* :class:`ProjectionDiscriminator` (Miyato & Koyama, ICLR 2018): a spectrally
  normalised convolutional feature map φ(x), summed over space, scored as
  ``ψ(φ(x)) + ⟨embed(y), φ(x)⟩``. The inner product "projects" the class onto the
  image features, so D judges whether an image is a *real image of class y*.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

__all__ = ["ConditionalGenerator", "ProjectionDiscriminator", "make_conditional_gan"]


def _check_size(size: int) -> int:
    size = int(size)
    if size < 8 or size % 4:
        raise ValueError(f"Conditional GAN image size must be a multiple of 4 and at least 8 px, got {size}. "
                         "Fix: load the data at 28, 32 or 64 px.")
    return size


class ConditionalGenerator(nn.Module):
    """z (latent_dim) + class y → image in [-1, 1] of ``channels`` × size × size."""

    def __init__(self, n_classes: int, size: int = 28, channels: int = 1, latent_dim: int = 100,
                 base: int = 64, embed_dim: int = 32):
        super().__init__()
        self.size, self.latent_dim, self.n_classes = _check_size(size), latent_dim, n_classes
        self.start = self.size // 4
        self.embed = nn.Embedding(n_classes, embed_dim)
        self.project = nn.Sequential(
            nn.Linear(latent_dim + embed_dim, 2 * base * self.start * self.start, bias=False),
            nn.Unflatten(1, (2 * base, self.start, self.start)),
            nn.BatchNorm2d(2 * base), nn.ReLU(True))
        self.upsample = nn.Sequential(
            nn.ConvTranspose2d(2 * base, base, 4, 2, 1, bias=False), nn.BatchNorm2d(base), nn.ReLU(True),
            nn.ConvTranspose2d(base, channels, 4, 2, 1), nn.Tanh())

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = torch.cat([z.flatten(1), self.embed(y)], dim=1)
        return self.upsample(self.project(h))


class ProjectionDiscriminator(nn.Module):
    """(image, class) → one logit per image: ψ(φ(x)) + ⟨embed(y), φ(x)⟩, every layer spectrally normalised."""

    def __init__(self, n_classes: int, size: int = 28, channels: int = 1, base: int = 64):
        super().__init__()
        _check_size(size)
        self.features = nn.Sequential(
            spectral_norm(nn.Conv2d(channels, base, 4, 2, 1)), nn.LeakyReLU(0.2, True),
            spectral_norm(nn.Conv2d(base, 2 * base, 4, 2, 1)), nn.LeakyReLU(0.2, True),
            spectral_norm(nn.Conv2d(2 * base, 4 * base, 3, 1, 1)), nn.LeakyReLU(0.2, True))
        self.score = spectral_norm(nn.Linear(4 * base, 1))
        self.embed = spectral_norm(nn.Embedding(n_classes, 4 * base))

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        phi = self.features(x).sum(dim=(2, 3))                       # φ(x): global sum pooling
        return self.score(phi).squeeze(1) + (self.embed(y) * phi).sum(dim=1)


def _init_normal(module: nn.Module) -> nn.Module:
    """DCGAN initialisation, spectrally normalised layers included: weights N(0, 0.02), BN scales N(1, 0.02),
    biases 0 (spectral norm rescales the weights it receives, so only their direction matters there)."""
    with torch.no_grad():
        for m in module.modules():
            if hasattr(m, "parametrizations") and "weight" in m.parametrizations:
                m.parametrizations.weight.original.normal_(0.0, 0.02)
            elif isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear, nn.Embedding)):
                m.weight.normal_(0.0, 0.02)
            elif isinstance(m, nn.BatchNorm2d):
                m.weight.normal_(1.0, 0.02)
            bias = getattr(m, "bias", None)
            if isinstance(bias, torch.Tensor) and not isinstance(m, nn.BatchNorm2d):
                bias.zero_()
            elif isinstance(m, nn.BatchNorm2d):
                m.bias.zero_()
    return module


def make_conditional_gan(n_classes: int, size: int = 28, channels: int = 1, latent_dim: int = 100,
                         base: int = 64, seed: int | None = None, classes: tuple | None = None
                         ) -> tuple[nn.Module, nn.Module]:
    """A (G, D) pair with DCGAN initialisation. With ``seed`` the networks are the same on every call and the
    global RNG is left as it was (spectral norm draws its power-iteration vectors at construction).

    ``classes=(GeneratorClass, DiscriminatorClass)`` builds other classes with the same constructor arguments,
    e.g. the ones notebook 04 writes out (default: this module's two).
    """
    g_cls, d_cls = classes or (ConditionalGenerator, ProjectionDiscriminator)
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(int(seed))
        G = _init_normal(g_cls(n_classes, size, channels, latent_dim, base))
        D = _init_normal(d_cls(n_classes, size, channels, base))
    return G, D
