"""A user's own **segmentation** data (images with lesion masks): an ``.npz`` or a folder of images and masks.

``load_dataset(path)`` sends a path here when :func:`is_segmentation_data` says so; the result is an
``ImageSet`` like BUSI's: images in [-1, 1], ``masks`` N×1×H×W float {0, 1}, ``info["task"] = "segmentation"``.

* ``.npz`` in MedSegBench's layout (as ``busi_128.npz``): ``train_images``, ``train_label``, ``val_images``,
  ``val_label``, ``test_images``, ``test_label`` (``label``, singular: the masks, N×H×W), images uint8
  N×H×W or N×H×W×3 (other dtypes as in ``user_data``), optional ``{split}_ids`` (case names). An ``.npz``
  with ``{split}_labels`` (plural) and no ``{split}_label`` is MedMNIST-style classification data instead.
* Folder: ``root/images/<name>.<ext>`` and ``root/masks/<name>.<ext>``, matched by file stem; a mask may
  also be called ``<name>_mask`` or ``<name>_mask_<k>`` (several masks of one image are joined, as BUSI
  stores them). With ``root/train``, ``root/val`` and ``root/test``, each holding ``images/`` and ``masks/``,
  those are the splits; otherwise a seeded 70/10/20 split (seed :data:`USER_SPLIT_SEED`, stratified by
  class and by empty/non-empty mask), the same on every call.

Masks are binarised per mask file (folder) or per split array (npz): with at most two distinct values the
larger one is lesion ({0, 1}, {0, 255}, bool, or any two values; a single value is lesion when > 0). With
more values and a maximum above 127 (8-bit masks saved as JPEG, or resized with interpolation), lesion is
a value above half the maximum, and a :class:`GreyMaskWarning` names the first such file (save masks as
PNG to avoid it). More values all ≤ 127 look like a label map of several classes and are refused.

Class labels come from the ids (npz) or the file paths relative to ``images/`` (folder) when every one
names exactly one of ``benign``, ``malignant``, ``normal`` as a word: BUSI's convention 0 benign,
1 malignant, and 2 normal only if present. Otherwise every label is 0 (``"unlabelled"``).
Images are resized bilinearly and masks by nearest neighbour to ``size``×``size``. Every error is a
:class:`UserDataError` naming the file, key or folder at fault and the fix.
"""
from __future__ import annotations

import copy
import os
import re
import warnings
import zipfile
from pathlib import Path

import numpy as np
import torch

from .imageset import ImageSet, to_unit_range
from .registry import SPLITS
from .user_data import (IMAGE_SUFFIXES, USER, USER_SPLIT_FRACTIONS, USER_SPLIT_SEED, UserDataError,
                        _decode_image, _is_hidden, _npz_array, _npz_images, _resize, _signature,
                        _stack_same_channels, _stratified_split, check_fits, check_user_size, is_user_path,
                        resolve_user_path)

__all__ = ["GreyMaskWarning", "is_segmentation_data", "read_user_masks", "user_masks_info", "binarise_mask",
           "SEG_NPZ_LAYOUT", "SEG_FOLDER_LAYOUT"]

SEG_NPZ_KEYS = tuple(f"{split}_{part}" for split in SPLITS for part in ("images", "label"))
SEG_NPZ_LAYOUT = ("MedSegBench layout: train_images, train_label, val_images, val_label, test_images, test_label "
                  "(images uint8 N×H×W or N×H×W×3, masks N×H×W with 0 = background), optional train_ids, ...")
SEG_FOLDER_LAYOUT = ("root/images/<name>.png with root/masks/<name>.png (or <name>_mask.png), optionally inside "
                     "root/train, root/val and root/test")
CLASS_WORDS = {"benign": 0, "malignant": 1, "normal": 2}
_WORD = re.compile(r"(?<![a-z])(benign|malignant|normal)(?![a-z])")
_MASK_SUFFIX = re.compile(r"_mask(_\d+)?$", re.IGNORECASE)
_DECODED: dict[tuple, dict] = {}   # (resolved path, size, signature) -> decoded uint8 splits and metadata


class GreyMaskWarning(UserWarning):
    """Masks with more than two grey levels (e.g. saved as JPEG) were thresholded at half their maximum."""


def is_segmentation_data(name) -> bool:
    """True for a path to segmentation data: an .npz with a ``{split}_label`` key, or a folder with ``masks/``
    (in it, or in its ``train/``). Never raises: anything else goes to the classification loader."""
    if not is_user_path(name):
        return False
    try:
        path = Path(os.fspath(name)).expanduser().resolve()
        if path.is_dir():
            return (path / "masks").is_dir() or (path / "train" / "masks").is_dir()
        if path.is_file() and path.suffix.lower() == ".npz" and zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                keys = {n[:-4] for n in archive.namelist() if n.endswith(".npy")}
            return any(f"{split}_label" in keys for split in SPLITS)
    except OSError:
        return False
    return False


def binarise_mask(values: np.ndarray, where: str) -> tuple[np.ndarray, bool]:
    """``(lesion, thresholded)``: a bool mask by the rule of the module docstring, and whether it had to be
    thresholded (more than two values); ``where`` names the file or key in errors."""
    values = np.asarray(values)
    if values.dtype.kind == "f" and not np.isfinite(values).all():
        raise UserDataError(f"{where} holds NaN or infinite values. Fix: save masks as 0 (background) and 1 or "
                            "255 (lesion).")
    levels = np.unique(values)
    if len(levels) <= 2:
        return (values > 0) if len(levels) == 1 else (values == levels[-1]), False
    if levels[-1] > 127:
        return values > levels[-1] / 2, True
    shown = ", ".join(str(v) for v in levels[:6]) + (", ..." if len(levels) > 6 else "")
    raise UserDataError(f"{where} holds {len(levels)} distinct values ({shown}), all <= 127: a label map of "
                        "several classes? Fix: save one binary mask per image, 0 for background and 1 or 255 for "
                        "lesion, e.g. np.where(label > 0, 255, 0).astype(np.uint8).")


def read_user_masks(path, split: str = "train", size: int = 64, *, as_rgb: bool = False) -> ImageSet:
    """One split of the user's segmentation data as a new :class:`ImageSet` with ``masks``.

    Args:
        path: an .npz in MedSegBench's layout or a folder of ``images/`` and ``masks/`` (str or ``os.PathLike``).
        split: ``train``, ``val`` or ``test``.
        size: images and masks are resized to ``size``×``size`` px where they differ (any whole number ≥ 8).
        as_rgb: repeat grayscale images to 3 channels.
    """
    if split not in SPLITS:
        raise ValueError(f"Unknown split {split!r}. Fix: use one of {', '.join(SPLITS)}.")
    given = os.fspath(path)
    size = check_user_size(size, given)
    decoded = _decoded(resolve_user_path(path), size)
    images_u8, masks, labels = decoded["splits"][split]
    images = to_unit_range(images_u8)
    if as_rgb and images.shape[1] == 1:
        images = images.repeat(1, 3, 1, 1)
    info = copy.deepcopy(decoded["info"])
    info["empty_masks"] = int((masks.reshape(len(masks), -1).max(1, initial=0) == 0).sum())
    return ImageSet(images=images, labels=torch.from_numpy(labels.astype(np.int64)), name=given,
                    used=info["path"], split=split, size=size, label_names=dict(decoded["label_names"]),
                    masks=torch.from_numpy(masks.astype(np.float32)).unsqueeze(1), info=info)


def user_masks_info(path, size: int = 64) -> dict:
    """Per-split counts, empty masks, channels, classes and layout (as ``dataset_info`` reports)."""
    given = os.fspath(path)
    size = check_user_size(size, given)
    decoded = _decoded(resolve_user_path(path), size)
    names, splits = decoded["label_names"], decoded["splits"]
    return {"name": given, "size": size, "source": USER, "path": decoded["info"]["path"],
            "layout": decoded["info"]["layout"], "checksum": "n/a", "task": "segmentation",
            "channels": 1 if splits["train"][0].ndim == 3 else 3,
            "splits": {s: len(lab) for s, (_, _, lab) in splits.items()}, "labels": dict(names),
            "class_counts": {s: {names[i]: int(c) for i, c in enumerate(np.bincount(lab, minlength=len(names)))}
                             for s, (_, _, lab) in splits.items()},
            "empty_masks": {s: int((m.reshape(len(m), -1).max(1, initial=0) == 0).sum())
                            for s, (_, m, _) in splits.items()},
            "resized_from": list(decoded["info"]["resized_from"])}


def _decoded(resolved: Path, size: int) -> dict:
    """The decoded splits of ``resolved`` at ``size`` px, read again when its files changed."""
    if resolved.is_dir():
        layout, pairs = _scan_folder(resolved)
        files = [f for items in pairs.values() for image, masks in items for f in (image, *masks)]
        check_fits(resolved, len(files), size)
    else:
        layout, pairs, files = "npz-medsegbench", None, [resolved]
    key = (str(resolved), size, _signature(files))
    if key not in _DECODED:
        for stale in [k for k in _DECODED if k[:2] == key[:2]]:
            del _DECODED[stale]
        decoded = _read_npz(resolved, size) if pairs is None else _read_folder(resolved, layout, pairs, size)
        decoded["info"].update(source=USER, path=str(resolved), layout=layout, task="segmentation")
        _DECODED[key] = decoded
    return _DECODED[key]


def _labels_from_ids(ids: dict[str, list[str]]) -> tuple[dict[str, np.ndarray], dict[int, str], str | None]:
    """Class labels per split from case names (BUSI's convention), or all 0 when any name is not a class."""
    found = {s: [set(_WORD.findall(str(i).lower())) for i in names] for s, names in ids.items()}
    if all(len(w) == 1 for words in found.values() for w in words) and any(found.values()):
        labels = {s: np.array([CLASS_WORDS[w.pop()] for w in words], dtype=np.int64) for s, words in found.items()}
        top = max(int(lab.max(initial=0)) for lab in labels.values())
        names = {0: "benign", 1: "malignant", **({2: "normal"} if top == 2 else {})}
        return labels, names, "ids"
    return {s: np.zeros(len(v), dtype=np.int64) for s, v in ids.items()}, {0: "unlabelled"}, None


def _check_splits_not_empty(path: Path, counts: dict[str, int], what: str) -> None:
    for split in SPLITS:
        if counts[split] == 0:
            raise UserDataError(f"The {split} split of {path} would hold no images. Fix: {what}")


def _warn_grey(first: str, count: int) -> None:
    warnings.warn(f"{count} mask(s) had more than two grey levels (first: {first}); lesion was taken as a value "
                  "above half the mask's maximum. Fix: save masks as PNG with 0 for background and 1 or 255 for "
                  "lesion (JPEG compression adds grey levels).", GreyMaskWarning, stacklevel=4)


# ----------------------------------------------------------------------------------------------- the .npz reader
def _read_npz(path: Path, size: int) -> dict:
    """Read and check a MedSegBench-style .npz; resize images (bilinear) and masks (nearest)."""
    try:
        with np.load(path, allow_pickle=False) as raw:
            keys = set(raw.files)
            missing = [k for k in SEG_NPZ_KEYS if k not in keys]
            if missing:
                raise UserDataError(f"{path} lacks the key(s) {', '.join(missing)} (it has {', '.join(sorted(keys))})."
                                    f" Fix: save it in the {SEG_NPZ_LAYOUT}.")
            wanted = [*SEG_NPZ_KEYS, *(f"{s}_ids" for s in SPLITS if f"{s}_ids" in keys)]
            arrays = {k: _npz_array(raw, k, path) for k in wanted}
    except UserDataError:
        raise
    except Exception as err:
        raise UserDataError(f"{path} cannot be read as an .npz ({type(err).__name__}: {err}). Fix: check the "
                            f"file (np.savez of the {SEG_NPZ_LAYOUT}), or replace it.") from None
    images = {s: _npz_images(arrays[f"{s}_images"], f"{s}_images", path) for s in SPLITS}
    check_fits(path, 2 * sum(len(images[s]) for s in SPLITS), size)  # images and masks
    _check_splits_not_empty(path, {s: len(images[s]) for s in SPLITS},
                            f"give every split images in the {SEG_NPZ_LAYOUT}.")
    masks, grey = {}, []
    for s in SPLITS:
        masks[s], thresholded = _npz_masks(arrays[f"{s}_label"], images[s], s, path)
        grey += [f"{path}: {s}_label"] * thresholded
    if grey:
        _warn_grey(grey[0], len(grey))
    ids = {s: _npz_ids(arrays.get(f"{s}_ids"), s, path, len(images[s])) for s in SPLITS}
    labels, names, source = _labels_from_ids(ids)
    stacked = {s: _stack_same_channels([_resize(im, size) for im in images[s]]) for s in SPLITS}
    if any(a.ndim == 4 for a in stacked.values()):
        stacked = {s: np.repeat(a[..., None], 3, axis=3) if a.ndim == 3 else a for s, a in stacked.items()}
    resized = sorted({f"{h}x{w}" for s in SPLITS for h, w in [images[s].shape[1:3]] if (h, w) != (size, size)})
    return {"splits": {s: (stacked[s], _resize_masks(masks[s], size), labels[s]) for s in SPLITS},
            "label_names": names, "info": {"resized_from": resized, "labels_from": source,
                                           "grey_masks": len(grey)}}


def _npz_masks(arr: np.ndarray, images: np.ndarray, split: str, path: Path) -> tuple[np.ndarray, bool]:
    """``{split}_label`` checked against its images (count, H×W) and binarised to uint8 {0, 1}."""
    key = f"{split}_label"
    if arr.ndim == 4 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim != 3 or arr.dtype.kind not in "biuf":
        raise UserDataError(f"{path}: {key} has shape {arr.shape} and dtype {arr.dtype}; expected numeric masks "
                            f"N×H×W. Fix: save one mask per image in the {SEG_NPZ_LAYOUT}.")
    if arr.shape != images.shape[:3]:
        raise UserDataError(f"{path}: {key} has shape {arr.shape} but {split}_images has {images.shape}: each mask "
                            "must match its image's count, height and width. Fix: save the masks at the images' "
                            "size, in the same order.")
    lesion, thresholded = binarise_mask(arr, f"{path}: {key}")
    return lesion.astype(np.uint8), thresholded


def _npz_ids(arr, split: str, path: Path, n: int) -> list[str]:
    if arr is None:
        return [""] * n
    if arr.ndim != 1 or len(arr) != n:
        raise UserDataError(f"{path}: {split}_ids has shape {arr.shape} but {split}_images has {n} images. Fix: "
                            "save one id (case name) per image, or drop that key.")
    return [str(v) for v in arr]


def _resize_masks(masks: np.ndarray, size: int) -> np.ndarray:
    """uint8 {0, 1} masks N×H×W resized by nearest neighbour to N×size×size (unchanged if already so)."""
    if masks.shape[1:] == (size, size):
        return masks
    from PIL import Image

    return np.stack([np.asarray(Image.fromarray(m).resize((size, size), Image.NEAREST)) for m in masks]) \
        if len(masks) else np.zeros((0, size, size), dtype=np.uint8)


# --------------------------------------------------------------------------------------------- the folder reader
def _scan_folder(root: Path) -> tuple[str, dict[str | None, list[tuple[Path, list[Path]]]]]:
    """The layout and {split or None: [(image file, [its mask files])]}."""
    present = [s for s in SPLITS if (root / s).is_dir()]
    if (root / "masks").is_dir() or not present:
        return "folder-masks", {None: _pairs(root)}
    if len(present) < len(SPLITS):
        missing = ", ".join(f"{s}/" for s in SPLITS if s not in present)
        raise UserDataError(f"{root} has {', '.join(s + '/' for s in present)} but no {missing}. Fix: add the "
                            f"missing split folder(s), each with images/ and masks/, or put images/ and masks/ "
                            f"directly in {root} to let the course split them 70/10/20.")
    return "folder-masks-with-splits", {s: _pairs(root / s) for s in SPLITS}


def _image_files(folder: Path) -> dict[str, Path]:
    """{path relative to ``folder`` without suffix: file} of the image files under ``folder``."""
    if not folder.is_dir():
        raise UserDataError(f"{folder} is missing. Fix: lay the data out as {SEG_FOLDER_LAYOUT}.")
    files = {}
    for f in sorted(folder.rglob("*")):
        rel = f.relative_to(folder)
        if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES and not any(_is_hidden(Path(p)) for p in rel.parts):
            key = rel.with_suffix("").as_posix()
            if key in files:
                raise UserDataError(f"{files[key]} and {f} have the same name apart from the suffix. Fix: rename "
                                    "or remove one of them, so each image and mask is matched by its name.")
            files[key] = f
    if not files:
        raise UserDataError(f"{folder} holds no images ({', '.join(IMAGE_SUFFIXES)}). Fix: add them, laid out as "
                            f"{SEG_FOLDER_LAYOUT}.")
    return files


def _pairs(folder: Path) -> list[tuple[Path, list[Path]]]:
    """Each image under ``folder/images`` with its masks under ``folder/masks`` (same name, or name_mask[_k])."""
    images, masks = _image_files(folder / "images"), _image_files(folder / "masks")
    found: dict[str, list[Path]] = {key: [] for key in images}
    for key, mask in masks.items():
        owner = key if key in images else _MASK_SUFFIX.sub("", key)
        if owner not in images:
            raise UserDataError(f"Mask {mask} has no image: expected {folder / 'images' / owner}.<png|jpg|...>. "
                                "Fix: add that image, rename the mask after its image (name.png or name_mask.png), "
                                "or remove the mask.")
        found[owner].append(mask)
    lonely = [images[k] for k, v in found.items() if not v]
    if lonely:
        more = f" (and {len(lonely) - 1} more)" if len(lonely) > 1 else ""
        raise UserDataError(f"Image {lonely[0]}{more} has no mask in {folder / 'masks'}. Fix: add a mask of the same "
                            "name (name.png or name_mask.png; all black for an image without lesion), or remove the "
                            "image.")
    return [(images[k], found[k]) for k in images]


def _decode_mask(path: Path) -> np.ndarray:
    """The raw values of a mask file, H×W (colour masks are read as gray)."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            img.load()
            return np.asarray(img if img.mode in ("I", "F") or img.mode.startswith("I;16") else img.convert("L"))
    except Exception as err:
        raise UserDataError(f"Mask file {path} cannot be read ({type(err).__name__}: {err}). "
                            "Fix: delete or replace that file (and its image).") from None


def _read_pair(image: Path, masks: list[Path], size: int) -> tuple[np.ndarray, np.ndarray, tuple, list[str]]:
    """(resized image, resized mask {0, 1}, original H×W, thresholded mask files) of one image."""
    pixels, shape = _decode_image(image, size)
    lesion, grey = np.zeros(shape, dtype=bool), []
    for mask in masks:
        raw = _decode_mask(mask)
        if raw.shape != tuple(shape):
            raise UserDataError(f"Mask {mask} is {raw.shape[1]}×{raw.shape[0]} px but its image {image} is "
                                f"{shape[1]}×{shape[0]} px. Fix: save the mask at its image's size.")
        part, thresholded = binarise_mask(raw, f"Mask file {mask}")
        lesion |= part
        grey += [str(mask)] * thresholded
    return pixels, _resize_masks(lesion[None].astype(np.uint8), size)[0], tuple(shape), grey


def _read_folder(root: Path, layout: str, pairs: dict, size: int) -> dict:
    """Decode every image and mask of a scanned folder and split it (seeded and stratified without split folders)."""
    entries = [(split, image, masks) for split, items in pairs.items() for image, masks in items]
    decoded = [_read_pair(image, masks, size) for _, image, masks in entries]
    grey = [g for *_, gs in decoded for g in gs]
    if grey:
        _warn_grey(grey[0], len(grey))
    images = _stack_same_channels([d[0] for d in decoded])
    masks = np.stack([d[1] for d in decoded])
    by_split, names, source = _labels_from_ids({"all": [_relative_id(root, s, image) for s, image, _ in entries]})
    labels = by_split["all"]
    info = {"resized_from": sorted({f"{h}x{w}" for _, _, (h, w), _ in decoded if (h, w) != (size, size)}),
            "labels_from": "file names" if source else None, "grey_masks": len(grey)}
    if layout == "folder-masks":
        has_lesion = masks.reshape(len(masks), -1).max(1, initial=0) > 0
        positions = _stratified_split(labels * 2 + has_lesion, USER_SPLIT_SEED)
        info.update(split_seed=USER_SPLIT_SEED, split_fractions=dict(USER_SPLIT_FRACTIONS))
    else:
        where = np.array([split for split, _, _ in entries])
        positions = {split: np.flatnonzero(where == split) for split in SPLITS}
    _check_splits_not_empty(root, {s: len(idx) for s, idx in positions.items()},
                            "add images (at least 5 for the 70/10/20 split), or give that split its own "
                            "images/ and masks/ folders.")
    return {"splits": {s: (images[idx], masks[idx], labels[idx]) for s, idx in positions.items()},
            "label_names": names, "info": info}


def _relative_id(root: Path, split: str | None, image: Path) -> str:
    """The image's path below its ``images/`` folder, without suffix (e.g. ``benign/case 4``): its case name."""
    base = root / "images" if split is None else root / split / "images"
    return image.relative_to(base).with_suffix("").as_posix()
