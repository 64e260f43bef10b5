"""GAN losses, written on discriminator *logits*.

Every function takes the raw discriminator output ``l`` (a logit, before any
sigmoid) and returns a scalar to **minimise**. Writing the BCE-based losses
with ``softplus`` instead of ``log(sigmoid(l))`` keeps them finite and their
gradients exact at any logit, ±100 included, where a naive
``torch.log(torch.sigmoid(l))`` returns ``-inf`` and NaN gradients.

Notation: ``D(x) = σ(l_real)`` is the probability D gives a real image,
``D(G(z)) = σ(l_fake)`` the one it gives a generated image, and
``softplus(u) = log(1 + e^u)``, so that

* ``-log σ(l)     = softplus(-l)``
* ``-log(1 - σ(l)) = softplus(l)``

Losses (Goodfellow et al. 2014; Mao et al. 2017; Lim & Ye 2017):

============  =====================================================  ==========================================
name          discriminator loss                                     generator loss
============  =====================================================  ==========================================
bce           -E[log D(x)] - E[log(1 - D(G(z)))]                     -E[log D(G(z))]         (non-saturating)
saturating    same as bce                                            E[log(1 - D(G(z)))]      (the minimax form)
lsgan         ½E[(l_real - 1)²] + ½E[l_fake²]                          ½E[(l_fake - 1)²]
hinge         E[max(0, 1 - l_real)] + E[max(0, 1 + l_fake)]          -E[l_fake]
wgan          E[l_fake] - E[l_real]  (add a gradient penalty: WGAN-GP)  -E[l_fake]
============  =====================================================  ==========================================

Use :func:`get_losses` to pick a pair by name.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from ..core.errors import SettingError

LossFn = Callable[..., torch.Tensor]


def d_loss_bce(real_logits: torch.Tensor, fake_logits: torch.Tensor, real_target: float = 1.0) -> torch.Tensor:
    """Discriminator loss of the original GAN: the negated value function.

    ``L_D = -E_x[log D(x)] - E_z[log(1 - D(G(z)))]
          = mean(softplus(-l_real)) + mean(softplus(l_fake))``

    Minimising it maximises ``V(D, G)``. The two expectations are averaged
    separately and then added, so at ``D = 0.5`` everywhere (all logits 0) the
    loss is ``2·log 2 ≈ 1.386``.

    ``real_target < 1`` gives one-sided label smoothing (Salimans et al. 2016):
    real images are scored against the soft target ``t``, i.e.
    ``-E_x[t·log D(x) + (1 - t)·log(1 - D(x))]``; fake targets stay 0.
    """
    if real_target == 1.0:
        real_term = F.softplus(-real_logits).mean()
    else:
        real_term = F.binary_cross_entropy_with_logits(real_logits, torch.full_like(real_logits, float(real_target)))
    return real_term + F.softplus(fake_logits).mean()


def g_loss_saturating(fake_logits: torch.Tensor) -> torch.Tensor:
    """Generator loss of the minimax game (saturating form).

    ``L_G = E_z[log(1 - D(G(z)))] = -mean(softplus(l_fake))``

    Its gradient with respect to each logit is ``-σ(l)/N``: when D confidently
    rejects the fakes (``σ(l) → 0``, typical early in training) the gradient
    vanishes and G stops learning.
    """
    return -F.softplus(fake_logits).mean()


def g_loss_nonsaturating(fake_logits: torch.Tensor) -> torch.Tensor:
    """Non-saturating generator loss (the "-log D trick" of Goodfellow et al. 2014).

    ``L_G = -E_z[log D(G(z))] = mean(softplus(-l_fake))``

    Its gradient with respect to each logit is ``(σ(l) - 1)/N``, close to
    ``-1/N`` exactly where the saturating form's gradient vanishes. Same fixed
    point as the minimax game, much stronger early gradients.
    """
    return F.softplus(-fake_logits).mean()


def d_loss_lsgan(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Least-squares discriminator loss (Mao et al. 2017, targets a=0, b=1).

    ``L_D = ½·E_x[(l_real - 1)²] + ½·E_z[l_fake²]``

    The raw discriminator output (no sigmoid) is regressed to 1 for real and 0
    for fake.
    """
    return 0.5 * (real_logits - 1).pow(2).mean() + 0.5 * fake_logits.pow(2).mean()


def g_loss_lsgan(fake_logits: torch.Tensor) -> torch.Tensor:
    """Least-squares generator loss (Mao et al. 2017, target c=1).

    ``L_G = ½·E_z[(l_fake - 1)²]``
    """
    return 0.5 * (fake_logits - 1).pow(2).mean()


def d_loss_hinge(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Hinge discriminator loss (Lim & Ye 2017; used by SNGAN, SAGAN, BigGAN).

    ``L_D = E_x[max(0, 1 - l_real)] + E_z[max(0, 1 + l_fake)]``

    D gets no loss from real samples scored above +1 or fakes scored below -1.
    """
    return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()


def g_loss_hinge(fake_logits: torch.Tensor) -> torch.Tensor:
    """Hinge generator loss: ``L_G = -E_z[l_fake]`` (G pushes the fake scores up)."""
    return -fake_logits.mean()


def d_loss_wgan(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Wasserstein critic loss (Arjovsky et al. 2017): ``L_D = E_z[l_fake] - E_x[l_real]``.

    Only meaningful for a critic kept near 1-Lipschitz, e.g. by the gradient penalty of
    :func:`~medgan_utils.gan.regularisers.gradient_penalty` (WGAN-GP, Gulrajani et al. 2017).
    """
    return fake_logits.mean() - real_logits.mean()


LOSSES: dict[str, tuple[LossFn, LossFn]] = {
    "bce": (d_loss_bce, g_loss_nonsaturating),
    "saturating": (d_loss_bce, g_loss_saturating),
    "lsgan": (d_loss_lsgan, g_loss_lsgan),
    "hinge": (d_loss_hinge, g_loss_hinge),
    "wgan": (d_loss_wgan, g_loss_hinge),
}
ALIASES = {
    "nonsaturating": "bce",
    "non-saturating": "bce",
    "ns": "bce",
    "vanilla": "bce",
    "minimax": "saturating",
    "ls": "lsgan",
    "least-squares": "lsgan",
    "wgan-gp": "wgan",
}


def loss_names() -> list[str]:
    """Every name :func:`get_losses` accepts (canonical names first, then aliases)."""
    return list(LOSSES) + list(ALIASES)


def get_losses(name: str) -> tuple[LossFn, LossFn]:
    """Return ``(d_loss, g_loss)`` for ``name``.

    ``'bce'`` / ``'nonsaturating'``: BCE discriminator loss + non-saturating G loss;
    ``'saturating'``: BCE discriminator loss + the minimax G loss;
    ``'lsgan'``: least squares; ``'hinge'``: hinge. ``d_loss(real_logits, fake_logits)``
    and ``g_loss(fake_logits)`` both return scalars to minimise.
    """
    key = str(name).strip().lower().replace("_", "-")
    key = ALIASES.get(key, key)
    if key not in LOSSES:
        raise SettingError(f"Unknown GAN loss {name!r}; choose one of: {', '.join(loss_names())}.")
    return LOSSES[key]


__all__ = [
    "d_loss_bce", "g_loss_saturating", "g_loss_nonsaturating",
    "d_loss_lsgan", "g_loss_lsgan", "d_loss_hinge", "g_loss_hinge", "d_loss_wgan",
    "get_losses", "loss_names", "LOSSES",
]
