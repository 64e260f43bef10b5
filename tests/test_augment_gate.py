"""Notebook 04's new plumbing: augmentation without black corners, early stopping, KID, the GAN gate and the
"real or synthetic?" exercise, each on small inputs with known answers."""
import itertools

import numpy as np
import pytest
import torch
from torch import nn

from medgan_utils.core.errors import SettingError
from medgan_utils.course.real_or_synthetic import (feature_detector_accuracy, real_or_synthetic_quiz,
                                                   real_or_synthetic_widget, score_guesses)
from medgan_utils.data import AUGMENT_STRENGTHS, augment_at, classical_augment
from medgan_utils.evaluation import gan_gate, gate_verdict, kid_interval, kid_unbiased, train_classifier
from medgan_utils.nets import make_classifier


# ---------------------------------------------------------------- classical augmentation
@pytest.mark.parametrize("strength", list(AUGMENT_STRENGTHS))
def test_augmented_constant_image_keeps_its_value_in_the_corners(strength):
    x = torch.full((32, 1, 28, 28), 0.3)
    out = augment_at(strength)(x, torch.Generator().manual_seed(0))
    corners = out[..., [0, 0, -1, -1], [0, -1, 0, -1]]
    centre = out[..., 14, 14]
    assert torch.allclose(corners, centre[..., None].expand_as(corners), atol=1e-5)
    assert not torch.allclose(out, x)  # the intensity change did act


def test_zero_padding_would_leave_black_corners():  # the artefact the reflection padding removes
    x = torch.full((32, 1, 28, 28), 0.3)
    out = classical_augment(x, torch.Generator().manual_seed(0), max_degrees=20, intensity=0.0, padding_mode="zeros")
    assert (out[..., 0, 0] < 0).any()


def test_strengths_grow_and_unknown_strength_is_refused():
    degrees = [AUGMENT_STRENGTHS[k]["max_degrees"] for k in AUGMENT_STRENGTHS]
    assert degrees == sorted(degrees) and len(set(degrees)) == len(degrees)
    with pytest.raises(SettingError, match="strength"):
        augment_at("extreme")


# ---------------------------------------------------------------- early stopping
def test_train_classifier_stops_early_and_restores_the_best_weights(one_thread):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(64, 1, 28, 28, generator=g) * 2 - 1
    y = torch.arange(64) % 2
    x[y == 1] *= 0.2
    xv, yv = x[:32].clone(), y[:32].clone()
    net, info = train_classifier(make_classifier("cnn", 1, 2, seed=0), x, y, xv, yv, steps=400,
                                 task="binary-class", batch_size=16, seed=0, eval_every=4, patience=2,
                                 precision="fp32")
    assert info["stopped_early"] and info["stopped_step"] < 400
    assert info["stopped_step"] - info["best_step"] == 2 * 4  # two evaluations without a gain, then stop
    _, full = train_classifier(make_classifier("cnn", 1, 2, seed=0), x, y, xv, yv, steps=40,
                               task="binary-class", batch_size=16, seed=0, eval_every=4, precision="fp32")
    assert full["stopped_step"] == 40 and not full["stopped_early"]
    with pytest.raises(SettingError, match="patience"):
        train_classifier(make_classifier("cnn", 1, 2), x, y, xv, yv, steps=4, task="binary-class", patience=0)


# ---------------------------------------------------------------- KID
def test_kid_matches_a_hand_computation():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(5, 3)), rng.normal(0.5, 1, size=(4, 3))

    def k(u, v):
        return (u @ v / 3 + 1) ** 3
    aa = np.mean([k(a[i], a[j]) for i, j in itertools.permutations(range(5), 2)])
    bb = np.mean([k(b[i], b[j]) for i, j in itertools.permutations(range(4), 2)])
    ab = np.mean([k(a[i], b[j]) for i in range(5) for j in range(4)])
    assert kid_unbiased(a, b) == pytest.approx(aa + bb - 2 * ab, rel=1e-10)


def test_kid_interval_is_near_zero_for_one_distribution_and_excludes_zero_for_two():
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(120, 8, generator=g), torch.randn(120, 8, generator=g)
    same, apart = kid_interval(a, b, n_boot=100), kid_interval(a, b + 1.5, n_boot=100)
    assert same["ci"][0] <= same["estimate"] <= same["ci"][1] and same["ci"][0] < 0.05
    assert apart["ci"][0] > same["ci"][1]


# ---------------------------------------------------------------- the gate
class BrightnessNet(nn.Module):
    """A stand-in feature net: class 1 when the image is bright; features are the mean and the roughness."""
    feature_dim, in_channels = 2, 1

    def __init__(self):
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(1))

    def features(self, x):
        return torch.stack([x.mean((1, 2, 3)), (x[..., 1:] - x[..., :-1]).abs().mean((1, 2, 3))], 1)

    def forward(self, x):
        m = x.mean((1, 2, 3))
        return torch.stack([-10 * m, 10 * m], 1)


def _images(n, bright, seed):
    g = torch.Generator().manual_seed(seed)
    base = torch.where(torch.arange(n) % 2 == 1, 0.5, -0.5) if bright is None else torch.full((n,), bright)
    return (base.view(n, 1, 1, 1) + 0.3 * torch.randn(n, 1, 12, 12, generator=g)).clamp(-1, 1)


def _gate(fake, fake_y):
    train_x, val_x = _images(60, None, 1), _images(40, None, 2)
    y = torch.arange(60) % 2
    return gan_gate(fake, fake_y, train_x, y, val_x, torch.arange(40) % 2, BrightnessNet(), n_boot=50)


def test_gate_passes_a_faithful_fresh_generator():
    verdict = _gate(_images(40, None, 3), torch.arange(40) % 2)
    assert verdict["passed"] and verdict["reasons"] == []
    assert set(verdict["per_class"]) == {"0", "1"} and "kid" in verdict["per_class"]["1"]


def test_gate_fails_a_generator_that_draws_the_wrong_class():
    fake = _images(40, -0.5, 3)  # every image dark, half of them asked to be class 1 (bright)
    verdict = _gate(fake, torch.arange(40) % 2)
    assert not verdict["passed"] and not verdict["per_class"]["1"]["fidelity_ok"]
    assert verdict["per_class"]["0"]["fidelity_ok"] and any("class 1" in r for r in verdict["reasons"])


def test_gate_fails_a_generator_that_copies_its_training_images():
    copies = _images(60, None, 1)[:40]  # the training images themselves
    verdict = _gate(copies, torch.arange(40) % 2)
    assert not verdict["passed"] and not verdict["memorisation"]["passed"]
    assert any("memorisation" in r for r in verdict["reasons"])


def test_gate_verdict_tolerance_and_kid_limit():
    mem = {"copy_fraction": 0.0, "test_copy_fraction": 0.01, "ratio": 1.0}
    assert gate_verdict({0: 0.45}, {0: 0.48}, mem, fidelity_tolerance=0.05)["passed"]
    assert not gate_verdict({0: 0.45}, {0: 0.48}, mem)["passed"]
    kid_rows = {0: {"kid": {"estimate": 0.3, "ci": [0.2, 0.4]}, "kid_ref": {"estimate": 0.0, "ci": [-0.1, 0.1]}}}
    assert not gate_verdict({0: 0.9}, {0: 0.5}, mem, kid_rows, max_kid=0.1)["passed"]


# ---------------------------------------------------------------- real or synthetic?
def test_quiz_is_balanced_shuffled_and_scored_against_chance():
    real, synth = torch.zeros(20, 1, 4, 4), torch.ones(20, 1, 4, 4)
    quiz = real_or_synthetic_quiz(real, synth, n=16, seed=0)
    truth = quiz["is_synthetic"]
    assert truth.sum() == 8 and (quiz["images"][truth] == 1).all() and (quiz["images"][~truth] == 0).all()
    assert not (truth[:8].all() or (~truth[:8]).all())  # shuffled
    perfect = score_guesses(truth, truth)
    assert perfect["correct"] == 16 and perfect["p_vs_chance"] == pytest.approx(0.5 ** 16)
    assert score_guesses(~truth, truth)["p_vs_chance"] == pytest.approx(1.0)
    with pytest.raises(SettingError, match="QUIZ_IMAGES"):
        real_or_synthetic_quiz(real, synth, n=15)


def test_feature_detector_separates_distinct_sets_and_not_identical_ones():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(100, 4))
    assert feature_detector_accuracy(a, a + 3)["accuracy"] > 0.95
    assert feature_detector_accuracy(a, rng.normal(size=(100, 4)))["accuracy"] < 0.7


def test_widget_falls_back_to_a_scripted_guesser_without_a_front_end(monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    monkeypatch.setenv("MEDGAN_HEADLESS", "1")
    quiz = real_or_synthetic_quiz(torch.rand(10, 1, 8, 8) * 2 - 1, torch.zeros(10, 1, 8, 8), n=8)
    got = real_or_synthetic_widget(quiz, on_done=lambda g: score_guesses(g, quiz["is_synthetic"]))
    assert got["n"] == 8 and got["correct"] == 8  # flat synthetic images are the smooth half
