"""Which datasets the course knows, at which sizes, and where their published files live.

MedMNIST's 2D sets come from the ``medmnist`` package's own registry and BUSI
from ``medsegbench``'s, so URLs and MD5s are the upstream ones.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass

from ..core.errors import CourseError, positive_int

MEDMNIST_SIZES = (28, 64, 128, 224)
BUSI_SIZES = (128, 256)
PHANTOM = "phantom"
SPLITS = ("train", "val", "test")

#: The course's datasets, in notebook order, with the size each notebook loads by default.
COURSE_DATASETS = {"pneumoniamnist": 28, "breastmnist": 28, "busi": 128}
#: What ``medgan data fetch --all`` prefetches for an offline workshop: every file the notebooks
#: load by default, plus 64-px PneumoniaMNIST for GPU runs of notebook 03.
COURSE_FILES = [*COURSE_DATASETS.items(), ("pneumoniamnist", 64)]

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


class DataError(CourseError, RuntimeError):
    """Base class of the data layer's errors; each message names the fix."""


class UnknownDatasetError(DataError, ValueError):
    """The dataset name is not one the course knows."""


class UnsupportedSizeError(DataError, ValueError):
    """The image size is not published for this dataset."""


class CorruptDataError(DataError):
    """A cached file fails its checksum or cannot be read."""


class DataUnavailableError(DataError):
    """A real dataset is not cached and cannot be downloaded."""


def medmnist_info() -> dict:
    """MedMNIST's registry, 2D sets only."""
    from medmnist.info import INFO

    return {k: v for k, v in INFO.items() if not v["python_class"].endswith("3D")}


def medsegbench_info() -> dict:
    from medsegbench.info import INFO

    return INFO


def available_datasets() -> dict[str, str]:
    """Names the course can load, mapped to a one-line kind description."""
    out = {flag: f"MedMNIST 2D ({info['task']}, {info['n_channels']} channel(s))"
           for flag, info in medmnist_info().items()}
    out["busi"] = "MedSegBench BUSI breast-ultrasound lesion segmentation (1 channel)"
    out[PHANTOM] = "built-in synthetic ultrasound phantoms with masks (offline fallback)"
    return out


def dataset_kind(name: str) -> str:
    """``'medmnist'``, ``'busi'`` or ``'phantom'``; unknown names raise with the list of names."""
    key = str(name).strip().lower()
    if key in (PHANTOM, "busi"):
        return key
    if key in medmnist_info():
        return "medmnist"
    names = sorted(available_datasets())
    close = difflib.get_close_matches(key, names, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise UnknownDatasetError(f"Unknown dataset {name!r}.{hint} Fix: use one of {', '.join(names)}.")


def supported_sizes(name: str) -> tuple[int, ...]:
    """Sizes at which ``name`` is published (phantoms: any size from 8 px up, shown as ``()``)."""
    kind = dataset_kind(name)
    return {"medmnist": MEDMNIST_SIZES, "busi": BUSI_SIZES}.get(kind, ())


def check_size(name: str, size) -> int:
    """``size`` as a whole number of pixels that ``name`` is published at; anything else raises."""
    kind = dataset_kind(name)
    try:
        size = positive_int(size, f"Image size for {name}")
    except CourseError as err:
        raise UnsupportedSizeError(str(err)) from None
    if kind == PHANTOM:
        if size < 8:
            raise UnsupportedSizeError(f"Phantom size must be at least 8 px, got {size}. Fix: use 8 px or more.")
        return size
    sizes = supported_sizes(name)
    if size not in sizes:
        raise UnsupportedSizeError(f"{name} is not published at {size} px. "
                                   f"Fix: use one of {', '.join(map(str, sizes))}.")
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
    size = check_size(name, size)
    key = str(name).strip().lower()
    if kind == "medmnist":
        info = medmnist_info()[key]
        suffix = "" if size == 28 else f"_{size}"
        return FileSpec(key, size, f"{key}{suffix}.npz", info[f"url{suffix}"], info[f"MD5{suffix}"])
    if kind == "busi":
        info = medsegbench_info()["busi"]
        return FileSpec(key, size, f"busi_{size}.npz", info[f"url_{size}"], info[f"MD5_{size}"])
    raise DataError("The phantom dataset is generated in memory and has no file.")
