"""Atomic file writes, folder locks and safe checkpoints.

A write goes to a temporary ``.<name>.<pid>.<random>.part`` file in the same
folder, is flushed to disk, given the mode the umask allows (as ``open()``
would), then renamed over the target with :func:`os.replace`: a crash or
Ctrl-C never leaves a half-written file that a later run would load, and a
shared workshop folder stays readable to everyone the umask allows. Leftover
``.part`` files of dead processes are removed by :func:`remove_stale_parts`.
Checkpoints are plain dicts of tensors and numbers, loaded with
``torch.load(weights_only=True)``.
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

import torch

from .errors import CourseError, CoursePathError, path_error

PART_SUFFIX = ".part"
#: errors of the storage itself while a file is written (disk full, quota, too large, read-only, I/O)
WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EIO}
STALE_PART_SECONDS = 24 * 3600


def umask_mode(base: int = 0o666) -> int:
    """``base`` with the process umask applied: the mode a plain ``open()`` would give a new file."""
    mask = os.umask(0)
    os.umask(mask)
    return base & ~mask


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def remove_stale_parts(folder: str | os.PathLike, name: str | None = None) -> list[Path]:
    """Delete ``.part`` files in ``folder`` left by processes that died (or older than a day).

    ``name`` limits the clean-up to the temporary files of one target file.
    Returns the paths removed. A missing folder is not an error.
    """
    folder = Path(folder)
    removed = []
    if not folder.is_dir():
        return removed
    prefix = f".{name}." if name else "."
    for p in folder.iterdir():
        if not (p.name.startswith(prefix) and p.name.endswith(PART_SUFFIX)):
            continue
        pid_text = p.name[len(prefix):].split(".")[0] if name else ""
        try:
            old = time.time() - p.stat().st_mtime > STALE_PART_SECONDS
        except OSError:
            continue
        dead = pid_text.isdigit() and not _pid_alive(int(pid_text))
        if dead or old:
            with contextlib.suppress(OSError):
                p.unlink()
                removed.append(p)
    return removed


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, role: str = "file", fix: str = "choose a writable folder") -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it replaces ``path`` atomically.

    If the body raises, the temporary file is removed and ``path`` is untouched.
    An ``OSError`` while creating the folder or the file becomes a
    :class:`CoursePathError` naming ``role``, the path and ``fix``.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=PART_SUFFIX, dir=path.parent)
    except OSError as err:
        raise path_error(path, f"cannot write {role}", err, fix) from err
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
    except OSError as err:  # a full disk while writing: name the file, not the temporary one
        with contextlib.suppress(OSError):
            tmp_path.unlink()
        if isinstance(err, CourseError) or err.errno not in WRITE_ERRNOS:
            raise  # e.g. a network error while a download streams into the file: the caller says what it is
        raise path_error(path, f"cannot write {role}", err, fix) from err
    except BaseException:
        with contextlib.suppress(OSError):
            tmp_path.unlink()
        raise
    try:
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp_path, umask_mode())
        os.replace(tmp_path, path)
    except OSError as err:
        with contextlib.suppress(OSError):
            tmp_path.unlink()
        raise path_error(path, f"cannot write {role}", err, fix) from err


def atomic_write_bytes(path: str | os.PathLike, data: bytes, **kw) -> Path:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path, **kw) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str, **kw) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"), **kw)


def atomic_write_json(path: str | os.PathLike, obj: Any, **kw) -> Path:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n", **kw)


def _json_default(obj):
    if isinstance(obj, torch.Tensor):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item"):
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    return str(obj)


class FolderInUse(CourseError, RuntimeError):
    """Another live process holds the folder's lock."""


def _process_start(pid: int) -> str | None:
    """When process ``pid`` started (clock ticks since boot, Linux), to tell a reused pid from the original."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _host() -> str:
    return os.uname().nodename if hasattr(os, "uname") else "localhost"


def lock_owner(lock: Path) -> dict | None:
    """The holder recorded in a lock file, ``{"pid", "host", "start", "alive"}``; ``None`` without a readable
    one. A holder on another host counts as alive (its pid cannot be checked from here); a local pid that now
    belongs to a process started at another time (a reused pid after a kill -9) counts as dead."""
    try:
        fields = lock.read_text().split()
        pid = int(fields[0])
    except (OSError, ValueError, IndexError):
        return None
    host = fields[1] if len(fields) > 1 else None
    start = fields[2] if len(fields) > 2 and fields[2] != "-" else None
    if host is not None and host != _host():
        alive = True
    else:
        alive = _pid_alive(pid) and (start is None or _process_start(pid) in (None, start))
    return {"pid": pid, "host": host, "start": start, "alive": alive}


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike, what: str = "results folder", fix: str = "wait for it to finish, "
                "or choose another output folder") -> Iterator[Path]:
    """Hold ``folder/.medgan.lock`` for the body; a live holder makes this raise :class:`FolderInUse`.

    The lock file holds the owner's pid, host and start time (:func:`lock_owner`); a lock left by a dead
    process (killed with -9, say) is taken over, one held on another host is respected.
    """
    folder = Path(folder)
    lock = folder / ".medgan.lock"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise path_error(folder, f"cannot create {what}", err, "choose a writable folder") from err
    for _attempt in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, umask_mode())
        except FileExistsError:
            owner = lock_owner(lock)
            if owner and owner["alive"]:  # our own pid too: a second run in this process
                where = f" on host {owner['host']}" if owner["host"] not in (None, _host()) else ""
                gone = f"; if that run is gone, delete {lock}" if where else ""
                raise FolderInUse(f"The {what} {folder} is in use by another run{where} (pid {owner['pid']}). "
                                  f"Fix: {fix}{gone}.") from None
            with contextlib.suppress(OSError):
                lock.unlink()
            continue
        except OSError as err:
            raise path_error(folder, f"cannot lock {what}", err, "choose a writable folder") from err
        with os.fdopen(fd, "w") as fh:
            fh.write(f"{os.getpid()} {_host()} {_process_start(os.getpid()) or '-'}\n")
        try:
            yield lock
        finally:
            with contextlib.suppress(OSError):
                lock.unlink()
        return
    raise FolderInUse(f"Could not lock the {what} {folder}. Fix: {fix}.")


def save_checkpoint(path: str | os.PathLike, state: dict) -> Path:
    """Save a checkpoint dict atomically with :func:`torch.save`.

    ``state`` must hold only tensors, numbers, strings, lists and dicts so that it
    loads back with ``weights_only=True``.
    """
    fix = "choose a writable checkpoint folder with free space"
    with atomic_path(path, role="checkpoint", fix=fix) as tmp:
        try:
            torch.save(state, tmp)
        except RuntimeError as err:  # torch's writer reports a full disk as "file write failed"
            if "write" not in str(err).lower():
                raise
            raise CoursePathError(f"cannot write checkpoint {path}: {str(err).splitlines()[0][:120]} (is the disk "
                                  f"full?). Fix: {fix}") from err
    return Path(path)


class CheckpointError(CourseError, RuntimeError):
    """A checkpoint file is missing, unreadable, or not the kind expected."""


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Load a checkpoint dict with ``weights_only=True``; anything else gives a :class:`CheckpointError`."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"Checkpoint {path} does not exist. Fix: check the path, or train without resuming.")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # truncated zip, pickled code objects, unreadable file, ...
        raise CheckpointError(
            f"Checkpoint {path} could not be loaded safely ({type(err).__name__}: {err}). "
            "Fix: it may be truncated or hold arbitrary Python objects; delete it to start over."
        ) from err
    if not isinstance(state, dict):
        raise CheckpointError(f"Checkpoint {path} holds a {type(state).__name__}, not a dict. "
                              "Fix: delete it, or point to a checkpoint written by the course.")
    return state


__all__ = ["atomic_path", "atomic_write_bytes", "atomic_write_text", "atomic_write_json", "umask_mode",
           "remove_stale_parts", "folder_lock", "lock_owner", "FolderInUse", "save_checkpoint", "load_checkpoint",
           "CheckpointError", "CoursePathError"]
