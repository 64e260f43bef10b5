"""Adversarial attacks on a diagnosis classifier, and a short adversarial-training recipe (notebook 08).

* :func:`fgsm` (Goodfellow, Shlens & Szegedy, ICLR 2015): one step of size ε along the sign of the input
  gradient of the cross-entropy, clipped to the valid pixel range.
* :func:`pgd` (Madry et al., ICLR 2018): ``steps`` signed-gradient steps of size ``step_size`` from a random
  start in the L∞ ball, each projected back onto the ε-ball and the pixel range.
* :func:`attack_images` picks one by name; :func:`attack_metrics` scores a classifier on attacked images.
* :func:`train_adversarial`: 04's recipe (:func:`~medgan_utils.evaluation.diagnosis.train_classifier`'s
  schedule and batches), each update on half clean and half PGD loss (Goodfellow et al.'s mixed loss), the
  weights of the best *attacked* validation AUC kept.

``eps`` is a fraction of the pixel range (``8/255`` means 8 grey levels), whatever the model's input scale;
for images in [-1, 1] it is 2·eps in input units. Nothing here imports :mod:`medgan_utils.gan`.
"""
from __future__ import annotations

import copy
import math
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..core.errors import SettingError, check_names, positive_int
from .diagnosis import _batches, diagnosis_metrics, minority_class, predict_proba

__all__ = ["ATTACKS", "fgsm", "pgd", "attack_images", "attack_metrics", "check_epsilons", "check_attacks",
           "train_adversarial"]

ATTACKS = ("fgsm", "pgd")


def check_epsilons(epsilons) -> list[float]:
    """Budgets as floats in [0, 1] (fractions of the pixel range), or a SettingError naming the fix."""
    values = [epsilons] if isinstance(epsilons, (int, float)) else list(epsilons)
    bad = [e for e in values if not (isinstance(e, (int, float)) and math.isfinite(e) and 0 <= e <= 1)]
    if bad or not values:
        raise SettingError(f"An attack budget ε must be a number in [0, 1] (a fraction of the pixel range), got "
                           f"{bad or values!r}. Fix: e.g. EPSILONS = [0, 2/255, 4/255, 8/255].")
    return [float(e) for e in values]


def check_attacks(attacks) -> list[str]:
    """Attack names, lower case, each one of :data:`ATTACKS`."""
    return check_names(attacks, ATTACKS, "ATTACKS", lower=True)


def _input_grad(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    x = x.detach().requires_grad_(True)
    loss = F.cross_entropy(net(x).float(), y)
    (grad,) = torch.autograd.grad(loss, x)
    return grad


def _eval_mode(net: nn.Module):
    was = net.training
    net.eval()
    return was


def fgsm(net: nn.Module, images: torch.Tensor, labels: torch.Tensor, eps: float,
         bounds: tuple[float, float] = (-1.0, 1.0)) -> torch.Tensor:
    """x + ε·sign(∇ₓ CE(net(x), y)), clipped to ``bounds``; ``net`` is run in eval mode."""
    (eps,) = check_epsilons([eps])
    lo, hi = bounds
    if eps == 0:
        return images.detach().clone()
    was = _eval_mode(net)
    try:
        grad = _input_grad(net, images, labels)
    finally:
        net.train(was)
    return (images.detach() + eps * (hi - lo) * grad.sign()).clamp(lo, hi)


def pgd(net: nn.Module, images: torch.Tensor, labels: torch.Tensor, eps: float, steps: int = 10,
        step_size: float | None = None, bounds: tuple[float, float] = (-1.0, 1.0), random_start: bool = True,
        seed: int = 0, targeted: bool = False) -> torch.Tensor:
    """L∞ PGD: a random start in the ε-ball, then ``steps`` signed steps (default size 2.5·ε/steps), each
    projected onto the ε-ball around ``images`` and onto ``bounds``. ``targeted=True`` reads ``labels`` as the
    classes to reach and steps *down* their cross-entropy."""
    (eps,) = check_epsilons([eps])
    steps = positive_int(steps, "PGD steps")
    lo, hi = bounds
    radius = eps * (hi - lo)
    if radius == 0:
        return images.detach().clone()
    alpha = (2.5 * eps / steps if step_size is None else float(step_size)) * (hi - lo)
    alpha = -alpha if targeted else alpha
    x0 = images.detach()
    x = x0.clone()
    if random_start:
        g = torch.Generator().manual_seed(int(seed))
        x = (x + (torch.rand(x.shape, generator=g) * 2 - 1).to(x) * radius).clamp(lo, hi)
    was = _eval_mode(net)
    try:
        for _ in range(steps):
            x = x + alpha * _input_grad(net, x, labels).sign()
            x = torch.min(torch.max(x, x0 - radius), x0 + radius).clamp(lo, hi)
    finally:
        net.train(was)
    return x.detach()


def attack_images(net: nn.Module, images: torch.Tensor, labels: torch.Tensor, attack: str, eps: float,
                  batch_size: int = 256, **options) -> torch.Tensor:
    """``images`` attacked by ``attack`` ('fgsm' or 'pgd') at budget ``eps``, in batches, on ``net``'s device."""
    (name,) = check_attacks([attack])
    fn = fgsm if name == "fgsm" else pgd
    device = next(net.parameters()).device
    y = torch.as_tensor(labels).long().view(-1)
    out = [fn(net, x.to(device), t.to(device), eps, **options).cpu()
           for x, t in zip(images.split(batch_size), y.split(batch_size))]
    return torch.cat(out)


def attack_metrics(net: nn.Module, images: torch.Tensor, labels: torch.Tensor, attack: str, eps: float, *,
                   task: str, positive: int, **options) -> tuple[dict, torch.Tensor]:
    """``(metrics, attacked)``: AUC / ACC / disease sensitivity at p = 0.5 on the attacked images, and the images."""
    adv = attack_images(net, images, labels, attack, eps, **options)
    return diagnosis_metrics(labels, predict_proba(net, adv), task, positive), adv


def train_adversarial(net: nn.Module, images: torch.Tensor, labels: torch.Tensor, val_images: torch.Tensor,
                      val_labels: torch.Tensor, *, steps: int, task: str, eps: float, pgd_steps: int = 3,
                      batch_size: int = 64, lr: float = 1e-3, seed: int = 0, device=None) -> tuple[nn.Module, dict]:
    """Adversarial training: each update minimises ½·CE(clean) + ½·CE(PGD at ``eps``); 04's schedule; the weights
    of the best validation AUC *under the same PGD* are kept. Returns ``(net, info)`` as ``train_classifier``."""
    (eps,) = check_epsilons([eps])
    steps = positive_int(steps, "adversarial training steps")
    device = torch.device(device) if device is not None else next(net.parameters()).device
    net.to(device)
    x, y = images.to(device), torch.as_tensor(labels).long().view(-1).to(device)
    n, batch_size = len(x), min(int(batch_size), len(x))
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, [steps // 2, (3 * steps) // 4], gamma=0.1)
    minority = minority_class(y, int(max(y.max().item(), int(val_labels.max())) + 1))
    eval_every = max(1, min(steps // 20, math.ceil(n / batch_size)))
    best = {"val_auc": -math.inf, "best_step": 0, "state": None}
    gen, t0 = torch.Generator().manual_seed(int(seed)), time.perf_counter()
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(int(seed))
        for step, idx in enumerate(_batches(n, batch_size, gen), start=1):
            xb, yb = x[idx.to(device)], y[idx.to(device)]
            adv = pgd(net, xb, yb, eps, steps=pgd_steps, seed=int(seed) * 100003 + step)
            net.train()
            loss = 0.5 * F.cross_entropy(net(xb), yb) + 0.5 * F.cross_entropy(net(adv), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            if step % eval_every == 0 or step == steps:
                m, _ = attack_metrics(net, val_images, val_labels, "pgd", eps, task=task, positive=minority,
                                      steps=pgd_steps, seed=int(seed))
                if m["auc"] > best["val_auc"]:
                    best = {"val_auc": m["auc"], "best_step": step, "state": copy.deepcopy(net.state_dict())}
            if step >= steps:
                break
    net.load_state_dict(best["state"])
    return net, {"best_step": best["best_step"], "val_auc_attacked": best["val_auc"], "steps": steps,
                 "n_train": n, "seconds": time.perf_counter() - t0, "eps": eps, "pgd_steps": pgd_steps}


def perturbation_stats(clean: torch.Tensor, attacked: torch.Tensor, bounds=(-1.0, 1.0)) -> dict:
    """L∞ and mean |δ| of a perturbation, as fractions of the pixel range."""
    span = bounds[1] - bounds[0]
    d = (attacked - clean).abs() / span
    return {"linf": float(d.amax()), "mean_abs": float(d.mean()), "grey_levels_linf": float(np.round(d.amax() * 255))}


__all__ += ["perturbation_stats"]
