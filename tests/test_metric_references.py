"""The course's hand-written metrics, which notebooks teach, against reference libraries on small cases.

FD against torchmetrics' Fréchet formula, KID against torchmetrics' polynomial-kernel MMD, k-NN precision and
recall against ``prdc`` (Naeem et al. 2020), HD95 against ``medpy``, and AUC against scikit-learn, each within a
stated tolerance."""
import numpy as np
import pytest
import torch

from medgan_utils.evaluation import fast_auc, frechet_distance, hd95, kid, precision_recall


def _features(seed, n=300, d=16, shift=0.0, scale=1.0):
    rng = np.random.default_rng(seed)
    return rng.normal(shift, scale, size=(n, d))


def test_fd_matches_torchmetrics_formula():
    from torchmetrics.image.fid import _compute_fid

    a, b = _features(0), _features(1, shift=0.3, scale=1.2)
    ref = _compute_fid(torch.tensor(a.mean(0)), torch.tensor(np.cov(a, rowvar=False)),
                       torch.tensor(b.mean(0)), torch.tensor(np.cov(b, rowvar=False)))
    assert frechet_distance(a, b) == pytest.approx(float(ref), rel=1e-6)   # float64 both: to rounding


def test_kid_matches_torchmetrics_poly_mmd_on_one_full_subset():
    from torchmetrics.image.kid import poly_mmd

    a, b = _features(2, n=120), _features(3, n=120, shift=0.2)
    ours, _ = kid(a, b, num_subsets=1, subset_size=120)              # one subset = the whole sets
    ref = poly_mmd(torch.tensor(a), torch.tensor(b), degree=3, gamma=1.0 / a.shape[1], coef=1.0)
    assert ours == pytest.approx(float(ref), rel=1e-6, abs=1e-9)


def test_precision_recall_match_prdc():
    from prdc import compute_prdc

    real, fake = _features(4, n=250), _features(5, n=250, shift=0.5, scale=0.7)
    p, r = precision_recall(real, fake, k=3)
    ref = compute_prdc(real_features=real, fake_features=fake, nearest_k=3)
    # ours counts in float32: equal to rounding (one image of 250 would be 0.004)
    assert p == pytest.approx(ref["precision"], abs=1e-6) and r == pytest.approx(ref["recall"], abs=1e-6)


def test_hd95_matches_medpy_on_blobs():
    from medpy.metric.binary import hd95 as medpy_hd95

    rng = np.random.default_rng(6)
    yy, xx = np.mgrid[:64, :64]
    for _ in range(10):
        cy, cx, r1, r2 = rng.integers(16, 48, 2).tolist() + rng.integers(5, 14, 2).tolist()
        a = ((yy - cy) ** 2 / r1 ** 2 + (xx - cx) ** 2 / r2 ** 2) <= 1
        b = ((yy - cy - rng.integers(-4, 5)) ** 2 / (r1 + 2) ** 2 + (xx - cx) ** 2 / r2 ** 2) <= 1
        assert hd95(a, b) == pytest.approx(medpy_hd95(a, b), abs=1e-6)


def test_auc_matches_scikit_learn_and_medmnist():
    from medmnist.evaluator import getAUC
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(7)
    y = rng.integers(0, 2, 156)
    p = np.clip(rng.normal(0.4 + 0.2 * y, 0.2), 0, 1)
    assert fast_auc(y, p) == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    assert fast_auc(y, p) == pytest.approx(getAUC(y, np.c_[1 - p, p], "binary-class"), abs=1e-12)
