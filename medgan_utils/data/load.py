"""Loading: real medical images first, with a loud phantom fallback.

:func:`load_dataset` returns a new :class:`~medgan_utils.data.imageset.ImageSet`
on every call. Verified real files are read once per process and kept as
uint8 arrays keyed by their path and MD5; phantoms are kept only under a
phantom key. So a kernel that fell back to phantoms gets the real file as soon
as it appears (``medgan data fetch``), with no restart.

When a real dataset is neither cached nor downloadable, loading falls back to
the built-in phantoms with a banner and a warning, unless
``MEDGAN_REQUIRE_REAL_DATA=1``, in which case it raises.
"""
from __future__ import annotations

import hashlib
import os
import sys
import warnings
from pathlib import Path

import numpy as np
import torch

from ..core.env import read_env
from .download import check_file, corrupt_message, data_root, ensure_file, unavailable_message
from .imageset import ImageSet, to_unit_range
from .phantom import make_phantom
from .registry import (PHANTOM, SPLITS, CorruptDataError, DataUnavailableError, check_size, dataset_kind,
                       file_spec, medmnist_info)
from .user_data import USER, check_user_size, dataset_kind_or_user, read_user_dataset, user_dataset_info
from .user_masks import is_segmentation_data, read_user_masks, user_masks_info

BUSI_LABELS = {0: "benign", 1: "malignant"}
PHANTOM_LABELS = {0: "benign-like (smooth ellipse)", 1: "malignant-like (spiculated)"}
PHANTOM_SPLIT_SIZES = {"train": 452, "val": 64, "test": 131}
PHANTOM_MAX = 5000


class PhantomFallbackWarning(UserWarning):
    """Emitted when synthetic phantoms stand in for a real dataset."""


_RAW: dict[tuple, dict] = {}     # (kind, name, split, size, path, md5) -> uint8 arrays; never holds phantoms
_PHANTOMS: dict[tuple, ImageSet] = {}   # ("phantom", name, split, size, channels, seed, n) -> phantom set
_USED: dict[str, dict] = {}
_ANNOUNCED: set = set()


def datasets_used() -> dict[str, dict]:
    """What was asked for and what was actually used since :func:`reset_datasets_used` (results.json)."""
    return {k: dict(v) for k, v in _USED.items()}


def reset_datasets_used() -> None:
    """Start a new record of used datasets (``setup()`` calls this at the top of every notebook)."""
    _USED.clear()


def _announce_fallback(name: str, size: int, reason: str, fix: str) -> None:
    """Banner (stderr + notebook) and a warning; later loads print a one-line reminder."""
    if (name, size) in _ANNOUNCED:
        print(f"[phantom fallback still in use for {name} ({size} px); fix: {fix}]", file=sys.stderr, flush=True)
        return
    _ANNOUNCED.add((name, size))
    msg = (f"USING SYNTHETIC PHANTOM DATA instead of {name} ({size} px): {reason} "
           f"Results below are NOT medical results. Fix: {fix}")
    banner = "!" * 78
    print(f"{banner}\n{msg}\n{banner}", file=sys.stderr, flush=True)
    warnings.warn(msg, PhantomFallbackWarning, stacklevel=5)
    try:  # a coloured banner in notebooks; plain text elsewhere
        from IPython import get_ipython
        from IPython.display import HTML, display

        if get_ipython() is not None:
            display(HTML(
                '<div style="border:3px solid #c00;background:#fee;padding:8px;font-weight:bold">'
                f"⚠ USING SYNTHETIC PHANTOM DATA instead of <code>{name}</code> ({size} px).<br>{reason}<br>"
                f"Results are <u>not</u> medical results. Fix: <code>{fix}</code></div>"))
    except Exception:  # pragma: no cover - display is best effort
        pass


def _phantom_set(name: str, split: str, size: int, channels: int, n: int | None, seed: int) -> ImageSet:
    key = (PHANTOM, name, split, size, channels, seed, n)
    if key not in _PHANTOMS:
        count = PHANTOM_SPLIT_SIZES[split]
        if name != PHANTOM and dataset_kind(name) == "medmnist":
            count = min(medmnist_info()[name]["n_samples"][split], PHANTOM_MAX)
        count = count if n is None else min(count, int(n))
        split_seed = seed * 10 + SPLITS.index(split)
        imgs, masks, labels = make_phantom(count, size=size, seed=split_seed, channels=channels)
        _PHANTOMS[key] = ImageSet(
            images=imgs * 2 - 1, labels=labels, masks=masks, name=name, used=PHANTOM, split=split, size=size,
            label_names=dict(PHANTOM_LABELS),
            info={"source": "phantom", "task": "binary-class + segmentation", "licence": "generated (course code)",
                  "seed": split_seed})
    return _PHANTOMS[key].subset()  # a copy


def _read_medmnist(name: str, split: str, size: int, root: Path) -> dict:
    import medmnist

    cls = getattr(medmnist, medmnist_info()[name]["python_class"])
    try:
        ds = cls(split=split, root=str(root), download=False, size=size)
    except Exception as err:
        spec = file_spec(name, size)
        raise CorruptDataError(f"{root / spec.filename} could not be read by medmnist ({type(err).__name__}: {err}). "
                               f"Fix: delete it and run `{spec.fetch_command}`.") from err
    return {"images": np.asarray(ds.imgs), "labels": np.asarray(ds.labels)}


def _read_busi(split: str, size: int, root: Path) -> dict:
    import medsegbench

    try:
        ds = medsegbench.BusiMSBench(split=split, size=size, root=str(root), download=False)
        imgs, masks = np.asarray(ds.imgs), np.asarray(ds.labels)
        with np.load(root / f"busi_{size}.npz") as raw:
            labels = _busi_class_labels(raw, split, imgs)
    except Exception as err:
        raise CorruptDataError(f"{root / f'busi_{size}.npz'} could not be read by medsegbench "
                               f"({type(err).__name__}: {err}). Fix: delete it and run "
                               f"`medgan data fetch busi --size {size}`.") from err
    return {"images": imgs, "masks": (masks > 0).astype(np.float32), "labels": labels}


def _busi_class_labels(raw, split: str, imgs: np.ndarray) -> np.ndarray:
    """Benign (0) / malignant (1) per image, from case ids if stored, else from the per-class arrays."""
    if f"{split}_ids" in raw.files:
        return np.array([1 if "malignant" in str(s).lower() else 0 for s in raw[f"{split}_ids"]], dtype=np.int64)
    key = f"{split}_images_C2"
    if key not in raw.files:
        return np.zeros(len(imgs), dtype=np.int64)
    malignant = {hashlib.md5(im.tobytes()).hexdigest() for im in raw[key]}
    return np.array([1 if hashlib.md5(im.tobytes()).hexdigest() in malignant else 0 for im in imgs], dtype=np.int64)


def _real_set(key: str, kind: str, split: str, size: int, as_rgb: bool, status: dict) -> ImageSet:
    root = Path(status["path"]).parent
    raw_key = (kind, key, split, size, status["path"], status["md5"])
    if raw_key not in _RAW:
        _RAW[raw_key] = _read_medmnist(key, split, size, root) if kind == "medmnist" else _read_busi(split, size, root)
    raw = _RAW[raw_key]
    images = to_unit_range(raw["images"])
    if as_rgb and images.shape[1] == 1:
        images = images.repeat(1, 3, 1, 1)
    info = {"source": "real", "path": status["path"], "checksum": "verified", "md5": status["md5"],
            "variant": status.get("variant"), "url": file_spec(key, size).url}
    if kind == "medmnist":
        minfo = medmnist_info()[key]
        lab = torch.from_numpy(raw["labels"].astype(np.int64))
        lab = lab[:, 0] if lab.ndim == 2 and lab.shape[1] == 1 else lab
        info.update(task=minfo["task"], licence=minfo["license"], description=minfo["description"],
                    citation="Yang et al., MedMNIST v2, Scientific Data 10, 41 (2023)")
        return ImageSet(images=images, labels=lab, name=key, used=key, split=split, size=size,
                        label_names={int(k): v for k, v in minfo["label"].items()}, info=info)
    info.update(task="binary segmentation (lesion vs background) + benign/malignant label",
                licence="CC0 (source data)",
                citation="Al-Dhabyani et al., Data in Brief 28, 104863 (2020); MedSegBench, Sci Data (2024)")
    return ImageSet(images=images, labels=torch.from_numpy(raw["labels"].copy()),
                    masks=torch.from_numpy(raw["masks"].copy()).unsqueeze(1), name="busi", used="busi",
                    split=split, size=size, label_names=dict(BUSI_LABELS), info=info)


def load_dataset(name: str | os.PathLike, split: str = "train", size: int = 28, *, device=None,
                 channels_last: bool = False, as_rgb: bool = False, download: bool = True, n: int | None = None,
                 phantom_seed: int = 0) -> ImageSet:
    """Load one split of a dataset as a new :class:`ImageSet` of tensors in [-1, 1].

    Args:
        name: a 2D MedMNIST flag (``pneumoniamnist``, ``breastmnist``, ...), ``busi``, ``phantom``, or a path
            to your own data: a folder of class folders or a MedMNIST-style ``.npz`` (see ``user_data``), or
            segmentation data: a MedSegBench-style ``.npz`` or a folder of images/ and masks/ (see ``user_masks``).
        split: ``train``, ``val`` or ``test``.
        size: image size in px (MedMNIST 28/64/128/224, BUSI 128/256, phantom and own data any ≥ 8).
        device: put the whole split on this device (e.g. ``cfg.device``); CPU when ``None``.
        channels_last: store images in channels_last format.
        as_rgb: repeat grayscale images to 3 channels.
        download: fetch a missing file (MD5-checked); if that fails, fall back to phantoms loudly.
        n: keep at most ``n`` samples (a seeded subset), e.g. for fast mode.
        phantom_seed: seed of the phantom generator (fallback and ``phantom``).
    """
    kind = dataset_kind_or_user(name)
    key = os.fspath(name) if kind == USER else str(name).strip().lower()
    size = check_user_size(size, key) if kind == USER else check_size(key, size)
    if split not in SPLITS:
        raise ValueError(f"Unknown split {split!r}. Fix: use one of {', '.join(SPLITS)}.")
    if kind == USER:  # never downloaded, never a phantom
        read = read_user_masks if is_segmentation_data(name) else read_user_dataset
        ds = read(name, split, size, as_rgb=as_rgb)
    else:
        ds = _load(key, kind, split, size, as_rgb, download, phantom_seed, n)
    _USED[key] = {"used": ds.used, "size": size, "source": USER if kind == USER else ds.source,
                  "checksum": ds.info.get("checksum"), "variant": ds.info.get("variant")}
    if n is not None and n < len(ds):
        ds = ds.subset(n)
    if device is not None or channels_last:
        ds = ds.to(device or "cpu", channels_last=channels_last)
    return ds


def _load(key, kind, split, size, as_rgb, download, phantom_seed, n) -> ImageSet:
    channels = 3 if as_rgb else 1
    if kind == PHANTOM:
        return _phantom_set(PHANTOM, split, size, channels, n, phantom_seed)
    spec = file_spec(key, size)
    root = data_root()
    status = check_file(spec, root)
    if status["status"] == "corrupt":
        raise CorruptDataError(corrupt_message(spec, status["path"], status["md5"]))
    if status["status"] == "missing":
        try:
            if not download:
                raise DataUnavailableError(unavailable_message(spec, root, "download=False"))
            ensure_file(key, size, root)
            status = check_file(spec, root)
        except DataUnavailableError as err:
            if read_env().require_real_data:
                raise DataUnavailableError(f"MEDGAN_REQUIRE_REAL_DATA=1 forbids the phantom fallback. {err}") from err
            if kind == "medmnist":
                channels = 3 if (as_rgb or medmnist_info()[key]["n_channels"] == 3) else 1
            ds = _phantom_set(key, split, size, channels, n, phantom_seed)
            _announce_fallback(key, size, f"{spec.filename} is not in {root} and could not be downloaded.",
                               spec.fetch_command)
            ds.info["fallback_reason"] = str(err)
            return ds
    return _real_set(key, kind, split, size, as_rgb, status)


def load_splits(name: str | os.PathLike, size: int = 28, **kwargs) -> dict[str, ImageSet]:
    """``{'train': ..., 'val': ..., 'test': ...}`` via :func:`load_dataset`."""
    return {split: load_dataset(name, split, size, **kwargs) for split in SPLITS}


def dataset_info(name: str | os.PathLike, size: int = 28) -> dict:
    """Per-split counts, channels, real or phantom, path and checksum status; never downloads or records use."""
    kind = dataset_kind_or_user(name)
    if kind == USER:
        return (user_masks_info if is_segmentation_data(name) else user_dataset_info)(name, size)
    key = str(name).strip().lower()
    size = check_size(key, size)
    if kind == PHANTOM:
        return {"name": key, "size": size, "source": "phantom", "channels": 1, "splits": dict(PHANTOM_SPLIT_SIZES),
                "path": None, "checksum": "n/a", "labels": PHANTOM_LABELS}
    spec = file_spec(key, size)
    status = check_file(spec)
    out = {"name": key, "size": size, "file": spec.filename, "path": status["path"], "url": spec.url,
           "expected_md5": spec.md5, "checksum": status["status"], "checksum_verified": status["verified"],
           "variant": status.get("variant")}
    if status["status"] == "corrupt":
        out.update(source="corrupt (refused: will not load)", fix=f"{spec.fetch_command} --force")
        return out
    if status["status"] == "missing":
        out["source"] = "unavailable" if read_env().require_real_data else "phantom (fallback)"
        out["fix"] = spec.fetch_command
        return out
    splits = {s: _real_set(key, kind, s, size, False, status) for s in SPLITS}
    first = splits["train"]
    out.update(source="real", channels=first.channels, splits={s: len(d) for s, d in splits.items()},
               labels=first.label_names, task=first.info.get("task"), licence=first.info.get("licence"),
               class_counts={s: d.class_counts() for s, d in splits.items()} if first.labels.ndim == 1 else None)
    return out
