"""Limits on a user's own data, checked before anything is decoded: a clear error instead of a hang.

* :data:`MAX_USER_SIZE`: the largest image size own data is resized to (the course's networks go to 256 px);
* :data:`MAX_CLASSES`: class indices must be 0..K-1 with K at most this (a label of 2**40 is a typo, and a
  table over every index up to it would never finish);
* :func:`check_regular`: a path must be a folder or a regular file (``/dev/zero`` or a pipe never ends);
* :func:`memory_shortfall`: decoding must fit in the memory this machine has free.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path

MAX_USER_SIZE = 1024
MAX_CLASSES = 1000
#: bytes per pixel while decoding: the uint8 copy kept per process plus the float32 tensor of one split
BYTES_PER_PIXEL = 1 + 4
#: the share of the free memory decoding may take
MEMORY_SHARE = 0.8


def check_regular(path: Path) -> str | None:
    """Why ``path`` cannot be read as data (a device, pipe or socket), or ``None`` for a folder or regular file."""
    try:
        mode = os.stat(path).st_mode
    except OSError as err:
        return f"cannot be inspected ({err.strerror or err})"
    if stat.S_ISDIR(mode) or stat.S_ISREG(mode):
        return None
    kind = ("a character device" if stat.S_ISCHR(mode) else "a block device" if stat.S_ISBLK(mode)
            else "a pipe" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode) else "not a regular file")
    return f"is {kind}, not a folder or a regular file"


def available_memory() -> int | None:
    """Bytes of memory available to new allocations (Linux ``MemAvailable``, else free pages), or ``None``."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def memory_shortfall(n_images: int, size: int, channels: int = 3, available: int | None = None) -> str | None:
    """Why decoding ``n_images`` at ``size`` px would not fit in memory (one phrase), or ``None`` when it fits."""
    need = int(n_images) * int(size) ** 2 * int(channels) * BYTES_PER_PIXEL
    free = available_memory() if available is None else available
    if free is None or need <= MEMORY_SHARE * free:
        return None
    gib = 2 ** 30
    return (f"{n_images} images at {size}x{size} px need about {need / gib:.1f} GiB to decode, but this machine "
            f"has {free / gib:.1f} GiB free")
