"""Notebook 06's building blocks: the simulated degradations, PSNR/SSIM, the hallucination measures, the classical
restorers, the paired bootstrap, the enhancement step (tied bit for bit to the notebook's), and a fast run of the
notebook on a user's own data. Fixtures are generated; networks are tiny and run single-threaded."""
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from medgan_utils import SettingError
from medgan_utils.course import classical_restore, tune_classical
from medgan_utils.data import degrade, low_dose, low_resolution, speckle
from medgan_utils.data.degrade import ATTENUATION_K, DISPLAY_RANGE_DB, speckle_gain
from medgan_utils.evaluation import (PSNR_CAP_DB, hallucination_fraction, lesion_changes, noise_level,
                                     paired_bootstrap, psnr, ssim, verdict)
from helpers import notebook_cell

ROOT = Path(__file__).resolve().parents[1]
NB06 = ROOT / "notebooks" / "06_enhancement.ipynb"


def _smooth_images(n=6, size=28, seed=0):
    """Smooth random images in [-1, 1]: a few Gaussian blobs on a gradient."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    out = []
    for _ in range(n):
        img = 0.3 * xx
        for _ in range(3):
            cy, cx = (torch.rand(2, generator=g) * 1.4 - 0.7).tolist()
            img = img + 0.8 * torch.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 0.08)
        out.append(img.clamp(-1, 1))
    return torch.stack(out)[:, None]


# --- PSNR and SSIM -------------------------------------------------------------------------------------------

def test_psnr_of_identical_images_is_capped_and_ssim_is_one():
    x = _smooth_images()
    assert torch.all(psnr(x, x) == PSNR_CAP_DB) and math.isfinite(PSNR_CAP_DB)
    assert torch.allclose(ssim(x, x), torch.ones(len(x)), atol=1e-5)


def test_psnr_matches_the_closed_form_for_a_known_error():
    x = torch.zeros(3, 1, 16, 16)
    y = x + torch.tensor([0.1, 0.2, 0.4]).view(3, 1, 1, 1)      # MSE 0.01, 0.04, 0.16 on a range of 2
    expected = torch.tensor([10 * math.log10(4 / m) for m in (0.01, 0.04, 0.16)])
    assert torch.allclose(psnr(y, x), expected, atol=1e-4)
    with pytest.raises(ValueError, match="shapes differ"):
        psnr(x, x[:2])


# --- degradations --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("task,level", [("denoise", 20), ("despeckle", 2), ("superres", 2)])
def test_degradations_are_deterministic_under_a_seed(task, level):
    x = _smooth_images()
    a = degrade(x, task, level, seed=5, read_noise=2.0)
    b = degrade(x, task, level, seed=5, read_noise=2.0)
    assert torch.equal(a, b) and a.shape == x.shape and a.min() >= -1 and a.max() <= 1
    if task != "superres":                                      # noise: another seed gives another image
        assert not torch.equal(a, degrade(x, task, level, seed=6, read_noise=2.0))
    assert torch.equal(x, _smooth_images())                     # the input is not modified


@pytest.mark.parametrize("u,photons,read_noise", [(0.6, 2000.0, 2.0), (0.2, 500.0, 0.0), (0.9, 5000.0, 5.0)])
def test_the_dose_simulation_follows_beer_lambert(u, photons, read_noise):
    """At a high count the log-transformed image has mean u and the delta-method variance (E + r²) / (k E)²,
    E = N0 · exp(-k u) being the expected count behind the pixel."""
    n = 200_000
    flat = torch.full((n, 1, 1, 1), 2 * u - 1)
    sim = ((low_dose(flat, photons, read_noise, seed=0, clip=False) + 1) / 2).double().flatten()
    expected = photons * math.exp(-ATTENUATION_K * u)
    var = (expected + read_noise ** 2) / (ATTENUATION_K * expected) ** 2
    assert abs(float(sim.mean()) - u) < 0.01
    assert abs(float(sim.var()) / var - 1) < 0.05


def test_low_dose_noise_rises_with_attenuation_and_is_not_zero_in_air():
    """Bright = attenuating = few photons: the noise grows from dark to grey to white; air is not noiseless."""
    stds = []
    for u in (0.0, 0.5, 1.0):
        flat = torch.full((50_000, 1, 1, 1), 2 * u - 1)
        stds.append(float(low_dose(flat, 50.0, 2.0, seed=3, clip=False).std()))
    assert stds[0] < stds[1] < stds[2]
    black = torch.full((1, 1, 64, 64), -1.0)                              # an all-black (air) image, clipped
    assert float(low_dose(black, 50.0, 2.0, seed=0).std()) > 0.01
    assert float(low_dose(black, 500.0, 0.0, seed=0).std()) > 0.005


def test_speckle_gain_has_mean_one_variance_one_over_looks_and_is_correlated():
    for looks in (1, 4):
        gain = speckle_gain((200, 1, 32, 32), looks, seed=1)
        assert abs(float(gain.mean()) - 1) < 0.02
        assert abs(float(gain.var()) * looks - 1) < 0.06
    x = speckle_gain((200, 1, 32, 32), 1, seed=2)
    x = x - x.mean()
    lag1_rows = float((x[..., 1:, :] * x[..., :-1, :]).mean() / x.var())
    lag1_cols = float((x[..., :, 1:] * x[..., :, :-1]).mean() / x.var())
    assert lag1_rows > 0.3 and lag1_cols > lag1_rows                      # a grain wider laterally than axially
    far = float((x[..., :, 8:] * x[..., :, :-8]).mean() / x.var())
    assert abs(far) < 0.05                                                # but only over a few pixels


def test_speckle_is_applied_before_log_compression():
    """On the display (a log scale) speckle is additive: a shift of 10 log10(gain) / DR, the same at any
    brightness, with mean 10 / ln 10 · (ψ(L) − ln L) / DR (−2.51 dB for one look)."""
    from scipy.special import digamma
    for looks in (1, 4):
        shifts = []
        for u in (0.4, 0.7):
            flat = torch.full((100, 1, 32, 32), 2 * u - 1)
            shifts.append(float(((speckle(flat, looks, seed=4, clip=False) + 1) / 2 - u).mean()))
        want = 10 / math.log(10) * (digamma(looks) - math.log(looks)) / DISPLAY_RANGE_DB
        assert abs(shifts[0] - shifts[1]) < 1e-6 and abs(shifts[0] - want) < 0.004   # float32 rounding of u only


def test_low_resolution_loses_detail_but_keeps_a_smooth_image():
    x = _smooth_images(size=32)
    checker = (torch.arange(32).view(1, 1, 32, 1) + torch.arange(32).view(1, 1, 1, 32)) % 2 * 2.0 - 1
    assert float(psnr(low_resolution(x, 2), x).mean()) > 30
    assert float(low_resolution(checker, 2).abs().max()) < 1e-5            # a 1-px pattern vanishes


def test_bad_degradation_settings_name_the_fix():
    x = _smooth_images(size=28)
    with pytest.raises(SettingError, match="Unknown enhancement task"):
        degrade(x, "deblur", 2, seed=0)
    with pytest.raises(SettingError, match="SCALE"):
        low_resolution(x, 3)
    with pytest.raises(SettingError, match="DOSE_LEVELS"):
        low_dose(x, 0, seed=0)
    with pytest.raises(SettingError, match="SPECKLE_LOOKS"):
        speckle(x, 0, seed=0)


# --- hallucination measures ----------------------------------------------------------------------------------

def test_hallucination_is_zero_for_an_identity_enhancer_on_a_clean_image():
    x = _smooth_images()
    identity = lambda img: img.clone()                                   # noqa: E731
    assert torch.all(hallucination_fraction(identity(x), x, sigma=0.05) == 0)


def test_hallucination_flags_an_invented_spot_but_little_pixel_noise():
    x = _smooth_images(n=20)
    noisy = degrade(x, "denoise", 50, seed=0)
    sigma = noise_level(noisy, x)
    noise_score = float(hallucination_fraction(noisy, x, sigma).mean())
    assert 0 < noise_score < 0.1                                        # independent noise: a few per cent
    spot = x.clone()
    spot[:, :, 10:16, 10:16] += 0.6                                      # a 6 x 6 bright spot that is not there
    frac = hallucination_fraction(spot, x, sigma)
    assert torch.all(frac >= 36 / 28 ** 2 * 0.9)                         # the spot's pixels are flagged
    with pytest.raises(ValueError, match="noise_level"):
        hallucination_fraction(x, x, sigma=0)


def test_lesion_changes_count_added_and_erased_pixels():
    true = torch.zeros(2, 1, 8, 8)
    true[:, :, 2:6, 2:6] = 1                                             # a 16-pixel lesion
    before = true.clone()
    after = true.clone()
    after[0, :, 2:4, 2:6] = 0                                            # image 0: half the lesion erased
    after[1, :, 0, :] = 1                                                # image 1: 8 pixels added outside it
    ch = lesion_changes(before, after, true)
    assert torch.allclose(ch["erased"], torch.tensor([0.5, 0.0]))
    assert torch.allclose(ch["added"], torch.tensor([0.0, 8 / 64]))
    empty = torch.zeros(1, 1, 8, 8)
    assert float(lesion_changes(empty, empty, empty)["erased"][0]) == 0.0


# --- classical restorers -------------------------------------------------------------------------------------

def test_classical_denoisers_raise_psnr_and_bicubic_is_the_input():
    x = _smooth_images(n=8)
    noisy = degrade(x, "denoise", 20, seed=1)
    for method in ("nlm", "tv"):
        strength, scores = tune_classical(method, noisy, x)
        assert strength in scores and scores[strength] == max(scores.values())
        restored = classical_restore(noisy, method, strength, noise_level(noisy, x))
        assert float(psnr(restored, x).mean()) > float(psnr(noisy, x).mean()) + 3
    assert torch.equal(classical_restore(noisy, "bicubic"), noisy)
    with pytest.raises(ValueError, match="Unknown classical method"):
        classical_restore(noisy, "median")


# --- paired bootstrap ----------------------------------------------------------------------------------------

def test_paired_bootstrap_sees_a_shift_and_not_an_identical_arm():
    rng = np.random.default_rng(0)
    base = rng.normal(0.5, 0.2, 300)
    mean = lambda scores, idx: float(np.mean(scores[idx]))               # noqa: E731
    same = paired_bootstrap(mean, [base.copy()], base, len(base), n_boot=200, seed=0)
    assert same["mean"] == 0 and same["ci_low"] == 0 and same["ci_high"] == 0
    assert verdict(same) != "improvement"
    better = paired_bootstrap(mean, [base + 0.05, base + 0.07], base, len(base), n_boot=200, seed=0)
    assert abs(better["mean"] - 0.06) < 1e-9 and better["ci_low"] > 0 and verdict(better) == "improvement"
    noise = paired_bootstrap(mean, [rng.normal(0.5, 0.2, 300)], base, len(base), n_boot=300, seed=1)
    assert noise["ci_low"] < 0 < noise["ci_high"] or abs(noise["mean"]) > 0.03


# --- the step, tied to the notebook --------------------------------------------------------------------------

def _nb06_cell(prefix):
    return notebook_cell("06_enhancement", prefix)


def test_notebook_06_writes_its_step_with_backward():
    cell = _nb06_cell("def enhance_train_step(")
    assert cell.count(".backward()") == 3                                 # L1-only branch, critic, enhancer


@pytest.mark.parametrize("lambda_adv", [0.0, 0.1])
def test_notebook_06_step_is_bit_identical_to_the_package(lambda_adv, one_thread):
    import torch.nn.functional as F

    from medgan_utils.gan import PairTrainer, enhancement_step
    from medgan_utils.nets import make_patch_discriminator, make_unet

    ns = {"torch": torch, "F": F}
    cell = _nb06_cell("def enhance_train_step(")
    exec(cell[: cell.index("\ndef new_enhancer")], ns)
    clean = _smooth_images(n=16, size=32)
    bad = degrade(clean, "denoise", 20, seed=0)
    trainers = []
    for step in (ns["enhance_train_step"], enhancement_step):
        nets = {"G": make_unet(1, 1, 4, 3, out_activation="tanh", seed=0)}
        if lambda_adv:
            nets["D"] = make_patch_discriminator(2, 8, 2, "batch", seed=1)
        tr = PairTrainer(nets, clean, bad, step, lr={"G": 1e-3, "D": 2e-4}, betas=(0.5, 0.999), batch_size=8,
                         seed=3, lambda_adv=lambda_adv)
        tr.run_steps(3)
        trainers.append(tr)
    a, b = trainers
    assert a.names == b.names == (["G", "D"] if lambda_adv else ["G"])
    for name in a.names:
        sa, sb = getattr(a, name).state_dict(), getattr(b, name).state_dict()
        for k in sa:
            assert torch.equal(sa[k], sb[k]), f"λ={lambda_adv}: {name}.{k} differs"
    assert a.history.keys() == b.history.keys()


def test_a_short_l1_training_beats_the_noisy_input(one_thread):
    from medgan_utils.gan import PairTrainer, enhancement_step
    from medgan_utils.nets import make_unet

    clean = _smooth_images(n=64, size=16, seed=2)
    bad = degrade(clean, "denoise", 20, seed=0)
    tr = PairTrainer({"G": make_unet(1, 1, 8, 2, out_activation="tanh", seed=0)}, clean, bad, enhancement_step,
                     lr=3e-3, batch_size=16, seed=0, lambda_adv=0.0)
    tr.run_steps(120)
    assert float(psnr(tr.predict(bad, net="G"), clean).mean()) > float(psnr(bad, clean).mean()) + 2


# --- the notebook on a user's own data -----------------------------------------------------------------------

@pytest.mark.slow
def test_notebook_06_runs_fast_on_own_xray_and_ultrasound_data(tmp_path):
    from medgan_utils.tools.runner import run_notebook
    from test_segmentation import write_medsegbench_style_npz
    from test_user_data import write_medmnist_style_npz

    xray = write_medmnist_style_npz(tmp_path / "xray.npz", n_classes=3, channels=1, size=28,
                                    n_per_split=(90, 30, 30))
    us = write_medsegbench_style_npz(tmp_path / "us.npz", size=64, n_per_split=(40, 12, 12))
    row = run_notebook(NB06, tmp_path / "out", {"DATASET": str(xray), "SEG_DATASET": str(us), "SEG_SIZE": 32,
                                                "N_SEEDS": 2}, fast=True)
    assert row["status"] == "ok", row["error"]
    m = json.loads(Path(row["results"]).read_text())["metrics"]
    arms = {r["arm"] for r in m["runs"]}
    assert {"degraded", "nlm", "tv", "bicubic", "unet_l1", "pix2pix"} <= arms
    assert {r["task"] for r in m["runs"]} == {"denoise", "superres", "despeckle"}
    assert all(0 <= r["structured_error"] <= 1 and r["psnr"] <= PSNR_CAP_DB for r in m["runs"])
    assert all(abs(r["structured_added"] + r["structured_removed"] - r["structured_error"]) < 1e-6 for r in m["runs"])
    cohen = m["hallucination_experiment"]                                 # the npz names benign and malignant cases
    assert set(cohen["arms"]) == {"benign-only", "mixed"} and cohen["n_malignant_test"] > 0
    for key in ("removed", "added", "lesions_erased", "structures_added"):
        lo, hi = cohen["contrasts"][key]["ci"]
        assert -1 <= lo <= hi <= 1
    assert len({r["seed"] for r in m["runs"]}) == 2 and m["exploratory"]
    from medgan_utils.course.evidence_keys import evidence_problems
    rec = json.loads(Path(row["results"]).read_text())
    assert evidence_problems("06_enhancement", rec) == []
    assert m["split"]["us"]["grouped"] and m["operating_point"]["threshold_from"] == "validation"


# --- variance-stabilised classical baselines -------------------------------------------------------------------

def test_anscombe_round_trip_and_stabilised_variance():
    from medgan_utils import anscombe, inverse_anscombe
    z = np.linspace(0, 500, 1001)
    for r in (0.0, 2.0):
        assert np.allclose(inverse_anscombe(anscombe(z, r), r, unbiased=False), z, atol=1e-9)
    rng = np.random.default_rng(0)
    for lam in (5.0, 20.0, 100.0):
        counts = rng.poisson(lam, 400_000) + 2.0 * rng.standard_normal(400_000)
        y = anscombe(counts, 2.0)
        assert abs(y.var() - 1) < 0.1                                     # the variance is stabilised
        assert abs(float(inverse_anscombe(y.mean(), 2.0)) / lam - 1) < 0.02   # the unbiased inverse of the mean


def _wave_images(n=6, size=32):
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    return torch.stack([(0.6 * torch.sin(3 * xx + i) * torch.cos(2 * yy)).unsqueeze(0) for i in range(n)])


def test_the_strength_grid_is_widened_until_its_optimum_is_inside():
    from medgan_utils.course.enhancement import _GRIDS
    clean = _wave_images()
    g = torch.Generator().manual_seed(0)
    for noise in (0.02, 1.2):                        # the best TV weight lies below / above the starting grid
        noisy = (clean + noise * torch.randn(clean.shape, generator=g)).clamp(-1, 1)
        best, scores = tune_classical("tv", noisy, clean)
        grid = sorted(scores)
        assert grid[0] < best < grid[-1], (noise, best, grid)
        assert best not in _GRIDS["tv"] or min(grid) < min(_GRIDS["tv"]) or max(grid) > max(_GRIDS["tv"])


@pytest.mark.parametrize("task,level", [("denoise", 20), ("despeckle", 1)])
def test_the_stabilised_domain_helps_the_classical_baseline(task, level):
    from medgan_utils import noise_domain
    clean = _wave_images()
    bad = degrade(clean, task, level, seed=1, read_noise=2.0)
    domain = noise_domain(task, level, 2.0)
    for method in ("nlm", "tv"):
        _, raw = tune_classical(method, bad, clean)
        _, stabilised = tune_classical(method, bad, clean, domain)
        assert max(stabilised.values()) > max(raw.values()) + 0.5, (method, raw, stabilised)
    assert noise_domain("superres", 2) is None
