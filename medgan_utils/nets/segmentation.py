"""A compact U-Net and the pix2pix PatchGAN discriminator, for the lesion segmentation of notebook 05.

* :class:`UNet` (Ronneberger, Fischer & Brox, MICCAI 2015): an encoder of ``depth`` levels, each two
  3×3 convolutions with batch norm and ReLU followed by a 2×2 max-pool; a bottleneck; a decoder that
  doubles the size with a 2×2 stride-2 transposed convolution, concatenates the encoder's feature
  map of the same size (the skip connection that carries the fine detail lost by pooling) and applies
  two more 3×3 convolutions; a 1×1 convolution head. Padding keeps sizes, so any size divisible by
  ``2**depth`` works (64 and 128 px with the default ``depth=3``). It returns **logits** (train a
  segmenter with ``binary_cross_entropy_with_logits`` and/or a Dice loss); ``out_activation="tanh"``
  makes it a pix2pix-style image generator (mask → image in [-1, 1]).
* :class:`PatchDiscriminator` (Isola et al., CVPR 2017, "pix2pix"): judges an (image, mask) pair
  concatenated on channels, patch by patch: ``n_layers`` stride-2 4×4 convolutions, one stride-1
  4×4 convolution, and a 4×4 convolution to one logit per patch. The output is a logit **map**
  N×1×h×w with h = size/2**n_layers − 2 (6×6 at 64 px, 14×14 at 128 px for 3 layers); each logit
  sees a 70×70 px receptive field for 3 layers, as in the paper (34 px for 2, 16 px for 1:
  :func:`patch_receptive_field`). At 64 px a 70-px patch is the whole image, so :func:`patch_layers_for`
  picks the deepest critic whose patches are smaller than the image.
* :class:`MaskedPatchDiscriminator` (SegAN, Xue et al. 2018): the critic sees the image multiplied by the
  mask, not the pair, so a binary true mask and a soft predicted one differ only through the image content
  they let through; the critic must judge the lesion, not the mask's value range.
* :class:`SoftLabelPatchDiscriminator`: the other remedy, the pair critic shown true masks softened with label
  noise (:meth:`PatchDiscriminator.true_masks`), so that a true mask is no longer exactly binary.

Initialisation: the U-Net uses He (Kaiming) normal weights for its ReLU convolutions, as Ronneberger
et al. did; the PatchGAN uses N(0, 0.02), as pix2pix did. :func:`make_unet`,
:func:`make_patch_discriminator` and :func:`make_segmentation_nets` build them with a seed: the same
weights on every call, and the global RNG left as it was.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

__all__ = ["UNet", "PatchDiscriminator", "MaskedPatchDiscriminator", "SoftLabelPatchDiscriminator", "make_unet",
           "make_patch_discriminator", "make_segmentation_nets", "patch_layers_for", "patch_receptive_field"]

OUT_ACTIVATIONS = (None, "tanh", "sigmoid")
D_NORMS = ("batch", "spectral", "none")


def _double_conv(c_in: int, c_out: int) -> nn.Sequential:
    """Two 3×3 convolutions (size-preserving), each followed by batch norm and ReLU: one U-Net level."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
        nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class UNet(nn.Module):
    """Image N×in_channels×H×W → N×out_channels×H×W (logits, or ``tanh``/``sigmoid`` of them).

    Args:
        in_channels: channels of the input (1 for a grayscale image, or a mask for a generator).
        out_channels: channels of the output (1 for a binary lesion mask, or a grayscale image).
        base: width of the first level; widths double with each level (16 → 32 → 64, bottleneck 128).
        depth: number of 2×2 poolings; H and W must be divisible by ``2**depth``.
        out_activation: ``None`` (logits, for segmentation), ``"tanh"`` (an image in [-1, 1], pix2pix
            generator) or ``"sigmoid"`` (probabilities).
    """

    def __init__(self, in_channels: int = 1, out_channels: int = 1, base: int = 16, depth: int = 3,
                 out_activation: str | None = None):
        super().__init__()
        if int(depth) < 1 or int(base) < 1:
            raise ValueError(f"UNet needs depth >= 1 and base >= 1, got depth={depth}, base={base}.")
        if out_activation not in OUT_ACTIVATIONS:
            raise ValueError(f"out_activation must be one of {OUT_ACTIVATIONS}, got {out_activation!r}.")
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.base, self.depth, self.out_activation = int(base), int(depth), out_activation
        widths = [self.base * 2 ** i for i in range(self.depth + 1)]
        self.down = nn.ModuleList(_double_conv(c_in, c_out)
                                  for c_in, c_out in zip([self.in_channels, *widths[:-2]], widths[:-1]))
        self.pool = nn.MaxPool2d(2)
        self.bottleneck = _double_conv(widths[-2], widths[-1])
        self.up = nn.ModuleList(nn.ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2)
                                for i in reversed(range(self.depth)))
        self.merge = nn.ModuleList(_double_conv(2 * widths[i], widths[i]) for i in reversed(range(self.depth)))
        self.head = nn.Conv2d(widths[0], self.out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        factor = 2 ** self.depth
        if x.shape[-1] % factor or x.shape[-2] % factor:
            raise ValueError(f"UNet(depth={self.depth}) needs height and width divisible by {factor}, got "
                             f"{tuple(x.shape[-2:])}. Fix: load the data at 64 or 128 px, or lower depth.")
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
            x = self.pool(x)
        x = self.bottleneck(x)
        for up, merge, skip in zip(self.up, self.merge, reversed(skips)):
            x = merge(torch.cat([up(x), skip], dim=1))
        x = self.head(x)
        if self.out_activation == "tanh":
            return torch.tanh(x)
        return torch.sigmoid(x) if self.out_activation == "sigmoid" else x


class PatchDiscriminator(nn.Module):
    """pix2pix PatchGAN: (image, mask) → a logit map N×1×h×w, one "real pair?" logit per overlapping patch.

    Args:
        in_channels: channels of the pair after concatenation (2 for a grayscale image and one mask).
        base: width of the first layer; widths double per layer up to 8·base.
        n_layers: stride-2 layers (3 gives pix2pix's 70×70 receptive field).
        norm: ``"batch"`` (pix2pix), ``"spectral"`` (spectral normalisation of every conv, Miyato et al.
            2018, and no batch norm) or ``"none"``. The first layer never has batch norm.
    """

    def __init__(self, in_channels: int = 2, base: int = 32, n_layers: int = 3, norm: str = "batch"):
        super().__init__()
        if norm not in D_NORMS:
            raise ValueError(f"norm must be one of {D_NORMS}, got {norm!r}.")
        if int(n_layers) < 1:
            raise ValueError(f"PatchDiscriminator needs n_layers >= 1, got {n_layers}.")
        self.in_channels, self.base, self.n_layers, self.norm = int(in_channels), int(base), int(n_layers), norm
        sn = spectral_norm if norm == "spectral" else (lambda conv: conv)
        layers: list[nn.Module] = [sn(nn.Conv2d(self.in_channels, self.base, 4, 2, 1)), nn.LeakyReLU(0.2, True)]
        width = self.base
        for i in range(1, self.n_layers + 1):  # n_layers - 1 stride-2 layers, then one stride-1 layer
            out = self.base * min(2 ** i, 8)
            stride = 2 if i < self.n_layers else 1
            layers.append(sn(nn.Conv2d(width, out, 4, stride, 1, bias=norm != "batch")))
            if norm == "batch":
                layers.append(nn.BatchNorm2d(out))
            layers.append(nn.LeakyReLU(0.2, True))
            width = out
        layers.append(sn(nn.Conv2d(width, 1, 4, 1, 1)))
        self.net = nn.Sequential(*layers)

    def forward(self, image: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Logit map of the pair ``(image, mask)`` (concatenated on channels), or of ``image`` alone."""
        x = image if mask is None else torch.cat([image, mask.to(image.dtype)], dim=1)
        if x.shape[1] != self.in_channels:
            raise ValueError(f"PatchDiscriminator(in_channels={self.in_channels}) got {x.shape[1]} channels "
                             "(image and mask together). Fix: build it with in_channels = image channels + "
                             "mask channels.")
        return self.net(x)

    def true_masks(self, masks: torch.Tensor) -> torch.Tensor:
        """What the critic is shown as a true mask: the mask itself (:class:`SoftLabelPatchDiscriminator` softens it)."""
        return masks


class SoftLabelPatchDiscriminator(PatchDiscriminator):
    """The pair critic with true masks softened by label noise, so that their value range alone no longer gives
    them away (Luc et al. 2016): each true pixel is drawn from [1 - a, 1] and each background pixel from [0, a],
    with ``a = label_noise``, afresh at every update. Predicted masks are shown as they are."""

    label_noise = 0.3

    def true_masks(self, masks: torch.Tensor) -> torch.Tensor:
        noise = torch.rand_like(masks) * self.label_noise
        return masks + (1 - 2 * masks) * noise


class MaskedPatchDiscriminator(PatchDiscriminator):
    """SegAN's critic input: the image (mapped to [0, 1]) times the mask; ``in_channels`` = image channels."""

    def forward(self, image: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if mask is None:
            raise ValueError("MaskedPatchDiscriminator judges image ⊙ mask: pass both the image and the mask.")
        return super().forward((image + 1) / 2 * mask.to(image.dtype))


def patch_receptive_field(net: nn.Module) -> int:
    """The receptive field in px of one output logit of a convolutional critic (its Conv2d layers in order)."""
    rf, jump = 1, 1
    for layer in net.modules():
        if isinstance(layer, nn.Conv2d):
            rf += (layer.kernel_size[0] - 1) * jump
            jump *= layer.stride[0]
    return rf


def patch_layers_for(size: int, max_layers: int = 3) -> int:
    """The deepest PatchGAN (at most ``max_layers``) whose receptive field is smaller than a ``size``-px image:
    1 at 28 px (16 px patches), 2 at 64 px (34 px), 3 from 71 px (70 px, pix2pix's)."""
    best = 1
    for n in range(1, int(max_layers) + 1):
        if patch_receptive_field(PatchDiscriminator(1, 1, n, "none")) < int(size):
            best = n
    return best


def _init_unet(module: nn.Module) -> nn.Module:
    """He-normal convolution weights (ReLU gain), zero biases, batch-norm scale 1 and shift 0."""
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                if m.bias is not None:
                    m.bias.zero_()
            elif isinstance(m, nn.BatchNorm2d):
                m.weight.fill_(1.0)
                m.bias.zero_()
    return module


def _init_patch(module: nn.Module) -> nn.Module:
    """pix2pix initialisation: conv weights N(0, 0.02) (the raw weight under spectral norm), biases 0."""
    with torch.no_grad():
        for m in module.modules():
            if hasattr(m, "parametrizations") and "weight" in m.parametrizations:
                m.parametrizations.weight.original.normal_(0.0, 0.02)
            elif isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                m.weight.normal_(0.0, 0.02)
            elif isinstance(m, nn.BatchNorm2d):
                m.weight.normal_(1.0, 0.02)
            bias = getattr(m, "bias", None)
            if isinstance(bias, torch.Tensor):
                bias.zero_()
    return module


def _place(net: nn.Module, device) -> nn.Module:
    return net if device is None else net.to(device)


def make_unet(in_channels: int = 1, out_channels: int = 1, base: int = 16, depth: int = 3,
              out_activation: str | None = None, seed: int | None = None, cls: type | None = None,
              device=None) -> nn.Module:
    """A :class:`UNet` with He initialisation; with ``seed`` the same weights on every call and the global
    RNG left as it was.

    ``cls`` builds another class through the same seeding and initialisation, e.g. the U-Net a notebook
    writes out: it is called as ``cls(in_channels=..., out_channels=..., base=..., depth=...)``, plus
    ``out_activation=`` when that is not ``None``.
    """
    kwargs = {"in_channels": in_channels, "out_channels": out_channels, "base": base, "depth": depth}
    if out_activation is not None:
        kwargs["out_activation"] = out_activation
    with torch.random.fork_rng(devices=[], enabled=seed is not None):
        if seed is not None:
            torch.manual_seed(int(seed))
        net = _init_unet((cls or UNet)(**kwargs))
    return _place(net, device)


def make_patch_discriminator(in_channels: int = 2, base: int = 32, n_layers: int = 3, norm: str = "batch",
                             seed: int | None = None, cls: type | None = None, device=None) -> nn.Module:
    """A :class:`PatchDiscriminator` with pix2pix initialisation; with ``seed`` the same weights (and spectral
    norm vectors) on every call and the global RNG left as it was.

    ``cls`` is called as ``cls(in_channels=..., base=..., n_layers=..., norm=...)`` (see :func:`make_unet`).
    """
    with torch.random.fork_rng(devices=[], enabled=seed is not None):
        if seed is not None:
            torch.manual_seed(int(seed))
        net = _init_patch((cls or PatchDiscriminator)(in_channels=in_channels, base=base, n_layers=n_layers,
                                                      norm=norm))
    return _place(net, device)


def make_segmentation_nets(in_channels: int = 1, out_channels: int = 1, base: int = 16, depth: int = 3,
                           out_activation: str | None = None, d_base: int = 32, n_layers: int = 3,
                           d_norm: str = "batch", seed: int | None = None, classes: tuple | None = None,
                           device=None) -> tuple[nn.Module, nn.Module]:
    """A (U-Net, PatchGAN) pair: the U-Net maps ``in_channels`` → ``out_channels``; the discriminator judges
    the pair (input, output) of ``in_channels + out_channels`` channels.

    For adversarial segmentation: image → mask logits (``out_activation=None``; feed D the sigmoid of the
    logits or a real mask). For pix2pix mask → image synthesis: ``out_activation="tanh"``. With ``seed`` the
    U-Net equals ``make_unet(..., seed=seed)`` and D is drawn right after it from the same stream; the global
    RNG is left as it was. ``classes=(UNetClass, DiscriminatorClass)`` builds a notebook's own classes
    (either may be ``None`` for this module's).
    """
    u_cls, d_cls = classes or (None, None)
    with torch.random.fork_rng(devices=[], enabled=seed is not None):
        if seed is not None:
            torch.manual_seed(int(seed))
        G = make_unet(in_channels, out_channels, base, depth, out_activation, cls=u_cls)
        D = make_patch_discriminator(in_channels + out_channels, d_base, n_layers, d_norm, cls=d_cls)
    return _place(G, device), _place(D, device)
