"""Real medical images first: MedMNIST (2D) and BUSI segmentation, with a loud phantom fallback.

Loaders return :class:`ImageSet` objects holding float tensors in [-1, 1] of
shape N×C×H×W, integer labels and, for segmentation, masks in {0, 1}.

Files live in the data directory (``MEDGAN_DATA_DIR``, default ``data/``):

* a file that is present and whose MD5 matches is used without touching the network;
* a missing file is downloaded to a temporary name, checksummed, then renamed
  into place, so an interrupted download never leaves a file that loads later;
* a file whose MD5 does not match is *never* used: you get an error that names
  the file and the command that repairs it.

When a real dataset is neither cached nor downloadable, loading falls back to
the built-in ``phantom`` set with a prominent warning, unless
``MEDGAN_REQUIRE_REAL_DATA=1`` is set, in which case it raises.
"""
from __future__ import annotations

import difflib
import hashlib
import os
import sys
import urllib.error
import urllib.request
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .io import atomic_path
from .phantom import make_phantom
from .settings import data_dir, env_flag

MEDMNIST_SIZES = (28, 64, 128, 224)
BUSI_SIZES = (128, 256)
PHANTOM = "phantom"
SPLITS = ("train", "val", "test")
COURSE_MAIN = ("pneumoniamnist", "breastmnist", "busi")

# Files whose bytes differ from the published release but whose provenance we
# know and document. They are accepted, and reported as such (never as "official").
ACCEPTED_VARIANTS = {
    ("busi", 128): {
        "a4a883f7bf66f00eead03ed33f48d34a": (
            "course offline test copy: re-derived from the original Dataset_BUSI_with_GT PNGs in "
            "MedSegBench's layout with its own seeded split (not the official MedSegBench file)"
        ),
    },
}

BUSI_LABELS = {0: "benign", 1: "malignant"}
PHANTOM_LABELS = {0: "benign-like (smooth ellipse)", 1: "malignant-like (spiculated)"}
PHANTOM_SPLIT_SIZES = {"train": 452, "val": 64, "test": 131}
PHANTOM_MAX = 5000


class DataError(RuntimeError):
    """Base class of the data layer's errors; each message names the fix."""


class UnknownDatasetError(DataError, ValueError):
    """The dataset name is not one the course knows."""


class UnsupportedSizeError(DataError, ValueError):
    """The image size is not published for this dataset."""


class CorruptDataError(DataError):
    """A cached file fails its checksum or cannot be read."""


class DataUnavailableError(DataError):
    """A real dataset is not cached and cannot be downloaded."""


class PhantomFallbackWarning(UserWarning):
    """Emitted when synthetic phantoms stand in for a real dataset."""


# --------------------------------------------------------------------------- registry
def _medmnist_info() -> dict:
    from medmnist.info import INFO

    return {k: v for k, v in INFO.items() if not v["python_class"].endswith("3D")}


def _medsegbench_info() -> dict:
    from medsegbench.info import INFO

    return INFO


def available_datasets() -> dict[str, str]:
    """Names the course can load, mapped to a one-line kind description."""
    out = {flag: f"MedMNIST 2D ({info['task']}, {info['n_channels']} channel(s))" for flag, info in _medmnist_info().items()}
    out["busi"] = "MedSegBench BUSI breast-ultrasound lesion segmentation (1 channel)"
    out[PHANTOM] = "built-in synthetic ultrasound phantoms with masks (offline fallback)"
    return out


def supported_sizes(name: str) -> tuple[int, ...]:
    """Sizes at which ``name`` is published (phantoms: any size from 8 px up)."""
    kind = dataset_kind(name)
    if kind == "medmnist":
        return MEDMNIST_SIZES
    if kind == "busi":
        return BUSI_SIZES
    return ()


def dataset_kind(name: str) -> str:
    """``'medmnist'``, ``'busi'`` or ``'phantom'``; unknown names raise with the list of names."""
    key = str(name).strip().lower()
    if key == PHANTOM:
        return PHANTOM
    if key == "busi":
        return "busi"
    if key in _medmnist_info():
        return "medmnist"
    names = sorted(available_datasets())
    close = difflib.get_close_matches(key, names, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise UnknownDatasetError(f"Unknown dataset {name!r}.{hint} Available: {', '.join(names)}.")


def _check_size(name: str, size: int) -> int:
    kind = dataset_kind(name)
    try:
        size = int(size)
    except (TypeError, ValueError):
        raise UnsupportedSizeError(f"Image size must be an integer, got {size!r}.") from None
    if kind == PHANTOM:
        if size < 8:
            raise UnsupportedSizeError(f"Phantom size must be at least 8 px, got {size}.")
        return size
    sizes = supported_sizes(name)
    if size not in sizes:
        raise UnsupportedSizeError(
            f"{name} is not published at {size} px. Supported sizes: {', '.join(map(str, sizes))}."
        )
    return size


@dataclass(frozen=True)
class FileSpec:
    """Where a real dataset's file lives and how to check it."""

    name: str
    size: int
    filename: str
    url: str
    md5: str

    @property
    def fetch_command(self) -> str:
        return f"medgan data fetch {self.name} --size {self.size}"


def file_spec(name: str, size: int = 28) -> FileSpec:
    """The published file of ``name`` at ``size`` px, with URL and MD5 from the upstream package."""
    kind = dataset_kind(name)
    size = _check_size(name, size)
    key = str(name).strip().lower()
    if kind == "medmnist":
        info = _medmnist_info()[key]
        suffix = "" if size == 28 else f"_{size}"
        return FileSpec(key, size, f"{key}{suffix}.npz", info[f"url{suffix}"], info[f"MD5{suffix}"])
    if kind == "busi":
        info = _medsegbench_info()["busi"]
        return FileSpec(key, size, f"busi_{size}.npz", info[f"url_{size}"], info[f"MD5_{size}"])
    raise DataError("The phantom dataset is generated in memory and has no file.")


# --------------------------------------------------------------------------- checksums and download
_MD5_CACHE: dict[tuple[str, int, int], str] = {}


def md5sum(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """MD5 of a file (cached per path, size and modification time)."""
    path = Path(path)
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _MD5_CACHE:
        h = hashlib.md5()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(chunk), b""):
                h.update(block)
        _MD5_CACHE[key] = h.hexdigest()
    return _MD5_CACHE[key]


def check_file(spec: FileSpec, root: Path | None = None) -> dict:
    """Status of ``spec``'s file in ``root``: missing, verified (official or documented variant) or corrupt."""
    root = Path(root) if root else data_dir()
    path = root / spec.filename
    out = {"path": str(path), "expected_md5": spec.md5, "url": spec.url}
    if not path.is_file():
        return {**out, "status": "missing", "verified": False}
    digest = md5sum(path)
    variants = ACCEPTED_VARIANTS.get((spec.name, spec.size), {})
    if digest == spec.md5:
        return {**out, "status": "verified", "verified": True, "md5": digest, "variant": None}
    if digest in variants:
        return {**out, "status": "verified", "verified": True, "md5": digest, "variant": variants[digest]}
    return {**out, "status": "corrupt", "verified": False, "md5": digest}


def _corrupt_message(spec: FileSpec, path: str, digest: str) -> str:
    return (
        f"{path} is corrupt or incomplete: its MD5 is {digest}, expected {spec.md5}. "
        f"It will not be used. Fix: delete it and run `{spec.fetch_command}` "
        f"(or `{spec.fetch_command} --force`), or download {spec.url} by hand into {Path(path).parent}."
    )


def _unavailable_message(spec: FileSpec, root: Path, why: str) -> str:
    return (
        f"Real dataset file {spec.filename} is not in {root} and could not be downloaded ({why}). "
        f"Fix: run `{spec.fetch_command}` on a machine with network access (it verifies MD5 {spec.md5}), "
        f"or download {spec.url} by hand into {root} (or point MEDGAN_DATA_DIR at a folder that has it)."
    )


def download(spec: FileSpec, root: Path | None = None, timeout: float | None = None, progress: bool = True) -> Path:
    """Download ``spec`` into ``root`` atomically, verifying its MD5 before the file appears."""
    root = Path(root) if root else data_dir()
    root.mkdir(parents=True, exist_ok=True)
    if env_flag("MEDGAN_OFFLINE"):
        raise DataUnavailableError(_unavailable_message(spec, root, "MEDGAN_OFFLINE=1 forbids network access"))
    timeout = float(timeout or os.environ.get("MEDGAN_DOWNLOAD_TIMEOUT", 60))
    dest = root / spec.filename
    try:
        req = urllib.request.Request(spec.url, headers={"User-Agent": "medgan-course"})
        with urllib.request.urlopen(req, timeout=timeout) as resp, atomic_path(dest) as tmp:
            total = int(resp.headers.get("Content-Length") or 0) or None
            h = hashlib.md5()
            bar = None
            if progress:
                from tqdm.auto import tqdm

                bar = tqdm(total=total, unit="B", unit_scale=True, desc=spec.filename)
            with open(tmp, "wb") as fh:
                for block in iter(lambda: resp.read(1 << 20), b""):
                    fh.write(block)
                    h.update(block)
                    if bar is not None:
                        bar.update(len(block))
            if bar is not None:
                bar.close()
            if h.hexdigest() != spec.md5:
                raise CorruptDataError(
                    f"Downloaded {spec.filename} has MD5 {h.hexdigest()}, expected {spec.md5}; "
                    "the partial file was discarded. Try again later or download by hand."
                )
    except (urllib.error.URLError, OSError, TimeoutError) as err:
        raise DataUnavailableError(_unavailable_message(spec, root, f"{type(err).__name__}: {err}")) from err
    return dest


def ensure_file(name: str, size: int = 28, root: Path | None = None, download_missing: bool = True, force: bool = False) -> Path:
    """Return the verified path of a real dataset file, downloading it if missing.

    Raises :class:`CorruptDataError` for a file that fails its checksum (unless
    ``force`` re-downloads it) and :class:`DataUnavailableError` when it is missing
    and cannot be fetched.
    """
    spec = file_spec(name, size)
    root = Path(root) if root else data_dir()
    status = check_file(spec, root)
    if status["status"] == "verified" and not force:
        return Path(status["path"])
    if status["status"] == "corrupt" and not force:
        raise CorruptDataError(_corrupt_message(spec, status["path"], status["md5"]))
    if not download_missing:
        raise DataUnavailableError(_unavailable_message(spec, root, "downloads disabled"))
    download(spec, root)
    return root / spec.filename


# --------------------------------------------------------------------------- the container
@dataclass
class ImageSet:
    """One split of a dataset as tensors.

    Attributes:
        images: float tensor N×C×H×W in [-1, 1].
        labels: long tensor (N,) for single-label sets, (N, K) for multi-label ones.
        masks: float tensor N×1×H×W in {0, 1} for segmentation sets, else ``None``.
        name: the dataset that was asked for.
        used: the dataset actually used (``'phantom'`` after a fallback).
        label_names: class index → meaning.
        info: provenance (path, MD5 status, licence, citation, task).
    """

    images: torch.Tensor
    labels: torch.Tensor
    name: str
    used: str
    split: str
    size: int
    label_names: dict
    masks: torch.Tensor | None = None
    info: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def channels(self) -> int:
        return int(self.images.shape[1])

    @property
    def is_real(self) -> bool:
        return self.used != PHANTOM

    @property
    def source(self) -> str:
        return "real" if self.is_real else "phantom"

    @property
    def device(self) -> torch.device:
        return self.images.device

    def class_counts(self) -> dict:
        """Samples per class (single-label sets)."""
        lab = self.labels.cpu()
        if lab.ndim > 1:
            return {self.label_names.get(i, str(i)): int(c) for i, c in enumerate(lab.sum(0).tolist())}
        counts = torch.bincount(lab, minlength=len(self.label_names)).tolist()
        return {self.label_names.get(i, str(i)): int(c) for i, c in enumerate(counts)}

    def to(self, device, channels_last: bool = False) -> "ImageSet":
        """A copy with every tensor on ``device`` (optionally in channels_last memory format)."""
        device = torch.device(device)
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        return ImageSet(
            images=self.images.to(device).contiguous(memory_format=fmt),
            labels=self.labels.to(device),
            name=self.name,
            used=self.used,
            split=self.split,
            size=self.size,
            label_names=self.label_names,
            masks=None if self.masks is None else self.masks.to(device).contiguous(memory_format=fmt),
            info=self.info,
        )

    def subset(self, n: int | None = None, generator: torch.Generator | None = None) -> "ImageSet":
        """The first ``n`` samples of a seeded shuffle (all of them when ``n`` is None or ≥ N)."""
        if n is None or n >= len(self):
            return self
        g = generator or torch.Generator().manual_seed(0)
        idx = torch.randperm(len(self), generator=g)[: int(n)].to(self.images.device)
        return ImageSet(
            images=self.images[idx], labels=self.labels[idx], name=self.name, used=self.used, split=self.split,
            size=self.size, label_names=self.label_names, masks=None if self.masks is None else self.masks[idx],
            info=self.info,
        )

    def __repr__(self) -> str:
        shape = "×".join(map(str, self.images.shape))
        extra = ", masks" if self.masks is not None else ""
        return f"ImageSet({self.name!r} {self.split}, {shape}, used={self.used!r}, {self.source}{extra}, device={self.device})"


# --------------------------------------------------------------------------- loading
_USED: dict[str, dict] = {}
_CACHE: dict[tuple, ImageSet] = {}


def datasets_used() -> dict[str, dict]:
    """What this process asked for and what it actually used (recorded in results.json)."""
    return dict(_USED)


def _to_unit_range(arr: np.ndarray) -> torch.Tensor:
    """uint8 N×H×W(×C) → float N×C×H×W in [-1, 1]."""
    t = torch.from_numpy(np.ascontiguousarray(arr))
    if t.ndim == 3:
        t = t.unsqueeze(1)
    else:
        t = t.permute(0, 3, 1, 2)
    return t.float().div_(127.5).sub_(1.0).contiguous()


def _medmnist_split(name: str, split: str, size: int, root: Path) -> tuple[np.ndarray, np.ndarray]:
    import medmnist

    info = _medmnist_info()[name]
    cls = getattr(medmnist, info["python_class"])
    try:
        ds = cls(split=split, root=str(root), download=False, size=size)
    except Exception as err:
        raise CorruptDataError(
            f"{root / file_spec(name, size).filename} could not be read by medmnist ({type(err).__name__}: {err}). "
            f"Fix: delete it and run `{file_spec(name, size).fetch_command}`."
        ) from err
    return np.asarray(ds.imgs), np.asarray(ds.labels)


def _busi_split(split: str, size: int, root: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    import medsegbench

    try:
        ds = medsegbench.BusiMSBench(split=split, size=size, root=str(root), download=False)
        imgs, masks = np.asarray(ds.imgs), np.asarray(ds.labels)
        raw = np.load(root / f"busi_{size}.npz")
        labels = _busi_class_labels(raw, split, imgs)
    except Exception as err:
        raise CorruptDataError(
            f"{root / f'busi_{size}.npz'} could not be read by medsegbench ({type(err).__name__}: {err}). "
            f"Fix: delete it and run `medgan data fetch busi --size {size}`."
        ) from err
    masks = (masks > 0).astype(np.float32)
    return imgs, masks, labels


def _busi_class_labels(raw, split: str, imgs: np.ndarray) -> np.ndarray:
    """Benign (0) / malignant (1) per image, from case ids if stored, else from the per-class arrays."""
    if f"{split}_ids" in raw.files:
        ids = [str(s).lower() for s in raw[f"{split}_ids"]]
        return np.array([1 if "malignant" in s else 0 for s in ids], dtype=np.int64)
    key = f"{split}_images_C2"
    if key not in raw.files:
        return np.zeros(len(imgs), dtype=np.int64)
    malignant = {hashlib.md5(im.tobytes()).hexdigest() for im in raw[key]}
    return np.array([1 if hashlib.md5(im.tobytes()).hexdigest() in malignant else 0 for im in imgs], dtype=np.int64)


_ANNOUNCED: set = set()


def _announce_fallback(name: str, size: int, reason: str, fix: str) -> None:
    """Banner (stderr + notebook) and a warning, once per dataset and size in a process."""
    if (name, size) in _ANNOUNCED:
        print(f"[phantom fallback still in use for {name} ({size} px); fix: {fix}]", file=sys.stderr, flush=True)
        return
    _ANNOUNCED.add((name, size))
    msg = (
        f"USING SYNTHETIC PHANTOM DATA instead of {name} ({size} px): {reason} "
        f"Results below are NOT medical results. Fix: {fix}"
    )
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
                f"Results are <u>not</u> medical results. Fix: <code>{fix}</code></div>"
            ))
    except Exception:  # pragma: no cover - display is best effort
        pass


def _phantom_set(name: str, split: str, size: int, channels: int, n: int | None, seed: int) -> ImageSet:
    count = PHANTOM_SPLIT_SIZES[split]
    if name != PHANTOM and dataset_kind(name) == "medmnist":
        count = min(_medmnist_info()[name]["n_samples"][split], PHANTOM_MAX)
    if n is not None:
        count = min(count, int(n))
    split_seed = seed * 10 + SPLITS.index(split)
    imgs, masks, labels = make_phantom(count, size=size, seed=split_seed, channels=channels)
    return ImageSet(
        images=imgs * 2 - 1, labels=labels, masks=masks, name=name, used=PHANTOM, split=split, size=size,
        label_names=dict(PHANTOM_LABELS),
        info={"source": "phantom", "task": "binary-class + segmentation", "licence": "generated (course code)",
              "seed": split_seed},
    )


def load_dataset(
    name: str,
    split: str = "train",
    size: int = 28,
    *,
    device=None,
    channels_last: bool = False,
    as_rgb: bool = False,
    download: bool = True,
    n: int | None = None,
    phantom_seed: int = 0,
) -> ImageSet:
    """Load one split of a dataset as an :class:`ImageSet` of tensors in [-1, 1].

    Args:
        name: a 2D MedMNIST flag (``pneumoniamnist``, ``breastmnist``, ...), ``busi`` or ``phantom``.
        split: ``train``, ``val`` or ``test``.
        size: image size in px (MedMNIST 28/64/128/224, BUSI 128/256, phantom any ≥ 8).
        device: put the whole split on this device (e.g. ``cfg.device``); CPU when ``None``.
        channels_last: store images in channels_last format (fast convolutions on GPU and CPU).
        as_rgb: repeat grayscale images to 3 channels.
        download: fetch a missing file (MD5-checked); if that fails, fall back to phantoms loudly.
        n: keep at most ``n`` samples (a seeded subset), e.g. for fast mode.
        phantom_seed: seed of the phantom generator (fallback and ``phantom``).
    """
    kind = dataset_kind(name)
    key = str(name).strip().lower()
    size = _check_size(key, size)
    if split not in SPLITS:
        raise ValueError(f"Unknown split {split!r}; use one of {', '.join(SPLITS)}.")
    cache_key = (key, split, size, as_rgb, str(data_dir()), phantom_seed)
    if cache_key in _CACHE:
        ds = _CACHE[cache_key]
    else:
        ds = _load_uncached(key, kind, split, size, as_rgb, download, phantom_seed, n)
        if ds.is_real or n is None:  # a shortened phantom set is not cached as the whole split
            _CACHE[cache_key] = ds
    _USED[key] = {"used": ds.used, "size": size, "source": ds.source,
                  "checksum": ds.info.get("checksum"), "variant": ds.info.get("variant")}
    if n is not None:
        ds = ds.subset(n)
    if device is not None or channels_last:
        ds = ds.to(device or "cpu", channels_last=channels_last)
    return ds


def _load_uncached(key, kind, split, size, as_rgb, download, phantom_seed, n=None) -> ImageSet:
    channels = 3 if as_rgb else 1
    if kind == PHANTOM:
        return _phantom_set(PHANTOM, split, size, channels, n, phantom_seed)
    spec = file_spec(key, size)
    root = data_dir()
    status = check_file(spec, root)
    if status["status"] == "corrupt":
        raise CorruptDataError(_corrupt_message(spec, status["path"], status["md5"]))
    if status["status"] == "missing":
        try:
            if not download:
                raise DataUnavailableError(_unavailable_message(spec, root, "download=False"))
            ensure_file(key, size, root)
            status = check_file(spec, root)
        except DataUnavailableError as err:
            if env_flag("MEDGAN_REQUIRE_REAL_DATA"):
                raise DataUnavailableError(
                    f"MEDGAN_REQUIRE_REAL_DATA=1 forbids the phantom fallback. {err}"
                ) from err
            if kind == "medmnist":
                channels = 3 if (as_rgb or _medmnist_info()[key]["n_channels"] == 3) else 1
            ds = _phantom_set(key, split, size, channels, n, phantom_seed)
            _announce_fallback(key, size, f"{spec.filename} is not in {root} and could not be downloaded.",
                               spec.fetch_command)
            ds.info["fallback_reason"] = str(err)
            return ds
    info = {"source": "real", "path": status["path"], "checksum": "verified", "md5": status["md5"],
            "variant": status.get("variant"), "url": spec.url}
    if kind == "medmnist":
        minfo = _medmnist_info()[key]
        imgs, labels = _medmnist_split(key, split, size, root)
        images = _to_unit_range(imgs)
        if as_rgb and images.shape[1] == 1:
            images = images.repeat(1, 3, 1, 1)
        lab = torch.from_numpy(labels.astype(np.int64))
        if lab.ndim == 2 and lab.shape[1] == 1:
            lab = lab[:, 0]
        info.update(task=minfo["task"], licence=minfo["license"], description=minfo["description"],
                    citation="Yang et al., MedMNIST v2, Scientific Data 10, 41 (2023)")
        names = {int(k): v for k, v in minfo["label"].items()}
        return ImageSet(images=images, labels=lab, name=key, used=key, split=split, size=size,
                        label_names=names, info=info)
    imgs, masks, labels = _busi_split(split, size, root)
    images = _to_unit_range(imgs)
    if as_rgb:
        images = images.repeat(1, 3, 1, 1)
    info.update(task="binary segmentation (lesion vs background) + benign/malignant label", licence="CC0 (source data)",
                citation="Al-Dhabyani et al., Data in Brief 28, 104863 (2020); MedSegBench, Sci Data (2024)")
    return ImageSet(images=images, labels=torch.from_numpy(labels), masks=torch.from_numpy(masks).unsqueeze(1),
                    name="busi", used="busi", split=split, size=size, label_names=dict(BUSI_LABELS), info=info)


def load_splits(name: str, size: int = 28, **kwargs) -> dict[str, ImageSet]:
    """``{'train': ..., 'val': ..., 'test': ...}`` via :func:`load_dataset`."""
    return {split: load_dataset(name, split, size, **kwargs) for split in SPLITS}


def dataset_info(name: str, size: int = 28) -> dict:
    """Per-split counts, channels, real or phantom, path and checksum status, without downloading."""
    kind = dataset_kind(name)
    key = str(name).strip().lower()
    size = _check_size(key, size)
    if kind == PHANTOM:
        return {"name": key, "size": size, "source": "phantom", "channels": 1, "splits": dict(PHANTOM_SPLIT_SIZES),
                "path": None, "checksum": "n/a", "labels": PHANTOM_LABELS}
    spec = file_spec(key, size)
    status = check_file(spec)
    out = {"name": key, "size": size, "file": spec.filename, "path": status["path"], "url": spec.url,
           "expected_md5": spec.md5, "checksum": status["status"], "checksum_verified": status["verified"],
           "variant": status.get("variant")}
    if status["status"] != "verified":
        out["source"] = "phantom (fallback)" if not env_flag("MEDGAN_REQUIRE_REAL_DATA") else "unavailable"
        out["fix"] = spec.fetch_command if status["status"] == "missing" else f"{spec.fetch_command} --force"
        return out
    splits = {s: load_dataset(key, s, size, download=False) for s in SPLITS}
    first = splits["train"]
    out.update(source="real", channels=first.channels, splits={s: len(d) for s, d in splits.items()},
               labels=first.label_names, task=first.info.get("task"), licence=first.info.get("licence"),
               class_counts={s: d.class_counts() for s, d in splits.items()} if first.labels.ndim == 1 else None)
    return out


def fetch(name: str, size: int = 28, force: bool = False) -> Path:
    """Download and verify a dataset file for offline use (``medgan data fetch``)."""
    return ensure_file(name, size, force=force)
