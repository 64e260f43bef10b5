"""The evidence standard: two-level bootstrap, Wilson, Holm, the primary contrast, selection on validation only,
operating points, calibration, near-copy clusters and the grouped split."""
import numpy as np
import pytest
import torch
from scipy.stats import norm

from medgan_utils.core.errors import SettingError
from medgan_utils.data.sampling import SealedSplit, grouped_split
from medgan_utils.evaluation.evidence import (EvidenceTable, NO_DIFFERENCE, SelectionLog, SelectionOnTestError,
                                              bootstrap_contrast, claim, fast_auc, holm, wilson_interval)
from medgan_utils.evaluation.neighbours import near_copy_clusters
from medgan_utils.evaluation.operating_point import (calibration, disease_class, fix_threshold,
                                                     sensitivity_specificity)


def auc_metric(labels):
    return lambda scores, idx: fast_auc(labels[idx], scores[idx])


def test_fast_auc_equals_sklearn_with_ties():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    s = np.round(rng.normal(y * 0.8, 1.0), 1)  # rounded: many ties
    assert fast_auc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)


def test_bootstrap_interval_of_an_auc_covers_the_true_value():
    """Binormal scores with a known AUC = Φ(d/√2): the 95 % interval covers it in about 95 % of test sets."""
    d, true_auc, hits, trials = 1.0, norm.cdf(1.0 / np.sqrt(2)), 0, 120
    for t in range(trials):
        rng = np.random.default_rng(1000 + t)
        y = np.r_[np.ones(40, int), np.zeros(80, int)]
        s = np.r_[rng.normal(d, 1, 40), rng.normal(0, 1, 80)]
        r = bootstrap_contrast(auc_metric(y), {0: s}, n_items=len(y), strata=y, bounds=(0, 1), n_boot=300, seed=t)
        hits += r["ci"][0] <= true_auc <= r["ci"][1]
    assert 0.88 <= hits / trials <= 0.995, hits / trials


def test_bootstrap_interval_of_a_proportion_covers_and_stays_in_range():
    p, hits, trials = 0.9, 0, 150
    mean = lambda x, idx: float(np.mean(x[idx]))  # noqa: E731
    for t in range(trials):
        x = (np.random.default_rng(t).random(60) < p).astype(float)
        r = bootstrap_contrast(mean, x, n_items=60, bounds=(0, 1), n_boot=300, seed=t)
        assert 0 <= r["ci"][0] <= r["ci"][1] <= 1
        hits += r["ci"][0] <= p <= r["ci"][1]
    assert 0.85 <= hits / trials <= 1.0


def test_the_seed_level_widens_the_interval_and_pairing_removes_shared_noise():
    rng = np.random.default_rng(3)
    y = np.r_[np.ones(50, int), np.zeros(100, int)]
    truth = np.r_[rng.normal(1, 1, 50), rng.normal(0, 1, 100)]
    # five seeds whose models differ a lot: the seed level must show in the interval
    arm = {s: truth + rng.normal(0, 0.8, len(y)) for s in range(5)}
    one = bootstrap_contrast(auc_metric(y), {0: arm[0]}, n_items=len(y), strata=y, bounds=(0, 1), n_boot=400)
    assert one["n_seeds"] == 1 and one["p_value"] is None
    base = {s: arm[s] - 0.3 * (y == 0) for s in arm}  # the same models, worse on negatives: a paired contrast
    diff = bootstrap_contrast(auc_metric(y), arm, base, n_items=len(y), strata=y, bounds=(0, 1), n_boot=400)
    assert diff["estimate"] < 0 and diff["ci"][1] < 0 and diff["p_value"] < 0.01
    same = bootstrap_contrast(auc_metric(y), arm, arm, n_items=len(y), strata=y, bounds=(0, 1), n_boot=200)
    assert same["ci"] == [0.0, 0.0] and claim(same, "identical")[0] == NO_DIFFERENCE
    assert "seeds and test images" in diff["method"]


def test_one_seed_bootstrap_agrees_with_scipy():
    from scipy.stats import bootstrap

    rng = np.random.default_rng(5)
    a, b = rng.normal(0.7, 0.1, 80), rng.normal(0.65, 0.1, 80)
    mean = lambda x, idx: float(np.mean(x[idx]))  # noqa: E731
    ours = bootstrap_contrast(mean, {0: a}, {0: b}, n_items=80, n_boot=4000, seed=1)
    ref = bootstrap((a, b), lambda x, y: np.mean(x) - np.mean(y), paired=True, vectorized=False,
                    method="percentile", n_resamples=4000, random_state=1).confidence_interval
    assert ours["ci"][0] == pytest.approx(ref.low, abs=0.006) and ours["ci"][1] == pytest.approx(ref.high, abs=0.006)


def test_contrast_interval_is_clipped_to_the_range_of_a_difference():
    ones, zeros = np.ones(10), np.zeros(10)
    mean = lambda x, idx: float(np.mean(x[idx]))  # noqa: E731
    r = bootstrap_contrast(mean, ones, zeros, n_items=10, bounds=(0, 1), n_boot=50)
    assert r["ci"] == [1.0, 1.0] and r["estimate"] == 1.0
    with pytest.raises(ValueError, match="No seed is shared"):
        bootstrap_contrast(mean, {1: ones}, {2: zeros}, n_items=10)


def test_wilson_interval_matches_the_formula_and_covers():
    r = wilson_interval(8, 10)
    z = norm.ppf(0.975)
    centre = (0.8 + z**2 / 20) / (1 + z**2 / 10)
    half = z / (1 + z**2 / 10) * np.sqrt(0.8 * 0.2 / 10 + z**2 / 400)
    assert r["ci"] == pytest.approx([centre - half, centre + half], abs=1e-9)
    assert wilson_interval(10, 10)["ci"][1] == pytest.approx(1.0) and wilson_interval(0, 10)["ci"][0] == 0.0
    rng = np.random.default_rng(0)
    k = rng.binomial(40, 0.85, 3000)
    cover = np.mean([lo <= 0.85 <= hi for lo, hi in (wilson_interval(int(x), 40)["ci"] for x in k)])
    assert 0.92 <= cover <= 0.98


def test_holm_adjusts_in_input_order():
    # sorted p: 0.01, 0.02, 0.03, 0.04 with m = 4 -> 0.04, 0.06, 0.06, 0.06 (monotone)
    assert holm([0.03, 0.01, 0.04, 0.02]) == pytest.approx([0.06, 0.04, 0.06, 0.06])
    assert holm([0.5, None, 0.001])[2] == pytest.approx(0.002) and np.isnan(holm([0.5, None, 0.001])[1])
    assert holm([0.9, 0.8]) == [1.0, 1.0]


def test_primary_contrast_is_declared_first_and_exploratory_ones_are_holm_judged():
    ev = EvidenceTable("gan − count_matched, AUC")
    ev.add("gan − real, AUC", {"estimate": 0.02, "ci": [0.001, 0.04], "p_value": 0.04})
    ev.add("classical − real, AUC", {"estimate": 0.03, "ci": [0.01, 0.05], "p_value": 0.001})
    with pytest.raises(SettingError, match="never measured"):
        ev.sentences()
    ev.add("gan − count_matched, AUC", {"estimate": 0.01, "ci": [0.002, 0.02], "p_value": 0.03, "method": "m"})
    out = ev.to_results()
    assert out["primary"]["contrast"] == "gan − count_matched, AUC" and out["primary"]["verdict"] == "improvement"
    by = {r["contrast"]: r for r in out["exploratory"]}
    assert by["gan − real, AUC"]["p_holm"] == pytest.approx(0.04)        # 2nd smallest of 2: ×1
    assert by["classical − real, AUC"]["p_holm"] == pytest.approx(0.002)
    ev2 = EvidenceTable("p")
    ev2.add("p", {"estimate": 0.0, "ci": [0.0, 0.0], "p_value": 1.0})
    for i in range(3):
        ev2.add(f"x{i}", {"estimate": 0.02, "ci": [0.001, 0.04], "p_value": 0.03})
    verdicts = ev2.verdicts()
    assert verdicts["p"]["verdict"] == NO_DIFFERENCE and "zero-width" in verdicts["p"]["sentence"]
    assert all(verdicts[f"x{i}"]["verdict"] == NO_DIFFERENCE for i in range(3))  # 3 × 0.03 > 0.05
    with pytest.raises(SettingError, match="twice"):
        ev2.add("x0", {"estimate": 0, "ci": [0, 0]})


def test_a_selection_after_the_test_split_was_opened_is_caught():
    test = SealedSplit(lambda: "the test split")
    log = SelectionLog(test)
    assert log.choose("lambda_adv", {0.01: 0.61, 0.1: 0.64, 1.0: 0.55}, "max validation Dice") == 0.1
    test.open("the final table")
    test_dice = {0.01: 0.70, 0.1: 0.66}
    with pytest.raises(SelectionOnTestError, match="after the test split was opened"):
        log.choose("lambda_adv", test_dice, "max test Dice")   # the mistake issue 20 found in notebook 05
    with pytest.raises(SelectionOnTestError):
        SelectionLog().record("threshold", 0.5, "by eye", chosen_on="test")
    assert [e["chosen_on"] for e in log.as_list()] == ["validation"] and test.times_opened == 1


def test_threshold_is_fixed_on_validation_and_read_on_test():
    rng = np.random.default_rng(0)
    yv = np.r_[np.zeros(100, int), np.ones(50, int)]
    pv = np.clip(np.r_[rng.normal(0.3, 0.15, 100), rng.normal(0.6, 0.15, 50)], 0, 1)
    op = fix_threshold(yv, pv, positive=1)
    assert op["threshold_from"] == "validation" and 0.3 < op["threshold"] < 0.6
    j = op["val_sensitivity"] + op["val_specificity"]
    for t in np.linspace(0.05, 0.95, 37):   # Youden's J is the best of any threshold on validation
        called = pv >= t
        assert (called[yv == 1].mean() + (~called[yv == 0]).mean()) <= j + 1e-12
    spec = fix_threshold(yv, pv, positive=1, rule="specificity", target_specificity=0.95)
    assert spec["val_specificity"] >= 0.95
    ss = sensitivity_specificity(yv, pv, 1, op["threshold"])
    assert ss["sensitivity"]["estimate"] == pytest.approx(op["val_sensitivity"])
    assert ss["specificity"]["estimate"] == pytest.approx(op["val_specificity"])
    # disease class 0 (BreastMNIST's malignant): sensitivity counts label-0 cases called positive
    ss0 = sensitivity_specificity(1 - yv, 1 - pv, 0, 0.5)
    assert ss0["sensitivity"]["n"] == 50 and ss0["specificity"]["n"] == 100
    with pytest.raises(SettingError, match="one class only"):
        fix_threshold(np.ones(10), np.linspace(0, 1, 10), positive=1)


def test_disease_classes_are_named_clinically():
    assert disease_class("breastmnist", {0: "malignant", 1: "normal, benign"})["name"] == "malignancy"
    pneu = disease_class("pneumoniamnist", {0: "normal", 1: "pneumonia"})
    assert (pneu["index"], pneu["name"]) == (1, "pneumonia")
    own = disease_class("/data/mine", {0: "cyst", 1: "tumour", 2: "healthy"}, labels=[0, 0, 1, 2, 2, 2])
    assert own["index"] == 1 and "POSITIVE_CLASS" in own["how"]
    assert disease_class("/d", {0: "a", 1: "tumour"}, override="Tumour")["index"] == 1
    with pytest.raises(SettingError, match="POSITIVE_CLASS"):
        disease_class("/d", {0: "a", 1: "b"}, override="c")


def test_ece_matches_torchmetrics():
    from torchmetrics.classification import BinaryCalibrationError

    rng = np.random.default_rng(2)
    p = np.r_[rng.random(300), [0.0, 0.1, 0.5, 1.0]]
    y = (rng.random(len(p)) < p ** 1.5).astype(int)
    ours = calibration(y, p, positive=1, n_bins=10)
    ref = BinaryCalibrationError(n_bins=10, norm="l1")(torch.tensor(p, dtype=torch.float64), torch.tensor(y))
    assert ours["ece"] == pytest.approx(float(ref), abs=1e-6)
    assert sum(b["n"] for b in ours["bins"]) == len(p)
    perfect = calibration(np.r_[np.zeros(50), np.ones(50)], np.r_[np.zeros(50), np.ones(50)], positive=1)
    assert perfect["ece"] == pytest.approx(0.0)


def test_near_copy_clusters_join_copies_and_chains_but_not_distinct_images():
    gen = torch.Generator().manual_seed(0)
    distinct = torch.rand(30, 1, 28, 28, generator=gen) * 2 - 1
    copy_noisy = (distinct[3] + 0.02 * torch.randn(1, 28, 28, generator=gen)).clamp(-1, 1)
    brighter = (distinct[7] * 0.8 + 0.1)                       # contrast/brightness change: still a copy
    pool = torch.cat([distinct, copy_noisy[None], brighter[None], distinct[3:4]])
    found = near_copy_clusters(pool)
    c = found["cluster"]
    assert c[30] == c[3] == c[32] and c[31] == c[7]
    assert len(set(c[:30].tolist())) == 30 and found["n_clusters"] == 30


def test_grouped_split_keeps_every_cluster_in_one_split_and_the_class_mix():
    rng = np.random.default_rng(0)
    labels, groups = [], []
    for g in range(400):                          # clusters of 1-4 near copies, 30 % of them malignant
        k, lab = int(rng.integers(1, 5)), int(rng.random() < 0.3)
        labels += [lab] * k
        groups += [g] * k
    labels, groups = torch.tensor(labels), torch.tensor(groups)
    n = len(labels)
    sizes = {"train": int(0.7 * n), "val": int(0.1 * n), "test": n - int(0.7 * n) - int(0.1 * n)}
    out = grouped_split(labels, groups, sizes, seed=1)
    assert sorted(torch.cat(list(out.values())).tolist()) == list(range(n))
    where = {}
    for split, idx in out.items():
        for g in groups[idx].tolist():
            assert where.setdefault(g, split) == split          # no cluster crosses splits
    share = float(labels.float().mean())
    for split, idx in out.items():
        assert abs(len(idx) - sizes[split]) <= 4                # within one cluster's size
        assert abs(float(labels[idx].float().mean()) - share) <= 0.03  # class mix within 3 points
    assert torch.equal(out["test"], grouped_split(labels, groups, sizes, seed=1)["test"])
    with pytest.raises(SettingError, match="add up"):
        grouped_split(labels, groups, {"train": 1, "val": 1, "test": 1})


def test_seed_contrast_is_a_paired_t_clipped_to_the_range():
    from scipy import stats

    from medgan_utils.evaluation.evidence import seed_contrast

    arm, base = {0: 0.9, 1: 0.95, 2: 0.99}, {0: 0.5, 1: 0.6, 2: 0.52}
    r = seed_contrast(arm, base, bounds=(0, 1))
    d = np.array([0.4, 0.35, 0.47])
    half = stats.t.ppf(0.975, 2) * d.std(ddof=1) / np.sqrt(3)
    assert r["estimate"] == pytest.approx(d.mean()) and r["ci"] == pytest.approx([d.mean() - half, d.mean() + half])
    assert r["p_value"] == pytest.approx(stats.ttest_1samp(d, 0).pvalue)
    single = seed_contrast({0: 0.97, 1: 0.2}, bounds=(0, 1))          # a wide t-interval is clipped to [0, 1]
    assert single["ci"][0] == 0.0 and single["ci"][1] == 1.0 and single["p_value"] is None
    one = seed_contrast({0: 0.5}, {0: 0.4})
    assert np.isnan(one["ci"][0]) and claim(one, "x")[0] == NO_DIFFERENCE


def _good_record():
    return {"metrics": {
        "primary": {"contrast": "gan − count_matched | AUC", "estimate": 0.01, "ci": [-0.02, 0.04], "method": "m",
                    "metric": "auc"},
        "selection": [{"name": "lambda_adv", "chosen": 0.1, "chosen_on": "validation", "rule": "max val Dice"}],
        "split": {"grouped": True, "near_copies": {"val_train": 0, "test_train": 0}, "label_conflicts": 1},
        "test_opened": 1,
        "operating_point": {"threshold_from": "validation", "sensitivity": {"estimate": 0.8, "ci": [0.6, 0.9]}},
        "summary": [{"auc": 0.8, "auc_ci": [0.7, 0.9], "sensitivity_ci": [0.5, 1.0]}]}}


@pytest.mark.parametrize("break_it, message", [
    (lambda m: m.pop("primary"), "metrics.primary is missing"),
    (lambda m: m["selection"].append({"name": "lambda_adv", "chosen_on": "test"}), "not chosen on validation"),
    (lambda m: m["split"]["near_copies"].update(test_train=3), "grouped split still has near copies"),
    (lambda m: m["summary"][0].update(sensitivity_ci=[0.199, 1.246]), "outside"),   # issue 20's impossible interval
    (lambda m: m["operating_point"].update(threshold_from="test"), "threshold_from"),
    (lambda m: m["primary"].update(ci=[0.3, -0.2]), "reversed"),
])
def test_evidence_keys_catch_each_shortfall(break_it, message):
    from medgan_utils.course.evidence_keys import evidence_problems

    assert evidence_problems("05_segmentation", _good_record()) == []
    rec = _good_record()
    break_it(rec["metrics"])
    problems = evidence_problems("04_augmentation", rec)
    assert any(message in p for p in problems), problems


def _write_class_folders_with_copies(root, seed=0):
    """Two classes of random 28-px images; every fifth image of each class is written again with a little noise
    and another brightness (a re-encoded near copy), so the seeded 70/10/20 split puts some copies across splits."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for c, name in enumerate(("benign", "tumour")):
        folder = root / name
        folder.mkdir(parents=True)
        for i in range(40 if c == 0 else 25):
            base = rng.integers(0, 256, (28, 28)).astype(float)
            Image.fromarray(base.astype(np.uint8)).save(folder / f"{i:03d}.png")
            if i % 5 == 0:
                copy = np.clip(base * 0.9 + 10 + rng.normal(0, 3, base.shape), 0, 255).astype(np.uint8)
                Image.fromarray(copy).save(folder / f"{i:03d}_copy.png")


def test_a_users_class_folders_go_through_the_grouped_split(tmp_path):
    from medgan_utils.course.splits import leak_free_splits

    root = tmp_path / "own"
    _write_class_folders_with_copies(root)
    as_is = leak_free_splits(root, 28, mode="as_published")
    grouped = leak_free_splits(root, 28, mode="grouped", seed=3)
    assert sum(as_is.report["near_copies"].values()) > 0           # the seeded split left copies across splits
    assert grouped.report["near_copies"] == {"val_train": 0, "test_train": 0, "test_val": 0}
    assert grouped.report["sizes"] == as_is.report["sizes"]        # the split sizes are kept
    sets = {"train": grouped.train, "val": grouped.val, "test": grouped.test.open("the check")}
    rows = {s: {im.numpy().tobytes() for im in d.images} for s, d in sets.items()}
    assert not (rows["train"] & rows["test"]) and sum(len(r) for r in rows.values()) == 65 + 13
    for s, d in sets.items():                                      # both classes in every split
        assert set(d.labels.tolist()) == {0, 1}, s
    published = leak_free_splits(root, 28, mode="published")
    assert published.report["dropped_train"] > 0 and published.report["near_copies"]["test_train"] == 0


def test_lookup_baseline_copies_the_training_twin():
    from medgan_utils.course.splits import lookup_baseline

    gen = torch.Generator().manual_seed(1)
    train = torch.rand(20, 1, 28, 28, generator=gen) * 2 - 1
    query = torch.cat([train[[4, 11]] * 0.8, torch.rand(3, 1, 28, 28, generator=gen) * 2 - 1])
    found = lookup_baseline(query, train)
    assert found["index"][:2].tolist() == [4, 11] and (found["distance"][:2] < 0.01).all()
    assert (found["distance"][2:] > 0.5).all()                    # new images have no twin: the look-up guesses
