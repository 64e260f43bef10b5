"""Notebook 07's building blocks: penalties, DiffAugment, the stabilised step, FLOPs, the DDPM step
(bit-identical to the notebook's visible step), LABS/LOSSES validation. Tiny networks, fast."""
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from medgan_utils import (DDPMSchedule, SettingError, check_labs, check_variants, conv2d_flops, ddpm_sample,
                          ddpm_step, diff_augment, get_losses, gradient_penalty, make_diff_augment,
                          make_noise_predictor, make_stable_step, r1_penalty, train_ring_gan, training_cost)
from medgan_utils.nets import make_dcgan
from helpers import notebook_cell


def test_gradient_penalty_is_zero_for_a_unit_norm_linear_critic():
    critic = nn.Sequential(nn.Flatten(), nn.Linear(16, 1, bias=True))
    with torch.no_grad():
        w = torch.randn(1, 16)
        critic[1].weight.copy_(w / w.norm())  # gradient = w everywhere, ‖w‖ = 1
    g = torch.Generator().manual_seed(0)
    real, fake = torch.randn(8, 1, 4, 4, generator=g), torch.randn(8, 1, 4, 4, generator=g)
    assert gradient_penalty(critic, real, fake, generator=g).item() == pytest.approx(0.0, abs=1e-10)
    with torch.no_grad():
        critic[1].weight.mul_(3.0)  # ‖∇‖ = 3: penalty (3 - 1)² = 4
    assert gradient_penalty(critic, real, fake, generator=g).item() == pytest.approx(4.0, rel=1e-5)


def test_r1_is_zero_for_a_constant_critic_and_positive_otherwise():
    class Constant(nn.Module):
        def __init__(self):
            super().__init__()
            self.c = nn.Parameter(torch.tensor(0.3))

        def forward(self, x):
            return self.c + 0 * x.flatten(1).sum(1)

    real = torch.randn(6, 1, 32, 32)
    assert r1_penalty(Constant(), real).item() == 0.0
    _, D = make_dcgan(32, 1, base=8, seed=0)
    assert r1_penalty(D, real).item() > 0


def test_diffaugment_applies_the_same_transforms_to_real_and_fake():
    calls = []

    def recording(x, generator=None):
        calls.append(x.detach().clone())
        return make_diff_augment()(x, generator=generator)

    G, D = make_dcgan(32, 1, base=8, seed=0)
    tr = SimpleNamespace(G=G, D=D, opt_G=torch.optim.Adam(G.parameters()), opt_D=torch.optim.Adam(D.parameters()),
                         gen=torch.Generator().manual_seed(0), autocast=lambda: torch.autocast("cpu", enabled=False),
                         scaler=torch.amp.GradScaler("cpu", enabled=False))
    real = torch.rand(4, 1, 32, 32) * 2 - 1
    z = torch.randn(4, 100, 1, 1)
    make_stable_step("bce", augment=recording)(tr, real, z)
    assert len(calls) == 3  # real, fake (D update), fake (G update)
    assert torch.equal(calls[0], real)
    assert not torch.equal(calls[1], real) and torch.equal(calls[1], calls[2])  # the same fakes both times
    # The same transforms with the same randomness give the same output; each transform changes the image.
    x = torch.rand(4, 1, 32, 32) * 2 - 1
    for policy in ("color", "translation", "cutout"):
        a = diff_augment(x, policy, torch.Generator().manual_seed(1))
        assert torch.equal(a, diff_augment(x, policy, torch.Generator().manual_seed(1)))
        assert not torch.equal(a, x) and a.shape == x.shape
    assert (diff_augment(x, "cutout", torch.Generator().manual_seed(2)) == 0).float().mean() > 0.1
    x.requires_grad_(True)
    diff_augment(x, generator=torch.Generator().manual_seed(3)).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0  # differentiable


def test_flops_of_a_conv_layer_match_the_closed_form():
    from torch.utils.flop_counter import FlopCounterMode

    conv = nn.Conv2d(3, 8, 5, padding=2, bias=False)
    x = torch.randn(2, 3, 12, 12)
    with FlopCounterMode(display=False) as counter:
        conv(x)
    assert counter.get_total_flops() == conv2d_flops(3, 8, 5, 12, 12, batch=2) == 2 * 2 * 8 * 144 * 3 * 25


def test_training_cost_counts_forward_and_backward_of_a_conv():
    conv = nn.Conv2d(1, 4, 3, padding=1, bias=False)
    opt = torch.optim.SGD(conv.parameters(), lr=0.1)
    x = torch.randn(8, 1, 10, 10)

    def step(batch):
        opt.zero_grad()
        conv(batch).square().mean().backward()
        opt.step()

    row = training_cost("conv", [conv], step, x, n_train=80, batch_size=8)
    fwd = conv2d_flops(1, 4, 3, 10, 10, batch=8)
    assert row["params"] == 36 and row["gflop_per_image"] * 8 * 1e9 == pytest.approx(2 * fwd)  # input needs no grad
    assert row["s_per_epoch"] == pytest.approx(10 * row["s_per_step"]) and row["peak_mem_mb"] > 0


def test_unknown_names_raise_setting_errors_naming_the_fix():
    with pytest.raises(SettingError, match="choose one of"):
        get_losses("wasserstein-ish")
    with pytest.raises(SettingError, match="Fix"):
        check_variants(["hinge", "nope"])
    with pytest.raises(SettingError, match="Fix.*stability"):
        check_labs(["stability", "speed"])
    with pytest.raises(SettingError, match="Fix"):
        check_labs([])
    with pytest.raises(SettingError, match="BCE"):
        make_stable_step("hinge", real_target=0.9)
    with pytest.raises(SettingError, match="Fix"):
        make_diff_augment("color,rotate")


def test_ring_runner_reports_on_mode_share_and_modes_separately(one_thread):
    from medgan_utils import RING_OUTCOMES

    r = train_ring_gan("non-saturating", seed=0, steps=10, batch_size=32, n_eval=200, n_checks=5)
    assert 0 <= r["modes"] <= 8 and 0 <= r["on_mode_share"] <= 1 and r["diverged"] is False
    assert r["outcome"] in RING_OUTCOMES and r["divergence"] == ""
    assert [u for u, _ in r["trace"]] == [2, 4, 6, 8, 10] and r["recipe"]["n_critic"] == 1


def test_ring_outcome_tells_collapse_from_samples_off_the_data():
    from medgan_utils import ring_outcome

    assert ring_outcome(0.9, 1) == "collapse"           # realistic samples on one mode
    assert ring_outcome(0.2, 1) == "off the data"       # few modes, but most samples on none: not collapse
    assert ring_outcome(0.2, 8) == "off the data"
    assert ring_outcome(0.9, 8) == "covers the ring" and ring_outcome(0.6, 4) == "partial coverage"
    assert ring_outcome(0.0, 0, "non-finite") == "diverged"
    assert ring_outcome(float("nan"), 0) == "off the data"


def test_divergence_needs_a_measured_signature_not_a_low_mode_count():
    from medgan_utils import divergence_signature

    calm_d, calm_g = [1.3] * 40, [0.8] * 40
    assert divergence_signature(calm_d, calm_g) == ""
    assert divergence_signature(calm_d, calm_g[:-1] + [float("nan")]) == "non-finite"
    assert divergence_signature(calm_d, calm_g, non_finite=True) == "non-finite"
    # D's loss near 0 while G's explodes, over the whole last quarter (10 of 40 updates) ...
    won_d, won_g = [1.3] * 30 + [0.01] * 10, [0.8] * 30 + [9.0] * 10
    assert divergence_signature(won_d, won_g) == "D wins, G's loss explodes"
    # ... but not for one update of it, nor for the WGAN critic, whose loss has no floor
    assert divergence_signature(won_d[:-9] + [1.3] * 9, won_g) == ""
    assert divergence_signature(won_d, won_g, loss="wgan") == ""
    # the ring: the on-mode share fell below 0.1 after having been >= 0.5; staying low all along is not divergence
    assert divergence_signature(calm_d, calm_g, on_mode_trace=[(10, 0.2), (20, 0.7), (30, 0.05)]) == "fell off the data"
    assert divergence_signature(calm_d, calm_g, on_mode_trace=[(10, 0.02), (20, 0.01), (30, 0.0)]) == ""


def _record_real_batches(D, images):
    """A pre-hook on D that records, for every input that is a batch of training images, the indices of its rows."""
    seen = []
    flat = images.flatten(1)

    def hook(_module, args):
        x = args[0].detach().flatten(1)
        match = (x[:, None, :] == flat[None, :, :]).all(-1)
        if bool(match.any(1).all()):
            seen.append(tuple(int(i) for i in match.float().argmax(1)))
    D.register_forward_pre_hook(hook)
    return seen


@pytest.mark.parametrize("where", ["package", "notebook"])
def test_five_critic_steps_see_five_different_real_batches_per_g_step(where, one_thread):
    """WGAN-GP's Algorithm 1: each of the n_critic = 5 critic updates of one G step draws a new real batch."""
    from medgan_utils import DCGANTrainer

    factory = make_stable_step if where == "package" else _nb07_stabilisers()["make_variant_step"]
    images = torch.randint(0, 256, (40, 1, 28, 28), generator=torch.Generator().manual_seed(0)).float() / 127.5 - 1
    G, D = make_dcgan(28, 1, base=8, seed=0, d_norm="none")
    seen = _record_real_batches(D, images)
    tr = DCGANTrainer(G, D, images, step_fn=factory("wgan", gp=10.0, d_steps=5), batch_size=8, progress=False,
                      precision="fp32", lr=1e-4, betas=(0.0, 0.9))
    tr.run_steps(3)
    assert len(seen) == 15  # 5 real batches per G step, 3 G steps
    for g_step in range(3):
        batches = seen[5 * g_step: 5 * g_step + 5]
        assert len(set(batches)) == 5, f"G step {g_step}: the critic saw {len(set(batches))} different real batches"
        assert all(len(set(b)) == 8 for b in batches)  # no image twice within a batch


def test_extra_critic_steps_need_a_source_of_new_real_batches():
    G, D = make_dcgan(28, 1, base=8, seed=0)
    tr = SimpleNamespace(G=G, D=D, opt_G=torch.optim.Adam(G.parameters()), opt_D=torch.optim.Adam(D.parameters()),
                         gen=torch.Generator().manual_seed(0), autocast=lambda: torch.autocast("cpu", enabled=False),
                         scaler=torch.amp.GradScaler("cpu", enabled=False))
    with pytest.raises(SettingError, match="next_real"):
        make_stable_step("bce", d_steps=2)(tr, torch.rand(4, 1, 28, 28) * 2 - 1, torch.randn(4, 100, 1, 1))


def test_published_recipes_train_with_their_authors_settings(one_thread):
    from medgan_utils import PAPER_RECIPES, STABILITY_VARIANTS, train_image_gan, variant_recipe

    assert set(PAPER_RECIPES) <= set(STABILITY_VARIANTS) and set(PAPER_RECIPES.values()) <= set(STABILITY_VARIANTS)
    wgan = variant_recipe("wgan-gp-paper")
    assert (wgan["n_critic"], wgan["lr_G"], wgan["lr_D"], wgan["betas"], wgan["gp"], wgan["d_norm"]) == \
        (5, 1e-4, 1e-4, [0.0, 0.9], 10.0, "none")
    assert variant_recipe("wgan-gp")["n_critic"] == 1 and variant_recipe("wgan-gp")["betas"] == [0.5, 0.999]
    sn = variant_recipe("sn-ttur-paper")
    assert (sn["lr_G"], sn["lr_D"], sn["betas"], sn["d_norm"]) == (1e-4, 4e-4, [0.0, 0.9], "spectral")
    images = torch.rand(16, 1, 28, 28, generator=torch.Generator().manual_seed(1)) * 2 - 1
    for name in ("wgan-gp-paper", "r1-paper", "sn-ttur-paper"):
        tr = train_image_gan(name, images, seed=0, steps=1, base=8, batch_size=8)
        r = variant_recipe(name)
        assert tr.opt_D.param_groups[0]["betas"] == tuple(r["betas"]) and tr.opt_D.param_groups[0]["lr"] == r["lr_D"]
        assert tr.opt_G.param_groups[0]["lr"] == r["lr_G"] and tr.recipe == r
        assert not any(isinstance(m, nn.BatchNorm2d) for m in tr.D_raw.modules())  # the penalties stay per image
    assert any(isinstance(m, nn.BatchNorm2d) for m in train_image_gan("r1", images, seed=0, steps=1, base=8,
                                                                      batch_size=8).D_raw.modules())


def test_ema_warmup_ramps_the_decay_and_forgets_the_untrained_generator():
    from medgan_utils import TrainConfig, ema_decay_at, make_generator_ema

    assert ema_decay_at(7, 0.99) == 0.99  # no warm-up: the target from the start
    ramp = [ema_decay_at(k, 0.999, 0.05) for k in (1, 10, 200, 10**5)]
    assert ramp[0] < 1e-5 and ramp[1] == pytest.approx(0.25) and ramp[2] == pytest.approx(0.5 ** 0.1) and ramp[3] == 0.999
    net = nn.Linear(1, 1, bias=False)
    plain, warm = make_generator_ema(net, 0.99), make_generator_ema(net, 0.999, 0.05)
    share = 1.0  # the first update's G's share of the warmed-up average, by the formula
    for k in range(1, 201):
        with torch.no_grad():
            net.weight.fill_(1.0 if k == 1 else 0.0)  # G after its first update, then a trained G
        plain.update_parameters(net)
        warm.update_parameters(net)
        share *= ema_decay_at(k, 0.999, 0.05) if k > 1 else 1.0
    assert float(plain.module.weight.detach()) == pytest.approx(0.99 ** 199, rel=1e-4)  # ≈ 0.135 of the early G remains
    assert float(warm.module.weight.detach()) == pytest.approx(share, abs=1e-12) and share < 1e-20  # the warm-up forgot it
    with pytest.raises(SettingError, match="ema_rampup"):
        TrainConfig(ema_rampup=0.05).validated()
    with pytest.raises(SettingError, match="ema_rampup"):
        make_generator_ema(net, 0.999, rampup=2.0)


def test_ddpm_schedule_and_sampler_shapes():
    s = DDPMSchedule(50)
    assert s.betas.shape == (50,) and torch.all(s.alpha_bars[1:] < s.alpha_bars[:-1])
    x0 = torch.zeros(3, 1, 8, 8)
    noise = torch.ones_like(x0)
    t = torch.tensor([0, 10, 49])
    xt = s.add_noise(x0, t, noise)
    assert torch.allclose(xt[:, 0, 0, 0], (1 - s.alpha_bars[t]).sqrt())
    m = make_noise_predictor(1, 8, seed=0)
    out = ddpm_sample(m, DDPMSchedule(3), 2, (1, 8, 8), torch.Generator().manual_seed(0))
    assert out.shape == (2, 1, 8, 8) and out.abs().max() <= 1


def _nb07_cell(prefix):
    return notebook_cell("07_challenges", prefix)


def _nb07_stabilisers() -> dict:
    """07's visible penalties and make_variant_step, defined as the notebook defines them."""
    from medgan_utils import d_loss_bce, get_losses

    ns = {"torch": torch, "get_losses": get_losses, "d_loss_bce": d_loss_bce}
    src = _nb07_cell("def input_gradient(")
    exec(src[: src.index("\nfor name, opts")], ns)
    return ns


def test_notebook_ddpm_step_is_bit_identical_to_the_package(one_thread):
    src = _nb07_cell("def ddpm_train_step(")
    assert src.count(".backward()") == 1
    ns = {"torch": torch, "F": F}
    exec(src[: src.index("\n@torch.no_grad()")] if "\n@torch.no_grad()" in src else src, ns)
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(6, 1, 8, 8, generator=g) * 2 - 1
    sched = DDPMSchedule(20)
    results = []
    for step in (ns["ddpm_train_step"], ddpm_step):
        m = make_noise_predictor(1, 8, seed=0)
        opt = torch.optim.Adam(m.parameters(), lr=1e-3)
        gen = torch.Generator().manual_seed(1)
        losses = [step(m, opt, sched, x0, gen) for _ in range(3)]
        results.append((torch.stack(losses), [p.detach().clone() for p in m.parameters()]))
    assert torch.equal(results[0][0], results[1][0])
    assert all(torch.equal(a, b) for a, b in zip(results[0][1], results[1][1]))


def test_notebook_penalties_are_the_package_penalties(one_thread):
    """07's visible WGAN-GP and R1 cells give the same values and gradients as the package's copies."""
    from medgan_utils.gan import gradient_penalty, r1_penalty

    ns = _nb07_stabilisers()
    torch.manual_seed(0)
    D = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, 2, 1), torch.nn.LeakyReLU(0.2), torch.nn.Flatten(),
                            torch.nn.Linear(4 * 4 * 4, 1))
    real, fake = torch.randn(6, 1, 8, 8), torch.randn(6, 1, 8, 8)
    pairs = [(ns["wgan_gp_penalty"](D, real, fake, torch.Generator().manual_seed(3)),
              gradient_penalty(D, real, fake, torch.Generator().manual_seed(3))),
             (ns["r1_penalty"](D, real), r1_penalty(D, real))]
    for mine, ref in pairs:
        assert torch.equal(mine, ref) and float(ref.detach()) > 0
        g_mine = torch.autograd.grad(mine, list(D.parameters()), retain_graph=True, allow_unused=True)
        g_ref = torch.autograd.grad(ref, list(D.parameters()), retain_graph=True, allow_unused=True)
        assert all((a is None and b is None) or torch.equal(a, b) for a, b in zip(g_mine, g_ref))
        assert any(a is not None and a.abs().sum() > 0 for a in g_mine)


@pytest.mark.parametrize("variant", ["minimax", "lsgan", "hinge", "wgan-gp", "r1", "label-smoothing", "d-steps-2",
                                     "wgan-gp-paper", "r1-paper", "ema-paper", "sn-ttur-paper"])
def test_notebook_step_trains_bit_identically_to_the_package_step(variant, one_thread):
    """07's visible make_variant_step (which trains every run of the notebook) is make_stable_step: the same
    weights after a few updates of the DCGAN, with DiffAugment, and the same samples on the ring."""
    from medgan_utils import train_image_gan

    ns = _nb07_stabilisers()
    images = torch.rand(24, 1, 28, 28, generator=torch.Generator().manual_seed(1)) * 2 - 1
    runs = [train_image_gan(variant, images, seed=3, steps=3, base=8, batch_size=8,
                            augment=make_diff_augment(), step_factory=factory)
            for factory in (ns["make_variant_step"], make_stable_step)]
    for net in ("G", "D", "G_ema"):
        if getattr(runs[1], net) is None:
            continue
        mine, ref = (getattr(tr, net).state_dict() for tr in runs)
        assert all(torch.equal(mine[k], ref[k]) for k in ref), f"{variant}: {net} differs"
    start = make_dcgan(28, 1, base=8, seed=3)[0].state_dict()  # G does not depend on D's normalisation
    trained = runs[1].G_raw.state_dict() if hasattr(runs[1], "G_raw") else runs[1].G.state_dict()
    assert any(not torch.equal(start[k], trained[k]) for k in start if start[k].is_floating_point())  # G moved
    ring = [train_ring_gan(variant, seed=0, steps=4, batch_size=32, n_eval=64, step_factory=f)
            for f in (ns["make_variant_step"], make_stable_step)]
    assert torch.equal(ring[0]["samples"], ring[1]["samples"])


def test_adaptive_augment_applies_each_transform_with_probability_p():
    from medgan_utils import AdaptiveAugment

    x = torch.ones(400, 1, 16, 16)
    g = torch.Generator().manual_seed(0)
    assert torch.equal(AdaptiveAugment("cutout", p=0.0)(x, generator=g), x)  # p = 0: the images as they are
    cut = AdaptiveAugment("cutout", p=0.5)(x, generator=g)
    share = float((cut.flatten(1).min(dim=1).values == 0).float().mean())  # images with a cut-out hole
    assert 0.4 < share < 0.6
    assert bool((AdaptiveAugment("cutout", p=1.0)(x, generator=g).flatten(1).min(dim=1).values == 0).all())
    with pytest.raises(SettingError, match="AdaptiveAugment"):
        AdaptiveAugment(target=1.5)
    with pytest.raises(SettingError, match="DiffAugment transform"):
        AdaptiveAugment("colour")


def test_adaptive_augment_raises_p_when_d_is_too_sure_of_the_reals_and_lowers_it_otherwise():
    from medgan_utils import AdaptiveAugment

    ada = AdaptiveAugment(interval=4, ramp_updates=20)
    for _ in range(8):  # r = 1 > 0.6 twice: p rises by 4/20 each time
        ada.observe(torch.full((8,), 3.0))
    assert ada.p == pytest.approx(0.4) and [h[0] for h in ada.history] == [4, 8]
    for _ in range(3):
        ada.observe(torch.tensor([1.0, -1.0]))  # r = 0 < 0.6 ... but only every 4th call adjusts
    assert ada.p == pytest.approx(0.4)
    ada.observe(torch.tensor([1.0, -1.0]))
    assert ada.p == pytest.approx(0.2)
    for _ in range(40):
        ada.observe(-torch.ones(4))
    assert ada.p == 0.0  # clipped at 0


def test_notebook_step_drives_ada_like_the_package_step(one_thread):
    """With AdaptiveAugment, the visible step and make_stable_step give the same weights and the same p path."""
    from medgan_utils import AdaptiveAugment, train_image_gan

    ns = _nb07_stabilisers()
    images = torch.rand(24, 1, 28, 28, generator=torch.Generator().manual_seed(1)) * 2 - 1
    augs = [AdaptiveAugment(p=0.5, interval=2, ramp_updates=4) for _ in range(2)]
    runs = [train_image_gan("non-saturating", images, seed=3, steps=6, base=8, batch_size=8, augment=a,
                            step_factory=f) for a, f in zip(augs, (ns["make_variant_step"], make_stable_step))]
    assert augs[0].history == augs[1].history and len(augs[0].history) == 3  # p was adjusted, identically
    mine, ref = runs[0].G.state_dict(), runs[1].G.state_dict()
    assert all(torch.equal(mine[k], ref[k]) for k in ref)


def test_count_flops_of_a_training_step_matches_a_hand_count():
    """Two convs and a linear layer, bias-free: forward 2·C_in·C_out·k²·H·W per conv and 2·in·out for the linear;
    the backward pass costs the forward's FLOPs once for the weights' gradient and once more for the gradient of
    every layer's input, except the first (the image needs no gradient)."""
    from medgan_utils import count_flops

    net = nn.Sequential(nn.Conv2d(1, 2, 3, bias=False), nn.Conv2d(2, 3, 3, bias=False), nn.Flatten(),
                        nn.Linear(3 * 3 * 3, 1, bias=False))
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    x = torch.randn(1, 1, 7, 7)
    c1, c2, lin = 2 * 1 * 2 * 9 * 5 * 5, 2 * 2 * 3 * 9 * 3 * 3, 2 * 27 * 1  # 900, 972, 54
    assert count_flops(net, x) == c1 + c2 + lin

    def step(batch):
        opt.zero_grad()
        net(batch).square().mean().backward()
        opt.step()

    assert count_flops(step, x) == (c1 + c2 + lin) + c1 + 2 * c2 + 2 * lin  # 1926 + 900 + 1944 + 108 = 4878
    with torch.no_grad():
        assert count_flops(net, torch.randn(4, 1, 7, 7)) == 4 * (c1 + c2 + lin)  # linear in the batch


class _Memoriser(nn.Module):
    """A discriminator that has memorised a set: its logit is minus the distance to the nearest stored image."""

    def __init__(self, memory):
        super().__init__()
        self.register_buffer("memory", memory.flatten(1))
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, x):
        return -self.scale * torch.cdist(x.flatten(1), self.memory).min(1).values


def test_discriminator_gap_is_positive_for_a_memorising_d_and_about_zero_otherwise():
    from medgan_utils import discriminator_gap

    g = torch.Generator().manual_seed(0)
    train, val = torch.randn(16, 1, 4, 4, generator=g), torch.randn(64, 1, 4, 4, generator=g)
    gap = discriminator_gap(_Memoriser(train), train, val)
    assert gap["train"] == pytest.approx(0.0, abs=1e-5) and gap["val"] < -1 and gap["gap"] > 1
    assert gap["gap"] == pytest.approx(gap["train"] - gap["val"])
    # a D that has seen neither set: two large samples of one distribution score alike
    fixed = _Memoriser(torch.randn(16, 1, 4, 4, generator=g))
    a, b = torch.randn(4000, 1, 4, 4, generator=g), torch.randn(4000, 1, 4, 4, generator=g)
    other = discriminator_gap(fixed, a, b)
    assert abs(other["gap"]) < 0.05 * abs(other["val"])
    assert discriminator_gap(fixed, a, a)["gap"] == 0.0
    with pytest.raises(SettingError, match="Fix"):
        discriminator_gap(fixed, a[:0], b)


def test_a_trained_discriminator_opens_the_gap_on_a_tiny_training_set():
    """A DCGAN on 8 images: after 150 updates D scores them well above 64 unseen images of the same kind; the
    gap is probed before training (≈ 0) and at the end, and probing leaves the update count alone."""
    from medgan_utils import discriminator_gap, train_image_gan

    g = torch.Generator().manual_seed(1)
    pool = torch.tanh(torch.randn(72, 1, 28, 28, generator=g))
    train, val = pool[:8], pool[8:]
    tr = train_image_gan("non-saturating", train, seed=0, steps=150, base=8, batch_size=8,
                         probe=lambda t: discriminator_gap(t.D_raw, train, val)["gap"], probe_every=50)
    assert [u for u, _ in tr.probes] == [0, 50, 100, 150]
    assert abs(tr.probes[0][1]) < 0.5 and tr.probes[-1][1] > 1.0
