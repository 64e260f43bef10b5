"""Notebook 08's building blocks: FGSM / PGD, membership inference, the DP-SGD accountant and wrapper, tampering.

Tiny networks and random tensors, single-threaded; the whole file runs in seconds.
"""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from medgan_utils import SettingError
from medgan_utils.course import (dilate, inject_lesions, paste, place_lesion, region_recall, remove_lesions,
                                 residual_features)
from medgan_utils.evaluation import (attack_images, check_attacks, check_epsilons, fgsm, membership_auc,
                                     membership_inference, pgd, train_adversarial)
from medgan_utils.gan import epsilon_spent, noise_for_epsilon, train_private_gan
from medgan_utils.nets import make_classifier, make_dcgan
from helpers import notebook_cell



def _net_and_batch(n=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, 28, 28, generator=g) * 2 - 1
    y = torch.randint(0, 2, (n,), generator=g)
    return make_classifier("cnn", 1, 2, seed=seed).eval(), x, y


def test_fgsm_at_zero_epsilon_leaves_the_input_unchanged(one_thread):
    net, x, y = _net_and_batch()
    assert torch.equal(fgsm(net, x, y, 0.0), x)
    assert torch.equal(pgd(net, x, y, 0.0), x)
    moved = fgsm(net, x, y, 4 / 255)
    assert not torch.equal(moved, x)  # a positive budget does move it


@pytest.mark.parametrize("eps", [1 / 255, 8 / 255, 0.3])
def test_pgd_stays_in_the_eps_ball_and_the_pixel_range(eps, one_thread):
    net, x, y = _net_and_batch()
    x[0, 0, :4] = 1.0  # pixels at the bounds: the attack must not leave [-1, 1]
    x[1, 0, :4] = -1.0
    adv = pgd(net, x, y, eps, steps=5, seed=3)
    assert (adv - x).abs().max() <= 2 * eps + 1e-6  # images in [-1, 1]: the range is 2
    assert adv.min() >= -1 and adv.max() <= 1
    f = fgsm(net, x, y, eps)
    assert (f - x).abs().max() <= 2 * eps + 1e-6 and f.min() >= -1 and f.max() <= 1


def test_pgd_raises_the_loss_more_than_nothing_and_is_seeded(one_thread):
    net, x, y = _net_and_batch(32)
    loss = lambda z: float(F.cross_entropy(net(z), y).detach())
    adv = pgd(net, x, y, 8 / 255, steps=10, seed=1)
    assert loss(adv) > loss(x)
    assert torch.equal(adv, pgd(net, x, y, 8 / 255, steps=10, seed=1))
    assert loss(fgsm(net, x, y, 8 / 255)) > loss(x)
    assert not net.training


@pytest.mark.parametrize("bad", [-0.01, 1.5, float("nan"), "8/255"])
def test_bad_epsilon_is_a_setting_error_naming_the_fix(bad):
    net, x, y = _net_and_batch(4)
    with pytest.raises(SettingError, match="Fix"):
        fgsm(net, x, y, bad)
    with pytest.raises(SettingError, match="EPSILONS"):
        check_epsilons([0, bad])


def test_unknown_attack_is_a_setting_error_naming_the_choices():
    net, x, y = _net_and_batch(4)
    with pytest.raises(SettingError, match="fgsm, pgd"):
        attack_images(net, x, y, "deepfool", 0.01)
    with pytest.raises(SettingError, match="Fix"):
        check_attacks(["pgd", "cw"])
    assert check_attacks(["PGD", "fgsm"]) == ["pgd", "fgsm"]


def _nb08_cell(prefix):
    return notebook_cell("08_trust", prefix)


def test_notebook_attacks_are_bit_identical_to_the_package(one_thread):
    ns = {"torch": torch, "F": F}
    exec(_nb08_cell("def fgsm_attack("), ns)
    net, x, y = _net_and_batch(16, seed=5)
    for eps in (0.0, 2 / 255, 8 / 255):
        assert torch.equal(ns["fgsm_attack"](net, x, y, eps), fgsm(net, x, y, eps))
        assert torch.equal(ns["pgd_attack"](net, x, y, eps, steps=4, seed=2), pgd(net, x, y, eps, steps=4, seed=2))


def test_membership_auc_is_chance_on_two_disjoint_halves_of_held_out_data(one_thread):
    _, D = make_dcgan(28, 1, base=8, seed=0, d_norm="none")
    held_out = torch.rand(800, 1, 28, 28, generator=torch.Generator().manual_seed(1)) * 2 - 1
    res = membership_inference(D, held_out[:400], held_out[400:], seed=0, n_boot=200)
    assert abs(res["auc"] - 0.5) < 0.08  # 400 vs 400: the AUC's standard error is about 0.02
    assert res["ci_low"] < 0.5 < res["ci_high"]
    assert res["n_members"] == res["n_nonmembers"] == 400


def test_membership_auc_finds_a_separable_score_and_rejects_bad_input():
    rng = np.random.default_rng(0)
    res = membership_auc(rng.normal(2, 1, 300), rng.normal(0, 1, 300), n_boot=100)
    assert res["auc"] > 0.85 and res["ci_low"] > 0.8
    with pytest.raises(SettingError, match="Fix"):
        membership_auc([1.0], [0.0, 1.0])
    with pytest.raises(SettingError, match="NaN"):
        membership_auc([1.0, float("nan")], [0.0, 1.0])


@pytest.mark.parametrize("target", [1.0, 10.0])
def test_the_opacus_accountant_reports_a_finite_epsilon_for_the_documented_settings(target):
    # notebook 08's full mode: 10 % of PneumoniaMNIST (470 images), batch 64, 500 updates, delta = 1 / (10 n)
    n, batch, steps = 470, 64, 500
    delta, rate = 1 / (10 * n), 1 / math.ceil(n / batch)  # opacus's Poisson rate: 1 / batches per pass
    sigma = noise_for_epsilon(target, delta, rate, steps)
    eps = epsilon_spent(sigma, rate, steps, delta)
    assert math.isfinite(eps) and 0 < eps <= target * 1.02
    assert epsilon_spent(sigma * 2, rate, steps, delta) < eps  # more noise, less privacy spent
    with pytest.raises(SettingError, match="Fix"):
        noise_for_epsilon(target, 1.5, rate, steps)


def test_private_gan_trains_and_spends_what_the_accountant_says(one_thread):
    x = torch.rand(128, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1
    G, D = make_dcgan(28, 1, base=8, seed=0, d_norm="none")
    res = train_private_gan(G, D, x, steps=6, batch_size=32, target_epsilon=5.0, seed=0)
    assert math.isfinite(res.epsilon) and 0 < res.epsilon <= 5.0 * 1.02
    assert res.noise_multiplier > 0 and res.steps == 6
    assert res.sample(4).shape == (4, 1, 28, 28)
    G2, D2 = make_dcgan(28, 1, base=8, seed=0, d_norm="none")
    ref = train_private_gan(G2, D2, x, steps=6, batch_size=32, target_epsilon=None, seed=0)
    assert ref.epsilon == math.inf and ref.noise_multiplier == 0


def test_private_gan_refuses_batch_norm_and_bad_budgets():
    x = torch.rand(64, 1, 28, 28) * 2 - 1
    with pytest.raises(SettingError, match="d_norm='none'"):
        train_private_gan(*make_dcgan(28, 1, base=8, seed=0), x, steps=2, batch_size=16)
    with pytest.raises(SettingError, match="Fix"):
        train_private_gan(*make_dcgan(28, 1, base=8, seed=0, d_norm="none"), x, steps=2, target_epsilon=-1)


def test_adversarial_training_runs_and_keeps_the_best_attacked_validation_auc(one_thread):
    net, x, y = _net_and_batch(64, seed=2)
    net, info = train_adversarial(net, x, y, x[:32], y[:32], steps=4, task="binary-class", eps=2 / 255,
                                  pgd_steps=2, batch_size=16)
    assert 1 <= info["best_step"] <= 4 and 0 <= info["val_auc_attacked"] <= 1


def _square_masks(n=4, size=32):
    m = torch.zeros(n, 1, size, size)
    m[:, :, 4:10, 4:10] = 1
    return m


def test_injected_lesions_avoid_the_existing_lesion_and_stay_inside_the_image():
    masks = _square_masks()
    images = torch.zeros(4, 1, 32, 32)
    generate = lambda c: c[:, 2:3]  # an "in-painter" that paints the lesion map it is given, white on black
    out = inject_lesions(generate, images, masks, masks, "local", seed=0, clearance=3)
    assert len(out["index"]) == 4
    assert not (out["lesions"] * masks).any()
    assert torch.equal(out["lesions"].flatten(1).sum(1), masks.flatten(1).sum(1))  # the donor's whole shape
    # outside the pasted region the image is untouched; inside the lesion it is the generator's
    assert torch.equal(out["images"] * (1 - out["regions"]), images * (1 - out["regions"]))
    assert (out["images"][out["lesions"] > 0] == 1).all()
    assert (region_recall(out["lesions"], out["lesions"]) == 1).all()


def test_removal_and_blending_change_only_the_neighbourhood():
    masks = _square_masks()
    images = torch.ones(4, 1, 32, 32)
    out = remove_lesions(lambda c: c[:, 2:3], images, masks, "blended", margin=2)  # an empty map: all -1
    far = torch.ones_like(masks)
    far[:, :, :24, :24] = 0  # lesion 4-10, margin 2, feathered edge: well inside 24
    assert torch.equal(out["images"] * far, images * far)
    assert (out["images"][masks > 0] == -1).all()
    with pytest.raises(SettingError, match="local, blended"):
        paste(images, images, masks, "poisson")
    assert place_lesion(torch.ones(1, 8, 8), torch.ones(1, 8, 8), torch.Generator()) is None


def test_residual_features_see_smooth_texture():
    g = torch.Generator().manual_seed(0)
    noisy = torch.rand(2, 1, 32, 32, generator=g) * 2 - 1
    region = torch.zeros(2, 1, 32, 32)
    region[:, :, 10:20, 10:20] = 1
    smooth = noisy.clone()
    smooth[region > 0] = 0.0
    f_noisy, f_smooth = residual_features(noisy, region), residual_features(smooth, region)
    assert f_noisy.shape == (2, 6)
    assert (f_smooth[:, 2] < f_noisy[:, 2] - 1).all()  # inside much smoother than its ring


def test_a_dp_step_clips_one_gradient_per_real_image_and_no_fake_one(monkeypatch):
    """DP-SGD's guarantee needs each patient to add exactly one clipped gradient per update (issue 22). Fed the old
    code, where the fakes went through D with the reals, opacus clipped 2 gradients per real image."""
    import warnings

    from opacus import PrivacyEngine
    from opacus.optimizers import DPOptimizer
    from torch.utils.data import DataLoader, TensorDataset

    from medgan_utils.gan import private
    from medgan_utils.nets import make_dcgan

    clipped = []
    original = DPOptimizer.clip_and_accumulate

    def spy(self):
        clipped.append(len(self.grad_samples[0]))
        return original(self)

    monkeypatch.setattr(DPOptimizer, "clip_and_accumulate", spy)
    torch.manual_seed(0)
    G, D = make_dcgan(28, 1, 16, base=8, seed=0, d_norm="none")
    images = torch.rand(40, 1, 28, 28) * 2 - 1
    opt_D = torch.optim.Adam(D.parameters(), lr=1e-3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        D, opt_D, _ = PrivacyEngine().make_private(module=private._no_inplace(D), optimizer=opt_D,
                                                   data_loader=DataLoader(TensorDataset(images), batch_size=8),
                                                   noise_multiplier=1.0, max_grad_norm=1.0)
        before = [p.detach().clone() for p in D.parameters()]
        batches = [(images[:5],), (images[5:12],)]          # two Poisson draws: 5, then 7 real images
        private._gan_updates(G, D, torch.optim.Adam(G.parameters()), opt_D, batches, 2, 16, torch.device("cpu"),
                             torch.Generator().manual_seed(0), n_fake=8)
    assert clipped == [5, 7]                                  # one clipped gradient per real image, none per fake
    assert any(not torch.equal(a, b) for a, b in zip(before, D.parameters()))  # and D did learn


def test_an_empty_poisson_draw_still_steps_with_noise_and_is_counted(monkeypatch):
    """The accountant counts every Poisson draw as an update of the subsampled Gaussian mechanism. An empty draw
    must then release noise too: the old loop skipped it, so "D did not move" told that the draw was empty."""
    import warnings

    from opacus import PrivacyEngine
    from opacus.optimizers import DPOptimizer
    from torch.utils.data import DataLoader, TensorDataset

    from medgan_utils.gan import private
    from medgan_utils.nets import make_dcgan

    clipped, original = [], DPOptimizer.clip_and_accumulate
    monkeypatch.setattr(DPOptimizer, "clip_and_accumulate", lambda self: (clipped.append(
        len(self.grad_samples[0])), original(self))[1])
    torch.manual_seed(0)
    G, D = make_dcgan(28, 1, 16, base=8, seed=0, d_norm="none")
    images = torch.rand(40, 1, 28, 28) * 2 - 1
    engine = PrivacyEngine(accountant="rdp")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        D, opt_D, _ = engine.make_private(module=private._no_inplace(D), optimizer=torch.optim.Adam(D.parameters()),
                                          data_loader=DataLoader(TensorDataset(images), batch_size=8),
                                          noise_multiplier=1.0, max_grad_norm=1.0)
        stepped, step = [], opt_D.original_optimizer.step
        opt_D.original_optimizer.step = lambda *a, **k: (stepped.append(len(clipped)), step(*a, **k))[1]
        batches = [(images[:5],), (images[:0],), (images[5:9],)]  # three Poisson draws, the second one empty
        hist = private._gan_updates(G, D, torch.optim.Adam(G.parameters()), opt_D, batches, 3, 16,
                                    torch.device("cpu"), torch.Generator().manual_seed(0), n_fake=8)
    assert clipped == [5, 0, 4] and len(hist["loss_D"]) == 3 and all(math.isfinite(v) for v in hist["loss_D"])
    assert sum(steps for _, _, steps in engine.accountant.history) == 3  # the empty draw is counted ...
    assert stepped == [1, 2, 3]                                           # ... and it released an update


def test_tpr_at_low_fpr_reads_the_members_above_the_strictest_non_members():
    from medgan_utils.evaluation import tpr_at_fpr

    nonmembers = np.arange(100, dtype=float)            # 0 .. 99
    members = np.array([99.5, 98.5, 97.5, 50.0])         # 1 % FPR: the threshold is the 2nd highest non-member (98)
    assert tpr_at_fpr(members, nonmembers, 0.01) == 0.5  # 99.5 and 98.5 lie above it
    assert tpr_at_fpr(members, nonmembers, 0.0) == 0.25  # only 99.5 beats every non-member
    assert tpr_at_fpr(members, nonmembers, 0.05) == 0.75
    assert tpr_at_fpr(np.full(4, 99.0), nonmembers, 0.0) == 0.0  # a tie with a non-member is not above it
    with pytest.raises(SettingError, match="fpr"):
        tpr_at_fpr(members, nonmembers, 1.5)


def test_membership_auc_reports_tpr_at_1_percent_fpr_and_d_gap_with_intervals():
    rng = np.random.default_rng(1)
    res = membership_auc(rng.normal(1.0, 1, 400), rng.normal(0.0, 1, 400), n_boot=200, seed=0)
    assert 0.7 < res["auc"] < 0.82 and res["ci_low"] < res["auc"] < res["ci_high"]
    assert 0.0 < res["tpr_at_fpr"] < 0.3 and res["fpr"] == 0.01  # a shifted Gaussian: a weak low-FPR attack
    assert res["tpr_ci"][0] <= res["tpr_at_fpr"] <= res["tpr_ci"][1]
    assert res["score_gap"] == pytest.approx(1.0, abs=0.2) and res["gap_ci"][0] > 0.5
    chance = membership_auc(rng.normal(0, 1, 400), rng.normal(0, 1, 400), n_boot=200)
    assert chance["gap_ci"][0] < 0 < chance["gap_ci"][1] and chance["tpr_ci"][0] <= 0.01


def test_drop_near_copies_removes_both_sides_of_a_duplicate_across_the_sets():
    from medgan_utils.evaluation import drop_near_copies

    g = torch.Generator().manual_seed(0)
    members = torch.rand(20, 1, 16, 16, generator=g) * 2 - 1
    nonmembers = torch.rand(15, 1, 16, 16, generator=g) * 2 - 1
    nonmembers[3] = members[7]                          # an exact copy across the sets
    nonmembers[9] = members[2] + 0.001                  # a near copy
    m, n, report = drop_near_copies(members, nonmembers)
    assert report["dropped_members"] == 2 and report["dropped_nonmembers"] == 2
    assert (len(m), len(n)) == (18, 13)
    assert not any(torch.equal(a, b) for a in m for b in n)
    _, _, clean = drop_near_copies(members[:10], members[10:])
    assert clean["dropped_members"] == clean["dropped_nonmembers"] == 0


def test_inpainting_input_hides_the_region_and_pairs_teach_lesions_and_tissue():
    from medgan_utils.course import inpainting_input, inpainting_pairs

    masks = _square_masks()
    masks[3] = 0                                        # one image without a lesion
    g = torch.Generator().manual_seed(0)
    images = torch.rand(4, 1, 32, 32, generator=g) * 2 - 1
    regions = dilate(masks, 2)
    cond = inpainting_input(images, regions, masks)
    assert cond.shape == (4, 3, 32, 32)
    assert (cond[:, :1][regions > 0] == 0).all()        # nothing of the image inside the region gets through
    assert torch.equal(cond[:, :1][regions == 0], images[regions == 0])
    other = images.clone()
    other[regions > 0] = 0.7                            # a different content inside the hole: the same input
    assert torch.equal(inpainting_input(other, regions, masks), cond)
    conds, targets = inpainting_pairs(images, masks, seed=0)
    assert len(conds) == len(targets) == 3 + 4          # three lesions cut out, four lesion-free holes
    assert (conds[:3, 2:3] > 0).any() and torch.equal(targets[:3], images[:3])
    hole, lesion = conds[3:, 1:2] > 0, conds[3:, 2:3] > 0
    assert hole.any() and not (hole & lesion).any()     # the tissue holes carry no lesion to draw


def test_paired_detector_auc_resamples_images_with_their_pairs():
    from medgan_utils.course import paired_detector_auc

    rng = np.random.default_rng(0)
    untouched = rng.normal(0, 1, 60)
    tampered = untouched + 1.0 + rng.normal(0, 0.3, 60)  # each edit raises its own region's score
    ids = np.r_[np.arange(30), np.arange(30)]           # every image holds an injection and a removal pair
    res = paired_detector_auc(tampered, untouched, ids, n_boot=300, seed=0)
    assert res["n_images"] == 30 and res["n_pairs"] == 60
    assert 0 <= res["ci"][0] < res["estimate"] < res["ci"][1] <= 1 and res["estimate"] > 0.7
    # pairs of the same image move together: with every pair duplicated the interval stays as wide as 30 images
    dup = paired_detector_auc(np.r_[tampered, tampered], np.r_[untouched, untouched], np.r_[ids, ids],
                              n_boot=300, seed=0)
    assert dup["estimate"] == pytest.approx(res["estimate"])
    assert dup["ci"][1] - dup["ci"][0] == pytest.approx(res["ci"][1] - res["ci"][0], rel=0.15)
    with pytest.raises(SettingError, match="Fix"):
        paired_detector_auc(tampered, untouched[:5], ids)


def test_membership_evidence_resamples_seeds_and_images_and_pairs_a_contrast():
    from medgan_utils.evaluation import membership_evidence

    rng = np.random.default_rng(3)
    member = np.r_[np.ones(100), np.zeros(300)]
    leaky = {s: np.r_[rng.normal(1.5, 1, 100), rng.normal(0, 1, 300)] for s in (0, 1)}
    blind = {s: rng.normal(0, 1, 400) for s in (0, 1)}
    ev = membership_evidence(leaky, member, n_boot=200)
    assert ev["auc"]["ci"][0] > 0.75 and ev["auc"]["n_seeds"] == 2 and ev["fpr"] == 0.01
    assert ev["tpr_at_fpr"]["ci"][0] > 0.01 and ev["score_gap"]["ci"][0] > 1.0
    chance = membership_evidence(blind, member, n_boot=200)
    assert chance["auc"]["ci"][0] < 0.5 < chance["auc"]["ci"][1] and 0 <= chance["tpr_at_fpr"]["ci"][0]
    diff = membership_evidence(blind, member, leaky, n_boot=200)   # DP-like minus non-private, paired by seed
    assert diff["auc"]["ci"][1] < 0 and diff["auc"]["estimate"] == pytest.approx(
        chance["auc"]["estimate"] - ev["auc"]["estimate"])
    same = membership_evidence(leaky, member, leaky, n_boot=50)
    assert same["auc"]["estimate"] == 0 and same["auc"]["ci"] == [0, 0]
    with pytest.raises(SettingError, match="one finite score per pooled image"):
        membership_evidence({0: np.zeros(399)}, member)
    with pytest.raises(SettingError, match="members and non-members"):
        membership_evidence(np.zeros(400), np.ones(400))


def test_dp_leak_verdict_claims_a_closed_leak_only_from_the_two_intervals():
    from medgan_utils.evaluation import dp_leak_verdict

    assert dp_leak_verdict([0.62, 0.75], [0.47, 0.61]) == "closes the leak"
    assert dp_leak_verdict([0.62, 0.75], [0.52, 0.66]) == "leak persists"
    assert dp_leak_verdict([0.45, 0.55], [0.40, 0.52]) == "no leak to close"  # nothing to close: no claim
    assert dp_leak_verdict([0.50, 0.60], [0.40, 0.52]) == "no leak to close"  # touching 0.5 is not excluding it
    with pytest.raises(SettingError, match="low <= high"):
        dp_leak_verdict([0.7, 0.6], [0.4, 0.5])


def test_notebook_08_dp_lab_records_the_accounting_and_attack_with_intervals_per_run():
    cell = _nb08_cell("idx_dp = ")
    for key in ('"epsilon"', '"delta"', '"sampling_rate"', '"accountant"', '"attack_auc"', '"tpr_at_1fpr"', '"d_gap"',
                "dp_leak_verdict(", "membership_evidence("):
        assert key in cell, key
    import json

    from helpers import NOTEBOOKS

    cells = json.loads((NOTEBOOKS / "08_trust.ipynb").read_text())["cells"]
    record = next(src for src in ("".join(c["source"]) for c in cells if c["cell_type"] == "code")
                  if "record_results(" in src)  # the cell also saves the workshop pack's networks first
    assert '"privacy": {' in record and '"runs": dp_rows' in record

