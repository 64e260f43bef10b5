"""Notebook 04's guarantees: who trains on what, the count-matched control, the GAN per fraction, the sealed test
split, verdicts that follow the interval, the conditional networks and step tied to the notebook, and a fast run
on a 3-channel, 5-class stand-in dataset."""
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from medgan_utils.core.errors import SettingError
from medgan_utils.course.augmentation import (arm_training_set, cached_conditional_gan, check_arms, draw_synthetic,
                                              synthetic_counts_for)
from medgan_utils.data import (ImageSet, SealedSplit, SealedSplitReopened, classical_augment, drop_leaked_duplicates,
                               image_hashes, stratified_fraction, synthetic_class_counts)
from medgan_utils.evaluation import (conclusions, diagnosis_metrics, minority_class, official_test_metrics,
                                     paired_difference, predict_proba, summarise_runs, task_of, train_classifier,
                                     verdict)
from medgan_utils.evaluation.statistics import NO_DIFFERENCE
from medgan_utils.gan import DCGANTrainer, cgan_step
from medgan_utils.nets import (CompactCNN, ConditionalGenerator, ProjectionDiscriminator, make_classifier,
                               make_conditional_gan)

ROOT = Path(__file__).resolve().parents[1]
NB04 = ROOT / "notebooks" / "04_augmentation.ipynb"


def toy_set(n=60, n_classes=2, channels=1, size=28, seed=0, split="train"):
    g = torch.Generator().manual_seed(seed)
    images = (torch.randint(0, 256, (n, channels, size, size), generator=g).float() / 127.5 - 1)
    labels = torch.arange(n) % n_classes
    return ImageSet(images=images, labels=labels, name="toy", used="toy", split=split, size=size,
                    label_names={c: f"class {c}" for c in range(n_classes)})


def hashes_of(images):
    return set(image_hashes(images))


# ---------------------------------------------------------------- who trains on what
def test_stratified_fraction_keeps_class_shares_and_nests():
    labels = torch.tensor([0] * 30 + [1] * 70)
    small, large = (stratified_fraction(labels, f, seed=3) for f in (0.1, 0.25))
    assert torch.bincount(labels[small]).tolist() == [3, 7]
    assert torch.bincount(labels[large]).tolist() == [8, 18]   # ceil(0.25 * 30), ceil(0.25 * 70)
    assert set(small.tolist()) <= set(large.tolist())           # same seed: 10 % inside 25 %
    assert torch.equal(stratified_fraction(labels, 1.0), torch.arange(100))
    assert not torch.equal(small, stratified_fraction(labels, 0.1, seed=4))


@pytest.mark.parametrize("fraction", [0, -0.1, 1.5, float("nan")])
def test_bad_fraction_is_refused_with_the_fix(fraction):
    with pytest.raises(SettingError, match="fraction"):
        stratified_fraction(torch.tensor([0, 1] * 10), fraction)


def test_too_small_class_names_the_class():
    with pytest.raises(SettingError, match="Class 1 has 3 training images"):
        stratified_fraction(torch.tensor([0] * 50 + [1] * 3), 0.1)


@pytest.mark.parametrize("balanced", [False, True])
def test_synthetic_class_counts_sum_exactly(balanced):
    labels = torch.tensor([0] * 15 + [1] * 40 + [2] * 5)
    for n in (0, 1, 7, 60, 121):
        counts = synthetic_class_counts(labels, n, 3, balanced)
        assert sum(counts) == n and min(counts) >= 0


def test_balanced_synthesis_tops_up_the_rare_classes_first():
    labels = torch.tensor([0] * 15 + [1] * 40)
    assert synthetic_class_counts(labels, 25, 2, balanced=True) == [25, 0]          # all to the minority
    assert synthetic_class_counts(labels, 55, 2, balanced=True) == [40, 15]         # 55 + 55 per class
    assert synthetic_class_counts(labels, 55, 2, balanced=False) == [15, 40]        # proportional


def test_count_matched_control_has_the_synthetic_arms_count_and_class_mix():
    real = toy_set(n=40, n_classes=2)
    counts = synthetic_counts_for(real.labels, 1.5, 2, balanced=True)
    synth = (torch.zeros(sum(counts), 1, 28, 28), torch.cat([torch.full((k,), c) for c, k in enumerate(counts)]))
    gan_x, gan_y, _ = arm_training_set("gan", real, synth, counts, seed=1)
    cm_x, cm_y, aug = arm_training_set("count_matched", real, synth, counts, seed=1)
    assert len(cm_x) == len(gan_x) == len(real) + sum(counts)
    assert torch.bincount(cm_y).tolist() == torch.bincount(gan_y).tolist()
    assert hashes_of(cm_x) <= hashes_of(real.images)    # only real images, resampled: no new information
    assert not aug


def test_no_synthetic_or_held_out_image_reaches_validation_or_test():
    train, val, test = toy_set(seed=0), toy_set(n=20, seed=1, split="val"), toy_set(n=20, seed=2, split="test")
    val_before, test_before = val.images.clone(), test.images.clone()
    idx = stratified_fraction(train.labels, 0.5, seed=0)
    real = train.select(idx)
    counts = synthetic_counts_for(real.labels, 2.0, 2, balanced=False)
    synth_x = torch.rand(sum(counts), 1, 28, 28) * 2 - 1
    synth = (synth_x, torch.cat([torch.full((k,), c) for c, k in enumerate(counts)]))
    held_out = hashes_of(val.images) | hashes_of(test.images) | hashes_of(train.images[
        torch.tensor([i for i in range(len(train)) if i not in set(idx.tolist())])])
    for arm in ("real", "classical", "gan", "gan+classical", "count_matched"):
        x, y, _ = arm_training_set(arm, real, synth, counts, seed=0)
        assert not hashes_of(x) & held_out, f"{arm}: a held-out image entered training"
        assert hashes_of(x) <= hashes_of(real.images) | hashes_of(synth_x)
    assert torch.equal(val.images, val_before) and torch.equal(test.images, test_before)


def test_training_copies_of_validation_and_test_images_are_dropped():
    train, val = toy_set(n=30), toy_set(n=10, seed=5, split="val")
    train.images[4] = val.images[2]
    test = toy_set(n=10, seed=6, split="test")
    train.images[7] = test.images[9]
    clean, dropped = drop_leaked_duplicates(train, val=val, test=image_hashes(test.images))
    assert [(d["train_index"], d["also_in"], d["index_there"]) for d in dropped] == [(4, "val", 2), (7, "test", 9)]
    assert len(clean) == 28 and not hashes_of(clean.images) & (hashes_of(val.images) | hashes_of(test.images))


def test_the_test_split_opens_once():
    loads = []
    sealed = SealedSplit(lambda: loads.append(1) or toy_set(n=8, split="test"))
    assert len(sealed.hashes()) == 8
    assert len(sealed.open("final table")) == 8
    with pytest.raises(SealedSplitReopened, match="final table"):
        sealed.open("a peek")


def test_classical_augment_is_seeded_in_range_and_changes_images():
    x = toy_set(n=16).images
    a = classical_augment(x, torch.Generator().manual_seed(0))
    b = classical_augment(x, torch.Generator().manual_seed(0))
    assert torch.equal(a, b) and a.shape == x.shape and a.min() >= -1 and a.max() <= 1
    assert not torch.allclose(a, x)


@pytest.mark.parametrize("arms, match", [(["real", "mixup"], "Unknown arm"), (["gan"], "must include 'real'")])
def test_bad_arms_are_refused(arms, match):
    with pytest.raises(SettingError, match=match):
        check_arms(arms)


@pytest.mark.parametrize("ratio", [0, -1, float("inf"), "two"])
def test_bad_ratio_is_refused(ratio):
    with pytest.raises(SettingError, match="ratio"):
        synthetic_counts_for(torch.tensor([0, 1] * 5), ratio, 2, balanced=False)


def test_bad_classifier_name_is_refused():
    with pytest.raises(ValueError, match="cnn, resnet18"):
        make_classifier("vgg", 1, 2)


# ---------------------------------------------------------------- the GAN of a fraction
def test_the_gan_of_a_fraction_sees_only_that_fractions_images_and_is_cached(tmp_path, one_thread):
    train = toy_set(n=80, n_classes=2)
    idx = stratified_fraction(train.labels, 0.25, seed=0)

    def pair():
        return make_conditional_gan(2, 28, 1, latent_dim=8, base=4, seed=0)

    kw = dict(dataset="toy", fraction=0.25, seed=0, cache_dir=tmp_path, steps=6, batch_size=8, progress=False,
              precision="fp32")
    tr = cached_conditional_gan(pair, train.select(idx), idx, **kw)
    assert tr.cache_status == "trained" and tr.global_step >= 6
    seen = hashes_of(tr.data.float() / 127.5 - 1)
    assert seen == hashes_of(train.images[idx])
    assert not seen & hashes_of(train.images[[i for i in range(80) if i not in set(idx.tolist())]])
    assert torch.equal(tr.labels.cpu(), train.labels[idx])
    again = cached_conditional_gan(pair, train.select(idx), idx, **kw)
    assert again.cache_status == "loaded" and again.global_step == tr.global_step
    for a, b in zip(tr.G_raw.state_dict().values(), again.G_raw.state_dict().values()):
        assert torch.equal(a, b)
    other = stratified_fraction(train.labels, 0.5, seed=0)
    third = cached_conditional_gan(pair, train.select(other), other, **{**kw, "fraction": 0.5})
    assert third.cache_status == "trained" and third.cache_folder != tr.cache_folder
    with pytest.raises(SettingError, match="exactly the images"):
        cached_conditional_gan(pair, train, idx, **kw)


def test_conditional_sampling_draws_the_classes_asked_for(one_thread):
    train = toy_set(n=32, n_classes=3)
    G, D = make_conditional_gan(3, 28, 1, latent_dim=8, base=4, seed=0)
    tr = DCGANTrainer(G, D, train, batch_size=8, progress=False, precision="fp32")
    images, labels = draw_synthetic(tr, [2, 0, 3], seed=1)
    assert images.shape == (5, 1, 28, 28) and labels.tolist() == [0, 0, 2, 2, 2]
    again, _ = draw_synthetic(tr, [2, 0, 3], seed=1)
    assert torch.equal(images, again)
    with pytest.raises(SettingError, match="one class label per training image"):
        DCGANTrainer(G, D, train.images, batch_size=8, progress=False)
    with pytest.raises(SettingError, match="0..2"):
        DCGANTrainer(G, D, train, labels=torch.full((32,), 5), batch_size=8, progress=False)


# ---------------------------------------------------------------- verdicts follow the interval
def _runs(deltas, base=0.8):
    out = []
    for seed, d in enumerate(deltas):
        for arm, auc in (("real", base + 0.01 * seed), ("gan", base + 0.01 * seed + d)):
            out.append({"dataset": "x", "fraction": 0.1, "arm": arm, "ratio": 0.0 if arm == "real" else 1.0,
                        "seed": seed, "auc": auc, "acc": 0.5})
    return out


def test_the_printed_conclusion_flips_when_the_interval_includes_zero():
    clear = conclusions(summarise_runs(_runs([0.05, 0.06, 0.04, 0.05, 0.055])))
    assert len(clear) == 1 and "improves (raises AUC)" in clear[0] and "5 paired seeds" in clear[0]
    harm = conclusions(summarise_runs(_runs([-0.05, -0.06, -0.04, -0.05, -0.055])))
    assert "worsens (lowers AUC)" in harm[0]
    distance = conclusions(summarise_runs(_runs([-0.05, -0.06, -0.04, -0.05, -0.055])), "auc", "HD95",
                           higher_is_better=False)
    assert "improves (lowers HD95)" in distance[0]
    mixed = conclusions(summarise_runs(_runs([0.05, -0.06, 0.04, -0.05, 0.055])))
    assert NO_DIFFERENCE in mixed[0] and "improves" not in mixed[0]
    single = conclusions(summarise_runs(_runs([0.2])))
    assert NO_DIFFERENCE in single[0] and "one seed" in single[0]


def test_paired_difference_pairs_by_seed():
    d = paired_difference({0: 0.9, 1: 0.8, 2: 0.7}, {0: 0.85, 1: 0.75, 2: 0.65, 3: 0.1})
    assert d["n"] == 3 and math.isclose(d["mean"], 0.05) and math.isclose(d["ci_low"], 0.05)
    assert verdict(d) == "improvement"  # the same +0.05 on every seed: a tight interval above zero
    assert verdict({"ci_low": 0.01, "ci_high": 0.03}) == "improvement"
    assert verdict({"ci_low": -0.03, "ci_high": -0.01}) == "harm"
    assert verdict({"ci_low": -0.01, "ci_high": 0.03}) == NO_DIFFERENCE


# ---------------------------------------------------------------- the classifier and its scores
def test_metrics_match_medmnists_evaluator_on_real_breastmnist():
    from tests.helpers import require_real

    path = require_real("breastmnist", 28)
    labels = np.load(path)["test_labels"].reshape(-1)
    rng = np.random.default_rng(0)
    p1 = np.clip(labels * 0.3 + rng.random(len(labels)) * 0.7, 0, 1)
    scores = np.stack([1 - p1, p1], 1)
    ours = diagnosis_metrics(torch.from_numpy(labels), scores, "binary-class", positive=0)
    official = official_test_metrics("breastmnist", scores, 28, path.parent)
    assert ours["auc"] == official["auc"] and ours["acc"] == official["acc"]
    malignant = labels == 0
    assert ours["sensitivity_at_half"] == pytest.approx(float((p1[malignant] <= 0.5).mean()))


def test_multiclass_sensitivity_at_the_argmax_and_task():
    labels = torch.tensor([0, 0, 0, 1, 1, 2])
    scores = np.eye(3)[[0, 0, 1, 1, 1, 2]] * 0.8 + 0.2 / 3
    m = diagnosis_metrics(labels, scores, "multi-class", positive=minority_class(labels, 3))
    assert minority_class(labels, 3) == 2 and m["sensitivity_at_half"] == 1.0 and m["acc"] == pytest.approx(5 / 6)
    assert diagnosis_metrics(labels, scores, "multi-class", positive=0)["sensitivity_at_half"] == pytest.approx(2 / 3)
    assert task_of(2) == "binary-class" and task_of(5) == "multi-class"
    with pytest.raises(SettingError, match="one class per image"):
        task_of(14, "multi-label, binary-class")


def test_train_classifier_keeps_the_best_validation_weights(one_thread):
    train, val = toy_set(n=64, seed=0), toy_set(n=32, seed=1, split="val")
    train.images[train.labels == 1] *= 0.2        # a learnable contrast cue
    val.images[val.labels == 1] *= 0.2
    net = make_classifier("cnn", 1, 2, seed=0)
    net, info = train_classifier(net, train.images, train.labels, val.images, val.labels, steps=40, task="binary-class",
                                 batch_size=16, seed=0, precision="fp32", eval_every=5)
    again = diagnosis_metrics(val.labels, predict_proba(net, val.images), "binary-class", 0)["auc"]
    assert again == pytest.approx(info["val_auc"]) and info["best_step"] % 5 == 0 and info["val_auc"] > 0.9
    assert isinstance(net, CompactCNN)


# ---------------------------------------------------------------- the notebook's copies
def _notebook_cell(prefix):
    nb = json.loads(NB04.read_text())
    for cell in nb["cells"]:
        src = "".join(cell["source"])
        if cell["cell_type"] == "code" and src.startswith(prefix):
            return src
    raise AssertionError(f"notebook 04 has no cell starting with {prefix!r}")


def _notebook_namespace():
    from torch import nn
    from torch.nn.utils.parametrizations import spectral_norm

    ns = {"torch": torch, "F": F, "nn": nn, "spectral_norm": spectral_norm}
    classes = _notebook_cell("class ConditionalGenerator")
    exec(classes[: classes.index("\ndef make_pair")], ns)
    exec(_notebook_cell("def cgan_train_step("), ns)
    return ns


def test_notebook_04_writes_the_networks_and_the_step_with_backward():
    step = _notebook_cell("def cgan_train_step(")
    assert step.count(".backward()") == 2 and "zero_grad" in step and "F.relu(1 - real_logits)" in step
    classes = _notebook_cell("class ConditionalGenerator")
    assert "class ProjectionDiscriminator" in classes and "spectral_norm(" in classes


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_notebook_04_networks_and_step_are_bit_identical_to_the_package(precision, one_thread):
    ns = _notebook_namespace()
    train = toy_set(n=48, n_classes=3)
    trainers = []
    for classes, step in (((ns["ConditionalGenerator"], ns["ProjectionDiscriminator"]), ns["cgan_train_step"]),
                          ((ConditionalGenerator, ProjectionDiscriminator), cgan_step)):
        G, D = make_conditional_gan(3, 28, 1, latent_dim=16, base=8, seed=0, classes=classes)
        tr = DCGANTrainer(G, D, train, step_fn=step, batch_size=16, precision=precision, progress=False, seed=3)
        tr.run_steps(3)
        trainers.append(tr)
    a, b = trainers
    for net in ("G_raw", "D_raw"):
        sa, sb = getattr(a, net).state_dict(), getattr(b, net).state_dict()
        assert list(sa) == list(sb)
        for k in sa:
            assert torch.equal(sa[k], sb[k]), f"{net}.{k} differs ({precision})"


# ---------------------------------------------------------------- a fast run on a 3-channel, 5-class stand-in
def test_notebook_04_runs_fast_on_an_rgb_five_class_stand_in(tmp_path):
    from medgan_utils.tools.runner import run_notebook
    from tests.test_user_data import write_medmnist_style_npz

    data = write_medmnist_style_npz(tmp_path / "standin.npz", n_classes=5, channels=3, n_per_split=(100, 25, 25))
    row = run_notebook(NB04, tmp_path / "out", {"DATASET": str(data), "CLF_EPOCHS": 3, "GAN_EPOCHS": 3}, fast=True)
    assert row["status"] == "ok", row["error"]
    rec = json.loads(Path(row["results"]).read_text())
    m = rec["metrics"]
    assert m["task"] == "multi-class" and m["image_size"] == 28
    assert {r["arm"] for r in m["runs"]} == {"real", "classical", "gan", "gan+classical", "count_matched"}
    assert all(0 <= r["auc"] <= 1 and 0 <= r["sensitivity"] <= 1 and 0 <= r["specificity"] <= 1 for r in m["runs"])
    from medgan_utils.course.evidence_keys import evidence_problems
    assert evidence_problems("04_augmentation", rec) == []            # an own data set meets the standard too
    assert m["split"]["mode"] == "published" and "POSITIVE_CLASS" in m["disease_class"]["how"]
    cm = next(r for r in m["runs"] if r["arm"] == "count_matched")
    gan = next(r for r in m["runs"] if r["arm"] == "gan")
    assert cm["n_train"] == gan["n_train"] > cm["n_real"]
    assert len({q["class"] for q in m["gan_quality"]}) == 5
    assert (Path(row["results"]).parent / "gans").is_dir()
    assert set(m["gate"]) == {"frac0.25_seed0"} and isinstance(m["gate"]["frac0.25_seed0"]["passed"], bool)
    assert all(r["gate_failed"] == (r["arm"] in ("gan", "gan+classical") and not m["gate"]["frac0.25_seed0"]["passed"])
               for r in m["runs"])
    strength = next(e for e in m["selection"] if e["name"] == "classical_strength")
    assert strength["chosen_on"] == "validation" and strength["chosen"] in strength["candidates"]
    assert m["classical_strength"]["chosen"] == strength["chosen"] and m["classical_strength"]["split"] == "val"
    assert all(r["best_step"] <= r["stopped_step"] <= r["max_steps"] for r in m["runs"])
    assert m["real_or_synthetic"]["learner"]["n"] == 16


def test_notebook_03_runs_fast_on_a_users_npz(tmp_path):
    """Notebook 03 takes the same DATASET paths (load_dataset(path)): a grey, 3-class npz of one's own."""
    from medgan_utils.tools.runner import run_notebook
    from tests.test_user_data import write_medmnist_style_npz

    data = write_medmnist_style_npz(tmp_path / "own.npz", n_classes=3, channels=1, n_per_split=(300, 60, 60))
    row = run_notebook(ROOT / "notebooks" / "03_dcgan.ipynb", tmp_path / "out", {"DATASET": str(data), "EPOCHS": 1},
                       fast=True)
    assert row["status"] == "ok", row["error"]
    rec = json.loads(Path(row["results"]).read_text())
    assert rec["metrics"]["dataset_used"] == str(Path(data).resolve())
    assert any(v.get("source") == "user" for v in rec["datasets"].values())


def test_layer_table_takes_several_inputs_and_counts_spectrally_normalised_layers():
    from medgan_utils.nets import count_parameters, layer_table

    G, D = make_conditional_gan(3, 28, 1, latent_dim=16, base=8, seed=0)
    y = torch.tensor([0, 2])
    for net, inputs in ((G, (torch.randn(2, 16), y)), (D, (torch.randn(2, 1, 28, 28), y))):
        rows = layer_table(net, inputs)
        assert sum(r["params"] for r in rows) == count_parameters(net)
        assert not any("parametrizations" in r["layer"] for r in rows)
    assert [r["type"] for r in layer_table(D, (torch.randn(2, 1, 28, 28), y))][1] == "ParametrizedConv2d"


def test_a_classifier_run_does_not_depend_on_the_global_rng(one_thread):
    """Dropout draws from the global RNG: a run must be a function of its seed, not of what ran before."""
    train, val = toy_set(n=64, seed=0), toy_set(n=32, seed=1, split="val")
    states = []
    for noise in (1, 2):
        torch.manual_seed(noise)
        torch.rand(noise * 7)
        net = make_classifier("cnn", 1, 2, seed=0)
        net, _ = train_classifier(net, train.images, train.labels, val.images, val.labels, steps=12,
                                  task="binary-class", batch_size=16, seed=5, precision="fp32", eval_every=3)
        states.append(net.state_dict())
    for k in states[0]:
        assert torch.equal(states[0][k], states[1][k]), k
    before = torch.random.get_rng_state()
    train_classifier(make_classifier("cnn", 1, 2, seed=0), train.images, train.labels, val.images, val.labels,
                     steps=2, task="binary-class", batch_size=16, seed=5, precision="fp32")
    assert torch.equal(before, torch.random.get_rng_state())
