"""Membership inference against a GAN: does the discriminator recognise its own training images?

LOGAN's white-box attack (Hayes et al., PoPETs 2019): an overfitted discriminator scores the images it was
trained on higher than new images from the same distribution, so its score is a membership test. The attack
is scored by the ROC AUC (``sklearn.metrics.roc_auc_score``) of the score on members (training images) against
non-members (held-out images of the same distribution), equal counts of each: 0.5 is chance, 1.0 recognises
every training image. A percentile bootstrap over the images gives the interval.

This measures something else than :func:`~medgan_utils.evaluation.memorisation.memorisation_audit`: the audit
asks whether *generated* images copy training images (what a user of the synthetic data sees); membership
inference asks whether the *model* leaks who was in the training set (what an attacker with the model sees).
Nothing here imports :mod:`medgan_utils.gan`.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..core.errors import SettingError

__all__ = ["discriminator_scores", "membership_auc", "membership_inference"]


@torch.no_grad()
def discriminator_scores(D: nn.Module, images: torch.Tensor, batch_size: int = 512) -> np.ndarray:
    """D's logits (one per image) in eval mode, as float64 numpy."""
    device = next(D.parameters()).device
    was = D.training
    D.eval()
    try:
        out = [D(x.to(device)).float().view(len(x), -1).mean(1).cpu() for x in images.split(batch_size)]
    finally:
        D.train(was)
    return torch.cat(out).double().numpy()


def membership_auc(member_scores, nonmember_scores, n_boot: int = 500, seed: int = 0) -> dict:
    """ROC AUC of "member" from the scores (higher = more likely a member), with a bootstrap 95 % interval.

    Returns ``{"auc", "ci_low", "ci_high", "n_members", "n_nonmembers"}``.
    """
    from sklearn.metrics import roc_auc_score

    a, b = np.asarray(member_scores, float).ravel(), np.asarray(nonmember_scores, float).ravel()
    if len(a) < 2 or len(b) < 2:
        raise SettingError(f"Membership inference needs at least two members and two non-members, got {len(a)} "
                           f"and {len(b)}. Fix: pass more images.")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise SettingError("A membership score is NaN or infinite. Fix: check the model (did training diverge?).")
    y = np.r_[np.ones(len(a)), np.zeros(len(b))]
    s = np.r_[a, b]
    auc = float(roc_auc_score(y, s))
    rng = np.random.default_rng(int(seed))
    reps = []
    for _ in range(int(n_boot)):
        ia, ib = rng.integers(0, len(a), len(a)), rng.integers(0, len(b), len(b))
        reps.append(roc_auc_score(y, np.r_[a[ia], b[ib]]))
    lo, hi = (np.quantile(reps, [0.025, 0.975]) if reps else (None, None))
    return {"auc": auc, "ci_low": None if lo is None else float(lo), "ci_high": None if hi is None else float(hi),
            "n_members": len(a), "n_nonmembers": len(b)}


def membership_inference(D: nn.Module, members: torch.Tensor, nonmembers: torch.Tensor, n: int | None = None,
                         seed: int = 0, n_boot: int = 500) -> dict:
    """LOGAN's white-box attack: D's score on ``n`` members against ``n`` non-members (default: as many as the
    smaller set has, drawn with ``seed``), scored by :func:`membership_auc`."""
    n = int(n or min(len(members), len(nonmembers)))
    if n > min(len(members), len(nonmembers)):
        raise SettingError(f"n={n} exceeds the {len(members)} members or {len(nonmembers)} non-members. "
                           "Fix: a smaller n.")
    g = torch.Generator().manual_seed(int(seed))
    im = torch.randperm(len(members), generator=g)[:n]
    inn = torch.randperm(len(nonmembers), generator=g)[:n]
    out = membership_auc(discriminator_scores(D, members[im]), discriminator_scores(D, nonmembers[inn]),
                         n_boot=n_boot, seed=seed)
    return out
