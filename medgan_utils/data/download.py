"""Checksums and downloads: a file is used only when its MD5 matches.

* a present file whose MD5 matches (or is a documented variant) is used without the network;
* a missing file is downloaded to a temporary ``.part`` name, checksummed, then
  renamed into place, so an interrupted download never leaves a file that loads later;
  ``.part`` files left by a killed download are removed when the next one starts;
* a file whose MD5 does not match is never used: the error names it and the fix.

Offline (``MEDGAN_OFFLINE=1``) nothing is downloaded and nothing is created.
"""
from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from pathlib import Path

from ..core.env import data_dir, read_env
from ..core.errors import CourseError, describe_os_error
from ..core.io import atomic_path, remove_stale_parts
from .registry import ACCEPTED_VARIANTS, CorruptDataError, DataError, DataUnavailableError, FileSpec, file_spec

_MD5_CACHE: dict[tuple[str, int, int], str] = {}


class DataFolderError(DataError):
    """The data folder itself cannot be used (a file, unreadable, not creatable)."""


def data_root(root: Path | None = None) -> Path:
    """The data folder (``root`` or ``MEDGAN_DATA_DIR``); a file there, or above it, raises :class:`DataFolderError`."""
    root = Path(root) if root else data_dir()
    blocker = next((p for p in (root, *root.parents) if p.exists()), None)
    if blocker is not None and not blocker.is_dir():
        what = "is a file" if blocker == root else f"cannot be created: {blocker} is a file"
        raise DataFolderError(f"The data folder {root} {what}, not a folder. Fix: point MEDGAN_DATA_DIR at a "
                              "folder (or unset it to use data/ in the course folder).")
    return root


def md5sum(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """MD5 of a file (remembered per path, size and modification time)."""
    path = Path(path)
    try:
        st = path.stat()
        key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
        if key not in _MD5_CACHE:
            h = hashlib.md5()
            with open(path, "rb") as fh:
                for block in iter(lambda: fh.read(chunk), b""):
                    h.update(block)
            _MD5_CACHE[key] = h.hexdigest()
    except OSError as err:
        raise DataFolderError(f"Cannot read dataset file {path}: {describe_os_error(err)}. Fix: make it readable "
                              "(chmod a+r), or delete it and fetch it again.") from err
    return _MD5_CACHE[key]


def check_file(spec: FileSpec, root: Path | None = None) -> dict:
    """Status of ``spec``'s file in ``root``: missing, verified (official or documented variant) or corrupt."""
    root = data_root(root)
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


def corrupt_message(spec: FileSpec, path: str, digest: str) -> str:
    return (f"{path} is corrupt or incomplete: its MD5 is {digest}, expected {spec.md5}. It will not be used. "
            f"Fix: delete it and run `{spec.fetch_command}` (or `{spec.fetch_command} --force`), "
            f"or download {spec.url} by hand into {Path(path).parent}.")


def unavailable_message(spec: FileSpec, root: Path, why: str) -> str:
    if (root / spec.filename).is_file():  # a corrupt copy (or --force over a good one): it is there
        return (f"{root / spec.filename} is present, but a fresh copy could not be downloaded ({why}); the file "
                f"was left as it is. Fix: run `{spec.fetch_command} --force` on a machine with network access, or "
                f"copy a good {spec.filename} (MD5 {spec.md5}) into {root}.")
    return (f"Real dataset file {spec.filename} is not in {root} and could not be downloaded ({why}). "
            f"Fix: run `{spec.fetch_command}` on a machine with network access (it verifies MD5 {spec.md5}), "
            f"or download {spec.url} by hand into {root} (or point MEDGAN_DATA_DIR at a folder that has it).")


def download(spec: FileSpec, root: Path | None = None, timeout: float | None = None, progress: bool = True) -> Path:
    """Download ``spec`` into ``root`` atomically, verifying its MD5 before the file appears."""
    root = data_root(root)
    env = read_env()
    if env.offline:
        raise DataUnavailableError(unavailable_message(spec, root, "MEDGAN_OFFLINE=1 forbids network access"))
    timeout = float(timeout or env.timeout)
    remove_stale_parts(root, spec.filename)
    dest = root / spec.filename
    fix = "point MEDGAN_DATA_DIR at a writable folder"
    try:
        req = urllib.request.Request(spec.url, headers={"User-Agent": "medgan-course"})
        with urllib.request.urlopen(req, timeout=timeout) as resp, \
                atomic_path(dest, role="dataset file", fix=fix) as tmp:
            digest = _stream_to(resp, tmp, spec.filename, progress)
            if digest != spec.md5:
                raise CorruptDataError(f"Downloaded {spec.filename} has MD5 {digest}, expected {spec.md5}; the partial "
                                       "file was discarded. Fix: try again later, or download it by hand.")
    except CourseError:
        raise
    except (urllib.error.URLError, OSError, TimeoutError) as err:
        raise DataUnavailableError(unavailable_message(spec, root, f"{type(err).__name__}: {err}")) from err
    return dest


def _stream_to(resp, tmp: Path, label: str, progress: bool) -> str:
    total = int(resp.headers.get("Content-Length") or 0) or None
    h = hashlib.md5()
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, unit="B", unit_scale=True, desc=label)
    try:
        with open(tmp, "wb") as fh:
            for block in iter(lambda: resp.read(1 << 20), b""):
                fh.write(block)
                h.update(block)
                if bar is not None:
                    bar.update(len(block))
    finally:
        if bar is not None:
            bar.close()
    return h.hexdigest()


def ensure_file(name: str, size: int = 28, root: Path | None = None, download_missing: bool = True,
                force: bool = False) -> Path:
    """The verified path of a real dataset file, downloading it if missing.

    Raises :class:`CorruptDataError` for a file that fails its checksum (unless
    ``force`` re-downloads it) and :class:`DataUnavailableError` when it is missing
    and cannot be fetched.
    """
    spec = file_spec(name, size)
    root = data_root(root)
    status = check_file(spec, root)
    if status["status"] == "verified" and not force:
        return Path(status["path"])
    if status["status"] == "corrupt" and not force:
        raise CorruptDataError(corrupt_message(spec, status["path"], status["md5"]))
    if not download_missing:
        raise DataUnavailableError(unavailable_message(spec, root, "downloads disabled"))
    download(spec, root)
    return root / spec.filename


def fetch(name: str, size: int = 28, force: bool = False) -> Path:
    """Download and verify a dataset file for offline use (``medgan data fetch``)."""
    return ensure_file(name, size, force=force)
