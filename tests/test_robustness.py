"""The attack-evaluation checklist (Athalye et al. 2018; Carlini et al. 2019), the heavier PGD and targeted PGD.

Toy numbers whose verdicts are known, and tiny networks; the file runs in seconds.
"""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from medgan_utils import SettingError
from medgan_utils.evaluation import (attack_success_rate, format_checklist, pgd, pgd_restarts,
                                     robustness_checklist)

E1, E2, E3 = 2 / 255, 8 / 255, 16 / 255


def _sound(arm="real"):
    """Success rates of a sound evaluation: PGD > FGSM, rising with ε."""
    return {(arm, "fgsm", 0.0): 0.0, (arm, "pgd", 0.0): 0.0,
            (arm, "fgsm", E1): 0.2, (arm, "pgd", E1): 0.3,
            (arm, "fgsm", E2): 0.5, (arm, "pgd", E2): 0.8,
            (arm, "fgsm", E3): 0.6, (arm, "pgd", E3): 0.95}


def _verdicts(rows):
    return {(r["check"], r["arm"]): r["passed"] for r in rows}


def test_a_sound_evaluation_passes_every_check():
    rows = robustness_checklist(_sound(), unbounded={"real": 1.0}, heavier={("real", E2): 0.81},
                                transfer={("real", E1): 0.1, ("real", E2): 0.4}, tol=0.02)
    assert _verdicts(rows) == {("pgd_beats_fgsm", "real"): True, ("rises_to_100", "real"): True,
                               ("heavier_changes_nothing", "real"): True, ("transfer_weaker", "real"): True}
    text = format_checklist(rows)
    assert text.count("PASS") == 4 and "PGD 80% vs FGSM 50%" in text and "unbounded ε: 100%" in text


def test_each_known_failure_fails_its_own_check_only():
    bad = _sound()
    bad["real", "pgd", E2] = 0.4  # PGD weaker than FGSM (0.5) at 8/255, and the curve falls after it? 0.3 → 0.4 → 0.95
    rows = robustness_checklist(bad, unbounded={"real": 0.7},  # gradient masking: no budget reaches 100 %
                                heavier={("real", E2): 0.6},    # restarts find much more: the standard PGD was weak
                                transfer={("real", E2): 0.5})   # black-box beats white-box: another sign of masking
    v = _verdicts(rows)
    assert v == {("pgd_beats_fgsm", "real"): False, ("rises_to_100", "real"): False,
                 ("heavier_changes_nothing", "real"): False, ("transfer_weaker", "real"): False}
    # a falling curve fails even with a perfect unbounded run; the tolerance absorbs a one-image wobble
    falling = _sound()
    falling["real", "pgd", E3] = 0.7
    assert not _verdicts(robustness_checklist(falling, unbounded={"real": 1.0}))["rises_to_100", "real"]
    wobble = _sound()
    wobble["real", "pgd", E3] = 0.79
    assert _verdicts(robustness_checklist(wobble, unbounded={"real": 1.0}, tol=0.02))["rises_to_100", "real"]


def test_checks_run_per_model_and_without_an_unbounded_run_100_percent_is_not_shown():
    rows = robustness_checklist({**_sound("real"), **_sound("adv")}, unbounded={"adv": 1.0})
    v = _verdicts(rows)
    assert v["rises_to_100", "adv"] and not v["rises_to_100", "real"]
    assert "not shown" in next(r["detail"] for r in rows if r["arm"] == "real" and r["check"] == "rises_to_100")
    assert {r["check"] for r in rows} == {"pgd_beats_fgsm", "rises_to_100"}  # no heavier / transfer data given
    assert rows[0]["numbers"]["pgd"]["8/255"] == 0.8  # JSON-friendly keys
    with pytest.raises(SettingError, match="Fix"):
        robustness_checklist(_sound(), tol=-0.1)


def test_attack_success_counts_only_images_that_were_right_before():
    labels = np.array([0, 0, 1, 1])          # positive class 0
    clean = np.array([0.9, 0.2, 0.1, 0.3])   # right, wrong, right, right
    after = np.array([0.1, 0.9, 0.8, 0.3])   # flipped, (was wrong), flipped, kept
    assert attack_success_rate(labels, clean, after, positive=0) == pytest.approx(2 / 3)
    assert math.isnan(attack_success_rate(np.array([0]), np.array([0.1]), np.array([0.9]), positive=0))


class _Saddle(nn.Module):
    """Two logits whose loss is flat (zero gradient) unless the first pixel starts above 0.2: a PGD run from a
    random start below it never moves; restarts draw other starts and find the way out."""

    def forward(self, x):
        v = x.flatten(1)
        s = torch.relu(v[:, 0] - 0.2) * 10 - 0.01
        return torch.stack([torch.zeros_like(s), s], 1)


def test_pgd_restarts_is_never_weaker_than_one_run_and_finds_what_one_run_misses(one_thread):
    torch.manual_seed(0)
    x = torch.zeros(64, 1, 1, 2)
    y = torch.zeros(64, dtype=torch.long)
    net = _Saddle()
    wrong = lambda z: (net(z).argmax(1) != y).float().mean().item()
    single = wrong(pgd(net, x, y, 0.2, steps=3, seed=0))
    heavy = pgd_restarts(net, x, y, 0.2, steps=3, restarts=8, seed=0)
    assert single < 0.45 and wrong(heavy) > 0.75  # one run: ~25 %; eight: ~90 %
    assert (heavy - x).abs().max() <= 0.4 + 1e-6  # still inside the ε-ball (range 2)


def test_targeted_pgd_moves_images_to_the_target_class(one_thread):
    g = torch.Generator().manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(16, 2))
    with torch.no_grad():
        net[1].weight.copy_(torch.randn(2, 16, generator=g))
        net[1].bias.zero_()
    x = torch.rand(32, 1, 4, 4, generator=g) * 2 - 1
    target = torch.ones(32, dtype=torch.long)
    ce = lambda z: F.cross_entropy(net(z), target).item()
    moved = pgd(net, x, target, 16 / 255, steps=10, seed=1, targeted=True)
    away = pgd(net, x, target, 16 / 255, steps=10, seed=1)
    assert ce(moved) < ce(x) < ce(away)
    assert (net(moved).argmax(1) == 1).float().mean() > (net(x).argmax(1) == 1).float().mean()
    assert (moved - x).abs().max() <= 2 * 16 / 255 + 1e-6
