"""Closed-form checks of the GAN losses in ``medgan_utils.losses``."""
import math

import pytest
import torch

from medgan_utils.gan import losses as L


def _naive_d_bce(real_logits, fake_logits):
    d_real, d_fake = torch.sigmoid(real_logits), torch.sigmoid(fake_logits)
    return -(torch.log(d_real).mean() + torch.log(1 - d_fake).mean())


def _grad(fn, logits):
    logits = logits.clone().requires_grad_(True)
    fn(logits).backward()
    return logits.grad


def test_d_bce_at_half_is_two_log_two():
    zeros = torch.zeros(17)
    assert L.d_loss_bce(zeros, torch.zeros(5)).item() == pytest.approx(2 * math.log(2), abs=1e-6)


def test_d_bce_matches_naive_formula_away_from_saturation():
    g = torch.Generator().manual_seed(0)
    real, fake = torch.randn(64, generator=g) * 3, torch.randn(32, generator=g) * 3
    assert L.d_loss_bce(real, fake).item() == pytest.approx(_naive_d_bce(real, fake).item(), rel=1e-5)


def test_d_bce_label_smoothing_closed_form():
    # logit 0 -> D = 0.5; with soft target t the real term is -(t log .5 + (1-t) log .5) = log 2.
    val = L.d_loss_bce(torch.zeros(4), torch.zeros(4), real_target=0.9).item()
    assert val == pytest.approx(2 * math.log(2), abs=1e-6)
    real = torch.tensor([2.0])
    t = 0.9
    expected = -(t * math.log(torch.sigmoid(real).item()) + (1 - t) * math.log(1 - torch.sigmoid(real).item()))
    got = L.d_loss_bce(real, torch.tensor([-50.0]), real_target=t).item()
    assert got == pytest.approx(expected + math.log1p(math.exp(-50.0)), rel=1e-6)


def test_generator_losses_match_naive_formulas():
    logits = torch.linspace(-6, 6, 25)
    d = torch.sigmoid(logits)
    assert L.g_loss_saturating(logits).item() == pytest.approx(torch.log(1 - d).mean().item(), rel=1e-5)
    assert L.g_loss_nonsaturating(logits).item() == pytest.approx((-torch.log(d)).mean().item(), rel=1e-5)


def test_generator_gradients_closed_forms():
    logits = torch.linspace(-8, 8, 33, dtype=torch.float64)
    n = logits.numel()
    sig = torch.sigmoid(logits)
    # saturating: d/dl log(1 - σ(l)) = -σ(l); non-saturating: d/dl -log σ(l) = σ(l) - 1 (each over the mean's N)
    torch.testing.assert_close(_grad(L.g_loss_saturating, logits) * n, -sig)
    torch.testing.assert_close(_grad(L.g_loss_nonsaturating, logits) * n, sig - 1)


def test_saturating_gradient_vanishes_where_nonsaturating_does_not():
    confident_fake = torch.tensor([-10.0], dtype=torch.float64)  # D(G(z)) ≈ 4.5e-5
    g_sat = _grad(L.g_loss_saturating, confident_fake).abs().item()
    g_ns = _grad(L.g_loss_nonsaturating, confident_fake).abs().item()
    assert g_sat < 1e-4 and g_ns > 0.99


def test_d_bce_gradients_closed_forms():
    real = torch.tensor([-1.0, 0.5, 3.0], dtype=torch.float64, requires_grad=True)
    fake = torch.tensor([-2.0, 0.0, 1.5, 4.0], dtype=torch.float64, requires_grad=True)
    L.d_loss_bce(real, fake).backward()
    torch.testing.assert_close(real.grad, (torch.sigmoid(real) - 1).detach() / 3)
    torch.testing.assert_close(fake.grad, torch.sigmoid(fake).detach() / 4)


def test_lsgan_values():
    real, fake = torch.tensor([1.0, 3.0]), torch.tensor([0.0, -2.0])
    # 0.5*mean((0, 4)) + 0.5*mean((0, 4)) = 1 + 1
    assert L.d_loss_lsgan(real, fake).item() == pytest.approx(2.0)
    assert L.d_loss_lsgan(torch.ones(3), torch.zeros(3)).item() == pytest.approx(0.0)
    assert L.g_loss_lsgan(torch.tensor([1.0, 3.0])).item() == pytest.approx(1.0)  # 0.5*mean(0, 4)
    assert L.g_loss_lsgan(torch.zeros(2)).item() == pytest.approx(0.5)


def test_hinge_values():
    real, fake = torch.tensor([2.0, 0.5, -1.0]), torch.tensor([-3.0, 0.0])
    # real: max(0, 1 - l) = 0, .5, 2 -> mean 5/6; fake: max(0, 1 + l) = 0, 1 -> mean .5
    assert L.d_loss_hinge(real, fake).item() == pytest.approx(5 / 6 + 0.5)
    assert L.d_loss_hinge(torch.full((4,), 1.0), torch.full((4,), -1.0)).item() == pytest.approx(0.0)
    assert L.g_loss_hinge(torch.tensor([1.0, -3.0])).item() == pytest.approx(1.0)


@pytest.mark.parametrize("name", ["bce", "saturating", "lsgan", "hinge"])
def test_all_losses_finite_at_extreme_logits(name):
    d_loss, g_loss = L.get_losses(name)
    extreme = torch.tensor([-100.0, 100.0, -100.0, 100.0])
    real = extreme.clone().requires_grad_(True)
    fake = extreme.flip(0).clone().requires_grad_(True)
    ld = d_loss(real, fake)
    lg = g_loss(fake)
    assert torch.isfinite(ld) and torch.isfinite(lg)
    ld.backward(retain_graph=True)
    assert torch.isfinite(real.grad).all() and torch.isfinite(fake.grad).all()
    fake.grad = None
    lg.backward()
    assert torch.isfinite(fake.grad).all()


def test_bce_values_at_extreme_logits():
    # a perfect discriminator: loss ~ 2*log(1 + e^-100) ~ 0, and the naive version gives NaN/inf elsewhere
    assert L.d_loss_bce(torch.tensor([100.0]), torch.tensor([-100.0])).item() == pytest.approx(0.0, abs=1e-30)
    assert L.d_loss_bce(torch.tensor([-100.0]), torch.tensor([100.0])).item() == pytest.approx(200.0)
    assert L.g_loss_nonsaturating(torch.tensor([-100.0])).item() == pytest.approx(100.0)
    assert L.g_loss_saturating(torch.tensor([100.0])).item() == pytest.approx(-100.0)
    assert not torch.isfinite(_naive_d_bce(torch.tensor([-100.0]), torch.tensor([100.0])))


def test_get_losses_lookup_and_aliases():
    assert L.get_losses("bce") == (L.d_loss_bce, L.g_loss_nonsaturating)
    assert L.get_losses("nonsaturating") == L.get_losses("bce")
    assert L.get_losses("Non_Saturating") == L.get_losses("bce")
    assert L.get_losses("saturating") == (L.d_loss_bce, L.g_loss_saturating)
    assert L.get_losses("lsgan") == (L.d_loss_lsgan, L.g_loss_lsgan)
    assert L.get_losses("hinge") == (L.d_loss_hinge, L.g_loss_hinge)


def test_get_losses_unknown_name_lists_choices():
    with pytest.raises(ValueError) as err:
        L.get_losses("wasserstein")
    msg = str(err.value)
    for name in ("bce", "nonsaturating", "saturating", "lsgan", "hinge"):
        assert name in msg


def test_every_loss_has_a_formula_docstring():
    for fn in (L.d_loss_bce, L.g_loss_saturating, L.g_loss_nonsaturating, L.d_loss_lsgan,
               L.g_loss_lsgan, L.d_loss_hinge, L.g_loss_hinge):
        assert fn.__doc__ and "=" in fn.__doc__, fn.__name__
