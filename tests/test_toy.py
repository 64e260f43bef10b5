"""Tests of the toy GAN pieces in ``medgan_utils.toy``."""
import math

import numpy as np
import pytest
import torch

from medgan_utils.course import toy


def test_gaussian_pdf_integrates_to_one():
    x = np.linspace(-10, 10, 4001)
    assert np.trapezoid(toy.gaussian_pdf(x, 1.0, 0.7), x) == pytest.approx(1.0, abs=1e-8)
    assert toy.gaussian_pdf(0.0, 0.0, 1.0) == pytest.approx(1 / math.sqrt(2 * math.pi))


def test_mixture_density_and_sampler_agree():
    mix = toy.Mixture1D((-2.0, 1.5), (0.5, 0.8), (0.3, 0.7))
    assert sum(mix.weights) == pytest.approx(1.0)
    x = np.linspace(-8, 8, 4001)
    assert np.trapezoid(mix.pdf(x), x) == pytest.approx(1.0, abs=1e-6)
    s = mix.sample(200_000, generator=torch.Generator().manual_seed(0))
    assert s.shape == (200_000, 1) and s.dtype == torch.float32
    assert s.mean().item() == pytest.approx(0.3 * -2 + 0.7 * 1.5, abs=0.02)
    assert (s < -0.5).float().mean().item() == pytest.approx(0.3, abs=0.01)


def test_mixture_validation_and_shift():
    with pytest.raises(ValueError):
        toy.Mixture1D((0.0, 1.0), (1.0, 1.0, 1.0))
    with pytest.raises(ValueError):
        toy.Mixture1D((0.0,), (-1.0,))
    g = toy.Mixture1D.gaussian(0.0, 1.0).shifted(2.5)
    assert g.means == (2.5,) and g.stds == (1.0,)
    same_std = toy.Mixture1D((0.0, 3.0), (0.5,))
    assert same_std.stds == (0.5, 0.5)


def test_jsd_identical_is_zero_and_disjoint_is_log2():
    x = np.linspace(-10, 10, 8001)
    p = toy.gaussian_pdf(x, 0, 1)
    assert toy.jsd_on_grid(p, p, x) == pytest.approx(0.0, abs=1e-12)
    left = np.where(x < -1, 1.0, 0.0)
    right = np.where(x > 1, 1.0, 0.0)
    assert toy.jsd_on_grid(left, right, x) == pytest.approx(math.log(2), abs=1e-9)
    # far-apart Gaussians are numerically disjoint
    assert toy.jsd_on_grid(toy.gaussian_pdf(x, -6, 0.3), toy.gaussian_pdf(x, 6, 0.3), x) == pytest.approx(math.log(2), abs=1e-6)


def test_jsd_symmetric_bounded_and_matches_kl_definition():
    x = np.linspace(-12, 12, 6001)
    p, q = toy.gaussian_pdf(x, 0, 1), toy.gaussian_pdf(x, 1.3, 0.6)
    j = toy.jsd_on_grid(p, q, x)
    assert j == pytest.approx(toy.jsd_on_grid(q, p, x), abs=1e-12)
    assert 0 < j < math.log(2)
    m = 0.5 * (p + q)
    assert j == pytest.approx(0.5 * toy.kl_on_grid(p, m, x) + 0.5 * toy.kl_on_grid(q, m, x), abs=1e-10)


def test_kl_of_gaussians_closed_form_and_infinite_case():
    x = np.linspace(-15, 15, 12001)
    m1, s1, m2, s2 = 0.0, 1.0, 1.0, 2.0
    closed = math.log(s2 / s1) + (s1**2 + (m1 - m2) ** 2) / (2 * s2**2) - 0.5
    assert toy.kl_on_grid(toy.gaussian_pdf(x, m1, s1), toy.gaussian_pdf(x, m2, s2), x) == pytest.approx(closed, abs=1e-6)
    p = np.where(np.abs(x) < 1, 1.0, 0.0)
    q = np.where(x > 0, 1.0, 0.0)
    assert toy.kl_on_grid(p, q, x) == float("inf")


def test_optimal_discriminator_formula_and_value():
    p = np.array([1.0, 0.0, 0.2, 0.0])
    q = np.array([1.0, 0.5, 0.6, 0.0])
    np.testing.assert_allclose(toy.optimal_discriminator(p, q), [0.5, 0.0, 0.25, 0.5])
    # C(G) = V(D*, G) = -log 4 + 2 JSD
    x = np.linspace(-12, 12, 8001)
    pd, pg = toy.gaussian_pdf(x, 0, 1), toy.gaussian_pdf(x, 1.0, 1.5)
    c = toy.value_on_grid(pd, pg, toy.optimal_discriminator(pd, pg), x)
    assert c == pytest.approx(-math.log(4) + 2 * toy.jsd_on_grid(pd, pg, x), abs=1e-6)
    assert toy.value_on_grid(pd, pd, np.full_like(x, 0.5), x) == pytest.approx(-math.log(4), abs=1e-6)


def test_ring_centers_and_samples():
    c = toy.ring_centers(8, radius=2.0)
    assert c.shape == (8, 2)
    torch.testing.assert_close(c.norm(dim=1), torch.full((8,), 2.0))
    s = toy.sample_ring(4000, std=0.02, generator=torch.Generator().manual_seed(1))
    assert s.shape == (4000, 2)
    assert (s.norm(dim=1) - 2).abs().max().item() < 0.2


def test_mode_coverage_of_true_samples_is_full():
    std = 0.05
    s = toy.sample_ring(5000, std=std, generator=torch.Generator().manual_seed(0))
    covered, hq = toy.mode_coverage(s, toy.ring_centers(), std)
    assert covered == 8
    # in 2-D, P(|N(0, I)| <= 3) = 1 - exp(-9/2) = 0.9889
    assert hq == pytest.approx(1 - math.exp(-4.5), abs=0.01)


def test_mode_coverage_all_at_one_mode():
    centers = toy.ring_centers()
    s = centers[3] + 0.01 * torch.randn(1000, 2, generator=torch.Generator().manual_seed(0))
    assert toy.mode_coverage(s, centers, 0.05) == (1, 1.0)


def test_mode_coverage_threshold_rule():
    centers = toy.ring_centers()
    # 990 samples on mode 0, 10 on mode 1: a tenth of the fair share (1000/8 = 125) is 13 -> one mode
    s = torch.cat([centers[0].repeat(990, 1), centers[1].repeat(10, 1)])
    assert toy.mode_coverage(s, centers, 0.05)[0] == 1
    assert toy.mode_coverage(s, centers, 0.05, min_count=10)[0] == 2
    # samples far from every mode are low quality and cover nothing
    far = torch.zeros(100, 2)
    assert toy.mode_coverage(far, centers, 0.05) == (0, 0.0)
    with pytest.raises(ValueError):
        toy.mode_coverage(torch.zeros(5, 3), centers, 0.05)


def test_small_mlps_shapes():
    G, D = toy.make_generator(2, 2, hidden=16), toy.make_discriminator(2, hidden=16)
    z = torch.randn(7, 2)
    assert G(z).shape == (7, 2) and D(G(z)).shape == (7, 1)
    with pytest.raises(ValueError):
        toy.mlp(2, 2, act="swish")
