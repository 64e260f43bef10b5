"""Differentially private GAN training: DP-SGD (Abadi et al., CCS 2016) on the discriminator, with opacus.

Only D touches real images, so only D needs privacy (Xie et al. 2018, DPGAN): G learns from D's outputs, which
are post-processing of a private model. Each D update draws a Poisson-sampled batch of real images (opacus's
``DPDataLoader``), clips every image's gradient to ``max_grad_norm``, adds Gaussian noise of standard deviation
``noise_multiplier · max_grad_norm`` and steps. The accountant (opacus's RDP accountant) turns the noise, the
sampling rate and the number of updates into the (ε, δ) that the whole training spends.

**One clipped gradient per patient.** D's loss has a real term and a fake term. If fake images went through D in
the same forward pass as the real ones, opacus would clip *their* per-sample gradients as well, and a batch of n
Poisson-sampled real images would bring n fakes with it: adding one patient would add two clipped gradients, so
the sensitivity would be 2C, not the C the accountant assumes (at σ = 1.5 that is ε ≈ 36, not 10). So the fake
term is computed apart: its gradient goes through no per-sample hook, its batch size is fixed (the expected real
batch size, never the drawn one), and it holds no private data (G is post-processing of earlier private steps).
Then the real images go through opacus (one clipped gradient each, noise, scaling), the fake gradient is added,
and the optimiser steps.
D needs no batch norm (it mixes images within a batch): use ``make_dcgan(..., d_norm="none")``.
``target_epsilon=None`` trains the same loop without clipping or noise (the non-private reference).
"""
from __future__ import annotations

import math
import time
import warnings

import torch
import torch.nn.functional as F
from torch import nn

from ..core.errors import SettingError, positive_int

__all__ = ["noise_for_epsilon", "epsilon_spent", "train_private_gan", "PrivateGANResult"]


def _check(target_epsilon, delta, sample_rate):
    if target_epsilon is not None and not (isinstance(target_epsilon, (int, float)) and 0 < target_epsilon < 1e6):
        raise SettingError(f"target_epsilon must be a positive number (or None for no privacy), got "
                           f"{target_epsilon!r}. Fix: e.g. DP_EPSILONS = [1, 10].")
    if not 0 < float(delta) < 1:
        raise SettingError(f"delta must lie in (0, 1), got {delta!r}. Fix: below 1 / the number of images.")
    if not 0 < float(sample_rate) <= 1:
        raise SettingError(f"The sampling rate must lie in (0, 1], got {sample_rate!r}. Fix: batch_size <= images.")


def noise_for_epsilon(target_epsilon: float, delta: float, sample_rate: float, steps: int) -> float:
    """The smallest noise multiplier for which ``steps`` Poisson-sampled updates spend at most (ε, δ)."""
    from opacus.accountants.utils import get_noise_multiplier

    _check(target_epsilon, delta, sample_rate)
    return float(get_noise_multiplier(target_epsilon=float(target_epsilon), target_delta=float(delta),
                                      sample_rate=float(sample_rate), steps=positive_int(steps, "steps"),
                                      accountant="rdp"))


def epsilon_spent(noise_multiplier: float, sample_rate: float, steps: int, delta: float) -> float:
    """ε after ``steps`` updates at this noise and sampling rate (opacus's RDP accountant)."""
    from opacus.accountants import RDPAccountant

    _check(None, delta, sample_rate)
    if not noise_multiplier > 0:
        raise SettingError(f"noise_multiplier must be > 0, got {noise_multiplier!r}.")
    acc = RDPAccountant()
    acc.history = [(float(noise_multiplier), float(sample_rate), positive_int(steps, "steps"))]
    return float(acc.get_epsilon(float(delta)))


class PrivateGANResult:
    """What :func:`train_private_gan` returns: the networks, the privacy spent and the losses."""

    def __init__(self, G, D, epsilon, delta, noise_multiplier, steps, seconds, history, sample_rate):
        self.G, self.D, self.epsilon, self.delta, self.sample_rate = G, D, epsilon, delta, sample_rate
        self.noise_multiplier, self.steps, self.seconds, self.history = noise_multiplier, steps, seconds, history

    @torch.no_grad()
    def sample(self, n: int, seed: int = 0, batch: int = 500) -> torch.Tensor:
        """``n`` images from seeded noise, G in eval mode (CPU float32)."""
        device = next(self.G.parameters()).device
        z = torch.randn(n, getattr(self.G, "latent_dim", 100), 1, 1, generator=torch.Generator().manual_seed(seed))
        was = self.G.training
        self.G.eval()
        try:
            return torch.cat([self.G(c.to(device)).float().cpu() for c in z.split(batch)])
        finally:
            self.G.train(was)


def _no_inplace(D: nn.Module) -> nn.Module:
    for m in D.modules():  # opacus's backward hooks cannot follow in-place activations
        if hasattr(m, "inplace"):
            m.inplace = False
    return D


def _bce(logits, target: float):
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, float(target)))


def _d_update(D, opt_D, real, fake) -> torch.Tensor:
    """D's update on ``real`` and ``fake`` images: ``BCE(D(real), 1) + BCE(D(fake), 0)``, each a mean.

    With opacus (``D`` has ``disable_hooks``), only the real term gets per-sample gradients: one clipped gradient
    per real image, then noise; the fake term's ordinary gradient is added after the privacy step.
    """
    if not hasattr(D, "disable_hooks"):  # the non-private reference: the same loss, one backward
        loss = _bce(D(real), 1.0) + _bce(D(fake), 0.0)
        opt_D.zero_grad(set_to_none=True)
        loss.backward()
        opt_D.step()
        return loss.detach()
    params = [p for p in D.parameters() if p.requires_grad]
    D.disable_hooks()
    try:
        loss_fake = _bce(D(fake), 0.0)
        fake_grads = torch.autograd.grad(loss_fake, params)
    finally:
        D.enable_hooks()
    opt_D.zero_grad(set_to_none=True)
    logits = D(real)
    # an empty Poisson draw still steps: no clipped gradient, only the noise (and the fake term), as the
    # accountant assumes; skipping it would make "no update" itself reveal that the draw was empty
    loss_real = _bce(logits, 1.0) if len(real) else logits.sum() * 0.0
    loss_real.backward()          # opacus: one per-sample gradient for each real image, nothing else
    if opt_D.pre_step():          # clip each to C, add N(0, σ²C²), divide by the expected batch size
        for p, g in zip(params, fake_grads):
            p.grad.add_(g.view_as(p.grad))
        opt_D.original_optimizer.step()
    return (loss_real + loss_fake).detach()


def _gan_updates(G, D, opt_G, opt_D, batches, steps, latent_dim, device, gen, n_fake=None):
    """The loop shared by the private and the non-private run: D (real term private, fake term apart), then G.

    ``n_fake`` fixes how many fakes each update uses (the expected real batch size): it must not follow the
    Poisson-drawn number of real images, or a patient's presence would change the fake term too.
    """
    history = {"loss_D": [], "loss_G": []}
    done = 0
    while done < steps:
        for (real,) in batches:  # with opacus: a Poisson draw, empty with probability (1 - q)^n, still an update
            real = real.to(device)
            m = int(n_fake or len(real))
            z = torch.randn(m, latent_dim, 1, 1, generator=gen).to(device)
            fake = G(z)
            loss_D = _d_update(D, opt_D, real, fake.detach())
            D.requires_grad_(False)
            hooks = getattr(D, "disable_hooks", None)  # opacus: no per-sample gradients in G's update
            if hooks:
                hooks()
            try:
                loss_G = _bce(D(fake), 1.0)
                opt_G.zero_grad(set_to_none=True)
                loss_G.backward()
                opt_G.step()
            finally:
                D.requires_grad_(True)
                if hooks:
                    D.enable_hooks()
            history["loss_D"].append(float(loss_D))
            history["loss_G"].append(float(loss_G.detach()))
            done += 1
            if done >= steps:
                break
    return history


def train_private_gan(G: nn.Module, D: nn.Module, images: torch.Tensor, *, steps: int, batch_size: int = 64,
                      target_epsilon: float | None = 10.0, delta: float | None = None, max_grad_norm: float = 1.0,
                      lr: float = 2e-4, betas=(0.5, 0.999), seed: int = 0, device=None) -> PrivateGANResult:
    """Train G and D for ``steps`` updates; D with DP-SGD at (``target_epsilon``, ``delta``) unless
    ``target_epsilon`` is None. ``delta`` defaults to 1 / (10 · number of images)."""
    from opacus import PrivacyEngine
    from torch.utils.data import DataLoader, TensorDataset

    steps = positive_int(steps, "steps")
    n = len(images)
    batch_size = min(positive_int(batch_size, "batch_size"), n)
    delta = float(delta if delta is not None else 1.0 / (10 * n))
    sample_rate = 1.0 / math.ceil(n / batch_size)  # what opacus's Poisson loader uses: 1 / batches per pass
    _check(target_epsilon, delta, sample_rate)
    device = torch.device(device) if device is not None else torch.device("cpu")
    G, D = G.to(device).train(), _no_inplace(D).to(device).train()
    if any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in D.modules()):
        raise SettingError("DP-SGD needs a discriminator without batch norm. Fix: make_dcgan(..., d_norm='none').")
    opt_G = torch.optim.Adam(G.parameters(), lr=lr, betas=tuple(betas))
    opt_D = torch.optim.Adam(D.parameters(), lr=lr, betas=tuple(betas))
    gen = torch.Generator().manual_seed(int(seed))
    loader = DataLoader(TensorDataset(images.float().cpu()), batch_size=batch_size, shuffle=True, generator=gen,
                        drop_last=True)
    sigma, eps = 0.0, math.inf
    if target_epsilon is not None:
        sigma = noise_for_epsilon(target_epsilon, delta, sample_rate, steps)
        with warnings.catch_warnings():
            # opacus warns that its secure RNG is off; the notebook says so (a course, not a deployment)
            warnings.filterwarnings("ignore", message=".*[Ss]ecure RNG.*")
            engine = PrivacyEngine(accountant="rdp")
            loader = DataLoader(loader.dataset, batch_size=batch_size, generator=gen)
            D, opt_D, loader = engine.make_private(module=D, optimizer=opt_D, data_loader=loader,
                                                   noise_multiplier=sigma, max_grad_norm=max_grad_norm,
                                                   noise_generator=torch.Generator(device=device).manual_seed(
                                                       int(seed) + 1))
    t0 = time.perf_counter()
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), warnings.catch_warnings():
        # opacus's per-image hooks on D fire although D's inputs (images) need no gradient; torch warns, harmlessly
        warnings.filterwarnings("ignore", message="Full backward hook is firing")
        torch.manual_seed(int(seed))  # Poisson sampling draws from the global RNG
        history = _gan_updates(G, D, opt_G, opt_D, loader, steps, getattr(G, "latent_dim", 100), device, gen,
                               n_fake=batch_size)
    if target_epsilon is not None:
        eps = float(engine.accountant.get_epsilon(delta))
        D = D._module
    return PrivateGANResult(G, D, eps, delta, sigma, len(history["loss_D"]), time.perf_counter() - t0, history,
                            sample_rate)
