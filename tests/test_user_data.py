"""A user's own data through ``load_dataset(path)``: image folders and MedMNIST-style .npz files.

Fixtures are written into ``tmp_path`` with PIL and numpy; nothing here needs the network or the
real course datasets, and user data must load even with ``MEDGAN_REQUIRE_REAL_DATA=1``.
"""
import hashlib
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from medgan_utils.data import (DataError, UnknownDatasetError, UnsupportedSizeError, UserDataError, dataset_info,
                               datasets_used, is_user_path, load_dataset, load_splits, reset_datasets_used)
from medgan_utils.data import user_data
from medgan_utils.data.imageset import to_uint8

SPLITS = ("train", "val", "test")


def write_medmnist_style_npz(path, n_classes=5, channels=3, size=28, n_per_split=(60, 20, 20), seed=0):
    """Write an .npz in MedMNIST's layout and return its path.

    Keys ``train_images``, ``train_labels``, ``val_images``, ... ; images are random uint8
    N×size×size (``channels=1``) or N×size×size×channels; labels are int64 N×1, every
    class present in every split that has at least ``n_classes`` images (seeded, shuffled).
    ``np.savez`` adds ``.npz`` to a path without it; the returned path is the file written.
    """
    path = Path(path)
    path = path if path.suffix == ".npz" else path.with_name(path.name + ".npz")
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, n in zip(SPLITS, n_per_split):
        shape = (n, size, size) if channels == 1 else (n, size, size, channels)
        arrays[f"{split}_images"] = rng.integers(0, 256, shape, dtype=np.uint8)
        arrays[f"{split}_labels"] = rng.permutation(np.arange(n) % n_classes).astype(np.int64).reshape(n, 1)
    np.savez_compressed(path, **arrays)
    return path


def write_image_folder(folder, count, *, sizes=((28, 28),), mode="L", suffix=".png", seed=0):
    """Write ``count`` random images (H×W from ``sizes``, cycled) into ``folder``; return their pixel arrays."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    written = []
    for i in range(count):
        h, w = sizes[i % len(sizes)]
        pixels = rng.integers(0, 256, (h, w, 3) if mode == "RGB" else (h, w), dtype=np.uint8)
        Image.fromarray(pixels, mode).save(folder / f"img_{i:03d}{suffix}")
        written.append(pixels)
    return written


def image_hashes(ds):
    """MD5 of each image of an ImageSet (as uint8), to compare splits and files."""
    return [hashlib.md5(im.numpy().tobytes()).hexdigest() for im in to_uint8(ds.images)]


@pytest.fixture(autouse=True)
def _fresh_user_cache(monkeypatch):
    """No decoded arrays carried between tests; user data must load even where real data is required."""
    monkeypatch.setenv("MEDGAN_REQUIRE_REAL_DATA", "1")
    monkeypatch.setenv("MEDGAN_OFFLINE", "1")
    user_data._DECODED.clear()
    yield
    user_data._DECODED.clear()


@pytest.fixture
def gray_folder(tmp_path):
    """2 classes of gray PNGs at mixed sizes: 12 'benign' and 8 'malignant' (written out of name order)."""
    root = tmp_path / "scans"
    write_image_folder(root / "malignant", 8, sizes=[(28, 28), (20, 20), (32, 24)], seed=1)
    write_image_folder(root / "benign", 12, sizes=[(28, 28), (40, 40)], seed=2)
    return root


# ---------------------------------------------------------------- routing and sizes


@pytest.mark.parametrize("name, expected", [
    ("./scans", True), ("../x", True), ("~/data", True), ("my.npz", True), ("MY.NPZ", True), ("a/b", True),
    (Path("scans"), True), ("pneumoniamnist", False), ("phantom", False), ("busi", False), ("scans", False),
    ("", False), (None, False), (28, False),
])
def test_is_user_path(name, expected):
    assert is_user_path(name) is expected


def test_unknown_plain_name_still_raises_and_mentions_paths(tmp_path, monkeypatch):
    with pytest.raises(UnknownDatasetError) as exc:
        load_dataset("pneumonia")
    msg = str(exc.value)
    assert "Did you mean 'pneumoniamnist'" in msg and "folder" in msg and ".npz" in msg
    (tmp_path / "scans").mkdir()
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UnknownDatasetError, match=r"pass './scans'"):
        load_dataset("scans")
    with pytest.raises(UnknownDatasetError, match="npz"):
        dataset_info("nosuchset")


@pytest.mark.parametrize("size", [0, -1, "abc", 3, 2.5, True])
def test_bad_sizes_for_user_paths_name_value_and_fix(gray_folder, size):
    with pytest.raises(UnsupportedSizeError) as exc:
        load_dataset(gray_folder, size=size)
    msg = str(exc.value)
    assert repr(size) in msg and ">= 8" in msg and "Fix:" in msg and str(gray_folder) in msg


def test_any_size_from_8_px_is_accepted_for_user_data(gray_folder):
    assert load_dataset(gray_folder, "test", size=8).images.shape[-2:] == (8, 8)
    assert load_dataset(gray_folder, "test", size="33").images.shape[-2:] == (33, 33)


# ---------------------------------------------------------------- folders


def test_folder_layout_gray_mixed_sizes_are_resized_and_split_70_10_20(gray_folder):
    sets = load_splits(str(gray_folder), 28)
    # per class: 12 -> 9/1/2 and 8 -> 5/1/2 (rounded half up)
    assert {s: len(d) for s, d in sets.items()} == {"train": 14, "val": 2, "test": 4}
    assert sets["train"].class_counts() == {"benign": 9, "malignant": 5}
    for split, ds in sets.items():
        assert ds.images.shape[1:] == (1, 28, 28) and ds.images.dtype == torch.float32
        assert ds.images.min() >= -1 and ds.images.max() <= 1 and ds.images.min() < -0.9 and ds.images.max() > 0.9
        assert ds.labels.dtype == torch.long and ds.labels.ndim == 1
        assert ds.label_names == {0: "benign", 1: "malignant"}
        assert ds.is_real and ds.source == "real" and ds.split == split and ds.size == 28
        assert ds.name == str(gray_folder) and ds.used == str(gray_folder.resolve())
        info = ds.info
        assert info["source"] == "user" and info["layout"] == "folder" and info["task"] == "binary-class"
        assert info["n_classes"] == 2 and info["split_seed"] == user_data.USER_SPLIT_SEED
        assert info["path"] == str(gray_folder.resolve())
        assert info["resized_from"] == ["20x20", "32x24", "40x40"]


def test_folder_splits_never_overlap_and_are_the_same_on_every_call(gray_folder):
    first = {s: image_hashes(d) for s, d in load_splits(gray_folder).items()}
    everything = [h for hashes in first.values() for h in hashes]
    assert len(everything) == len(set(everything)) == 20
    user_data._DECODED.clear()  # a fresh read draws the same split
    again = {s: image_hashes(d) for s, d in load_splits(gray_folder).items()}
    assert again == first
    labels = [load_dataset(gray_folder, s).labels.tolist() for s in SPLITS]
    assert labels == [load_dataset(str(gray_folder), s).labels.tolist() for s in SPLITS]


def test_folder_with_splits_keeps_the_given_splits_and_sorted_class_order(tmp_path):
    root = tmp_path / "given"
    written = {}
    for i, split in enumerate(SPLITS):
        for j, cls in enumerate(["zebra", "apple"]):  # index follows sorted names: apple 0, zebra 1
            written[split, cls] = write_image_folder(root / split / cls, 3 + i, seed=10 * i + j)
    sets = load_splits(root)
    for split in SPLITS:
        ds = sets[split]
        assert ds.label_names == {0: "apple", 1: "zebra"} and ds.info["layout"] == "folder-with-splits"
        assert "split_seed" not in ds.info and ds.info["resized_from"] == []
        expected = np.stack(written[split, "apple"] + written[split, "zebra"])
        assert torch.equal(to_uint8(ds.images)[:, 0], torch.from_numpy(expected))
        assert ds.labels.tolist() == [0] * (3 + SPLITS.index(split)) + [1] * (3 + SPLITS.index(split))


def test_rgb_jpeg_folder_gives_3_channels(tmp_path):
    root = tmp_path / "colour"
    write_image_folder(root / "a", 6, mode="RGB", suffix=".jpg", sizes=[(30, 30)], seed=3)
    write_image_folder(root / "b", 6, mode="RGB", suffix=".jpeg", sizes=[(30, 30)], seed=4)
    ds = load_dataset(root, "train", size=28)
    assert ds.images.shape[1:] == (3, 28, 28)
    assert not torch.equal(ds.images[:, 0], ds.images[:, 1])
    assert ds.info["resized_from"] == ["30x30"]


def test_one_colour_image_makes_every_image_rgb_and_gray_content_in_rgb_files_stays_gray(tmp_path):
    root = tmp_path / "mixed"
    write_image_folder(root / "a", 5, seed=5)
    write_image_folder(root / "b", 5, seed=6)
    gray_as_rgb = np.repeat(np.arange(28 * 28, dtype=np.uint8).reshape(28, 28)[..., None], 3, axis=2)
    Image.fromarray(gray_as_rgb, "RGB").save(root / "a" / "stored_rgb.png")
    assert load_dataset(root, "train").channels == 1
    write_image_folder(root / "b" / "more", 1, mode="RGB", seed=7)  # images in sub-folders count too
    sets = load_splits(root)
    assert all(d.channels == 3 for d in sets.values()) and sum(map(len, sets.values())) == 12
    gray_train = load_dataset(root, "train")
    assert torch.equal(gray_train.images[gray_train.labels == 0][:, 0], gray_train.images[gray_train.labels == 0][:, 2])


def test_as_rgb_n_device_and_channels_last_work_as_for_built_in_data(gray_folder):
    ds = load_dataset(gray_folder, "train", as_rgb=True, n=5, device="cpu", channels_last=True)
    assert ds.images.shape == (5, 3, 28, 28) and len(ds.labels) == 5
    assert torch.equal(ds.images[:, 0], ds.images[:, 2])
    assert ds.images.is_contiguous(memory_format=torch.channels_last)
    assert len(load_dataset(gray_folder, "train", n=100)) == 14


def test_hidden_and_non_image_files_are_ignored(gray_folder):
    before = {s: image_hashes(d) for s, d in load_splits(gray_folder).items()}
    (gray_folder / "benign" / "notes.txt").write_text("not an image")
    (gray_folder / "benign" / ".DS_Store").write_bytes(b"\0\1junk")
    (gray_folder / "benign" / "._img_000.png").write_bytes(b"AppleDouble junk")
    (gray_folder / ".ipynb_checkpoints").mkdir()
    (gray_folder / "malignant" / ".ipynb_checkpoints").mkdir()
    (gray_folder / "malignant" / ".ipynb_checkpoints" / "x.png").write_bytes(b"junk")
    (gray_folder / "README.md").write_text("my scans")
    assert {s: image_hashes(d) for s, d in load_splits(gray_folder).items()} == before


def test_user_data_is_recorded_as_used_and_dataset_info_does_not_record(gray_folder, tmp_path):
    reset_datasets_used()
    info = dataset_info(gray_folder)
    assert datasets_used() == {}
    assert info["source"] == "user" and info["layout"] == "folder" and info["channels"] == 1
    assert info["splits"] == {"train": 14, "val": 2, "test": 4} and info["labels"] == {0: "benign", 1: "malignant"}
    assert info["class_counts"]["test"] == {"benign": 2, "malignant": 2} and info["task"] == "binary-class"
    load_dataset(str(gray_folder), "val")
    used = datasets_used()[str(gray_folder)]
    assert used["source"] == "user" and used["used"] == str(gray_folder.resolve()) and used["size"] == 28
    reset_datasets_used()


def test_relative_and_home_paths(gray_folder, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert load_dataset("./scans", "test").used == str(gray_folder.resolve())
    monkeypatch.setenv("HOME", str(tmp_path))
    ds = load_dataset("~/scans", "test")
    assert ds.name == "~/scans" and ds.used == str(gray_folder.resolve())


def test_decoded_arrays_are_cached_copied_and_reread_after_a_change(gray_folder, monkeypatch):
    calls = []
    decode = user_data._decode_image
    monkeypatch.setattr(user_data, "_decode_image", lambda *a: calls.append(a) or decode(*a))
    first = load_dataset(gray_folder, "train", size=28)
    assert len(calls) == 20
    first.images.fill_(0.5)
    first.info["resized_from"].append("changed")
    second = load_dataset(gray_folder, "train", size=28)
    assert len(calls) == 20, "a second load must not decode again"
    assert second.images.min() < 0 and "changed" not in second.info["resized_from"]
    load_dataset(gray_folder, "train", size=16)
    assert len(calls) == 40, "another size is decoded separately"
    target = sorted((gray_folder / "benign").iterdir())[0]
    Image.fromarray(np.full((28, 28), 7, np.uint8)).save(target)
    st = target.stat()
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    third = load_splits(gray_folder, 28)
    assert len(calls) == 60
    assert any((to_uint8(d.images) == 7).flatten(1).all(1).any() for d in third.values())
    assert len(user_data._DECODED) == 2  # the stale entry for 28 px was dropped


# ---------------------------------------------------------------- npz


def test_npz_with_5_classes_and_3_channels(tmp_path):
    path = write_medmnist_style_npz(tmp_path / "mine.npz")
    sets = load_splits(path)
    with np.load(path) as raw:
        for split, n in zip(SPLITS, (60, 20, 20)):
            ds = sets[split]
            assert ds.images.shape == (n, 3, 28, 28) and ds.labels.shape == (n,) and ds.labels.dtype == torch.long
            assert torch.equal(to_uint8(ds.images).permute(0, 2, 3, 1), torch.from_numpy(raw[f"{split}_images"]))
            assert ds.labels.tolist() == raw[f"{split}_labels"][:, 0].tolist()
            assert ds.label_names == {i: str(i) for i in range(5)}
            assert ds.info["layout"] == "npz" and ds.info["task"] == "multi-class" and ds.info["n_classes"] == 5
            assert ds.info["source"] == "user" and ds.is_real and ds.info["resized_from"] == []
    assert sets["train"].class_counts() == {str(i): 12 for i in range(5)}


def test_npz_gray_resized_with_label_names_and_flat_labels(tmp_path):
    path = write_medmnist_style_npz(tmp_path / "gray.npz", n_classes=2, channels=1, size=20, n_per_split=(8, 4, 4))
    with np.load(path) as raw:
        arrays = dict(raw)
    arrays["train_labels"] = arrays["train_labels"][:, 0]
    arrays["label_names"] = np.array(["normal", "lesion"])
    np.savez(path, **arrays)
    ds = load_dataset(path, "train", size=32)
    assert ds.images.shape == (8, 1, 32, 32) and ds.label_names == {0: "normal", 1: "lesion"}
    assert ds.info["resized_from"] == ["20x20"] and ds.info["task"] == "binary-class"


def test_npz_float_images_in_unit_range_are_accepted(tmp_path):
    path = write_medmnist_style_npz(tmp_path / "f.npz", n_classes=2, channels=1, n_per_split=(6, 2, 2))
    with np.load(path) as raw:
        arrays = dict(raw)
    expected = arrays["train_images"]
    arrays = {k: (v / 255.0 if k.endswith("images") else v) for k, v in arrays.items()}
    np.savez(path, **arrays)
    assert torch.equal(to_uint8(load_dataset(path).images)[:, 0], torch.from_numpy(expected))


def test_npz_rgb_split_makes_gray_splits_rgb(tmp_path):
    path = write_medmnist_style_npz(tmp_path / "m.npz", n_classes=2, channels=1, n_per_split=(6, 2, 2))
    with np.load(path) as raw:
        arrays = dict(raw)
    arrays["test_images"] = np.repeat(arrays["test_images"][..., None], 3, axis=3)
    arrays["test_images"][..., 0] = 0
    np.savez(path, **arrays)
    sets = load_splits(path)
    assert all(d.channels == 3 for d in sets.values())
    assert torch.equal(sets["train"].images[:, 0], sets["train"].images[:, 1])


# ---------------------------------------------------------------- errors


def _error(path, **kwargs) -> str:
    with pytest.raises(UserDataError) as exc:
        load_dataset(path, **kwargs)
    assert isinstance(exc.value, DataError) and isinstance(exc.value, ValueError)
    msg = str(exc.value)
    assert "Fix:" in msg
    return msg


def test_missing_path_names_it(tmp_path):
    msg = _error(tmp_path / "nowhere")
    assert str(tmp_path / "nowhere") in msg and "pneumoniamnist" in msg
    assert "no_such.npz" in _error("no_such.npz")


def test_folder_without_class_folders(tmp_path):
    write_image_folder(tmp_path / "flat", 4)
    msg = _error(tmp_path / "flat")
    assert str(tmp_path / "flat") in msg and "class" in msg


def test_folder_with_one_class(tmp_path):
    write_image_folder(tmp_path / "one" / "only", 10)
    msg = _error(tmp_path / "one")
    assert "'only'" in msg and "at least 2 classes" in msg


def test_empty_class_folder_is_named(gray_folder):
    (gray_folder / "cyst").mkdir()
    (gray_folder / "cyst" / "notes.txt").write_text("no images here")
    msg = _error(gray_folder)
    assert str(gray_folder / "cyst") in msg and "no images" in msg


@pytest.mark.parametrize("content", ["text", "truncated"])
def test_unreadable_image_is_named(gray_folder, content):
    bad = gray_folder / "malignant" / "broken.png"
    if content == "text":
        bad.write_text("this is not a PNG")
    else:
        good = (gray_folder / "malignant" / "img_000.png").read_bytes()
        bad.write_bytes(good[: len(good) // 2])
    msg = _error(gray_folder)
    assert str(bad) in msg and "delete or replace" in msg


def test_file_that_is_not_an_npz(gray_folder):
    image = sorted((gray_folder / "benign").iterdir())[0]
    msg = _error(image)
    assert str(image) in msg and ".npz" in msg


def test_split_folders_must_all_be_there_and_share_classes(tmp_path):
    root = tmp_path / "partial"
    for split in ("train", "test"):
        for cls in ("a", "b"):
            write_image_folder(root / split / cls, 3)
    assert "val/" in _error(root)
    write_image_folder(root / "val" / "a", 2)
    write_image_folder(root / "val" / "c", 2)
    msg = _error(root)
    assert str(root / "val" / "c") in msg and "same class folder names" in msg


def test_too_few_images_leave_a_split_empty(tmp_path):
    root = tmp_path / "tiny"
    write_image_folder(root / "a", 2)
    write_image_folder(root / "b", 2)
    msg = _error(root)
    assert "val split" in msg and str(root) in msg


def test_npz_that_is_not_a_zip_or_holds_a_broken_array(tmp_path):
    path = tmp_path / "broken.npz"
    path.write_text("not a zip archive")
    msg = _error(path)
    assert str(path) in msg and "not a zip archive" in msg
    good = write_medmnist_style_npz(tmp_path / "good.npz")
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(path, "w") as dst:
        for item in src.namelist():
            data = src.read(item)
            dst.writestr(item, data[:100] if item == "val_labels.npy" else data)
    msg = _error(path)
    assert str(path) in msg and "'val_labels' cannot be read" in msg


def test_npz_missing_keys_are_named(tmp_path):
    path = tmp_path / "partial.npz"
    np.savez(path, train_images=np.zeros((4, 28, 28), np.uint8), train_labels=np.array([0, 1, 0, 1]))
    msg = _error(path)
    assert "val_images, val_labels, test_images, test_labels" in msg and "MedMNIST layout" in msg
    assert str(path) in msg


def _rewrite(path, **changes):
    with np.load(path) as raw:
        arrays = dict(raw)
    arrays.update(changes)
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize("key, value, words", [
    ("train_images", np.zeros((60, 28), np.uint8), ["train_images", "shape (60, 28)"]),
    ("val_images", np.zeros((20, 28, 28, 4), np.uint8), ["val_images", "N×H×W×3"]),
    ("test_images", np.full((20, 28, 28, 3), 300.0), ["test_images", "outside [0, 255]"]),
    ("test_images", np.zeros((20, 28, 28, 3), bool), ["test_images", "dtype bool"]),
    ("train_images", np.full((60, 28, 28, 3), 999, np.int32), ["train_images", "outside 0..255"]),
    ("val_labels", np.zeros(19, np.int64), ["val_labels has 19 labels", "val_images has 20"]),
    ("test_labels", np.zeros((20, 3), np.int64), ["test_labels", "multi-label"]),
    ("train_labels", np.full(60, -1), ["train_labels", "whole numbers >= 0"]),
    ("train_labels", np.full(60, 0.5), ["train_labels", "whole numbers >= 0"]),
    ("train_labels", np.zeros((60, 1), np.int64), ["train_labels holds fewer than 2 classes"]),
    ("test_images", np.zeros((0, 28, 28, 3), np.uint8), ["test split", "would hold no images"]),
    ("label_names", np.array(["a", "b"]), ["label_names has only 2 names"]),
    ("label_names", np.array([1, 2, 3, 4, 5]), ["label_names must be a 1-D string array"]),
    ("label_names", np.array([{"a": 1}], dtype=object), ["'label_names'", "pickle"]),
])
def test_bad_npz_contents_name_the_key(tmp_path, key, value, words):
    path = _rewrite(write_medmnist_style_npz(tmp_path / "bad.npz"), **{key: value})
    msg = _error(path)
    assert str(path) in msg
    for word in words:
        assert word in msg, (word, msg)


def test_user_data_never_falls_back_to_phantoms(tmp_path, monkeypatch):
    monkeypatch.delenv("MEDGAN_REQUIRE_REAL_DATA", raising=False)
    with pytest.raises(UserDataError):
        load_dataset(tmp_path / "missing.npz")
    with pytest.raises(UserDataError):
        dataset_info(tmp_path / "missing")
