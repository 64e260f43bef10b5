"""Is the attack evaluation itself sound? A checklist after Athalye, Carlini & Wagner (ICML 2018) and Carlini et al.
(2019, "On evaluating adversarial robustness"), computed from attack results (notebook 08).

An attack that looks weak may be a weak *evaluation* (too few steps, masked gradients) rather than a robust model.
Four signs of a sound one, each checked on attack success rates (the share of the images a model classified
correctly that the attack makes it misclassify):

* ``pgd_beats_fgsm``: PGD, an iterated FGSM, is at least as strong as FGSM at every ε;
* ``rises_to_100``: success does not fall as ε grows, and an unbounded budget reaches (nearly) 100 %;
* ``heavier_changes_nothing``: more PGD steps and random restarts raise success by no more than a tolerance;
* ``transfer_weaker``: a black-box (transfer) attack crafted on another model is no stronger than white-box PGD.

:func:`attack_success_rate` computes the rates; :func:`pgd_restarts` is the heavier attack;
:func:`robustness_checklist` returns one row per (check, model) with the verdict and the numbers behind it.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..core.errors import SettingError, positive_int
from .attacks import pgd

__all__ = ["CHECKLIST", "attack_success_rate", "pgd_restarts", "robustness_checklist", "format_checklist"]

CHECKLIST = {
    "pgd_beats_fgsm": "PGD at least as strong as FGSM at each ε",
    "rises_to_100": "success rises with ε and reaches ~100 % without a budget",
    "heavier_changes_nothing": "more PGD steps and restarts change nothing material",
    "transfer_weaker": "black-box (transfer) weaker than white-box",
}


def attack_success_rate(labels, p_clean, p_attacked, positive: int, threshold: float = 0.5) -> float:
    """Share of the images classified correctly on clean input (``p_positive >= threshold`` means the positive
    class) that are misclassified after the attack; NaN when none was correct."""
    y = np.asarray(labels).reshape(-1) == positive
    right = (np.asarray(p_clean, float).reshape(-1) >= threshold) == y
    after = (np.asarray(p_attacked, float).reshape(-1) >= threshold) == y
    return float(np.mean(~after[right])) if right.any() else float("nan")


@torch.no_grad()
def _loss_and_wrong(net, x, y):
    logits = net(x).float()
    return F.cross_entropy(logits, y, reduction="none"), logits.argmax(1) != y


def pgd_restarts(net: nn.Module, images: torch.Tensor, labels: torch.Tensor, eps: float, *, steps: int = 50,
                 restarts: int = 5, seed: int = 0, **options) -> torch.Tensor:
    """The worst case over ``restarts`` random starts of :func:`~medgan_utils.evaluation.attacks.pgd`: per image,
    a restart that misclassifies it if any does, else the one with the highest loss. Runs on ``net``'s device and
    returns CPU images."""
    restarts = positive_int(restarts, "restarts")
    weight = next(net.parameters(), None)
    device = weight.device if weight is not None else images.device
    images = images.to(device)
    y = torch.as_tensor(labels).long().view(-1).to(device)
    best = pgd(net, images, y, eps, steps=steps, seed=int(seed) * 7919, **options)
    best_loss, best_wrong = _loss_and_wrong(net, best, y)
    for r in range(1, restarts):
        x = pgd(net, images, y, eps, steps=steps, seed=int(seed) * 7919 + r, **options)
        loss, wrong = _loss_and_wrong(net, x, y)
        better = (wrong & ~best_wrong) | ((wrong == best_wrong) & (loss > best_loss))
        best = torch.where(better.view(-1, *[1] * (images.ndim - 1)), x, best)
        best_loss, best_wrong = torch.where(better, loss, best_loss), best_wrong | wrong
    return best.cpu()


def _fmt(eps):
    return f"{eps * 255:g}/255"


def _row(check, arm, passed, detail, numbers):
    keyed = {k: ({_fmt(e): float(v) for e, v in d.items()} if isinstance(d, dict) else d) for k, d in numbers.items()}
    return {"check": check, "what": CHECKLIST[check], "arm": arm, "passed": bool(passed), "detail": detail,
            "numbers": keyed}


def robustness_checklist(success: dict, *, unbounded: dict | None = None, heavier: dict | None = None,
                         transfer: dict | None = None, tol: float = 0.02, reach: float = 0.99) -> list[dict]:
    """One row per (check, model): ``{"check", "what", "arm", "passed", "detail", "numbers"}``.

    Args:
        success: ``{(arm, attack, eps): rate}`` of the standard attacks ("fgsm", "pgd"); ε = 0 is ignored.
        unbounded: ``{arm: rate}`` of PGD with an unbounded budget (ε = 1: any image is reachable).
        heavier: ``{(arm, eps): rate}`` of a heavier PGD (more steps, restarts) on some models.
        transfer: ``{(arm, eps): rate}`` of PGD images crafted on another model and shown to ``arm``.
        tol: how far a rate may go the wrong way before a check fails (noise of a few test images).
        reach: the rate an unbounded attack must reach.
    """
    if not 0 <= tol < 1 or not 0 < reach <= 1:
        raise SettingError(f"tol must lie in [0, 1) and reach in (0, 1], got {tol} and {reach}. Fix: e.g. "
                           "tol=0.02, reach=0.99.")
    arms = sorted({k[0] for k in success}, key=str)
    rows = []
    for arm in arms:
        pg = {e: v for (a, at, e), v in success.items() if a == arm and at == "pgd" and e > 0}
        fg = {e: v for (a, at, e), v in success.items() if a == arm and at == "fgsm" and e > 0}
        both = sorted(set(pg) & set(fg))
        if both:
            gaps = {e: pg[e] - fg[e] for e in both}
            rows.append(_row("pgd_beats_fgsm", arm, min(gaps.values()) >= -tol,
                             "; ".join(f"ε {_fmt(e)}: PGD {pg[e]:.0%} vs FGSM {fg[e]:.0%}" for e in both),
                             {"pgd": pg, "fgsm": fg}))
        if pg:
            curve = [pg[e] for e in sorted(pg)]
            rising = all(b >= a - tol for a, b in zip(curve, curve[1:]))
            top = None if unbounded is None else unbounded.get(arm)
            passed = rising and (top is not None and top >= reach)
            detail = " → ".join(f"{v:.0%}" for v in curve) + f" over ε {', '.join(_fmt(e) for e in sorted(pg))}"
            detail += (f"; unbounded ε: {top:.0%} (needs ≥ {reach:.0%})" if top is not None else
                       "; no unbounded run, so 100 % is not shown")
            rows.append(_row("rises_to_100", arm, passed, detail, {"pgd": pg, "unbounded": top}))
        heavy = {e: v for (a, e), v in (heavier or {}).items() if a == arm and e in pg}
        if heavy:
            gain = {e: heavy[e] - pg[e] for e in heavy}
            rows.append(_row("heavier_changes_nothing", arm, max(gain.values()) <= tol,
                             "; ".join(f"ε {_fmt(e)}: heavier {heavy[e]:.0%} vs standard {pg[e]:.0%}"
                                       for e in sorted(heavy)), {"heavier": heavy, "pgd": pg}))
        moved = {e: v for (a, e), v in (transfer or {}).items() if a == arm and e in pg}
        if moved:
            rows.append(_row("transfer_weaker", arm, all(moved[e] <= pg[e] + tol for e in moved),
                             "; ".join(f"ε {_fmt(e)}: transfer {moved[e]:.0%} vs white-box {pg[e]:.0%}"
                                       for e in sorted(moved)), {"transfer": moved, "pgd": pg}))
    return rows


def format_checklist(rows: list[dict]) -> str:
    """The checklist as lines ``PASS|FAIL  what  [arm]: numbers``."""
    return "\n".join(f"{'PASS' if r['passed'] else 'FAIL'}  {r['what']} [{r['arm']}]: {r['detail']}" for r in rows)
