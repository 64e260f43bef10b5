"""Notebook 05's building blocks: U-Net and PatchGAN, segmentation metrics, mask deformation, near duplicates,
and a user's own segmentation data (MedSegBench-style .npz and images/ + masks/ folders).

Fixtures are written into ``tmp_path``; only the last test reads the real ``busi_128.npz`` (skipped without it).
Networks are tiny and run single-threaded.
"""
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from scipy import ndimage
from scipy.spatial.distance import cdist

from medgan_utils.data import (GreyMaskWarning, UserDataError, dataset_info, deform_masks, is_segmentation_data,
                               lesion_stats, load_dataset, load_splits, user_masks)
from medgan_utils.evaluation import binarise, dice, hd95, iou, near_duplicate_pairs, segmentation_metrics
from medgan_utils.nets import PatchDiscriminator, UNet, make_patch_discriminator, make_segmentation_nets, make_unet
from helpers import notebook_cell

SPLITS = ("train", "val", "test")


def _ellipse(rng, size: int) -> np.ndarray:
    """A random filled ellipse (bool size×size), 8-25 % of the side in radius, centred in the middle half."""
    yy, xx = np.mgrid[:size, :size]
    cy, cx = rng.uniform(0.3, 0.7, 2) * size
    a, b = rng.uniform(0.08, 0.25, 2) * size
    th = rng.uniform(0, np.pi)
    u, v = (xx - cx) * np.cos(th) + (yy - cy) * np.sin(th), -(xx - cx) * np.sin(th) + (yy - cy) * np.cos(th)
    return (u / a) ** 2 + (v / b) ** 2 <= 1


def _smooth_background(rng, size: int) -> np.ndarray:
    """Smooth random texture in about 40..110 (float), like a dim ultrasound background."""
    field = ndimage.gaussian_filter(rng.normal(size=(size, size)), sigma=size / 16, mode="reflect")
    field = (field - field.mean()) / (field.std() + 1e-9)
    return 75 + 15 * field


def write_medsegbench_style_npz(path, size=64, n_per_split=(40, 10, 10), empty_fraction=0.2, seed=0):
    """Write an .npz in MedSegBench's layout and return its path.

    Keys ``{split}_images`` (uint8 N×size×size: a smooth random background plus a brighter ellipse where the
    mask is 1, so a U-Net can learn something), ``{split}_label`` (uint8 N×size×size masks in {0, 1}; about
    ``empty_fraction`` of them empty, the "normal" cases) and ``{split}_ids`` (``"normal (i)"`` for empty masks,
    else alternately ``"benign (i)"`` and ``"malignant (i)"``). ``np.savez`` adds ``.npz`` to a path without it.
    """
    path = Path(path)
    path = path if path.suffix == ".npz" else path.with_name(path.name + ".npz")
    rng = np.random.default_rng(seed)
    arrays, case = {}, 0
    for split, n in zip(SPLITS, n_per_split):
        images, masks, ids = [], [], []
        for i in range(n):
            empty = rng.random() < empty_fraction
            mask = np.zeros((size, size), bool) if empty else _ellipse(rng, size)
            images.append(np.clip(_smooth_background(rng, size) + 80 * mask, 0, 255).round().astype(np.uint8))
            masks.append(mask.astype(np.uint8))
            ids.append(f"normal ({case})" if empty else f"{('benign', 'malignant')[case % 2]} ({case})")
            case += 1
        arrays[f"{split}_images"] = np.stack(images)
        arrays[f"{split}_label"] = np.stack(masks)
        arrays[f"{split}_ids"] = np.array(ids)
    np.savez_compressed(path, **arrays)
    return path


@pytest.fixture(autouse=True)
def _fresh_mask_cache(monkeypatch):
    """No decoded arrays carried between tests; nothing may be downloaded."""
    monkeypatch.setenv("MEDGAN_OFFLINE", "1")
    user_masks._DECODED.clear()
    yield
    user_masks._DECODED.clear()


def _same_weights(a, b) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


# ----------------------------------------------------------------------------------------------------- networks
@pytest.mark.parametrize("size", [64, 128])
def test_unet_keeps_the_size_and_returns_logits_or_tanh(size, one_thread):
    x = torch.randn(2, 1, size, size)
    net = make_unet(base=4, seed=0).eval()
    logits = net(x)
    assert logits.shape == (2, 1, size, size)
    generator = UNet(base=4, out_activation="tanh").eval()
    generator.load_state_dict(net.state_dict())     # same weights: the only difference is the output activation
    image = generator(x)
    assert image.shape == (2, 1, size, size) and image.abs().max() <= 1
    assert torch.allclose(image, torch.tanh(logits)) and not torch.allclose(image, logits)
    wide = UNet(in_channels=3, out_channels=2, base=4, depth=4)
    assert wide(torch.randn(1, 3, size, size)).shape == (1, 2, size, size)


def test_unet_refuses_sizes_not_divisible_and_bad_options():
    with pytest.raises(ValueError, match="divisible by 8"):
        UNet(base=4)(torch.randn(1, 1, 60, 60))
    with pytest.raises(ValueError, match="out_activation"):
        UNet(out_activation="relu")


@pytest.mark.parametrize("norm", ["batch", "spectral", "none"])
@pytest.mark.parametrize("size, side", [(64, 6), (128, 14)])
def test_patch_discriminator_scores_image_mask_pairs_patch_by_patch(norm, size, side, one_thread):
    D = PatchDiscriminator(in_channels=2, base=8, norm=norm)
    out = D(torch.randn(3, 1, size, size), torch.rand(3, 1, size, size))
    assert out.shape == (3, 1, side, side)
    assert D(torch.randn(3, 2, size, size)).shape == (3, 1, side, side)   # a pair already concatenated
    with pytest.raises(ValueError, match="in_channels"):
        D(torch.randn(1, 3, size, size), torch.rand(1, 1, size, size))
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in D.modules()) or norm == "batch"


def test_seeded_builders_repeat_and_leave_the_global_rng_alone(one_thread):
    state = torch.get_rng_state()
    assert _same_weights(make_unet(base=4, seed=3), make_unet(base=4, seed=3))
    assert not _same_weights(make_unet(base=4, seed=3), make_unet(base=4, seed=4))
    d1, d2 = (make_patch_discriminator(base=8, norm="spectral", seed=5) for _ in range(2))
    assert _same_weights(d1, d2)
    G, D = make_segmentation_nets(base=4, d_base=8, seed=3)
    assert _same_weights(G, make_unet(base=4, seed=3)) and D.in_channels == 2
    assert torch.equal(state, torch.get_rng_state())

    class NotebookUNet(UNet):  # a notebook's own class goes through the same seeding and initialisation
        pass

    mine = make_unet(base=4, seed=3, cls=NotebookUNet)
    assert type(mine) is NotebookUNet and _same_weights(mine, make_unet(base=4, seed=3))
    G2, D2 = make_segmentation_nets(base=4, d_base=8, seed=3, classes=(NotebookUNet, None))
    assert type(G2) is NotebookUNet and type(D2) is PatchDiscriminator and _same_weights(D2, D)


def test_a_tiny_unet_learns_the_bright_ellipses(tmp_path, one_thread):
    path = write_medsegbench_style_npz(tmp_path / "toy", size=32, n_per_split=(32, 4, 4), seed=1)
    train = load_dataset(path, "train", size=32)
    net = make_unet(base=8, depth=2, seed=0)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    losses = []
    for _ in range(40):
        loss = F.binary_cross_entropy_with_logits(net(train.images), train.masks)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    net.eval()
    with torch.no_grad():
        scores = segmentation_metrics(binarise(net(train.images)), train.masks)
    assert losses[-1] < 0.5 * losses[0] and scores["dice"].mean() > 0.6


# ------------------------------------------------------------------------------------------------------ metrics
def _square(size=64, top=20, left=10, side=20) -> np.ndarray:
    m = np.zeros((size, size), np.uint8)
    m[top:top + side, left:left + side] = 1
    return m


def test_metric_conventions_for_empty_and_full_masks():
    empty, full = np.zeros((30, 40)), np.ones((30, 40))
    assert (dice(empty, empty), iou(empty, empty), hd95(empty, empty)) == (1.0, 1.0, 0.0)
    assert (dice(full, full), iou(full, full), hd95(full, full)) == (1.0, 1.0, 0.0)
    for a, b in [(empty, full), (full, empty)]:
        assert (dice(a, b), iou(a, b)) == (0.0, 0.0) and hd95(a, b) == 50.0  # the 30×40 image's diagonal


def test_metrics_of_known_masks():
    truth = np.zeros((16, 16), np.uint8)
    truth[:, :8] = 1                               # left half: 128 px
    pred = np.zeros((16, 16), np.uint8)
    pred[:, :12] = 1                               # left 3/4: 192 px, overlap 128
    assert dice(pred, truth) == pytest.approx(2 * 128 / (128 + 192))   # 0.8
    assert iou(pred, truth) == pytest.approx(128 / 192)                 # 2/3
    # The surfaces' right edges lie 4 px apart, no surface pixel is farther than 4 from the other surface, and
    # well over 5 % of all surface distances equal 4 (the 16 px of each right edge): the 95th percentile is 4.
    assert hd95(pred, truth) == 4.0
    square = _square()
    assert (dice(square, square), iou(square, square), hd95(square, square)) == (1.0, 1.0, 0.0)
    for k in (1, 3, 5):
        shifted = np.roll(square, k, axis=1)       # a 20-px square moved k px to the right
        # Each vertical edge moved by k: those edge pixels are exactly k from the other surface, nothing is
        # farther, and they are more than 5 % of the distances, so HD95 = HD = k.
        assert hd95(shifted, square) == float(k) and hd95(square, shifted) == float(k)
        assert dice(shifted, square) == pytest.approx(2 * 20 * (20 - k) / 800)
        assert iou(shifted, square) == pytest.approx(20 * (20 - k) / (20 * (20 + k)))


def test_hd95_matches_a_brute_force_reference_on_random_blobs():
    rng = np.random.default_rng(0)
    for _ in range(5):
        a = ndimage.gaussian_filter(rng.normal(size=(40, 40)), 3) > 0.05
        b = ndimage.gaussian_filter(rng.normal(size=(40, 40)), 3) > 0.05
        sa = np.argwhere(a & ~ndimage.binary_erosion(a, border_value=0))
        sb = np.argwhere(b & ~ndimage.binary_erosion(b, border_value=0))
        d = cdist(sa, sb)
        expected = np.percentile(np.concatenate([d.min(1), d.min(0)]), 95)
        assert hd95(a, b) == pytest.approx(expected)


def test_batch_metrics_mix_cases_and_count_one_empty_images():
    square, empty = _square(32, 8, 8, 12), np.zeros((32, 32), np.uint8)
    pred = np.stack([empty, empty, square, np.roll(square, 2, axis=1), square])[:, None]
    true = np.stack([empty, square, square, square, empty])[:, None]
    out = segmentation_metrics(torch.from_numpy(pred).float(), torch.from_numpy(true))
    diag = math.hypot(32, 32)
    np.testing.assert_allclose(out["dice"], [1, 0, 1, 2 * 12 * 10 / 288, 0])
    np.testing.assert_allclose(out["iou"], [1, 0, 1, 120 / 168, 0])
    np.testing.assert_allclose(out["hd95"], [0, diag, 0, 2, diag])
    assert out["hd95_one_empty"] == 2
    assert np.array_equal(segmentation_metrics(pred, true)["hd95"], out["hd95"])   # numpy in, same numbers


def test_metrics_refuse_logits_and_binarise_thresholds():
    logits = torch.tensor([[-2.0, 0.1], [3.0, -0.1]])
    with pytest.raises(ValueError, match="binarise"):
        dice(logits, torch.zeros(2, 2))
    assert torch.equal(binarise(logits), torch.tensor([[0.0, 1.0], [1.0, 0.0]]))
    assert np.array_equal(binarise(np.array([0.2, 0.7]), from_logits=False), [0.0, 1.0])
    with pytest.raises(ValueError, match="same shape"):
        dice(np.zeros((4, 4)), np.zeros((4, 5)))


# -------------------------------------------------------------------------------------------------------- masks
def _ellipse_batch(n=24, size=64, empty=(3,)) -> torch.Tensor:
    rng = np.random.default_rng(2)
    masks = np.stack([np.zeros((size, size), bool) if i in empty else _ellipse(rng, size) for i in range(n)])
    return torch.from_numpy(masks).float().unsqueeze(1)


@pytest.mark.parametrize("kind", ["elastic", "affine", "both"])
def test_deformed_masks_are_new_binary_seeded_and_keep_empty_masks_empty(kind):
    masks = _ellipse_batch()
    out = deform_masks(masks, torch.Generator().manual_seed(0), kind=kind)
    assert out.shape == masks.shape and out.dtype == torch.float32
    assert set(out.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(out, deform_masks(masks, torch.Generator().manual_seed(0), kind=kind))
    assert not torch.equal(out, deform_masks(masks, torch.Generator().manual_seed(1), kind=kind))
    assert (out != masks).any() and out[3].sum() == 0
    before, after = lesion_stats(masks)["area_fraction"], lesion_stats(out)["area_fraction"]
    keep = before > 0
    assert (np.abs(after[keep] - before[keep]) / before[keep]).mean() < 0.5
    assert (after[keep] > 0).all()                                      # no lesion vanished
    assert deform_masks(masks[:, 0], torch.Generator().manual_seed(0), kind=kind).shape == masks[:, 0].shape


def test_deform_masks_refuses_bad_arguments():
    with pytest.raises(ValueError, match="kind"):
        deform_masks(torch.zeros(1, 1, 8, 8), torch.Generator(), kind="warp")
    with pytest.raises(TypeError, match="Generator"):
        deform_masks(torch.zeros(1, 1, 8, 8), 0)


def test_lesion_stats_of_known_masks():
    masks = torch.zeros(3, 1, 20, 10)
    masks[0, 0, 2:7, 1:4] = 1                      # a 5×3 box
    masks[1, 0, 0, 0] = masks[1, 0, 19, 9] = 1     # two pixels at opposite corners: the box spans the image
    stats = lesion_stats(masks)
    np.testing.assert_allclose(stats["area_fraction"], [15 / 200, 2 / 200, 0])
    assert stats["bbox_height"].tolist() == [5, 20, 0] and stats["bbox_width"].tolist() == [3, 10, 0]
    assert stats["empty"].tolist() == [False, False, True]


# -------------------------------------------------------------------------------------------- near duplicates
def _smooth_images(n, size=64, seed=0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    imgs = np.stack([ndimage.gaussian_filter(rng.normal(size=(size, size)), 3, mode="wrap") for _ in range(n)])
    imgs = imgs / np.abs(imgs).max(axis=(1, 2), keepdims=True)
    return torch.from_numpy(imgs).float().unsqueeze(1)


def test_near_duplicates_find_copies_noisy_copies_and_shifted_copies_only():
    reference = _smooth_images(30, seed=0)
    unrelated = _smooth_images(10, seed=1)
    noise = 0.05 * torch.randn(1, 1, 64, 64, generator=torch.Generator().manual_seed(0))
    query = torch.cat([unrelated[:5], reference[4:5], (reference[7:8] + noise).clamp(-1, 1),
                       torch.roll(reference[11:12], 1, dims=-1), unrelated[5:]])
    pairs, threshold = near_duplicate_pairs(query, reference)
    assert 0 < threshold <= 0.25
    assert [(p["query_index"], p["reference_index"]) for p in sorted(pairs, key=lambda p: p["query_index"])] == \
        [(5, 4), (6, 7), (7, 11)]
    assert pairs[0]["distance"] == 0.0 and all(p["distance"] < threshold for p in pairs)
    within, _ = near_duplicate_pairs(torch.cat([reference, reference[2:3]]),
                                     torch.cat([reference, reference[2:3]]), exclude_self=True)
    assert {(p["query_index"], p["reference_index"]) for p in within} == {(2, 30), (30, 2)}
    assert near_duplicate_pairs(unrelated, reference)[0] == []
    with pytest.raises(ValueError, match="channel"):
        near_duplicate_pairs(query, reference.repeat(1, 3, 1, 1))


# ---------------------------------------------------------------------------------- own data: MedSegBench npz
def test_medsegbench_style_npz_loads_like_busi_with_empty_masks_and_labels(tmp_path):
    path = write_medsegbench_style_npz(tmp_path / "seg", size=64)
    assert is_segmentation_data(path) and is_segmentation_data(str(path))
    raw = np.load(path)
    sets = load_splits(path, 64)
    assert {s: len(d) for s, d in sets.items()} == {"train": 40, "val": 10, "test": 10}
    for split, ds in sets.items():
        assert ds.images.shape[1:] == (1, 64, 64) and -1 <= ds.images.min() and ds.images.max() <= 1
        assert ds.masks.shape == (len(ds), 1, 64, 64) and ds.masks.dtype == torch.float32
        assert torch.equal(ds.masks[:, 0], torch.from_numpy(raw[f"{split}_label"]).float())
        empty = int((raw[f"{split}_label"].reshape(len(ds), -1).max(1) == 0).sum())
        assert ds.info["empty_masks"] == empty and ds.info["source"] == "user" and ds.info["task"] == "segmentation"
        expected = [0 if "benign" in i else 1 if "malignant" in i else 2 for i in raw[f"{split}_ids"]]
        assert ds.labels.tolist() == expected and ds.info["labels_from"] == "ids"
        assert ds.label_names == {0: "benign", 1: "malignant", 2: "normal"}
        assert ((ds.labels == 2) == (ds.masks.flatten(1).sum(1) == 0)).all()
    assert sum(d.info["empty_masks"] for d in sets.values()) > 0
    info = dataset_info(path, 64)
    assert info["task"] == "segmentation" and info["splits"] == {"train": 40, "val": 10, "test": 10}
    assert info["empty_masks"]["train"] == sets["train"].info["empty_masks"] and info["layout"] == "npz-medsegbench"


def test_npz_masks_of_0_255_are_binarised_and_resized_by_nearest_neighbour(tmp_path):
    path = write_medsegbench_style_npz(tmp_path / "seg", size=64, n_per_split=(6, 3, 3))
    arrays = dict(np.load(path))
    for split in SPLITS:
        arrays[f"{split}_label"] = arrays[f"{split}_label"] * 255
        del arrays[f"{split}_ids"]
    np.savez(tmp_path / "seg255.npz", **arrays)
    ds = load_dataset(tmp_path / "seg255.npz", "train", size=32)
    assert ds.masks.shape == (6, 1, 32, 32) and set(ds.masks.unique().tolist()) <= {0.0, 1.0}
    nearest = torch.from_numpy(arrays["train_label"][:, 1::2, 1::2] > 0).float()   # PIL NEAREST, 64 → 32 px
    assert torch.equal(ds.masks[:, 0], nearest)
    assert ds.labels.tolist() == [0] * 6 and ds.label_names == {0: "unlabelled"}
    assert ds.info["resized_from"] == ["64x64"] and ds.info["labels_from"] is None


def test_a_medmnist_style_npz_still_goes_to_the_classification_loader(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {f"{s}_{k}": (rng.integers(0, 256, (8, 28, 28), dtype=np.uint8) if k == "images"
                           else (np.arange(8) % 2).reshape(8, 1)) for s in SPLITS for k in ("images", "labels")}
    np.savez(tmp_path / "cls.npz", **arrays)
    assert not is_segmentation_data(tmp_path / "cls.npz")
    ds = load_dataset(tmp_path / "cls.npz", "train", 28)
    assert ds.masks is None and ds.info["task"] == "binary-class"
    assert not is_segmentation_data("pneumoniamnist") and not is_segmentation_data(tmp_path / "missing.npz")


def _rewrite(path, tmp_path, **changes):
    arrays = dict(np.load(path))
    arrays.update(changes)
    for key in [k for k, v in changes.items() if v is None]:
        del arrays[key]
    out = tmp_path / "changed.npz"
    np.savez(out, **arrays)
    return out


def test_npz_errors_name_the_key_and_the_fix(tmp_path):
    path = write_medsegbench_style_npz(tmp_path / "seg", size=32, n_per_split=(6, 3, 3))
    arrays = dict(np.load(path))
    with pytest.raises(UserDataError, match=r"lacks the key\(s\) val_label.*Fix:"):
        load_dataset(_rewrite(path, tmp_path, val_label=None), size=32)
    with pytest.raises(UserDataError, match=r"test_label has shape \(3, 32, 16\) but test_images has \(3, 32, 32\)"):
        load_dataset(_rewrite(path, tmp_path, test_label=arrays["test_label"][:, :, :16]), size=32)
    label_map = arrays["train_label"] * np.arange(6).reshape(6, 1, 1) % 3       # values 0, 1, 2
    with pytest.raises(UserDataError, match=r"train_label holds 3 distinct values \(0, 1, 2\).*label map.*Fix:"):
        load_dataset(_rewrite(path, tmp_path, train_label=label_map.astype(np.uint8)), size=32)
    with pytest.raises(UserDataError, match=r"val split .* would hold no images"):
        load_dataset(_rewrite(path, tmp_path, val_images=arrays["val_images"][:0], val_label=arrays["val_label"][:0],
                              val_ids=arrays["val_ids"][:0]), size=32)
    with pytest.raises(UserDataError, match=r"train_ids has shape \(2,\).*Fix:"):
        load_dataset(_rewrite(path, tmp_path, train_ids=arrays["train_ids"][:2]), size=32)


def test_grey_level_npz_masks_are_thresholded_at_half_their_maximum_with_a_warning(tmp_path):
    path = write_medsegbench_style_npz(tmp_path / "seg", size=32, n_per_split=(6, 3, 3))
    arrays = dict(np.load(path))
    noisy = (arrays["train_label"] * 230 + np.random.default_rng(0).integers(0, 20, (6, 32, 32))).astype(np.uint8)
    with pytest.warns(GreyMaskWarning, match="train_label"):
        ds = load_dataset(_rewrite(path, tmp_path, train_label=noisy), size=32)
    assert torch.equal(ds.masks[:, 0], torch.from_numpy(arrays["train_label"]).float())
    assert ds.info["grey_masks"] == 1


# ----------------------------------------------------------------------------- own data: images/ and masks/
def _write_pairs(folder, n, *, size=40, start=0, mask_name="{}.png", names=None, seed=0):
    """n gray PNG images in folder/images and their {0, 255} masks in folder/masks; every 5th mask empty."""
    rng = np.random.default_rng(seed)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "masks").mkdir(parents=True, exist_ok=True)
    written = {}
    for i in range(start, start + n):
        name = names[i - start] if names else f"case{i:03d}"
        mask = np.zeros((size, size), bool) if i % 5 == 0 else _ellipse(rng, size)
        image = np.clip(_smooth_background(rng, size) + 80 * mask, 0, 255).astype(np.uint8)
        Image.fromarray(image).save(folder / "images" / f"{name}.png")
        Image.fromarray(mask.astype(np.uint8) * 255).save(folder / "masks" / mask_name.format(name))
        written[name] = mask
    return written


def test_folder_of_images_and_masks_is_split_70_10_20_by_a_seed(tmp_path):
    root = tmp_path / "scans"
    _write_pairs(root, 20, mask_name="{}_mask.png")
    _write_pairs(root, 10, start=20, seed=1)                                      # masks named like the images
    assert is_segmentation_data(root)
    sets = load_splits(root, 32)
    again = load_splits(str(root), 32)
    assert {s: len(d) for s, d in sets.items()} == {"train": 21, "val": 3, "test": 6}
    for split, ds in sets.items():
        assert torch.equal(ds.images, again[split].images) and torch.equal(ds.masks, again[split].masks)
        assert ds.info["layout"] == "folder-masks" and ds.info["split_seed"] == 0
        assert ds.info["resized_from"] == ["40x40"] and ds.label_names == {0: "unlabelled"}
        assert set(ds.masks.unique().tolist()) <= {0.0, 1.0}
    all_images = torch.cat([d.images for d in sets.values()])
    assert len({im.numpy().tobytes() for im in all_images}) == 30                  # disjoint splits
    assert sum(d.info["empty_masks"] for d in sets.values()) == 6                  # cases 0, 5, ..., 25
    assert all(d.info["empty_masks"] >= 1 for d in sets.values())                  # stratified by empty / not


def test_folder_with_split_folders_and_class_names_in_file_names(tmp_path):
    root = tmp_path / "busi_like"
    for split, n in zip(SPLITS, (6, 3, 3)):
        names = [f"{('benign', 'malignant', 'normal')[i % 3]} ({split}{i})" for i in range(n)]
        _write_pairs(root / split, n, size=32, names=names, mask_name="{}_mask.png")
    second = np.zeros((32, 32), np.uint8)
    second[:4, :4] = 255                                   # a second mask of an image (BUSI's _mask_1): joined
    Image.fromarray(second).save(root / "train" / "masks" / "benign (train3)_mask_1.png")
    sets = load_splits(root, 32)
    assert sets["train"].masks[1, 0, :4, :4].all() and sets["train"].masks[1].sum() > 16   # 2nd in name order
    assert {s: len(d) for s, d in sets.items()} == {"train": 6, "val": 3, "test": 3}
    assert sets["train"].labels.tolist() == [0, 0, 1, 1, 2, 2]                      # files in name order
    assert sets["train"].label_names == {0: "benign", 1: "malignant", 2: "normal"}
    assert sets["val"].info["layout"] == "folder-masks-with-splits" and sets["val"].info["labels_from"] == "file names"
    assert "split_seed" not in sets["val"].info and dataset_info(root, 32)["splits"]["test"] == 3


def test_folder_errors_name_the_files_and_the_fix(tmp_path):
    root = tmp_path / "scans"
    _write_pairs(root, 8)
    Image.fromarray(np.zeros((40, 40), np.uint8)).save(root / "images" / "lonely.png")
    with pytest.raises(UserDataError, match=r"Image .*lonely\.png has no mask in .*masks.*Fix:"):
        load_dataset(root, size=32)
    (root / "images" / "lonely.png").unlink()
    Image.fromarray(np.zeros((40, 40), np.uint8)).save(root / "masks" / "orphan_mask.png")
    with pytest.raises(UserDataError, match=r"Mask .*orphan_mask\.png has no image: expected .*images/orphan"):
        load_dataset(root, size=32)
    (root / "masks" / "orphan_mask.png").unlink()
    Image.fromarray(np.zeros((30, 40), np.uint8)).save(root / "masks" / "case003.png")
    with pytest.raises(UserDataError, match=r"case003\.png is 40×30 px but its image .*case003\.png is 40×40 px"):
        load_dataset(root, size=32)
    (root / "masks" / "case003.png").write_bytes(b"not a png")
    with pytest.raises(UserDataError, match=r"Mask file .*case003\.png cannot be read.*Fix:"):
        load_dataset(root, size=32)


def test_folder_split_errors_and_jpeg_masks(tmp_path):
    root = tmp_path / "split"
    for split in SPLITS:
        _write_pairs(root / split, 3, size=32)
    for f in (root / "val" / "images").iterdir():
        f.unlink()
    with pytest.raises(UserDataError, match=r"val/images holds no images.*Fix:"):
        load_dataset(root, size=32)
    (root / "val").rename(tmp_path / "gone")
    with pytest.raises(UserDataError, match=r"but no val/.*Fix:"):
        load_dataset(root, size=32)
    jpeg = tmp_path / "jpeg"
    masks = _write_pairs(jpeg, 10, size=32, mask_name="{}.jpg")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = load_dataset(jpeg, "train", size=32)
    assert set(ds.masks.unique().tolist()) <= {0.0, 1.0}
    truth = sum(int(m.sum()) for m in masks.values())
    total = sum(int(d.masks.sum()) for d in load_splits(jpeg, 32).values())
    assert abs(total - truth) <= 0.05 * truth                                    # JPEG edges move a few pixels
    assert ds.info["grey_masks"] > 0 and any(issubclass(w.category, GreyMaskWarning) for w in caught)


def test_the_real_busi_file_read_as_own_data_matches_the_busi_loader():
    from tests.helpers import require_real

    path = require_real("busi", 128)
    own = load_dataset(path, "val", 128)
    busi = load_dataset("busi", "val", 128)
    assert torch.equal(own.images, busi.images) and torch.equal(own.masks, busi.masks)
    assert torch.equal(own.labels, busi.labels) and own.label_names == busi.label_names
    assert own.info["empty_masks"] == 0 and own.info["task"] == "segmentation"


# ---------------------------------------------------------------- notebook 05's steps and networks, tied to the package
import json as _json
from pathlib import Path as _Path

NB05 = _Path(__file__).resolve().parents[1] / "notebooks" / "05_segmentation.ipynb"


def _nb05_cell(prefix):
    return notebook_cell("05_segmentation", prefix)


def _nb05_namespace():
    import torch.nn.functional as F
    from torch import nn

    ns = {"torch": torch, "F": F, "nn": nn, "LABEL_NOISE": 0.3}
    unet = _nb05_cell("def double_conv(")
    exec(unet[: unet.index("\ndef new_unet")], ns)
    exec(_nb05_cell("def dice_bce_loss("), ns)
    critic = _nb05_cell("class PatchDiscriminator(")
    exec(critic[: critic.index("\ndef new_critic")] + critic[critic.index("\ndef adversarial_seg_step"):], ns)
    exec(_nb05_cell("def pix2pix_train_step("), ns)
    return ns


def test_notebook_05_writes_its_steps_with_backward():
    assert _nb05_cell("def dice_bce_loss(").count(".backward()") == 1
    assert _nb05_cell("class PatchDiscriminator(").count(".backward()") == 2
    assert _nb05_cell("def pix2pix_train_step(").count(".backward()") == 2


@pytest.mark.parametrize("kind", ["segmentation", "adversarial", "adversarial-masked", "adversarial-soft", "pix2pix"])
def test_notebook_05_steps_and_networks_are_bit_identical_to_the_package(kind, one_thread):
    from medgan_utils.gan import PairTrainer, adversarial_segmentation_step, pix2pix_step, segmentation_step
    from medgan_utils.nets import (MaskedPatchDiscriminator, PatchDiscriminator, SoftLabelPatchDiscriminator, UNet,
                                   make_patch_discriminator, make_unet)

    ns = _nb05_namespace()
    g = torch.Generator().manual_seed(0)
    images = torch.rand(24, 1, 32, 32, generator=g) * 2 - 1
    masks = (torch.rand(24, 1, 32, 32, generator=g) > 0.7).float()
    trainers = []
    masked = kind == "adversarial-masked"
    critic = {"adversarial-masked": "MaskedPatchDiscriminator", "adversarial-soft": "SoftLabelPatchDiscriminator"}.get(
        kind, "PatchDiscriminator")
    package_critics = {"MaskedPatchDiscriminator": MaskedPatchDiscriminator, "PatchDiscriminator": PatchDiscriminator,
                       "SoftLabelPatchDiscriminator": SoftLabelPatchDiscriminator}
    for unet_cls, d_cls, steps in ((ns["UNet"], ns[critic],
                                    {"segmentation": ns["seg_train_step"], "adversarial": ns["adversarial_seg_step"],
                                     "pix2pix": ns["pix2pix_train_step"]}),
                                   (UNet, package_critics[critic],
                                    {"segmentation": segmentation_step, "adversarial": adversarial_segmentation_step,
                                     "pix2pix": pix2pix_step})):
        net = make_unet(1, 1, 4, 3, out_activation="tanh" if kind == "pix2pix" else None, seed=0, cls=unet_cls)
        nets = {"G" if kind == "pix2pix" else "S": net}
        if kind != "segmentation":
            nets["D"] = make_patch_discriminator(1 if masked else 2, 8, 2, "batch", seed=1, cls=d_cls)
        step = steps["adversarial" if kind.startswith("adversarial") else kind]
        torch.manual_seed(5)   # the soft critic draws its label noise from the global generator
        tr = PairTrainer(nets, images, masks, step, lr=1e-3, betas=(0.5, 0.999), batch_size=8, seed=3,
                         lambda_adv=0.1, l1_weight=100.0)
        tr.run_steps(3)
        trainers.append(tr)
    a, b = trainers
    for name in a.names:
        sa, sb = getattr(a, name).state_dict(), getattr(b, name).state_dict()
        assert list(sa) == list(sb)
        for k in sa:
            assert torch.equal(sa[k], sb[k]), f"{kind}: {name}.{k} differs"


def test_pair_trainer_keeps_the_best_validation_weights(one_thread):
    from medgan_utils.gan import PairTrainer, segmentation_step
    from medgan_utils.nets import make_unet

    g = torch.Generator().manual_seed(0)
    images = torch.rand(16, 1, 16, 16, generator=g) * 2 - 1
    masks = (images > 0.3).float()
    scores = iter([0.2, 0.9, 0.5, 0.1])
    tr = PairTrainer({"S": make_unet(1, 1, 4, 2, seed=0)}, images, masks, segmentation_step, lr=1e-2,
                     batch_size=8, seed=0)
    states = []

    def select(t):
        states.append({k: v.clone() for k, v in t.S.state_dict().items()})
        return next(scores)

    tr.fit(8, select=select, eval_every=2)
    assert tr.best["step"] == 4 and tr.best["score"] == 0.9
    for k, v in tr.S.state_dict().items():
        assert torch.equal(v, states[1][k])
    assert len(tr.history["loss_S"]) == 8
    with pytest.raises(Exception, match="masks"):
        PairTrainer({"S": make_unet(1, 1, 4, 2)}, images, masks[:3], segmentation_step, lr=1e-3)


def test_notebook_05_runs_fast_on_a_stand_in_with_empty_masks(tmp_path):
    """A MedSegBench-style npz whose splits include normal images (empty masks), as some BUSI copies do."""
    from medgan_utils.tools.runner import run_notebook

    data = write_medsegbench_style_npz(tmp_path / "busi_like.npz", size=64, n_per_split=(48, 16, 16),
                                       empty_fraction=0.25)
    row = run_notebook(NB05, tmp_path / "out", {"DATASET": str(data), "IMAGE_SIZE": 32, "N_SEEDS": 2,
                                                "EXTRA_ARMS": ["count_matched", "other_critic"]}, fast=True)
    assert row["status"] == "ok", row["error"]
    m = _json.loads(_Path(row["results"]).read_text())["metrics"]
    arms = {r["arm"] for r in m["runs"]}
    assert m["image_size"] == 32 and arms == {"unet", "unet+adv", "unet+synth", "unet+deform", "unet+count_matched",
                                              "unet+adv[pair]", "unet+adv[soft]"}
    seeds_of = {a: {r["seed"] for r in m["runs"] if r["arm"] == a} for a in arms}
    assert seeds_of["unet+deform"] == {0, 1}
    assert seeds_of["unet+count_matched"] == seeds_of["unet+adv[pair]"] == seeds_of["unet+adv[soft]"] == {0}
    assert [c["critic"] for c in m["critic_comparison"]] == ["masked", "pair", "soft"]
    assert {e["contrast"].split(" critic")[0] for e in m["exploratory"] if " critic − " in e["contrast"]} == {"pair", "soft"}
    assert m["critic"]["receptive_field_px"] < 32
    assert any(e["contrast"].startswith("unet+synth − unet+deform") for e in m["exploratory"])
    assert all(0 <= r["dice"] <= 1 and 0 <= r["iou"] <= 1 and r["hd95"] >= 0 for r in m["runs"])
    assert all(r["hd95"] <= math.hypot(32, 32) + 1e-9 for r in m["runs"])


def test_dice_scores_match_segmentation_metrics_including_empty_masks():
    from medgan_utils.evaluation import dice_scores

    g = torch.Generator().manual_seed(0)
    pred = (torch.rand(12, 1, 16, 16, generator=g) > 0.6).float()
    truth = (torch.rand(12, 1, 16, 16, generator=g) > 0.5).float()
    pred[0], truth[0] = 0, 0        # both empty: 1
    pred[1] = 0                     # a lesion missed: 0
    assert np.allclose(dice_scores(pred, truth), segmentation_metrics(pred, truth)["dice"])
    assert dice_scores(pred, truth)[0] == 1.0 and dice_scores(pred, truth)[1] == 0.0


def test_the_patch_critic_is_sized_to_the_image_and_reports_its_receptive_field():
    from medgan_utils.nets import PatchDiscriminator, patch_layers_for, patch_receptive_field
    assert [patch_receptive_field(PatchDiscriminator(2, 8, n)) for n in (1, 2, 3)] == [16, 34, 70]   # pix2pix's 70
    assert [patch_layers_for(s) for s in (28, 64, 128)] == [1, 2, 3]
    for size in (28, 64, 128):
        d = PatchDiscriminator(2, 8, patch_layers_for(size))
        out = d(torch.zeros(1, 1, size, size), torch.zeros(1, 1, size, size))
        assert patch_receptive_field(d) < size and out.shape[-1] > 1        # patches, not one global verdict


def test_the_masked_critic_sees_only_the_image_inside_the_mask():
    from medgan_utils.nets import MaskedPatchDiscriminator, make_patch_discriminator
    d = make_patch_discriminator(1, 8, 2, "none", seed=0, cls=MaskedPatchDiscriminator).eval()
    g = torch.Generator().manual_seed(0)
    image, other = (torch.rand(2, 1, 32, 32, generator=g) * 2 - 1 for _ in range(2))
    mask = torch.zeros(2, 1, 32, 32)
    mask[:, :, 8:20, 8:20] = 1
    mixed = torch.where(mask > 0, image, other)                           # same content inside the mask only
    assert torch.equal(d(image, mask), d(mixed, mask))
    assert not torch.equal(d(image, mask), d(image, mask * 0.6))           # a soft mask is seen through the image


def test_joint_deformation_keeps_image_and_mask_aligned_and_matches_deform_masks():
    from medgan_utils.data import deform_masks, deform_pairs
    masks = torch.zeros(6, 1, 64, 64)
    for i in range(6):
        masks[i, :, 10 + i:34 + i, 20:44 - i] = 1
    images = masks * 2 - 1                                                # the image is its mask
    new_images, new_masks = deform_pairs(images, masks, torch.Generator().manual_seed(3))
    assert torch.equal(new_masks, deform_masks(masks, torch.Generator().manual_seed(3), kind="both"))
    agree = ((new_images > 0).float() == new_masks).float().mean()
    assert agree > 0.99 and not torch.equal(new_masks, masks)              # aligned, and actually moved


def test_soft_label_critic_softens_true_masks_only_within_its_noise():
    from medgan_utils.nets import MaskedPatchDiscriminator, PatchDiscriminator, SoftLabelPatchDiscriminator

    masks = (torch.rand(4, 1, 16, 16, generator=torch.Generator().manual_seed(0)) > 0.5).float()
    soft = SoftLabelPatchDiscriminator(2, 4, 1, "none")
    a = soft.label_noise
    first, second = soft.true_masks(masks), soft.true_masks(masks)
    on, off = masks.bool(), ~masks.bool()
    assert first[on].min() >= 1 - a and first[on].max() <= 1
    assert first[off].min() >= 0 and first[off].max() <= a
    assert not torch.equal(first, masks) and not torch.equal(first, second)   # noisy, and drawn afresh
    assert 0.4 * a < (first - masks).abs().mean() < 0.6 * a                   # uniform on [0, a]: mean a / 2
    for plain in (PatchDiscriminator(2, 4, 1, "none"), MaskedPatchDiscriminator(1, 4, 1, "none")):
        assert torch.equal(plain.true_masks(masks), masks)


def test_predict_gives_the_same_bits_in_any_batch_size():
    """predict's CPU batch (about 64k pixels: 16 images at 64 px) only changes the speed, never an output."""
    from medgan_utils.gan import PairTrainer, segmentation_step
    from medgan_utils.nets import make_unet

    images = torch.rand(40, 1, 64, 64, generator=torch.Generator().manual_seed(0)) * 2 - 1
    tr = PairTrainer({"S": make_unet(1, 1, 8, 3, seed=0)}, images, (images > 0).float(), segmentation_step, lr=1e-3)
    default, whole = tr.predict(images), tr.predict(images, batch_size=64)
    assert torch.equal(default, whole) and torch.equal(default, tr.predict(images, batch_size=7))
    assert default.shape == (40, 1, 64, 64) and tr.S.training  # the network goes back to training mode
