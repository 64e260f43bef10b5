"""Unit tests of medgan_utils.tour (helpers of notebooks 00 and 01); offline, a few seconds."""
import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from medgan_utils.data import ImageSet, load_dataset
from medgan_utils.course.tour import (
    class_balance,
    duplicates_across_splits,
    find_duplicates,
    gan_diagram,
    intensity_histograms,
    intensity_stats,
    lesion_fraction,
    nearest_neighbours,
    show_with_masks,
    time_matmul,
)

from helpers import require_real


def _set(images, labels, masks=None, names=None):
    return ImageSet(images=images, labels=torch.as_tensor(labels), name="toy", used="toy", split="train",
                    size=images.shape[-1], label_names=names or {0: "a", 1: "b"}, masks=masks)


def test_class_balance_counts_majority_and_ratio():
    bal = class_balance(torch.tensor([1, 1, 1, 0]), {0: "malignant", 1: "benign"})
    assert bal["n"] == 4 and bal["counts"] == {0: 1, 1: 3}
    assert bal["majority_label"] == 1 and bal["majority_name"] == "benign"
    assert bal["majority_rate"] == pytest.approx(0.75)
    assert bal["minority_label"] == 0 and bal["imbalance_ratio"] == pytest.approx(3.0)
    assert sum(bal["fractions"].values()) == pytest.approx(1.0)


def test_class_balance_accepts_imageset_and_empty_class():
    ds = _set(torch.zeros(3, 1, 8, 8), [0, 0, 0])
    bal = class_balance(ds)
    assert bal["counts"] == {0: 3, 1: 0} and math.isinf(bal["imbalance_ratio"])
    with pytest.raises(ValueError):
        class_balance(torch.tensor([], dtype=torch.long))
    with pytest.raises(ValueError):
        class_balance(torch.zeros(3, 2, dtype=torch.long))


def test_intensity_stats_on_display_scale():
    # class 0: all black (-1 → 0); class 1: one mid-grey image (0 → 0.5) and one white image (1 → 1).
    imgs = torch.stack([torch.full((1, 4, 4), -1.0), torch.zeros(1, 4, 4), torch.ones(1, 4, 4)])
    st = intensity_stats(_set(imgs, [0, 1, 1]))
    assert st[0]["n"] == 1 and st[0]["pixel_mean"] == pytest.approx(0.0) and st[0]["image_mean_sd"] == 0.0
    assert st[1]["pixel_mean"] == pytest.approx(0.75)
    assert st[1]["pixel_sd"] == pytest.approx(0.25)
    assert st[1]["image_mean_mean"] == pytest.approx(0.75) and st[1]["image_mean_sd"] == pytest.approx(0.25)
    edges, hist = intensity_histograms(_set(imgs, [0, 1, 1]), bins=4)
    assert len(edges) == 5 and set(hist) == {0, 1}
    for h in hist.values():
        assert np.sum(h * np.diff(edges)) == pytest.approx(1.0)


def test_intensity_stats_reports_empty_class_as_nan():
    st = intensity_stats(_set(torch.zeros(2, 1, 4, 4), [0, 0]))
    assert st[1]["n"] == 0 and math.isnan(st[1]["pixel_mean"])


def test_find_duplicates_exact_after_quantisation():
    g = torch.Generator().manual_seed(0)
    imgs = torch.randint(0, 256, (6, 1, 8, 8), generator=g).float() / 127.5 - 1  # stored uint8 grey levels
    imgs[4] = imgs[1]
    imgs[5] = imgs[1] + 1e-4  # below one grey level: still the same stored image
    assert find_duplicates(imgs) == [[1, 4, 5]]
    assert find_duplicates(imgs[:4]) == []


def test_duplicates_across_splits_reports_split_index_and_label():
    g = torch.Generator().manual_seed(2)
    train = torch.randint(0, 256, (5, 1, 8, 8), generator=g).float() / 127.5 - 1
    test = torch.randint(0, 256, (3, 1, 8, 8), generator=g).float() / 127.5 - 1
    test[2] = train[1]  # a leak with a conflicting label
    splits = {"train": _set(train, [0, 0, 0, 1, 1]), "test": _set(test, [1, 1, 1])}
    groups = duplicates_across_splits(splits)
    assert groups == [[{"split": "train", "index": 1, "label": 0}, {"split": "test", "index": 2, "label": 1}]]


def test_nearest_neighbours_finds_copies_and_excludes_self():
    g = torch.Generator().manual_seed(1)
    ref = torch.rand(10, 1, 8, 8, generator=g) * 2 - 1
    query = ref[[3, 7]].clone()
    dist, idx = nearest_neighbours(query, ref)
    assert idx.tolist() == [3, 7] and torch.allclose(dist, torch.zeros(2), atol=1e-6)
    dist, idx = nearest_neighbours(ref, ref, exclude_self=True)
    assert (idx != torch.arange(10)).all() and (dist > 0).all()
    with pytest.raises(ValueError):
        nearest_neighbours(torch.zeros(2, 1, 4, 4), torch.zeros(2, 1, 8, 8))


def test_lesion_fraction():
    m = torch.zeros(2, 1, 4, 4)
    m[0, 0, :2, :2] = 1
    assert lesion_fraction(m).tolist() == pytest.approx([0.25, 0.0])
    with pytest.raises(ValueError):
        lesion_fraction(None)


def test_time_matmul_cpu_fp32_and_bf16():
    res = time_matmul("cpu", n=64, repeats=2, warmup=1)
    assert res["device"] == "cpu" and res["dtype"] == "float32" and res["gflops"] > 0
    assert res["seconds_per_matmul"] > 0
    res = time_matmul("cpu", n=32, repeats=1, dtype=torch.bfloat16)
    assert res["dtype"] == "bfloat16" and res["gflops"] > 0
    with pytest.raises(ValueError):
        time_matmul("cpu", n=0)


def test_figures_draw_and_close():
    fig = gan_diagram(real_image=np.zeros((8, 8)), fake_image=np.ones((8, 8)))
    texts = " ".join(t.get_text() for t in fig.axes[0].texts)
    assert "Generator" in texts and "Discriminator" in texts and "real image" in texts
    assert len(fig.axes[0].child_axes) == 2
    plt.close(fig)
    masks = torch.zeros(3, 1, 16, 16)
    masks[0, 0, 4:8, 4:8] = 1
    ds = _set(torch.zeros(3, 1, 16, 16), [0, 1, 0], masks=masks)
    fig = show_with_masks(ds, [0, 1, 2], ncols=2)
    assert len(fig.axes) == 4
    plt.close(fig)
    with pytest.raises(ValueError):
        show_with_masks(_set(torch.zeros(1, 1, 8, 8), [0]), [0])


def test_phantom_fallback_sets_work_with_every_helper():
    ds = load_dataset("phantom", "val", 32)
    assert class_balance(ds)["n"] == len(ds)
    assert set(intensity_stats(ds)) == {0, 1}
    assert lesion_fraction(ds.masks).gt(0).all()
    assert find_duplicates(ds.images) == []


def test_busi_known_duplicate_pair_is_found():
    require_real("busi", 128)
    ds = load_dataset("busi", "train", 128, download=False)
    groups = find_duplicates(ds.images)
    assert len(groups) == 1 and len(groups[0]) == 2
    # The two copies carry different class labels (benign (433) = malignant (145)).
    assert sorted(ds.labels[groups[0]].tolist()) == [0, 1]


def test_breastmnist_label_zero_is_the_minority_and_malignant():
    require_real("breastmnist", 28)
    ds = load_dataset("breastmnist", "test", 28, download=False)
    bal = class_balance(ds)
    assert ds.label_names[0] == "malignant"
    assert bal["minority_label"] == 0 and bal["counts"] == {0: 42, 1: 114}
    assert bal["majority_rate"] == pytest.approx(114 / 156)


def test_breastmnist_has_one_train_test_duplicate_with_conflicting_labels():
    require_real("breastmnist", 28)
    from medgan_utils.data import load_splits

    groups = duplicates_across_splits(load_splits("breastmnist", 28, download=False))
    assert len(groups) == 1
    assert {m["split"] for m in groups[0]} == {"train", "test"}
    assert {m["label"] for m in groups[0]} == {0, 1}
