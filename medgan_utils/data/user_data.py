"""A user's own data: a folder of class folders of images, or an ``.npz`` in MedMNIST's layout.

``load_dataset(path)`` hands a path (:func:`is_user_path`) to :func:`read_user_dataset`: same ImageSet as built-in data.

* Folder: ``root/<class>/*.png|jpg|jpeg|bmp|tif|tiff``; class index = sorted folder name.
  With ``root/train``, ``root/val``, ``root/test`` those are the splits; otherwise one seeded,
  stratified 70/10/20 draw (seed :data:`USER_SPLIT_SEED`), the same on every call, so the
  splits never overlap. Hidden files and folders and other suffixes are skipped silently.
* ``.npz``: ``train_images``, ``train_labels``, ``val_images``, ... (MedMNIST): images N×H×W
  or N×H×W×3, labels N or N×1 ints, optional ``label_names`` (a string array). Images other
  than uint8 are accepted as integers in 0..255 (cast) or floats in [0, 1] (× 255) or in
  [0, 255] (rounded); anything else is refused.

Images are resized (PIL bilinear) to ``size``×``size`` px where they differ. An image is
colour when its channels differ somewhere (gray content stored as RGB reads as gray); if any
is colour all become RGB, else all have 1 channel. 16-bit images are scaled by 1/257.
Decoded uint8 arrays are kept per process, keyed by resolved path, size and a signature of
file times and sizes, so a changed folder or file is read again. Nothing is downloaded and
there is no phantom fallback; every error is a :class:`UserDataError` naming the file at
fault and the fix.
"""
from __future__ import annotations

import copy
import hashlib
import os
import zipfile
from pathlib import Path

import numpy as np
import torch

from ..core.errors import CourseError, positive_int
from .imageset import ImageSet, to_unit_range
from .limits import MAX_CLASSES, MAX_USER_SIZE, check_regular, memory_shortfall
from .registry import SPLITS, DataError, UnknownDatasetError, UnsupportedSizeError, dataset_kind

USER = "user"
USER_SPLIT_SEED = 0
USER_SPLIT_FRACTIONS = {"train": 0.7, "val": 0.1, "test": 0.2}
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
MIN_USER_SIZE = 8
NPZ_KEYS = tuple(f"{split}_{part}" for split in SPLITS for part in ("images", "labels"))
NPZ_LAYOUT = ("MedMNIST layout: train_images, train_labels, val_images, val_labels, test_images, test_labels "
              "(images uint8 N×H×W or N×H×W×3, labels N or N×1 integers)")
FOLDER_LAYOUT = "root/<class_name>/*.png, optionally inside root/train, root/val and root/test"

_DECODED: dict[tuple, dict] = {}   # (resolved path, size, signature) -> decoded uint8 splits and metadata


class UserDataError(DataError, ValueError):
    """A user's own dataset (folder or .npz) cannot be used; the message names the file at fault and the fix."""


def is_user_path(name) -> bool:
    """True for a path to own data: an ``os.PathLike``, or text that ends in .npz, has a separator, or starts ~ or ."""
    if isinstance(name, os.PathLike):
        return True
    text = name.strip() if isinstance(name, str) else ""
    seps = [s for s in ("/", os.sep, os.altsep) if s]
    return bool(text) and (text.lower().endswith(".npz") or any(s in text for s in seps) or text[0] in "~.")


def dataset_kind_or_user(name) -> str:
    """``'user'`` for a path (:func:`is_user_path`), else the registry's kind; unknown names mention paths too."""
    if is_user_path(name):
        return USER
    try:
        return dataset_kind(name)
    except UnknownDatasetError as err:
        here = ""
        if isinstance(name, str) and name.strip() and Path(name.strip()).exists():
            here = f" ({name.strip()!r} exists in the current folder: pass './{name.strip()}' to load it.)"
        raise UnknownDatasetError(
            f"{err} Or pass a path to your own data: a folder of class folders ({FOLDER_LAYOUT}) or a "
            f"MedMNIST-style .npz, e.g. './my_scans' or '~/data/my_scans.npz'.{here}") from None


def check_user_size(size, name="your own data") -> int:
    """``size`` as whole pixels from 8 to :data:`MAX_USER_SIZE` (user images are resized to it); anything else
    raises UnsupportedSizeError."""
    try:
        return positive_int(size, f"Image size for {name}", minimum=MIN_USER_SIZE, maximum=MAX_USER_SIZE,
                            fix=f"use a whole number of pixels from {MIN_USER_SIZE} to {MAX_USER_SIZE}, e.g. "
                                "size=28 or size=64 (your images are resized to it).")
    except CourseError as err:
        raise UnsupportedSizeError(str(err)) from None


def resolve_user_path(path) -> Path:
    """The absolute path of ``path`` (``~`` expanded); a missing path raises :class:`UserDataError`."""
    given = os.fspath(path)
    resolved = Path(given).expanduser().resolve()
    if not resolved.exists():
        raise UserDataError(f"Your dataset path {given!r} does not exist (looked for {resolved}). Fix: check the "
                            "path, or use a dataset name such as 'pneumoniamnist' (see `medgan data list`).")
    if (why := check_regular(resolved)) is not None:
        raise UserDataError(f"Your dataset path {resolved} {why}. Fix: pass a folder of class folders "
                            f"({FOLDER_LAYOUT}) or an .npz in the {NPZ_LAYOUT}.")
    if resolved.is_file() and resolved.suffix.lower() != ".npz":
        raise UserDataError(f"{resolved} is a file but not an .npz. Fix: pass a folder of class folders "
                            f"({FOLDER_LAYOUT}) or an .npz in {NPZ_LAYOUT}.")
    return resolved


def read_user_dataset(path, split: str = "train", size: int = 28, *, as_rgb: bool = False) -> ImageSet:
    """One split of the user's own data as a new :class:`ImageSet` of float images in [-1, 1].

    Args:
        path: a folder of class folders or a MedMNIST-style ``.npz`` (str or ``os.PathLike``).
        split: ``train``, ``val`` or ``test``.
        size: images are resized to ``size``×``size`` px where they differ (any whole number ≥ 8).
        as_rgb: repeat grayscale images to 3 channels.
    """
    if split not in SPLITS:
        raise ValueError(f"Unknown split {split!r}. Fix: use one of {', '.join(SPLITS)}.")
    given = os.fspath(path)
    size = check_user_size(size, given)
    decoded = _decoded(resolve_user_path(path), size)
    images_u8, labels = decoded["splits"][split]
    images = to_unit_range(images_u8)  # a new float tensor: the cached uint8 arrays are never shared
    if as_rgb and images.shape[1] == 1:
        images = images.repeat(1, 3, 1, 1)
    return ImageSet(images=images, labels=torch.from_numpy(labels.astype(np.int64)), name=given,
                    used=decoded["info"]["path"], split=split, size=size,
                    label_names=dict(decoded["label_names"]), info=copy.deepcopy(decoded["info"]))


def user_dataset_info(path, size: int = 28) -> dict:
    """Per-split counts, channels, classes and layout of the user's own data (as ``dataset_info`` reports)."""
    given = os.fspath(path)
    size = check_user_size(size, given)
    decoded = _decoded(resolve_user_path(path), size)
    names = decoded["label_names"]
    counts = {split: {names[i]: int(c) for i, c in enumerate(np.bincount(lab, minlength=len(names)))}
              for split, (_, lab) in decoded["splits"].items()}
    first = decoded["splits"]["train"][0]
    return {"name": given, "size": size, "source": USER, "path": decoded["info"]["path"],
            "layout": decoded["info"]["layout"], "checksum": "n/a", "channels": 1 if first.ndim == 3 else 3,
            "splits": {split: len(lab) for split, (_, lab) in decoded["splits"].items()},
            "labels": dict(names), "task": decoded["info"]["task"], "class_counts": counts,
            "resized_from": list(decoded["info"]["resized_from"])}


def _decoded(resolved: Path, size: int) -> dict:
    """The decoded splits of ``resolved`` at ``size`` px, read again when its files changed."""
    if resolved.is_dir():
        layout, folders = _scan_folder(resolved)
        files = [f for classes in folders.values() for paths in classes.values() for f in paths]
        check_fits(resolved, len(files), size)
    else:
        layout, folders, files = "npz", None, [resolved]
    key = (str(resolved), size, _signature(files))
    if key not in _DECODED:
        for stale in [k for k in _DECODED if k[:2] == key[:2]]:
            del _DECODED[stale]
        decoded = _read_npz(resolved, size) if folders is None else _read_folder(resolved, layout, folders, size)
        decoded["info"].update(source=USER, path=str(resolved), layout=layout,
                               n_classes=len(decoded["label_names"]),
                               task="binary-class" if len(decoded["label_names"]) == 2 else "multi-class")
        _DECODED[key] = decoded
    return _DECODED[key]


def check_fits(path: Path, n_images: int, size: int) -> None:
    """Raise before decoding when ``n_images`` at ``size`` px would not fit in the free memory."""
    if (why := memory_shortfall(n_images, size)) is not None:
        raise UserDataError(f"{path}: {why}. Fix: pass a smaller size (IMAGE_SIZE / --size), or use fewer images.")


def _check_splits_not_empty(path: Path, counts: dict[str, int]) -> None:
    """Raise when a split would hold no images."""
    for split in SPLITS:
        if counts[split] == 0:
            raise UserDataError(f"The {split} split of {path} would hold no images. Fix: add images (each class "
                                f"needs at least 5 for the 70/10/20 split), or give the {split} split its own "
                                f"images ({split}/<class>/ in a folder, {split}_images in an .npz).")


def _signature(files: list[Path]) -> str:
    """A digest of each file's path, modification time and size: it changes when any file does."""
    lines = [f"{f}|{st.st_mtime_ns}|{st.st_size}\n" for f in files for st in [f.stat()]]
    return hashlib.md5("".join(lines).encode()).hexdigest()


def _is_hidden(path: Path) -> bool:
    """Dot files and folders (.DS_Store, .ipynb_checkpoints, ._x.png) and __MACOSX are skipped silently."""
    return path.name.startswith(".") or path.name == "__MACOSX"


def _scan_folder(root: Path) -> tuple[str, dict[str | None, dict[str, list[Path]]]]:
    """The layout (``folder`` or ``folder-with-splits``) and {split or None: {class name: image files}}."""
    present = [s for s in SPLITS if (root / s).is_dir()]
    if not present:
        classes = _class_folders(root)
        _check_two_classes(root, classes)
        return "folder", {None: classes}
    if len(present) < len(SPLITS):
        missing = [f"{s}/" for s in SPLITS if s not in present]
        raise UserDataError(f"{root} has {', '.join(s + '/' for s in present)} but no {', '.join(missing)}. "
                            f"Fix: add the missing split folder(s) with class folders inside, or move the class "
                            f"folders up into {root} to let the course split them 70/10/20.")
    splits = {s: _class_folders(root / s) for s in SPLITS}
    _check_two_classes(root / "train", splits["train"])
    for split in ("val", "test"):
        extra = sorted(set(splits[split]) - set(splits["train"]))
        if extra:
            raise UserDataError(f"Class folder {root / split / extra[0]} has no counterpart in {root / 'train'}. "
                                f"Fix: use the same class folder names in train/, val/ and test/.")
    return "folder-with-splits", splits


def _class_folders(folder: Path) -> dict[str, list[Path]]:
    """{class folder name: sorted image files inside it (recursively)}, in sorted name order; empty ones raise."""
    classes = {}
    for sub in sorted(p for p in folder.iterdir() if p.is_dir() and not _is_hidden(p)):
        files = sorted(f for f in sub.rglob("*")
                       if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file()
                       and not any(_is_hidden(Path(part)) for part in f.relative_to(sub).parts))
        if not files:
            raise UserDataError(f"Class folder {sub} holds no images ({', '.join(IMAGE_SUFFIXES)}). "
                                "Fix: add images to it, or remove the folder.")
        classes[sub.name] = files
    return classes


def _check_two_classes(folder: Path, classes: dict[str, list[Path]]) -> None:
    """Raise unless ``folder`` has at least two class folders."""
    if not classes:
        raise UserDataError(f"{folder} has no class sub-folders. Fix: put the images in one folder per class, "
                            f"{FOLDER_LAYOUT}, or pass a MedMNIST-style .npz.")
    if len(classes) < 2:
        raise UserDataError(f"{folder} has only one class folder ({next(iter(classes))!r}); at least 2 classes "
                            "are needed. Fix: add a folder for each other class next to it.")


def _read_folder(root: Path, layout: str, folders: dict, size: int) -> dict:
    """Decode every image of a scanned folder and split it (seeded and stratified when it has no split folders)."""
    class_names = sorted(folders.get("train", folders.get(None)))
    index = {name: i for i, name in enumerate(class_names)}
    entries = [(split, index[name], f) for split, classes in folders.items()
               for name, files in classes.items() for f in files]
    arrays, originals = zip(*(_decode_image(f, size) for _, _, f in entries))
    images = _stack_same_channels(list(arrays))
    labels = np.array([label for _, label, _ in entries], dtype=np.int64)
    info = {"resized_from": sorted({f"{h}x{w}" for h, w in originals if (h, w) != (size, size)})}
    if layout == "folder":
        positions = _stratified_split(labels, USER_SPLIT_SEED)
        info.update(split_seed=USER_SPLIT_SEED, split_fractions=dict(USER_SPLIT_FRACTIONS))
    else:
        where = np.array([split for split, _, _ in entries])
        positions = {split: np.flatnonzero(where == split) for split in SPLITS}
    _check_splits_not_empty(root, {split: len(idx) for split, idx in positions.items()})
    splits = {split: (images[idx], labels[idx]) for split, idx in positions.items()}
    return {"splits": splits, "label_names": dict(enumerate(class_names)), "info": info}


def _stratified_split(labels: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    """Positions of each split: per class a seeded shuffle cut 70/10/20 (rounded half up); the same on every call."""
    rng = np.random.default_rng(seed)
    out = {split: [] for split in SPLITS}
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)[rng.permutation(int((labels == label).sum()))]
        n_val, n_test = (int(np.floor(len(members) * USER_SPLIT_FRACTIONS[s] + 0.5)) for s in ("val", "test"))
        for split, part in zip(SPLITS, np.split(members, [len(members) - n_val - n_test, len(members) - n_test])):
            out[split].append(part)
    return {split: np.sort(np.concatenate(parts)) for split, parts in out.items()}


def _decode_image(path: Path, size: int) -> tuple[np.ndarray, tuple[int, int]]:
    """One image file as uint8 H×W (gray) or H×W×3 (colour), resized to ``size``; also its original (H, W)."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            img.load()
            pixels = _pil_pixels(img)
    except Exception as err:
        raise UserDataError(f"Image file {path} cannot be read ({type(err).__name__}: {err}). "
                            "Fix: delete or replace that file.") from None
    return _resize(pixels, size), pixels.shape[:2]


def _pil_pixels(img) -> np.ndarray:
    """uint8 pixels of a PIL image: H×W for gray content (16-bit scaled by 1/257), else H×W×3 RGB."""
    if img.mode in ("I", "F") or img.mode.startswith("I;16"):
        values = np.asarray(img, dtype=np.float64)
        if img.mode == "F" and values.max(initial=0) <= 1:
            values = values * 255
        elif values.max(initial=0) > 255:
            values = values / 257
        return np.clip(np.round(values), 0, 255).astype(np.uint8)
    if img.mode in ("1", "L", "LA", "La"):
        return np.asarray(img.convert("L"), dtype=np.uint8)
    rgb = np.asarray(img.convert("RGB"), dtype=np.uint8)
    if np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2]):
        return np.ascontiguousarray(rgb[..., 0])
    return rgb


def _resize(pixels: np.ndarray, size: int) -> np.ndarray:
    """``pixels`` resized to size×size with PIL bilinear (non-square images are stretched); unchanged if already so."""
    if pixels.shape[:2] == (size, size):
        return pixels
    from PIL import Image

    return np.asarray(Image.fromarray(pixels).resize((size, size), Image.BILINEAR), dtype=np.uint8)


def _stack_same_channels(arrays: list[np.ndarray]) -> np.ndarray:
    """N×H×W when every image is gray, else N×H×W×3 with gray images repeated to RGB."""
    if all(a.ndim == 2 for a in arrays):
        return np.stack(arrays)
    return np.stack([np.repeat(a[..., None], 3, axis=2) if a.ndim == 2 else a for a in arrays])


def _read_npz(path: Path, size: int) -> dict:
    """Read and check a MedMNIST-style .npz; resize and unify channels like a folder."""
    if not zipfile.is_zipfile(path):
        raise UserDataError(f"{path} is not an .npz (not a zip archive). Fix: write it with np.savez in the "
                            f"{NPZ_LAYOUT}, or pass the right file.")
    try:
        with np.load(path, allow_pickle=False) as raw:
            keys = set(raw.files)
            missing = [k for k in NPZ_KEYS if k not in keys]
            if missing:
                raise UserDataError(f"{path} lacks the key(s) {', '.join(missing)} (it has "
                                    f"{', '.join(sorted(keys)) or 'no arrays'}). Fix: save it in the {NPZ_LAYOUT}.")
            arrays = {k: _npz_array(raw, k, path) for k in (*NPZ_KEYS, "label_names") if k in keys}
    except UserDataError:
        raise
    except Exception as err:
        raise UserDataError(f"{path} cannot be read as an .npz ({type(err).__name__}: {err}). Fix: check the "
                            f"file (np.savez of the {NPZ_LAYOUT}), or replace it.") from None
    images = {s: _npz_images(arrays[f"{s}_images"], f"{s}_images", path) for s in SPLITS}
    _check_splits_not_empty(path, {s: len(images[s]) for s in SPLITS})
    check_fits(path, sum(len(images[s]) for s in SPLITS), size)
    labels = {s: _npz_labels(arrays[f"{s}_labels"], f"{s}_labels", path, len(images[s])) for s in SPLITS}
    label_names = _npz_label_names(arrays.get("label_names"), labels, path)
    stacked = {s: _stack_same_channels([_resize(im, size) for im in images[s]]) for s in SPLITS}
    if any(a.ndim == 4 for a in stacked.values()):
        stacked = {s: np.repeat(a[..., None], 3, axis=3) if a.ndim == 3 else a for s, a in stacked.items()}
    return {"splits": {s: (stacked[s], labels[s]) for s in SPLITS}, "label_names": label_names,
            "info": {"resized_from": sorted({f"{h}x{w}" for s in SPLITS for h, w in [images[s].shape[1:3]]
                                             if (h, w) != (size, size)})}}


def _npz_array(raw, key: str, path: Path) -> np.ndarray:
    """``raw[key]``; an array that cannot be read (or would need pickle) raises :class:`UserDataError`."""
    try:
        return raw[key]
    except Exception as err:
        fix = "save it as a plain numeric (images, labels) or string (label_names) array, not pickled objects."
        raise UserDataError(f"{path}: key {key!r} cannot be read ({type(err).__name__}: {err}). Fix: {fix}") from None


def _npz_images(arr: np.ndarray, key: str, path: Path) -> np.ndarray:
    """``arr`` checked and converted to uint8 N×H×W or N×H×W×3 (see the module docstring for accepted dtypes)."""
    if arr.ndim == 4 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if not (arr.ndim == 3 or (arr.ndim == 4 and arr.shape[-1] == 3)):
        raise UserDataError(f"{path}: {key} has shape {arr.shape}; expected N×H×W (gray) or N×H×W×3 (RGB). "
                            f"Fix: save the images in the {NPZ_LAYOUT}.")
    if arr.shape[0] and min(arr.shape[1:3]) == 0:
        raise UserDataError(f"{path}: {key} holds images of {arr.shape[1]}×{arr.shape[2]} px, which have no "
                            "pixels. Fix: save the real images (N×H×W with H and W of at least 1).")
    if arr.dtype == np.uint8:
        return arr
    fix = f"Fix: save {key} as uint8 in 0..255 (np.asarray(x * 255).round().astype(np.uint8) for [0, 1] floats)."
    if arr.dtype.kind in "iu":
        if arr.size and (arr.min() < 0 or arr.max() > 255):
            raise UserDataError(f"{path}: {key} is {arr.dtype} with values outside 0..255. {fix}")
        return arr.astype(np.uint8)
    if arr.dtype.kind != "f":
        raise UserDataError(f"{path}: {key} has dtype {arr.dtype}; expected uint8. {fix}")
    if arr.size and (not np.isfinite(arr).all() or arr.min() < 0 or arr.max() > 255):
        raise UserDataError(f"{path}: {key} is {arr.dtype} with values outside [0, 255] (or NaN/inf). {fix}")
    scale = 255.0 if arr.size and arr.max() <= 1 else 1.0
    return np.clip(np.round(arr.astype(np.float64) * scale), 0, 255).astype(np.uint8)


def _npz_labels(arr: np.ndarray, key: str, path: Path, n_images: int) -> np.ndarray:
    """``arr`` checked as one non-negative integer class per image, as int64 (N,)."""
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise UserDataError(f"{path}: {key} has shape {arr.shape}; expected N or N×1 (one class per image; "
                            "multi-label N×K is not supported). Fix: save one integer class per image.")
    if len(arr) != n_images:
        raise UserDataError(f"{path}: {key} has {len(arr)} labels but {key.replace('labels', 'images')} has "
                            f"{n_images} images. Fix: save exactly one label per image.")
    whole = arr.dtype.kind in "iub" or (arr.dtype.kind == "f" and np.isfinite(arr).all()
                                        and np.array_equal(arr, np.round(arr)))
    if not whole or (arr.size and arr.min() < 0):
        raise UserDataError(f"{path}: {key} must hold whole numbers >= 0 (class indices), got dtype {arr.dtype}. "
                            "Fix: save integer class indices 0, 1, 2, ...")
    return arr.astype(np.int64)


def _npz_label_names(names, labels: dict[str, np.ndarray], path: Path) -> dict[int, str]:
    """{index: name} from an optional ``label_names`` array, else ``str(i)``; train needs ≥ 2 classes."""
    top = max((int(lab.max()) for lab in labels.values() if lab.size), default=-1)
    if top >= MAX_CLASSES:
        raise UserDataError(f"{path}: the labels go up to {top}, but class indices must be 0..K-1 with at most "
                            f"{MAX_CLASSES} classes. Fix: save the labels as class indices 0, 1, 2, ...")
    if names is not None and (names.ndim != 1 or names.dtype.kind not in "US"):
        raise UserDataError(f"{path}: label_names must be a 1-D string array, got {names.dtype} of shape "
                            f"{names.shape}. Fix: save np.array(['name of class 0', ...]), or drop that key.")
    names = None if names is None else names.astype(str)
    n_classes = top + 1 if names is None else len(names)
    if names is not None and top >= n_classes:
        raise UserDataError(f"{path}: the labels go up to {top} but label_names has only {n_classes} names. "
                            "Fix: give one name per class in label_names, or drop that key.")
    if len(np.unique(labels["train"])) < 2:
        raise UserDataError(f"{path}: train_labels holds fewer than 2 classes. Fix: include images of at least "
                            "2 classes in the train split.")
    return {i: (str(i) if names is None else str(names[i])) for i in range(n_classes)}
