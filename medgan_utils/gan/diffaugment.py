"""Differentiable augmentation (DiffAugment, Zhao et al. 2020) for data-efficient GAN training.

The same random transforms are applied to **every** image the discriminator sees, real and generated, in
the D update and in the G update; they are differentiable, so G's gradient passes through them. D then
cannot memorise the few real images as they are, and G is not pushed to draw augmented images (which
augmenting the real images alone would do). Policy ``"color,translation,cutout"`` as in the paper, for
images in [-1, 1]; colour is brightness and contrast (grey images have no saturation).

:class:`AdaptiveAugment` is the ADA idea (Karras et al. 2020) on the same transforms: each transform reaches each
image with probability ``p``, and ``p`` follows the overfitting heuristic ``r = E[sign(D(real))]``: up when D is
too sure of the real images (``r`` above the target 0.6), down otherwise.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..core.errors import SettingError

__all__ = ["diff_augment", "DIFFAUGMENT_POLICY", "make_diff_augment", "AdaptiveAugment"]

DIFFAUGMENT_POLICY = "color,translation,cutout"


def _rand(x, generator, *shape):
    return torch.rand(x.shape[0], *shape, device=x.device, generator=generator, dtype=torch.float32).to(x.dtype)


def _color(x, generator):
    x = x + (_rand(x, generator, 1, 1, 1) - 0.5)  # brightness ±0.5 (on [-1, 1]: ±0.25 of the range)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (_rand(x, generator, 1, 1, 1) + 0.5) + mean  # contrast × [0.5, 1.5]


def _translation(x, generator, ratio: float = 0.125):
    n, _, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    ty = torch.randint(-sh, sh + 1, (n, 1, 1), device=x.device, generator=generator)
    tx = torch.randint(-sw, sw + 1, (n, 1, 1), device=x.device, generator=generator)
    gy, gx = torch.meshgrid(torch.arange(h, device=x.device), torch.arange(w, device=x.device), indexing="ij")
    gy = (gy[None] + ty).clamp(-1, h)  # -1 and h index the zero padding
    gx = (gx[None] + tx).clamp(-1, w)
    padded = F.pad(x, [1, 1, 1, 1])
    idx = ((gy + 1) * (w + 2) + (gx + 1)).view(n, 1, -1).expand(-1, x.shape[1], -1)
    return padded.flatten(2).gather(2, idx).view_as(x)


def _cutout(x, generator, ratio: float = 0.5):
    n, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    cy = torch.randint(0, h + (1 - ch % 2), (n, 1, 1), device=x.device, generator=generator)
    cx = torch.randint(0, w + (1 - cw % 2), (n, 1, 1), device=x.device, generator=generator)
    gy, gx = torch.meshgrid(torch.arange(h, device=x.device), torch.arange(w, device=x.device), indexing="ij")
    top, left = cy - ch // 2, cx - cw // 2
    inside = (gy[None] >= top) & (gy[None] < top + ch) & (gx[None] >= left) & (gx[None] < left + cw)
    return x * (~inside).unsqueeze(1).to(x.dtype)


TRANSFORMS = {"color": _color, "translation": _translation, "cutout": _cutout}


def _parse(policy: str) -> list[str]:
    names = [p.strip() for p in str(policy).split(",") if p.strip()]
    bad = [p for p in names if p not in TRANSFORMS]
    if bad:
        raise SettingError(f"Unknown DiffAugment transform(s) {bad}. Fix: a comma-separated subset of "
                           f"{', '.join(TRANSFORMS)}.")
    return names


def diff_augment(x: torch.Tensor, policy: str = DIFFAUGMENT_POLICY, generator: torch.Generator | None = None):
    """Apply the policy's transforms, in order, each with fresh per-image randomness from ``generator``."""
    for name in _parse(policy):
        x = TRANSFORMS[name](x, generator)
    return x.contiguous()


def make_diff_augment(policy: str = DIFFAUGMENT_POLICY):
    """``augment(x, generator=None)`` for :func:`~medgan_utils.gan.regularisers.make_stable_step`."""
    _parse(policy)

    def augment(x, generator=None):
        return diff_augment(x, policy, generator)

    augment.policy = policy
    return augment


class AdaptiveAugment:
    """ADA-style augmentation: ``augment(x, generator)`` applies each transform of ``policy`` to each image with
    probability ``p``; the training step calls :meth:`observe` with D's logits on the real batch.

    Every ``interval`` updates, ``r = mean(sign(D(real)))`` over them is compared with ``target``; ``p`` moves by
    ``interval / ramp_updates`` towards more augmentation when ``r > target`` and towards less otherwise, so it can
    cross [0, 1] in ``ramp_updates`` updates. Karras et al. ramp over 500k images; our runs are a few hundred
    updates, hence a ramp in updates. ``history`` keeps ``(update, r, p)`` at each adjustment.
    """

    def __init__(self, policy: str = DIFFAUGMENT_POLICY, target: float = 0.6, interval: int = 4,
                 ramp_updates: int = 100, p: float = 0.0):
        if not (-1 < float(target) < 1 and int(interval) >= 1 and int(ramp_updates) >= 1 and 0 <= float(p) <= 1):
            raise SettingError(f"AdaptiveAugment needs -1 < target < 1, interval >= 1, ramp_updates >= 1 and "
                               f"0 <= p <= 1 (got {target}, {interval}, {ramp_updates}, {p}). Fix: e.g. the defaults.")
        self.names, self.policy = _parse(policy), policy
        self.target, self.interval, self.ramp_updates = float(target), int(interval), int(ramp_updates)
        self.p = float(p)
        self.updates, self.history, self._signs = 0, [], []

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if self.p <= 0:
            return x
        for name in self.names:
            chosen = _rand(x, generator, 1, 1, 1) < self.p
            x = torch.where(chosen, TRANSFORMS[name](x, generator), x)
        return x.contiguous()

    def observe(self, real_logits: torch.Tensor) -> None:
        """One update's D logits on the real images; adjusts ``p`` every ``interval`` calls."""
        self.updates += 1
        self._signs.append(float(torch.sign(real_logits.detach().float()).mean()))
        if len(self._signs) >= self.interval:
            r = sum(self._signs) / len(self._signs)
            self._signs.clear()
            step = self.interval / self.ramp_updates
            self.p = min(1.0, max(0.0, self.p + (step if r > self.target else -step)))
            self.history.append((self.updates, r, self.p))
