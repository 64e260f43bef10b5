"""Image-to-image training for notebooks 05–06: a segmenter, a segmenter with an adversarial critic, and
pix2pix (Isola et al. 2017) mask → image synthesis.

Notebook 05 writes the three steps out line by line; these are the package's copies (a test ties them bit
for bit). A step is ``step(tr, images, masks) -> dict`` where ``tr`` is a :class:`PairTrainer`:

* :func:`segmentation_step`: one update of the segmenter ``tr.S`` on Dice + BCE (:func:`dice_bce_loss`);
* :func:`adversarial_segmentation_step`: a PatchGAN ``tr.D`` learns to tell real (image, mask) pairs from
  (image, predicted mask) pairs, then ``tr.S`` minimises Dice + BCE + ``tr.lambda_adv`` · BCE(D says real);
* :func:`pix2pix_step`: ``tr.G`` maps a mask to an image; ``tr.D`` judges (image, mask) pairs; G minimises
  BCE(D says real) + ``tr.l1_weight`` · |G(mask) − image|;
* :func:`enhancement_step` (notebook 06): ``tr.G`` maps a degraded image to a clean one on L1 +
  ``tr.lambda_adv`` · BCE(D says real); with ``lambda_adv == 0`` there is no critic (an L1-only U-Net).

:class:`PairTrainer` is the plumbing: the pairs on the device, seeded shuffling, Adam per network, the
precision policy, a history of the step's numbers, and (optionally) keeping the weights with the best
validation score.
"""
from __future__ import annotations

import copy
import math
import time
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..core.errors import SettingError, positive_int
from ..core.precision import autocast, grad_scaler, make_adam, resolve_precision

__all__ = ["dice_bce_loss", "segmentation_step", "adversarial_segmentation_step", "pix2pix_step", "enhancement_step",
           "PairTrainer"]


def dice_bce_loss(logits: torch.Tensor, masks: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """Soft Dice loss (per image, smoothed, averaged) + binary cross-entropy on logits."""
    probs = torch.sigmoid(logits)
    inter = (probs * masks).sum(dim=(1, 2, 3))
    total = probs.sum(dim=(1, 2, 3)) + masks.sum(dim=(1, 2, 3))
    dice = (2 * inter + smooth) / (total + smooth)
    return (1 - dice).mean() + F.binary_cross_entropy_with_logits(logits, masks)


def _update(tr, loss: torch.Tensor, opt) -> None:
    opt.zero_grad(set_to_none=True)
    tr.scaler.scale(loss).backward()
    tr.scaler.step(opt)


def _critic_update(tr, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """The PatchGAN's update: BCE with label 1 for true pairs and 0 for generated ones, summed."""
    loss_D = (F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
              + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits)))
    _update(tr, loss_D, tr.opt_D)
    return loss_D


def segmentation_step(tr, images: torch.Tensor, masks: torch.Tensor) -> dict:
    """One Dice + BCE update of the segmenter ``tr.S``."""
    with tr.autocast():
        logits = tr.S(images).float()
    loss = dice_bce_loss(logits, masks)
    _update(tr, loss, tr.opt_S)
    tr.scaler.update()
    return {"loss_S": loss.detach()}


def adversarial_segmentation_step(tr, images: torch.Tensor, masks: torch.Tensor) -> dict:
    """D on real pairs vs predicted pairs, then S on Dice + BCE + λ · (make D call its pairs real)."""
    S, D = tr.S, tr.D
    with tr.autocast():
        logits = S(images).float()
        pred = torch.sigmoid(logits)
        real_logits = D(images, D.true_masks(masks)).float()
        fake_logits = D(images, pred.detach()).float()
    loss_D = _critic_update(tr, real_logits, fake_logits)
    D.requires_grad_(False)
    try:
        with tr.autocast():
            gen_logits = D(images, pred).float()
        loss_seg = dice_bce_loss(logits, masks)
        loss_adv = F.binary_cross_entropy_with_logits(gen_logits, torch.ones_like(gen_logits))
        loss_S = loss_seg + tr.lambda_adv * loss_adv
        _update(tr, loss_S, tr.opt_S)
    finally:
        D.requires_grad_(True)
    tr.scaler.update()
    return {"loss_S": loss_S.detach(), "loss_seg": loss_seg.detach(), "loss_adv": loss_adv.detach(),
            "loss_D": loss_D.detach()}


def pix2pix_step(tr, images: torch.Tensor, masks: torch.Tensor) -> dict:
    """pix2pix, mask → image: D on (image, mask) vs (G(mask), mask), then G on BCE + l1_weight · L1."""
    G, D = tr.G, tr.D
    with tr.autocast():
        fake = G(masks)
        real_logits = D(images, masks).float()
        fake_logits = D(fake.detach(), masks).float()
    loss_D = _critic_update(tr, real_logits, fake_logits)
    D.requires_grad_(False)
    try:
        with tr.autocast():
            gen_logits = D(fake, masks).float()
        loss_adv = F.binary_cross_entropy_with_logits(gen_logits, torch.ones_like(gen_logits))
        loss_l1 = (fake.float() - images).abs().mean()
        loss_G = loss_adv + tr.l1_weight * loss_l1
        _update(tr, loss_G, tr.opt_G)
    finally:
        D.requires_grad_(True)
    tr.scaler.update()
    return {"loss_G": loss_G.detach(), "loss_l1": loss_l1.detach(), "loss_D": loss_D.detach()}


def enhancement_step(tr, clean: torch.Tensor, degraded: torch.Tensor) -> dict:
    """Enhancement, degraded → clean: D on (clean, degraded) vs (G(degraded), degraded), then G on
    L1 + λ · BCE(D says real); without the critic when ``tr.lambda_adv == 0``."""
    G = tr.G
    with tr.autocast():
        restored = G(degraded)
    loss_l1 = (restored.float() - clean).abs().mean()
    if tr.lambda_adv == 0:
        _update(tr, loss_l1, tr.opt_G)
        tr.scaler.update()
        return {"loss_G": loss_l1.detach(), "loss_l1": loss_l1.detach()}
    D = tr.D
    with tr.autocast():
        real_logits = D(clean, degraded).float()
        fake_logits = D(restored.detach(), degraded).float()
    loss_D = _critic_update(tr, real_logits, fake_logits)
    D.requires_grad_(False)
    try:
        with tr.autocast():
            gen_logits = D(restored, degraded).float()
        loss_adv = F.binary_cross_entropy_with_logits(gen_logits, torch.ones_like(gen_logits))
        loss_G = loss_l1 + tr.lambda_adv * loss_adv
        _update(tr, loss_G, tr.opt_G)
    finally:
        D.requires_grad_(True)
    tr.scaler.update()
    return {"loss_G": loss_G.detach(), "loss_l1": loss_l1.detach(), "loss_adv": loss_adv.detach(),
            "loss_D": loss_D.detach()}


class PairTrainer:
    """Train networks on (image, mask) pairs with a step function; keep the best validation weights.

    ``PairTrainer(nets={"S": unet, "D": patch_d}, images=..., masks=..., step_fn=..., lr={"S": 1e-3, "D": 2e-4},
    betas=(0.5, 0.999), batch_size=16, seed=0, device=..., precision="fp32", lambda_adv=0.1, l1_weight=100)``:
    every network becomes an attribute (``tr.S``) with its optimiser (``tr.opt_S``); extra keywords become
    attributes the step reads (``tr.lambda_adv``).
    """

    def __init__(self, nets: dict, images: torch.Tensor, masks: torch.Tensor, step_fn: Callable, *, lr,
                 betas=(0.9, 0.999), batch_size: int = 16, seed: int = 0, device=None, precision: str = "fp32",
                 **extra):
        if len(images) != len(masks):
            raise SettingError(f"{len(images)} images but {len(masks)} masks. Fix: pass one mask per image.")
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.precision = resolve_precision(precision, self.device)
        self.names = list(nets)
        for name, net in nets.items():
            setattr(self, name, net.to(self.device))
            rate = lr[name] if isinstance(lr, dict) else lr
            setattr(self, f"opt_{name}", make_adam(net.parameters(), float(rate), tuple(betas), self.device))
        for key, value in extra.items():
            setattr(self, key, value)
        self.images, self.masks = images.to(self.device), masks.to(self.device).float()
        self.batch_size = max(1, min(positive_int(batch_size, "batch_size"), len(images)))
        self.step_fn, self.scaler = step_fn, grad_scaler(self.device, self.precision)
        self.seed = int(seed)
        self.gen = torch.Generator().manual_seed(self.seed)
        self.history: dict[str, list] = {}
        self.steps_done, self.seconds = 0, 0.0
        self.best = {"score": -math.inf, "step": 0, "state": None}

    def autocast(self):
        return autocast(self.device, self.precision)

    def _batches(self):
        while True:
            order = torch.randperm(len(self.images), generator=self.gen).to(self.device)
            for i in range(0, len(order) - self.batch_size + 1, self.batch_size):
                idx = order[i:i + self.batch_size]
                yield self.images[idx], self.masks[idx]

    def run_steps(self, n: int) -> None:
        """``n`` updates without validation (graders, benchmarks)."""
        self.fit(n)

    def fit(self, steps: int, select: Callable | None = None, keep: str = "S", eval_every: int | None = None):
        """Run ``steps`` updates. With ``select(tr) -> float`` (e.g. validation Dice), evaluate every
        ``eval_every`` updates (default: a twentieth of them; every 5th in a run of under 100, as fast mode's,
        where evaluating after each update cost more than the updates) and finally load network ``keep`` with
        the weights of the best score. Returns ``self``."""
        steps = positive_int(steps, "steps")
        eval_every = int(eval_every or (max(1, steps // 20) if steps >= 100 else 5))
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            torch.manual_seed(self.seed + self.steps_done)  # dropout etc.: a function of the seed, not of history
            self._fit(steps, select, keep, eval_every)
        return self

    def _fit(self, steps: int, select, keep: str, eval_every: int) -> None:
        t0 = time.perf_counter()
        for net in self.names:
            getattr(self, net).train()
        buffer: dict[str, list] = {}
        for i, (x, m) in enumerate(self._batches(), start=1):
            out = self.step_fn(self, x, m)
            for k, v in out.items():
                buffer.setdefault(k, []).append(v.detach().float().reshape(()))
            if select is not None and (i % eval_every == 0 or i == steps):
                self._consider(select, keep, i)
            if i >= steps:
                break
        self.steps_done += steps
        for k, vals in buffer.items():  # one device-to-host copy per fit
            self.history.setdefault(k, []).extend(torch.stack(vals).cpu().tolist())
        if select is not None and self.best["state"] is not None:
            getattr(self, keep).load_state_dict(self.best["state"])
        self.seconds += time.perf_counter() - t0

    def _consider(self, select: Callable, keep: str, step: int) -> None:
        net = getattr(self, keep)
        net.eval()
        with torch.no_grad():
            score = float(select(self))
        net.train()
        if score > self.best["score"]:
            self.best = {"score": score, "step": step, "state": copy.deepcopy(net.state_dict())}

    @torch.no_grad()
    def predict(self, images: torch.Tensor, net: str = "S", batch_size: int | None = None) -> torch.Tensor:
        """``net``'s outputs (CPU float32) in eval mode, ``batch_size`` images at a time (default: 64 on a GPU; on
        a CPU about 64k pixels, 16 images at 64 px, where a U-Net ran 1.6x faster than at 64 with the same bits)."""
        model: nn.Module = getattr(self, net)
        if batch_size is None:
            pixels = int(images.shape[-1]) * int(images.shape[-2])
            batch_size = 64 if self.device.type != "cpu" else max(8, min(64, (1 << 16) // max(1, pixels)))
        was = model.training
        model.eval()
        out = []
        try:
            for chunk in images.split(batch_size):
                with self.autocast():
                    out.append(model(chunk.to(self.device)).float().cpu())
        finally:
            model.train(was)
        return torch.cat(out)
