"""Tests of medgan_utils.metrics: the formulas on synthetic data with known answers,
and the feature net and generator evaluation on real PneumoniaMNIST."""
import time

import matplotlib
import numpy as np
import pytest
import torch

matplotlib.use("Agg")

from medgan_utils import evaluation as M  # noqa: E402
from medgan_utils.evaluation import inception as MI  # noqa: E402
from medgan_utils.nets import FeatureNet  # noqa: E402
from medgan_utils.evaluation import neighbours as NB  # noqa: E402
from medgan_utils.data import load_dataset  # noqa: E402
from medgan_utils.data.phantom import make_phantom  # noqa: E402
from tests.helpers import require_real  # noqa: E402


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


# --------------------------------------------------------------------------- Fréchet distance
def test_fd_same_gaussian_is_small():
    g = gen(0)
    a, b = torch.randn(5000, 8, generator=g), torch.randn(5000, 8, generator=g)
    assert 0 <= M.frechet_distance(a, b) < 0.05


def test_fd_shift_matches_closed_form():
    g = gen(1)
    a = torch.randn(5000, 8, generator=g)
    delta = torch.full((8,), 0.5 ** 0.5)  # ||delta||^2 = 4
    # Same covariance exactly: FD is exactly ||delta||^2.
    assert M.frechet_distance(a, a + delta) == pytest.approx(4.0, abs=1e-6)
    # Independent samples: ||delta||^2 up to sampling noise.
    b = torch.randn(5000, 8, generator=g)
    assert M.frechet_distance(a, b + delta) == pytest.approx(4.0, abs=0.3)


def test_fd_symmetric_nonnegative_and_methods_agree():
    g = gen(2)
    a = torch.randn(800, 16, generator=g) * torch.linspace(0.2, 2, 16)
    b = torch.randn(600, 16, generator=g) + 0.3
    fab, fba = M.frechet_distance(a, b), M.frechet_distance(b, a)
    assert fab == pytest.approx(fba, rel=1e-8)
    assert fab == pytest.approx(M.frechet_distance(a, b, method="sqrtm"), rel=1e-6)
    assert M.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8) and M.frechet_distance(a, a) >= 0
    # Fewer samples than dimensions: singular covariances must still give a finite, non-negative value.
    small = M.frechet_distance(a[:5], b[:7])
    assert np.isfinite(small) and small >= 0
    assert small == pytest.approx(M.frechet_distance(a[:5], b[:7], method="sqrtm"), rel=1e-4)


def test_fd_from_stats_diagonal_closed_form():
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    s1, s2 = np.array([1.0, 2.0, 0.5]), np.array([2.0, 0.5, 0.5])
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((s1 - s2) ** 2)
    got = M.frechet_distance_from_stats(mu1, np.diag(s1 ** 2), mu2, np.diag(s2 ** 2))
    assert got == pytest.approx(expected, rel=1e-10)


# --------------------------------------------------------------------------- KID
def test_kid_zero_for_same_distribution_positive_for_different():
    g = gen(3)
    a, b = torch.randn(2000, 16, generator=g), torch.randn(2000, 16, generator=g)
    same, same_std = M.kid(a, b)
    diff, diff_std = M.kid(a, b + 0.5)
    assert abs(same) < 0.02 * diff
    assert diff > 10 * diff_std
    assert M.kid(a, b, seed=5) == M.kid(a, b, seed=5)  # seeded


def test_kid_is_unbiased_for_tiny_subsets():
    """With 10 samples per subset a biased MMD^2 is far above 0; the unbiased mean is not."""
    g = gen(4)
    a, b = torch.randn(2000, 16, generator=g), torch.randn(2000, 16, generator=g)
    mean, std = M.kid(a, b, num_subsets=500, subset_size=10)
    assert abs(mean) < 4 * std / np.sqrt(500)
    x, y = a[:10].double(), b[:10].double()
    k = lambda u, v: (u @ v.T / 16 + 1) ** 3  # noqa: E731
    biased = float(k(x, x).mean() + k(y, y).mean() - 2 * k(x, y).mean())
    assert biased > 0.5 > 20 * abs(mean)


# --------------------------------------------------------------------------- precision / recall
def _modes(n_per, centres, g):
    return centres.repeat_interleave(n_per, 0) + torch.randn(n_per * len(centres), centres.shape[1], generator=g)


def test_precision_recall_identical_disjoint_and_half_modes():
    g = gen(5)
    centres = torch.stack(torch.meshgrid(torch.arange(4.0) * 20, torch.arange(2.0) * 20, indexing="ij"), -1)
    centres = centres.reshape(-1, 2)  # 8 well-separated modes
    real = _modes(250, centres, g)
    assert M.precision_recall(real, real) == (1.0, 1.0)
    assert M.precision_recall(real, real + 1000.0) == (0.0, 0.0)
    half = _modes(250, centres[:4], g)  # a generator that covers 4 of the 8 modes
    p, r = M.precision_recall(real, half, k=3)
    assert p > 0.95
    assert 0.42 < r <= 0.5
    assert M.precision_recall(real, half, real_radii=M.knn_radii(real, 3)) == (p, r)


def test_precision_recall_chunking_matches_single_block(monkeypatch):
    g = gen(6)
    real, fake = torch.randn(700, 5, generator=g), torch.randn(500, 5, generator=g) + 0.5
    full = M.precision_recall(real, fake)
    monkeypatch.setattr(NB, "_CHUNK_ELEMENTS", 700 * 13)  # forces 13-row chunks, with a ragged last one
    assert M.precision_recall(real, fake) == full


# --------------------------------------------------------------------------- real data fixtures
@pytest.fixture(scope="module")
def pneumonia():
    require_real("pneumoniamnist", 28)
    return {s: load_dataset("pneumoniamnist", s, 28, download=False) for s in ("train", "val", "test")}


@pytest.fixture(scope="module")
def trained(pneumonia, tmp_path_factory):
    """One epoch on a 2000-image subset, cached in a temporary folder; trained once per module."""
    cache = tmp_path_factory.mktemp("feature_nets")
    sub = pneumonia["train"].subset(2000)
    t0 = time.perf_counter()
    net, info = M.train_feature_net(sub, val=pneumonia["val"], epochs=1, seed=0, cache_dir=cache, verbose=False)
    return {"net": net, "info": info, "cache": cache, "subset": sub, "seconds": time.perf_counter() - t0}


# --------------------------------------------------------------------------- feature net
def test_feature_net_shapes_any_size_and_channels():
    for c, s in [(1, 28), (3, 28), (1, 64), (1, 128)]:
        net = FeatureNet(in_channels=c, num_classes=3).eval()
        x = torch.rand(2, c, s, s) * 2 - 1
        assert net(x).shape == (2, 3)
        assert net.features(x).shape == (2, 128)


def test_train_feature_net_beats_majority_class(trained, pneumonia):
    info = trained["info"]
    val_labels = pneumonia["val"].labels
    majority = float(torch.bincount(val_labels).max()) / len(val_labels)
    assert info["val_majority_rate"] == pytest.approx(majority)
    print(f"\nfeature net, 1 epoch on 2000 images: val acc {info['val_accuracy']:.3f} "
          f"(majority {majority:.3f}), AUC {info['val_auc']:.3f}, {trained['seconds']:.1f} s")
    assert info["val_accuracy"] > majority + 0.05
    assert info["val_auc"] > 0.85
    assert info["cached"] is False and info["epochs"] == 1 and info["task"] == "binary"
    assert trained["seconds"] < 60  # ~4 s on an idle 2-core CPU


def test_feature_net_cache_round_trip(trained, pneumonia):
    t0 = time.perf_counter()
    net2, info2 = M.train_feature_net(trained["subset"], val=pneumonia["val"], epochs=1, seed=0,
                                      cache_dir=trained["cache"], verbose=False)
    seconds = time.perf_counter() - t0
    assert info2["cached"] is True and info2["path"] == trained["info"]["path"]
    assert seconds < trained["seconds"]
    sd1, sd2 = trained["net"].state_dict(), net2.state_dict()
    assert sd1.keys() == sd2.keys() and all(torch.equal(sd1[k].cpu(), sd2[k].cpu()) for k in sd1)
    assert info2["val_accuracy"] == trained["info"]["val_accuracy"]
    files = list(trained["cache"].glob("*.pt"))
    assert len(files) == 1 and files[0].name.startswith("pneumoniamnist_28px_c1_e1_s0_")
    assert not list(trained["cache"].glob("*.part"))  # atomic write left no temporary file


def test_feature_net_is_deterministic_and_recovers_from_corrupt_cache(pneumonia, tmp_path):
    sub = pneumonia["train"].subset(256)
    rng_before = torch.get_rng_state()
    a, _ = M.train_feature_net(sub, epochs=1, seed=3, batch_size=128, cache_dir=False, verbose=False)
    assert torch.equal(rng_before, torch.get_rng_state())  # the global random stream is left alone
    b, info_b = M.train_feature_net(sub, epochs=1, seed=3, batch_size=128, cache_dir=tmp_path, verbose=False)
    assert all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in a.state_dict())
    c, _ = M.train_feature_net(sub, epochs=1, seed=4, batch_size=128, cache_dir=False, verbose=False)
    assert not torch.equal(a.head.weight, c.head.weight)
    path = info_b["path"]
    with open(path, "wb") as fh:
        fh.write(b"not a checkpoint")
    with pytest.warns(UserWarning, match="unusable feature-net cache"):
        d, info_d = M.train_feature_net(sub, epochs=1, seed=3, batch_size=128, cache_dir=tmp_path, verbose=False)
    assert info_d["cached"] is False
    assert all(torch.equal(a.state_dict()[k], d.state_dict()[k]) for k in a.state_dict())
    _, info_e = M.train_feature_net(sub, epochs=1, seed=3, batch_size=128, cache_dir=tmp_path, verbose=False)
    assert info_e["cached"] is True


def test_extract_features_batched_eval_and_fast(trained, pneumonia):
    net = trained["net"]
    imgs = torch.cat([pneumonia["train"].images, pneumonia["test"].images])[:5000]
    net.train()
    t0 = time.perf_counter()
    feats = M.extract_features(net, imgs)
    seconds = time.perf_counter() - t0
    assert net.training  # mode restored
    net.eval()
    assert feats.shape == (5000, 128) and feats.dtype == torch.float32 and feats.device.type == "cpu"
    feats.sub_(0.0)  # an ordinary tensor (not an inference-mode one): in-place use is allowed
    small = M.extract_features(net, imgs[:50], batch_size=7)
    torch.testing.assert_close(small, feats[:50], rtol=1e-4, atol=1e-5)
    print(f"\nfeatures of 5000 images at 28 px: {seconds:.2f} s")
    assert seconds < 30  # a few seconds on an idle 2-core CPU


# --------------------------------------------------------------------------- memorisation audit
def test_memorisation_audit_flags_copies(pneumonia):
    train, test = pneumonia["train"], pneumonia["test"]
    idx = torch.randperm(len(train), generator=gen(7))[:200]
    audit = M.memorisation_audit(train.images[idx], train, test, k_pairs=5)
    assert audit["n_copies"] == 200 and audit["copy_fraction"] == 1.0
    assert audit["ratio"] < 0.05 and audit["gen_nn_median"] == 0.0
    assert len(audit["pairs"]) == 5
    for g_i, t_i in audit["pairs"]:
        assert torch.equal(train.images[idx][g_i], train.images[t_i])


def test_memorisation_audit_fresh_images_look_like_test(pneumonia, trained):
    train, test = pneumonia["train"], pneumonia["test"]
    perm = torch.randperm(len(test), generator=gen(8))
    fresh, ref = test.images[perm[:312]], test.images[perm[312:]]
    audit = M.memorisation_audit(fresh, train, ref, feature_net=trained["net"])
    assert 0.85 < audit["ratio"] < 1.15
    assert audit["copy_fraction"] < 0.05
    feat = audit["feature"]
    assert feat is not None and 0.8 < feat["ratio"] < 1.25 and feat["copy_fraction"] < 0.05
    fig = M.plot_memorisation_pairs(audit, fresh, train, n=4)
    assert len(fig.axes) == 8
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_memorisation_audit_rejects_size_mismatch(pneumonia):
    with pytest.raises(ValueError, match="same C×H×W"):
        M.memorisation_audit(torch.zeros(4, 1, 32, 32), pneumonia["train"], pneumonia["test"])


# --------------------------------------------------------------------------- evaluate_generator
KEYS = {"fd", "fd_ci", "fd_ref_test", "fd_ratio_test", "kid", "kid_ci", "kid_std", "kid_ref_test", "precision",
        "recall", "precision_ref_test", "recall_ref_test", "memorisation", "n", "primary_reference"}
VAL_KEYS = {"fd_ref_val", "fd_ratio_val", "kid_ref_val", "precision_ref_val", "recall_ref_val"}


def test_evaluate_generator_real_images_score_like_reference(pneumonia, trained):
    test = pneumonia["test"]
    perm = torch.randperm(len(test), generator=gen(9))
    fresh, held = test.images[perm[:312]], test.images[perm[312:]]  # the other half plays the real test set
    res = M.evaluate_generator(fresh, pneumonia["train"], held, trained["net"], val=pneumonia["val"], n_boot=40)
    assert KEYS | VAL_KEYS <= res.keys() and res["primary_reference"] == "val"
    assert res["n"] == 312 and res["n_real"] == len(pneumonia["train"])
    assert 0.6 < res["fd"] / res["fd_ref_test"] < 1.6  # both are real test images: same distribution
    assert abs(res["kid"] - res["kid_ref_test"]) < 3 * (res["kid_std"] + res["kid_ref_test_std"])
    assert abs(res["precision"] - res["precision_ref_test"]) < 0.1
    assert abs(res["recall"] - res["recall_ref_test"]) < 0.1
    assert 0.85 < res["memorisation"]["ratio"] < 1.15 and res["memorisation"]["held_out"] == "val"
    # PneumoniaMNIST's test split is shifted from train; validation is not: the honest reference is smaller
    assert res["fd_ref_val"] < res["fd_ref_test"]
    lo, hi = res["fd_ci"]
    assert lo < res["fd"] * 1.5 and lo < hi and res["kid_ci"][0] < res["kid_ci"][1]
    print("\n" + M.evaluation_table(res))


def test_evaluate_generator_compares_all_sets_at_equal_n(pneumonia, trained):
    few = pneumonia["train"].images[:100]
    res = M.evaluate_generator(few, pneumonia["train"], pneumonia["test"], trained["net"], val=pneumonia["val"],
                               n_boot=4, memorisation=False)
    assert res["n"] == 100


def test_evaluate_generator_phantoms_and_noise_score_far_worse(pneumonia, trained):
    phantoms = make_phantom(400, size=28, seed=1)[0] * 2 - 1
    noise = torch.rand(400, 1, 28, 28, generator=gen(10)) * 2 - 1
    net, train, test = trained["net"], pneumonia["train"], pneumonia["test"]
    f_train, f_test = M.extract_features(net, train), M.extract_features(net, test)
    for fake in (phantoms, noise):
        res = M.evaluate_generator(fake, train, test, net, train_features=f_train, test_features=f_test, n_boot=20)
        assert res["primary_reference"] == "test" and "fd_ref_val" not in res
        assert res["fd"] > 10 * res["fd_ref_test"] and res["fd_ci"][0] > 10 * res["fd_ref_test"]
        assert res["kid"] > 10 * res["kid_ref_test"]
        assert res["recall"] < 0.2 < res["recall_ref_test"]
        assert res["precision"] < res["precision_ref_test"] - 0.3
        assert res["memorisation"]["ratio"] > 1.5


def test_evaluate_generator_rejects_wrong_size(pneumonia, trained):
    with pytest.raises(ValueError, match="px"):
        M.evaluate_generator(torch.zeros(8, 1, 32, 32), pneumonia["train"], pneumonia["test"], trained["net"])


# --------------------------------------------------------------------------- ImageNet Inception (local weights only)
@pytest.fixture
def no_inception(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.delenv(MI.INCEPTION_WEIGHTS_ENV, raising=False)

    def no_network(*args, **kwargs):
        raise AssertionError("inception code tried to download")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_network)
    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    return tmp_path


def test_inception_absent_gives_clear_error(no_inception):
    assert M.inception_features_available() is False
    assert M.inception_weights_path() is None
    imgs = torch.zeros(4, 1, 28, 28)
    with pytest.raises(M.InceptionWeightsUnavailable) as err:
        M.inception_fid(imgs, imgs)
    msg = str(err.value)
    for needle in ("inception_v3_google", "TORCH_HOME", MI.INCEPTION_WEIGHTS_ENV, "never downloads",
                   str(no_inception / "torch_home")):
        assert needle in msg
    assert isinstance(err.value, FileNotFoundError)
    with pytest.raises(M.InceptionWeightsUnavailable):
        M.inception_fid(imgs, imgs, weights_path=no_inception / "missing.pth")


def test_inception_found_locally_and_loaded_safely(no_inception, monkeypatch):
    """A torchvision-format state dict in the hub cache is found and loads (weights_only) without a download."""
    from torchvision.models import inception_v3

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        state = inception_v3(weights=None, aux_logits=True, init_weights=False).state_dict()
    path = MI._inception_candidates()[-1]
    path.parent.mkdir(parents=True)
    torch.save(state, path)
    assert M.inception_features_available() and M.inception_weights_path() == path
    model = MI._load_inception(path, torch.device("cpu"))
    assert isinstance(model.fc, torch.nn.Identity) and not model.training
    MI._INCEPTION_CACHE.clear()
    # The environment variable wins over the hub cache.
    monkeypatch.setenv(MI.INCEPTION_WEIGHTS_ENV, str(path))
    assert M.inception_weights_path() == path


def test_inception_fid_preprocessing(no_inception, monkeypatch):
    """Grayscale 28 px is fed as 3×299×299 in [-1, 1]; identical sets give FD 0 (tiny stand-in network)."""
    (no_inception / "w.pth").write_bytes(b"x")
    seen = []

    class StandIn(torch.nn.Module):
        def forward(self, x):
            seen.append((tuple(x.shape[1:]), float(x.min()), float(x.max())))
            return torch.nn.functional.adaptive_avg_pool2d(x, 4).flatten(1)

    monkeypatch.setattr(MI, "_load_inception", lambda path, device: StandIn())
    g = gen(11)
    a = torch.rand(40, 1, 28, 28, generator=g) * 2 - 1
    b = torch.rand(40, 1, 28, 28, generator=g) * 2 - 1
    assert M.inception_fid(a, a, weights_path=no_inception / "w.pth", batch_size=16) == pytest.approx(0, abs=1e-8)
    assert M.inception_fid(a, b + 0.5, weights_path=no_inception / "w.pth") > 0.1
    assert all(shape == (3, 299, 299) and lo >= -1 and hi <= 1 for shape, lo, hi in seen)


def test_caveat_paragraph_for_the_notebook():
    text = M.INCEPTION_FID_CAVEAT
    assert 400 < len(text) < 2500
    for needle in ("ImageNet", "299", "grayscale", "label"):
        assert needle in text


def test_train_feature_net_multilabel_and_multiclass(tmp_path):
    """BCE for multi-label targets (ChestMNIST-style), cross-entropy for several classes; no real data needed."""
    from medgan_utils.data import ImageSet

    imgs, masks, labels = make_phantom(192, size=28, seed=2)
    imgs = imgs * 2 - 1
    area = masks.flatten(1).mean(1)
    multi = torch.stack([labels, (area > area.median()).long(), (imgs.mean((1, 2, 3)) > 0).long()], 1)
    three = labels + (area > area.median()).long()  # 0, 1, 2
    for lab, task, k in [(multi, "multi-label", 3), (three, "multi-class", 3)]:
        ds = ImageSet(images=imgs, labels=lab, name="phantom", used="phantom", split="train", size=28,
                      label_names={i: str(i) for i in range(k)})
        net, info = M.train_feature_net(ds, val=ds, epochs=1, batch_size=64, cache_dir=tmp_path, verbose=False)
        assert info["task"] == task and info["num_classes"] == k and net.head.out_features == k
        assert 0 <= info["val_accuracy"] <= 1 and info["val_auc"] is not None
    assert len(list(tmp_path.glob("phantom_28px_c1_e1_s0_*.pt"))) == 2


def test_memorisation_audit_catches_shifted_and_mirrored_copies(pneumonia):
    train, test = pneumonia["train"], pneumonia["test"]
    copies = train.images[:50]
    shifted = torch.nn.functional.pad(copies, (1, 0, 0, 0), value=-1.0)[..., :, :28]  # 1 px to the right
    mirrored = copies.flip(-1)
    for fake in (shifted, mirrored):
        plain = M.memorisation_audit(fake, train, test, max_shift=0, flips=False)
        searched = M.memorisation_audit(fake, train, test)
        assert searched["gen_nn_median"] < 0.5 * plain["gen_nn_median"]
        assert searched["copy_fraction"] > 0.9 and searched["ratio"] < 0.5
        assert "shifts" in searched["space"] and "[0, 1]" in searched["space"]


def test_kid_and_the_gan_gate_share_one_unbiased_mmd2():
    """One kernel and one unbiased MMD² serve `kid` (random subsets) and the gate's bootstrap (repeated rows)."""
    from medgan_utils.evaluation.distances import kid, polynomial_kernel, unbiased_mmd2
    from medgan_utils.evaluation.gan_gate import kid_unbiased

    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(40, 8, generator=g).double(), (torch.randn(40, 8, generator=g) + 0.5).double()
    # brute force with explicit loops over i != j
    k = lambda x, y: (float(x @ y) / 8 + 1.0) ** 3
    within = lambda s: sum(k(s[i], s[j]) for i in range(len(s)) for j in range(len(s)) if i != j) / (len(s) * (len(s) - 1))
    cross = sum(k(x, y) for x in a for y in b) / (len(a) * len(b))
    brute = within(a) + within(b) - 2 * cross
    assert kid_unbiased(a, b) == pytest.approx(brute, rel=1e-10)
    assert kid(a, b, num_subsets=3, subset_size=40)[0] == pytest.approx(brute, rel=1e-10)  # every subset is the whole set
    # a bootstrap draw repeating row 0: the copies' pairs are left out, as if the rows were distinct samples
    ia = torch.tensor([0, 0, 1, 2])
    ka = polynomial_kernel(a, a)
    drawn = a[ia]
    pairs = [k(drawn[i], drawn[j]) for i in range(4) for j in range(4) if ia[i] != ia[j]]
    got = unbiased_mmd2(ka, polynomial_kernel(b, b), polynomial_kernel(a, b), ia, torch.arange(40))
    assert float(got) == pytest.approx(sum(pairs) / len(pairs) + within(b) - 2 * float(polynomial_kernel(a, b)[ia].mean()),
                                       rel=1e-10)


def test_kid_computes_the_reference_term_once_and_gives_the_same_bits():
    """Many generators against one training set (06 scores 26 enhancers): the training set's within-set kernel
    term is computed once per set of subsets. The values are those of one unbiased_mmd2 per batch of subsets."""
    from medgan_utils.evaluation import distances
    from medgan_utils.evaluation.distances import kid, polynomial_kernel, unbiased_mmd2

    g = torch.Generator().manual_seed(1)
    a = torch.randn(300, 16, generator=g).double()
    fakes = [(torch.randn(200, 16, generator=g) * s).double() for s in (1.0, 1.3)]
    distances._WITHIN_CACHE.clear()
    calls, kernel = [], distances.polynomial_kernel
    distances.polynomial_kernel = lambda x, y, *r: (calls.append(x is y), kernel(x, y, *r))[1]
    try:
        got = [kid(a, b, num_subsets=7, subset_size=50, seed=3) for b in fakes]
    finally:
        distances.polynomial_kernel = kernel
    # one batch of subsets per call: a's term (first call only), then b's term and the cross term of each call
    assert calls == [True, True, False, True, False]
    for b, (mean, std) in zip(fakes, got):  # the reference: the previous loop, one unbiased_mmd2 per subset
        gen = torch.Generator().manual_seed(3)
        ia = torch.stack([torch.randperm(len(a), generator=gen)[:50] for _ in range(7)])
        ib = torch.stack([torch.randperm(len(b), generator=gen)[:50] for _ in range(7)])
        x, y = a[ia], b[ib]
        vals = unbiased_mmd2(polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y))
        assert mean == float(vals.mean()) and std == float(vals.std())
