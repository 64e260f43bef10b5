"""Share the cores between course kernels: no oversubscription.

Two kernels that each run 2 OpenMP threads on 2 cores spin against each other: a DCGAN step measured 34 img/s
that way against 115–127 img/s with one thread each. So every kernel that calls ``setup()`` records itself in
``<cache>/kernels/<pid>.json`` with its thread count, and a new kernel takes only the cores that the live ones
leave (at least one). ``MEDGAN_THREADS`` (set by hand, or by ``medgan sweep`` for its workers) always wins.
``medgan env`` lists the live kernels and warns when they share cores.

"Live" means the recorded pid runs and started at the recorded time (a reused pid after a crash is not counted).
"""
from __future__ import annotations

import atexit
import json
import os
import time
from pathlib import Path

from .env import cache_dir
from .errors import CourseError
from .io import _process_start, atomic_write_json

__all__ = ["usable_cores", "live_kernels", "register_kernel", "threads_for_new_kernel", "kernels_folder", "in_kernel"]


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity, e.g. a container's share), not the machine's count."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def kernels_folder() -> Path:
    return cache_dir() / "kernels"


def live_kernels(exclude_self: bool = True) -> list[dict]:
    """The course kernels that run now: ``[{"pid", "threads", "started"}]``; stale records are removed."""
    folder = kernels_folder()
    out = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            rec = json.loads(path.read_text())
            pid = int(rec["pid"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        alive = _process_start(pid) is not None and _process_start(pid) == rec.get("start")
        if not alive:
            path.unlink(missing_ok=True)
            continue
        if exclude_self and pid == os.getpid():
            continue
        out.append({"pid": pid, "threads": int(rec.get("threads", 1)), "started": rec.get("started")})
    return out


def threads_for_new_kernel(cores: int | None = None, others: list[dict] | None = None) -> int:
    """The cores left by the live course kernels (at least one)."""
    cores = usable_cores() if cores is None else int(cores)
    others = live_kernels() if others is None else others
    return max(1, cores - sum(k["threads"] for k in others))


_REGISTERED: set = set()


def in_kernel() -> bool:
    """True inside a Jupyter kernel (a notebook, nbval, papermill), not in a plain Python process or a test."""
    try:
        from IPython import get_ipython

        shell = get_ipython()
    except ImportError:  # pragma: no cover - IPython is a dependency
        return False
    return shell is not None and hasattr(shell, "kernel")


def register_kernel(threads: int) -> Path | None:
    """Record this process as a course kernel using ``threads`` threads, until it exits. Best effort: a cache
    folder that cannot be written only loses the record."""
    path = kernels_folder() / f"{os.getpid()}.json"
    try:
        atomic_write_json(path, {"pid": os.getpid(), "threads": int(threads), "start": _process_start(os.getpid()),
                                 "started": time.time()})
    except (OSError, CourseError):
        return None
    if path not in _REGISTERED:
        _REGISTERED.add(path)
        atexit.register(lambda: path.unlink(missing_ok=True))
    return path
