"""Membership inference against a GAN: does the discriminator recognise its own training images?

LOGAN's white-box attack (Hayes et al., PoPETs 2019): an overfitted discriminator scores the images it was
trained on higher than new images from the same distribution, so its score is a membership test. The attack
is scored by the ROC AUC (``sklearn.metrics.roc_auc_score``) of the score on members (training images) against
non-members (held-out images of the same distribution), equal counts of each: 0.5 is chance, 1.0 recognises
every training image. Carlini et al. (2022, "Membership inference attacks from first principles") add the
**TPR at a low FPR** (1 %): the share of members recognised while almost no non-member is accused, which is what
an attacker who must be sure cares about. Beside them, D's **overfitting gap**: its mean score on members minus
on non-members (ADA's overfitting signal, Karras et al. 2020, and LOGAN's attack signal at once). A percentile
bootstrap over the images gives the three intervals. :func:`drop_near_copies` removes member / non-member pairs
that are near copies of each other before any of this (a duplicate across splits is "recognised" for free).

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

__all__ = ["discriminator_scores", "discriminator_gap", "membership_auc", "membership_inference", "tpr_at_fpr",
           "drop_near_copies", "membership_evidence", "dp_leak_verdict"]


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


def discriminator_gap(D: nn.Module, train_reals: torch.Tensor, val_reals: torch.Tensor,
                      batch_size: int = 512) -> dict:
    """D's **train − validation gap**: its mean score (logit, eval mode) on the real images it trains on minus its
    mean score on held-out real images of the same distribution. Near 0 while D judges images by what they
    show; it grows as D memorises its training set (ADA's overfitting signal, Karras et al. 2020; LOGAN's
    attack signal, Hayes et al. 2019). Returns ``{"train", "val", "gap"}`` (floats)."""
    if len(train_reals) < 1 or len(val_reals) < 1:
        raise SettingError(f"discriminator_gap needs at least one training and one validation image, got "
                           f"{len(train_reals)} and {len(val_reals)}. Fix: pass both image sets.")
    tr, va = discriminator_scores(D, train_reals, batch_size), discriminator_scores(D, val_reals, batch_size)
    return {"train": float(tr.mean()), "val": float(va.mean()), "gap": float(tr.mean() - va.mean())}


def tpr_at_fpr(member_scores, nonmember_scores, fpr: float = 0.01) -> float:
    """Share of members scored above a threshold that at most ``fpr`` of the non-members exceed (the
    threshold is the (k+1)-th highest non-member score, k = ⌊fpr · n⌋; ties count as not above)."""
    a, b = np.asarray(member_scores, float).ravel(), np.sort(np.asarray(nonmember_scores, float).ravel())[::-1]
    if not 0 <= fpr < 1:
        raise SettingError(f"fpr must lie in [0, 1), got {fpr}. Fix: e.g. fpr=0.01.")
    k = int(np.floor(fpr * len(b) + 1e-9))
    return float(np.mean(a > b[min(k, len(b) - 1)]))


def _attack_numbers(a, b, fpr):
    from .evidence import fast_auc

    return (fast_auc(np.r_[np.ones(len(a)), np.zeros(len(b))], np.r_[a, b]), tpr_at_fpr(a, b, fpr),
            float(a.mean() - b.mean()))


def membership_auc(member_scores, nonmember_scores, n_boot: int = 500, seed: int = 0, fpr: float = 0.01) -> dict:
    """ROC AUC of "member" from the scores (higher = more likely a member), its TPR at ``fpr`` and the mean score
    gap (members − non-members), each with a percentile bootstrap 95 % interval over members and non-members.

    Returns ``{"auc", "ci_low", "ci_high", "tpr_at_fpr", "tpr_ci", "fpr", "score_gap", "gap_ci", "n_members",
    "n_nonmembers", "n_boot"}``.
    """
    a, b = np.asarray(member_scores, float).ravel(), np.asarray(nonmember_scores, float).ravel()
    if len(a) < 2 or len(b) < 2:
        raise SettingError(f"Membership inference needs at least two members and two non-members, got {len(a)} "
                           f"and {len(b)}. Fix: pass more images.")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise SettingError("A membership score is NaN or infinite. Fix: check the model (did training diverge?).")
    auc, tpr, gap = _attack_numbers(a, b, fpr)
    rng = np.random.default_rng(int(seed))
    reps = np.array([_attack_numbers(a[rng.integers(0, len(a), len(a))], b[rng.integers(0, len(b), len(b))], fpr)
                     for _ in range(int(n_boot))]).reshape(-1, 3)
    ci = (np.quantile(reps, [0.025, 0.975], axis=0).T.tolist() if len(reps) else [[None, None]] * 3)
    return {"auc": auc, "ci_low": ci[0][0], "ci_high": ci[0][1], "tpr_at_fpr": tpr, "tpr_ci": ci[1], "fpr": fpr,
            "score_gap": gap, "gap_ci": ci[2], "n_members": len(a), "n_nonmembers": len(b), "n_boot": int(n_boot)}


def drop_near_copies(members: torch.Tensor, nonmembers: torch.Tensor, threshold: float | None = None) -> tuple:
    """``(members, nonmembers, report)`` without every image that has a near copy on the other side
    (:func:`~medgan_utils.evaluation.neighbours.near_copy_clusters` on the two sets pooled; pass the split's
    ``threshold`` to use the same rule as :func:`~medgan_utils.course.splits.leak_free_splits`)."""
    from .neighbours import near_copy_clusters

    found = near_copy_clusters(torch.cat([members, nonmembers]), threshold=threshold)
    cluster = np.asarray(found["cluster"])
    cm, cn = cluster[:len(members)], cluster[len(members):]
    shared = np.intersect1d(cm, cn)
    keep_m, keep_n = ~np.isin(cm, shared), ~np.isin(cn, shared)
    report = {"dropped_members": int((~keep_m).sum()), "dropped_nonmembers": int((~keep_n).sum()),
              "threshold": found["threshold"]}
    return members[torch.from_numpy(keep_m)], nonmembers[torch.from_numpy(keep_n)], report


def membership_inference(D: nn.Module, members: torch.Tensor, nonmembers: torch.Tensor, n: int | None = None,
                         seed: int = 0, n_boot: int = 500, fpr: float = 0.01) -> dict:
    """LOGAN's white-box attack: D's score on ``n`` members against ``n`` non-members (default: as many as the
    smaller set has, drawn with ``seed``), scored by :func:`membership_auc` (AUC, TPR at ``fpr``, score gap)."""
    n = int(n or min(len(members), len(nonmembers)))
    if n > min(len(members), len(nonmembers)):
        raise SettingError(f"n={n} exceeds the {len(members)} members or {len(nonmembers)} non-members. "
                           "Fix: a smaller n.")
    g = torch.Generator().manual_seed(int(seed))
    im = torch.randperm(len(members), generator=g)[:n]
    inn = torch.randperm(len(nonmembers), generator=g)[:n]
    out = membership_auc(discriminator_scores(D, members[im]), discriminator_scores(D, nonmembers[inn]),
                         n_boot=n_boot, seed=seed, fpr=fpr)
    return out


def membership_evidence(scores, is_member, base=None, *, n_boot: int = 1000, seed: int = 0, fpr: float = 0.01) -> dict:
    """The attack's AUC, its TPR at ``fpr`` and D's score gap (members − non-members) over one or more trained
    models, each with :func:`~medgan_utils.evaluation.evidence.bootstrap_contrast`'s interval: it resamples the
    seeds and, within each, the members and the non-members (their counts kept).

    ``scores``: ``{seed: D's scores on the pooled images}`` (a single array is one seed); ``is_member``: 1 for a
    member, 0 for a non-member, one per pooled image. With ``base`` (another model's scores on the same images,
    paired by seed), each number is the difference ``scores − base``. Returns ``{"auc", "tpr_at_fpr",
    "score_gap"}``, each ``{"estimate", "ci", "p_value", ...}``, and ``"fpr"``.
    """
    from .evidence import bootstrap_contrast, fast_auc

    member = np.asarray(is_member).astype(bool).ravel()
    if member.all() or not member.any():
        raise SettingError("membership_evidence needs members and non-members. Fix: is_member holds 1s and 0s.")
    if not 0 <= fpr < 1:
        raise SettingError(f"fpr must lie in [0, 1), got {fpr}. Fix: e.g. fpr=0.01.")

    def check(arm):
        arm = arm if isinstance(arm, dict) else {0: arm}
        arm = {s: np.asarray(v, float).ravel() for s, v in arm.items()}
        if any(len(v) != len(member) or not np.isfinite(v).all() for v in arm.values()):
            raise SettingError(f"Each seed needs one finite score per pooled image ({len(member)}). Fix: score "
                               "members and non-members with the same model, in the order of is_member.")
        return arm

    metrics = {"auc": (lambda s, i: fast_auc(member[i].astype(float), s[i]), (0.0, 1.0)),
               "tpr_at_fpr": (lambda s, i: tpr_at_fpr(s[i][member[i]], s[i][~member[i]], fpr), (0.0, 1.0)),
               "score_gap": (lambda s, i: float(s[i][member[i]].mean() - s[i][~member[i]].mean()),
                             (-np.inf, np.inf))}
    arm, base = check(scores), None if base is None else check(base)
    out = {name: bootstrap_contrast(metric, arm, base, n_items=len(member), strata=member.astype(int),
                                    bounds=bounds, n_boot=n_boot, seed=seed)
           for name, (metric, bounds) in metrics.items()}
    return {**out, "fpr": float(fpr)}


def dp_leak_verdict(non_private_ci, private_ci, chance: float = 0.5) -> str:
    """What one DP run shows about the attack, from the two AUC intervals only: ``"no leak to close"`` when the
    non-private interval includes ``chance``; else ``"closes the leak"`` when the private interval includes it, and
    ``"leak persists"`` when it excludes it (lies above it)."""
    (lo0, hi0), (lo, hi) = non_private_ci, private_ci
    if not (lo0 <= hi0 and lo <= hi):
        raise SettingError(f"An interval needs low <= high, got {non_private_ci} and {private_ci}. Fix: pass [low, high].")
    if lo0 <= chance:
        return "no leak to close"
    return "closes the leak" if lo <= chance else "leak persists"
