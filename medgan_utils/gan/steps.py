"""The package's one copy of the GAN training step (notebook 03 writes the same step out, line by line).

A step is a function ``step(tr, real, z) -> dict``. ``tr`` is the trainer: it
provides ``G``, ``D``, ``opt_G``, ``opt_D``, ``scaler`` (a ``GradScaler`` that is
enabled only in fp16, and otherwise passes losses and steps through unchanged)
and ``autocast()``. The step returns on-device scalars ``loss_D``, ``loss_G``,
``D_x`` (mean D(x)) and ``D_G_z`` (mean D(G(z)) before the D update).

:func:`make_step` builds the step for any loss of :mod:`medgan_utils.gan.losses`;
:data:`dcgan_step` is the DCGAN step (BCE on logits, non-saturating generator
loss) that a test ties bit for bit to notebook 03's ``train_step``.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from .losses import get_losses

__all__ = ["make_step", "dcgan_step", "cgan_step", "bce_d_loss", "bce_g_loss", "count_step_flops"]


def bce_d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """DCGAN's discriminator loss: BCE with label 1 for real and 0 for generated images, summed."""
    ones = torch.ones_like(real_logits)
    return (F.binary_cross_entropy_with_logits(real_logits, ones)
            + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(ones)))


def bce_g_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """The non-saturating generator loss: BCE with label 1 for generated images."""
    return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))


def make_step(loss="dcgan", concat: bool = False) -> Callable:
    """A training step for ``loss``: ``'dcgan'`` (BCE written as in notebook 03), a name that
    :func:`~medgan_utils.gan.losses.get_losses` knows (``'lsgan'``, ``'hinge'``, ...), or a
    ``(d_loss, g_loss)`` pair of functions on logits.

    ``concat=False`` (the default, like the classic tutorial) scores real and generated
    images in two separate D passes, so each batch-norm layer of D normalises a batch
    that is all real or all fake, as in the generator's step, where D sees only fakes.
    ``concat=True`` sends both through D as one batch: a little faster, but with batch
    norm in D it is a trap. D then learns to separate real from fake *relative to the
    mixed batch's statistics*, while G is trained against D applied to an all-fake batch,
    a different function (notebook 03, exercise 03.5). Use it only with a D without batch norm.
    """
    if isinstance(loss, str) and loss.strip().lower() == "dcgan":
        d_loss_fn, g_loss_fn, label = bce_d_loss, bce_g_loss, "dcgan"
    elif isinstance(loss, str):
        (d_loss_fn, g_loss_fn), label = get_losses(loss), loss
    else:
        (d_loss_fn, g_loss_fn), label = loss, "custom"

    def step(tr, real: torch.Tensor, z: torch.Tensor) -> dict:
        G, D, opt_G, opt_D, scaler = tr.G, tr.D, tr.opt_G, tr.opt_D, tr.scaler
        # (1) Discriminator. fake.detach(): D's loss must not send gradients into G.
        with tr.autocast():
            fake = G(z)
            if concat:
                logits = D(torch.cat([real, fake.detach()])).float()
                real_logits, fake_logits = logits[: len(real)], logits[len(real):]
            else:
                real_logits = D(real).float()
                fake_logits = D(fake.detach()).float()
        loss_D = d_loss_fn(real_logits, fake_logits)
        opt_D.zero_grad(set_to_none=True)
        scaler.scale(loss_D).backward()
        scaler.step(opt_D)
        # (2) Generator: make the *updated* D call the same fakes real. D's weights are frozen
        #     for this backward pass (their gradients would be thrown away anyway).
        D.requires_grad_(False)
        try:
            with tr.autocast():
                gen_logits = D(fake).float()
            loss_G = g_loss_fn(gen_logits)
            opt_G.zero_grad(set_to_none=True)
            scaler.scale(loss_G).backward()
            scaler.step(opt_G)
        finally:
            D.requires_grad_(True)
        scaler.update()
        return {"loss_D": loss_D.detach(), "loss_G": loss_G.detach(),
                "D_x": torch.sigmoid(real_logits.detach()).mean(), "D_G_z": torch.sigmoid(fake_logits.detach()).mean()}

    step.__name__ = f"gan_step_{label}{'_concat' if concat else ''}"
    step.__doc__ = f"GAN step with the {label!r} loss ({'one concatenated' if concat else 'two separate'} D pass(es))."
    return step


dcgan_step = make_step("dcgan")
dcgan_step.__name__ = "dcgan_step"


def cgan_step(tr, real: torch.Tensor, z: torch.Tensor, y: torch.Tensor) -> dict:
    """The class-conditional step of notebook 04 (projection D, hinge loss; Miyato & Koyama 2018).

    G draws fakes of the *same classes* as the real batch, so D compares like with like; D is scored
    on (image, class) pairs. The hinge loss is that of :func:`~medgan_utils.gan.losses.d_loss_hinge`.
    """
    G, D, opt_G, opt_D, scaler = tr.G, tr.D, tr.opt_G, tr.opt_D, tr.scaler
    with tr.autocast():
        fake = G(z, y)
        real_logits = D(real, y).float()
        fake_logits = D(fake.detach(), y).float()
    loss_D = F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()
    opt_D.zero_grad(set_to_none=True)
    scaler.scale(loss_D).backward()
    scaler.step(opt_D)
    D.requires_grad_(False)
    try:
        with tr.autocast():
            gen_logits = D(fake, y).float()
        loss_G = -gen_logits.mean()
        opt_G.zero_grad(set_to_none=True)
        scaler.scale(loss_G).backward()
        scaler.step(opt_G)
    finally:
        D.requires_grad_(True)
    scaler.update()
    return {"loss_D": loss_D.detach(), "loss_G": loss_G.detach(),
            "D_x": torch.sigmoid(real_logits.detach()).mean(), "D_G_z": torch.sigmoid(fake_logits.detach()).mean()}


def count_step_flops(G, D, real: torch.Tensor, z: torch.Tensor) -> int:
    """Floating-point operations of one DCGAN training step on the batch ``real`` (forward and backward of the D
    update and of the G update, as :data:`dcgan_step` does them), counted by ``torch.utils.flop_counter``.

    No optimiser step is taken and the gradients are cleared afterwards; batch-norm running statistics do move,
    so count on a fresh pair of networks.
    """
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fake = G(z)
        bce_d_loss(D(real).float(), D(fake.detach()).float()).backward()
        D.requires_grad_(False)
        try:
            bce_g_loss(D(fake).float()).backward()
        finally:
            D.requires_grad_(True)
    G.zero_grad(set_to_none=True)
    D.zero_grad(set_to_none=True)
    return int(counter.get_total_flops())
