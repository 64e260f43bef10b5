"""DCGAN generator and discriminator (Radford, Metz & Chintala, ICLR 2016).

The recipe, as in the paper:

* no pooling and no fully connected hidden layers: the generator upsamples with
  stride-2 transposed convolutions, the discriminator downsamples with stride-2
  convolutions;
* batch norm in both networks, except on the generator's output layer and the
  discriminator's input layer;
* ReLU in the generator with a ``tanh`` output (images live in [-1, 1]),
  LeakyReLU(0.2) in the discriminator;
* weights drawn from N(0, 0.02), batch-norm scales from N(1, 0.02), biases 0.

One departure, on purpose: the discriminator returns a **logit** (no sigmoid).
The losses then use ``binary_cross_entropy_with_logits``, which is numerically
stable and is safe under mixed precision.

Layouts (``base`` = 64, the paper's width):

=====  ======================================  ==========================
size   generator feature maps                  discriminator feature maps
=====  ======================================  ==========================
28     z → 128@7 → 64@14 → C@28                C@28 → 64@14 → 128@7 → 1
32     z → 256@4 → 128@8 → 64@16 → C@32        mirror image
64     z → 512@4 → … → 64@32 → C@64            mirror image (the paper's 64-px net)
128    z → 1024@4 → … → 64@64 → C@128          mirror image
=====  ======================================  ==========================

Sizes of the form 4·2^k start from a 4×4 map; sizes 7·2^k (28, 56, ...) start
from 7×7, so 28 px needs no padding or cropping.

:func:`medgan_utils.nets.summary.layer_table` lists every layer's output shape and parameter count, which
the notebooks display next to the architecture.
"""
from __future__ import annotations

import math

import torch
from torch import nn

__all__ = [
    "Generator", "Discriminator", "make_dcgan", "dcgan_layout", "init_dcgan_weights", "SUPPORTED_SIZES",
]

SUPPORTED_SIZES = (28, 32, 64, 128)


def dcgan_layout(size: int) -> tuple[int, int]:
    """``(start, n_up)``: the generator's first feature-map size and its number of ×2 upsamplings.

    ``size`` must be ``4·2^k`` (k ≥ 1) or ``7·2^k`` (k ≥ 1); 28, 32, 64 and 128 are the
    sizes the course uses.
    """
    size = int(size)
    for start in (4, 7):
        ratio = size / start
        if ratio >= 2 and ratio == int(ratio) and (int(ratio) & (int(ratio) - 1)) == 0:
            return start, int(math.log2(ratio))
    raise ValueError(
        f"DCGAN image size must be 4·2^k or 7·2^k (e.g. {', '.join(map(str, SUPPORTED_SIZES))}), got {size}."
    )


def init_dcgan_weights(module: nn.Module, generator: torch.Generator | None = None) -> nn.Module:
    """DCGAN initialisation: conv weights N(0, 0.02), batch-norm scale N(1, 0.02), all biases 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            with torch.no_grad():
                m.weight.normal_(0.0, 0.02, generator=generator)
                if m.bias is not None:
                    m.bias.zero_()
        elif isinstance(m, nn.modules.batchnorm._BatchNorm):
            with torch.no_grad():
                m.weight.normal_(1.0, 0.02, generator=generator)
                m.bias.zero_()
    return module


class Generator(nn.Module):
    """DCGAN generator: latent vector ``z`` (N×latent_dim, or N×latent_dim×1×1) → image N×C×size×size in [-1, 1].

    Args:
        latent_dim: length of ``z`` (100 in the paper).
        channels: 1 for grayscale, 3 for RGB.
        size: output size in px (28, 32, 64, 128, or any 4·2^k / 7·2^k).
        base: width of the last hidden layer; widths double towards the input (64 in the paper).
        generator: optional ``torch.Generator`` for a reproducible initialisation.
    """

    def __init__(self, latent_dim: int = 100, channels: int = 1, size: int = 64, base: int = 64,
                 generator: torch.Generator | None = None):
        super().__init__()
        self.latent_dim, self.channels, self.size, self.base = int(latent_dim), int(channels), int(size), int(base)
        start, n_up = dcgan_layout(size)
        width = base * 2 ** (n_up - 1)
        # 1×1 → start×start: a transposed conv with kernel = start is a learned projection of z.
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(latent_dim, width, start, 1, 0, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
        ]
        for _ in range(n_up - 1):  # each block doubles the size and halves the width
            layers += [
                nn.ConvTranspose2d(width, width // 2, 4, 2, 1, bias=False),
                nn.BatchNorm2d(width // 2),
                nn.ReLU(inplace=True),
            ]
            width //= 2
        layers += [nn.ConvTranspose2d(width, channels, 4, 2, 1, bias=True), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        init_dcgan_weights(self, generator)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if z.ndim == 2:
            z = z[:, :, None, None]
        return self.net(z)


class Discriminator(nn.Module):
    """DCGAN discriminator: image N×C×size×size → one **logit** per image, shape (N,).

    Apply ``torch.sigmoid`` to read it as the probability "real"; train it with
    ``binary_cross_entropy_with_logits``.

    Args:
        channels: 1 for grayscale, 3 for RGB.
        size: input size in px (28, 32, 64, 128, or any 4·2^k / 7·2^k).
        base: width of the first layer; widths double with depth (64 in the paper).
        batch_norm: set False to remove batch norm (an exercise in notebook 03).
        norm: ``"batch"`` (DCGAN), ``"spectral"`` (spectral normalisation of every conv, Miyato et al.
            2018, and no batch norm) or ``"none"``; overrides ``batch_norm`` when given.
        generator: optional ``torch.Generator`` for a reproducible initialisation.
    """

    def __init__(self, channels: int = 1, size: int = 64, base: int = 64, batch_norm: bool = True,
                 generator: torch.Generator | None = None, norm: str | None = None):
        super().__init__()
        norm = norm or ("batch" if batch_norm else "none")
        if norm not in {"batch", "spectral", "none"}:
            raise ValueError(f"norm must be 'batch', 'spectral' or 'none', got {norm!r}.")
        self.channels, self.size, self.base, self.norm = int(channels), int(size), int(base), norm
        start, n_down = dcgan_layout(size)
        layers: list[nn.Module] = [nn.Conv2d(channels, base, 4, 2, 1, bias=True), nn.LeakyReLU(0.2, inplace=True)]
        width = base
        for _ in range(n_down - 1):
            layers += [nn.Conv2d(width, width * 2, 4, 2, 1, bias=norm != "batch")]
            if norm == "batch":
                layers += [nn.BatchNorm2d(width * 2)]
            layers += [nn.LeakyReLU(0.2, inplace=True)]
            width *= 2
        # start×start → 1×1: one logit per image.
        layers += [nn.Conv2d(width, 1, start, 1, 0, bias=True)]
        self.net = nn.Sequential(*layers)
        init_dcgan_weights(self, generator)
        if norm == "spectral":
            _add_spectral_norm(self.net, generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).flatten()


def _add_spectral_norm(net: nn.Module, generator: torch.Generator | None) -> None:
    """Spectral normalisation on every conv; its power-iteration vectors are drawn without touching the global RNG."""
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator)) if generator is not None else 0
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for i, m in enumerate(net):
            if isinstance(m, nn.Conv2d):
                net[i] = nn.utils.parametrizations.spectral_norm(m)


def make_dcgan(size: int = 64, channels: int = 1, latent_dim: int = 100, base: int = 64, seed: int | None = None,
               device=None, channels_last: bool = False, d_norm: str = "batch") -> tuple[Generator, Discriminator]:
    """A generator/discriminator pair for ``size`` px, optionally seeded and moved to ``device``.

    ``d_norm`` is the discriminator's normalisation: ``"batch"`` (DCGAN), ``"spectral"`` or ``"none"``.
    """
    g = torch.Generator().manual_seed(int(seed)) if seed is not None else None
    with torch.random.fork_rng(devices=[], enabled=seed is not None):  # a seeded build leaves the global RNG alone
        G = Generator(latent_dim, channels, size, base, generator=g)
        D = Discriminator(channels, size, base, generator=g, norm=d_norm)
    if device is not None or channels_last:
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        G = G.to(device or "cpu", memory_format=fmt)
        D = D.to(device or "cpu", memory_format=fmt)
    return G, D
