"""An exponential moving average (EMA) of G's weights, with an optional warm-up.

A plain EMA with decay β starts from G's first weights, which are still close to random, and after ``n``
updates keeps a share ``β**n`` of them (0.99**200 ≈ 0.13). The warm-up used by Karras et al.'s StyleGAN2-ADA
code (``ema_rampup``) lets the average's half-life grow with training: after ``k`` updates it is
``rampup · k`` updates, so the decay starts near 0 and rises towards its target ``β``:

``β_k = min(β, 0.5 ** (1 / (rampup · k)))``

The early weights then drop out of the average as training goes on (Yazıcı et al. 2019 study such averages
for GANs). :func:`make_generator_ema` builds the averaged copy that the trainer and the ring runner draw from.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from ..core.errors import SettingError

__all__ = ["ema_decay_at", "make_generator_ema"]


def ema_decay_at(update: int, decay: float, rampup: float | None = None) -> float:
    """The decay applied at the ``update``-th G update (1-based): ``decay`` itself without a warm-up, else
    ``min(decay, 0.5 ** (1 / (rampup · update)))``."""
    if rampup is None:
        return float(decay)
    return min(float(decay), 0.5 ** (1.0 / (float(rampup) * max(1, int(update)))))


def _warmup_avg_fn(decay: float, rampup: float):
    @torch.no_grad()
    def update(ema_params, params, n_averaged):
        # AveragedModel copies G at its first update and counts the updates averaged so far in n_averaged
        beta = ema_decay_at(int(n_averaged) + 1, decay, rampup)
        for avg, p in zip(ema_params, params):
            if torch.is_floating_point(avg):
                avg.lerp_(p, 1.0 - beta)
            else:  # integer buffers (batch norm's counter): the current value
                avg.copy_(p)
    return update


def make_generator_ema(G: nn.Module, decay: float, rampup: float | None = None) -> AveragedModel:
    """An :class:`~torch.optim.swa_utils.AveragedModel` of ``G`` (buffers averaged too) with EMA decay ``decay``,
    warmed up by ``rampup`` when given (see the module's docstring); call ``update_parameters(G)`` after every
    G update and sample from ``.module``."""
    if not (isinstance(decay, (int, float)) and 0 < decay < 1):
        raise SettingError(f"ema_decay must be a number in (0, 1), e.g. 0.999; got {decay!r}.")
    if rampup is not None and not (isinstance(rampup, (int, float)) and 0 < rampup <= 1):
        raise SettingError(f"ema_rampup must be a number in (0, 1], e.g. 0.05, or None; got {rampup!r}.")
    avg_fn = get_ema_multi_avg_fn(decay) if rampup is None else _warmup_avg_fn(decay, rampup)
    return AveragedModel(G, multi_avg_fn=avg_fn, use_buffers=True)
