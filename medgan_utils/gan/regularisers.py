"""Stabilisers for GAN training (notebook 07): gradient penalties and a step that combines them.

* :func:`gradient_penalty`: WGAN-GP's ``E[(||∇_x̂ D(x̂)||₂ - 1)²]`` on random interpolates of real and
  fake images (Gulrajani et al. 2017);
* :func:`r1_penalty`: R1's ``E[||∇_x D(x)||₂²]`` on real images (Mescheder et al. 2018), weighted by γ/2;
* :func:`make_stable_step`: the training step of :func:`~medgan_utils.gan.steps.make_step` plus any of: a
  penalty, one-sided label smoothing, several D updates per G update (each extra one on a **new** real batch
  from ``tr.next_real()``), and an augmentation applied to real and fake images alike before D (DiffAugment,
  :mod:`medgan_utils.gan.diffaugment`).

Spectral normalisation is ``make_dcgan(d_norm="spectral")``; an EMA of G is ``TrainConfig(ema_decay=...)``
(warmed up with ``ema_rampup``, :mod:`medgan_utils.gan.ema`) and two time-scale learning rates (TTUR, Heusel et
al. 2017) are ``lr_G``/``lr_D``. :data:`STABILITY_VARIANTS` names each combination the notebook's stability lab
compares: the course's drop-in versions (each added to the DCGAN recipe) and, ending in ``-paper``, the methods
as their authors ran them (:data:`PAPER_RECIPES` pairs each with its drop-in).
"""
from __future__ import annotations

from typing import Callable

import torch

from ..core.errors import SettingError, check_names
from .losses import d_loss_bce, get_losses

__all__ = ["gradient_penalty", "r1_penalty", "make_stable_step", "STABILITY_VARIANTS", "PAPER_RECIPES",
           "variant_options", "variant_recipe", "check_variants"]


def _input_grad(D, x: torch.Tensor) -> torch.Tensor:
    """∂ sum(D(x)) / ∂x, kept in the graph so that a penalty on it can be minimised."""
    x = x.detach().requires_grad_(True)
    out = D(x).float()
    (grad,) = torch.autograd.grad(out.sum(), x, create_graph=True)
    return grad.flatten(1)


def gradient_penalty(D, real: torch.Tensor, fake: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """WGAN-GP: ``E[(||∇ D(x̂)|| - 1)²]`` at ``x̂ = ε·real + (1 - ε)·fake``, ε ~ U(0, 1) per image."""
    eps = torch.rand(real.shape[0], *([1] * (real.ndim - 1)), device=real.device, generator=generator)
    mixed = eps * real.detach() + (1 - eps) * fake.detach()
    return (_input_grad(D, mixed).norm(dim=1) - 1).pow(2).mean()


def r1_penalty(D, real: torch.Tensor) -> torch.Tensor:
    """R1: ``E_x[||∇_x D(x)||²]`` on real images (multiply by γ/2 in the loss)."""
    return _input_grad(D, real).pow(2).sum(dim=1).mean()


def make_stable_step(loss: str = "bce", *, gp: float = 0.0, r1: float = 0.0, real_target: float = 1.0,
                     d_steps: int = 1, augment: Callable | None = None) -> Callable:
    """A GAN step ``step(tr, real, z)`` with the stabilisers above.

    ``gp``: weight λ of the WGAN-GP penalty; ``r1``: γ of R1 (the loss adds ``γ/2 · R1``);
    ``real_target < 1``: one-sided label smoothing (BCE losses only); ``d_steps``: D updates per G update
    (n_critic; each extra one on a new real batch from ``tr.next_real()`` and fresh noise from ``tr.gen``, the
    last one on the step's own batch); ``augment(x, generator)``: applied to every image D sees,
    real and fake, in both updates (an augment with an ``observe`` method, e.g.
    :class:`~medgan_utils.gan.diffaugment.AdaptiveAugment`, is shown D's logits on the reals after each D
    update). Returns the metrics of :func:`~medgan_utils.gan.steps.make_step`.
    """
    d_loss_fn, g_loss_fn = get_losses(loss)
    if real_target != 1.0 and d_loss_fn is not d_loss_bce:
        raise SettingError(f"One-sided label smoothing needs a BCE loss, not {loss!r}. Fix: loss='bce'.")
    if not 0.5 < float(real_target) <= 1.0 or gp < 0 or r1 < 0 or int(d_steps) < 1:
        raise SettingError(f"Bad stabiliser settings (real_target={real_target}, gp={gp}, r1={r1}, "
                           f"d_steps={d_steps}). Fix: real_target in (0.5, 1], gp and r1 >= 0, d_steps >= 1.")
    if d_loss_fn is d_loss_bce and real_target != 1.0:
        d_base = lambda r, f: d_loss_bce(r, f, real_target=real_target)  # noqa: E731
    else:
        d_base = d_loss_fn
    aug = augment or (lambda x, generator=None: x)

    def d_update(tr, real, z):
        G, D = tr.G, tr.D
        with tr.autocast():
            fake = G(z)
            real_logits = D(aug(real, generator=tr.gen)).float()
            fake_logits = D(aug(fake.detach(), generator=tr.gen)).float()
        loss_D = d_base(real_logits, fake_logits)
        if gp:
            loss_D = loss_D + gp * gradient_penalty(D, real, fake, generator=tr.gen)
        if r1:
            loss_D = loss_D + 0.5 * r1 * r1_penalty(D, aug(real, generator=tr.gen))
        tr.opt_D.zero_grad(set_to_none=True)
        tr.scaler.scale(loss_D).backward()
        tr.scaler.step(tr.opt_D)
        return fake, real_logits, fake_logits, loss_D

    def step(tr, real: torch.Tensor, z: torch.Tensor) -> dict:
        if d_steps > 1 and not hasattr(tr, "next_real"):
            raise SettingError(f"d_steps={d_steps} draws a new real batch for each extra D update, but the trainer "
                               "has no next_real(). Fix: train with DCGANTrainer, or give tr a next_real().")
        for _ in range(int(d_steps) - 1):
            d_update(tr, tr.next_real(), torch.randn(z.shape, device=z.device, generator=tr.gen))
            tr.scaler.update()  # one update() per step(): an enabled GradScaler refuses a 2nd step(opt_D) before it
        fake, real_logits, fake_logits, loss_D = d_update(tr, real, z)
        if hasattr(aug, "observe"):  # adaptive augmentation (ADA): D's confidence on the reals steers p
            aug.observe(real_logits)
        tr.D.requires_grad_(False)
        try:
            with tr.autocast():
                gen_logits = tr.D(aug(fake, generator=tr.gen)).float()
            loss_G = g_loss_fn(gen_logits)
            tr.opt_G.zero_grad(set_to_none=True)
            tr.scaler.scale(loss_G).backward()
            tr.scaler.step(tr.opt_G)
        finally:
            tr.D.requires_grad_(True)
        tr.scaler.update()
        return {"loss_D": loss_D.detach(), "loss_G": loss_G.detach(),
                "D_x": torch.sigmoid(real_logits.detach()).mean(), "D_G_z": torch.sigmoid(fake_logits.detach()).mean()}

    step.__name__ = f"stable_step_{loss}"
    return step


# name -> (step options, network/trainer options). "bce" is the DCGAN baseline every regulariser is added to; the
# drop-in versions keep the DCGAN recipe (Adam 2e-4, betas (0.5, 0.999), batch-norm D, one D step).
STABILITY_VARIANTS: dict[str, dict] = {
    "minimax": {"loss": "saturating"},
    "non-saturating": {"loss": "bce"},
    "lsgan": {"loss": "lsgan"},
    "hinge": {"loss": "hinge"},
    "wgan-gp": {"loss": "wgan", "gp": 10.0, "d_norm": "none"},
    "spectral-norm": {"loss": "bce", "d_norm": "spectral"},
    "r1": {"loss": "bce", "r1": 1.0},
    "label-smoothing": {"loss": "bce", "real_target": 0.9},
    "ema": {"loss": "bce", "ema_decay": 0.99},
    "ttur": {"loss": "bce", "lr_G": 1e-4, "lr_D": 4e-4},
    "d-steps-2": {"loss": "bce", "d_steps": 2},
    # The authors' recipes. Gulrajani et al. 2017, Algorithm 1: n_critic 5, Adam lr 1e-4, betas (0, 0.9), λ 10,
    # no batch norm in the critic.
    "wgan-gp-paper": {"loss": "wgan", "gp": 10.0, "d_steps": 5, "d_norm": "none", "lr_G": 1e-4, "lr_D": 1e-4,
                      "betas": (0.0, 0.9)},
    # Mescheder et al. 2018: γ = 10 in their image experiments, and a D without batch norm (R1 is per image).
    "r1-paper": {"loss": "bce", "r1": 10.0, "d_norm": "none"},
    # Karras et al.'s EMA of G (decay 0.999) with StyleGAN2-ADA's warm-up (half-life 0.05 x the updates so far).
    "ema-paper": {"loss": "bce", "ema_decay": 0.999, "ema_rampup": 0.05},
    # Miyato et al. 2018 with TTUR (Heusel et al. 2017): spectral norm on D, lr_D 4e-4, lr_G 1e-4, betas (0, 0.9).
    "sn-ttur-paper": {"loss": "bce", "d_norm": "spectral", "lr_G": 1e-4, "lr_D": 4e-4, "betas": (0.0, 0.9)},
}
# each published recipe -> the course's drop-in version of the same method
PAPER_RECIPES = {"wgan-gp-paper": "wgan-gp", "r1-paper": "r1", "ema-paper": "ema", "sn-ttur-paper": "spectral-norm"}
STEP_KEYS = ("loss", "gp", "r1", "real_target", "d_steps")


def check_variants(names, what: str = "LOSSES") -> list[str]:
    """The names, validated against :data:`STABILITY_VARIANTS` (SettingError naming the fix)."""
    return check_names(names, tuple(STABILITY_VARIANTS), what)


def variant_options(name: str) -> tuple[dict, dict]:
    """``(step options, other options)`` of a variant: the first go to :func:`make_stable_step`, the others
    (``d_norm``, ``ema_decay``, ``ema_rampup``, ``lr_G``, ``lr_D``, ``betas``) to ``make_dcgan`` / the trainer."""
    opts = STABILITY_VARIANTS[check_variants([name])[0]]
    return ({k: v for k, v in opts.items() if k in STEP_KEYS}, {k: v for k, v in opts.items() if k not in STEP_KEYS})


def variant_recipe(name: str, *, lr: float = 2e-4, betas=(0.5, 0.999), d_norm: str = "batch") -> dict:
    """Every setting a run of ``name`` trains with, the defaults (``lr``, ``betas``, ``d_norm``) filled in:
    ``n_critic`` (D updates per G update), learning rates, Adam's betas, D's normalisation, λ_GP, γ_R1, the real
    target and the EMA, for ``results.json``."""
    step, other = variant_options(name)
    return {"variant": name, "loss": step["loss"], "n_critic": int(step.get("d_steps", 1)),
            "lr_G": float(other.get("lr_G", lr)), "lr_D": float(other.get("lr_D", lr)),
            "betas": [float(b) for b in other.get("betas", betas)], "d_norm": other.get("d_norm", d_norm),
            "gp": float(step.get("gp", 0.0)), "r1": float(step.get("r1", 0.0)),
            "real_target": float(step.get("real_target", 1.0)), "ema_decay": other.get("ema_decay"),
            "ema_rampup": other.get("ema_rampup"), "published": name in PAPER_RECIPES}
