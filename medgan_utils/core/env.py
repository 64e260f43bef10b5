"""Every ``MEDGAN_*`` environment variable, parsed in one place.

:func:`read_env` parses them all into one frozen :class:`EnvSettings`; an
invalid value raises :class:`~medgan_utils.core.errors.SettingError` naming the
variable, the value it got and what is allowed. Nothing is cached: each call
reads the environment as it is now, so ``medgan run`` and tests can change it.
:data:`VARIABLES` is the documented list (the README's table is checked
against it by a test).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from .errors import SettingError

TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"0", "false", "no", "off", ""}

#: name → (kind, meaning). Kinds: bool, device, threads, seconds, path.
VARIABLES: dict[str, tuple[str, str]] = {
    "MEDGAN_FAST": ("bool", "fast mode for every notebook (a notebook's FAST parameter wins)"),
    "MEDGAN_DEVICE": ("device", "auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps"),
    "MEDGAN_THREADS": ("threads", "CPU threads for torch, 1 to 1024 (default: all cores)"),
    "MEDGAN_DATA_DIR": ("path", "dataset cache (default: data/ in the course folder)"),
    "MEDGAN_REQUIRE_REAL_DATA": ("bool", "raise instead of falling back to phantoms"),
    "MEDGAN_OFFLINE": ("bool", "never touch the network; only cached, verified files are used"),
    "MEDGAN_DOWNLOAD_TIMEOUT": ("seconds", "network timeout of a download (default 60)"),
    "MEDGAN_HEADLESS": ("bool", "the batch flag: widgets become static figures and exercise answer cells run the stored "
                                "solution (medgan run, the course runner and the tests set it)"),
    "MEDGAN_WIDGETS": ("bool", "force live widgets (exercise cells stop a learner whatever the front end)"),
    "MEDGAN_RESULTS_DIR": ("path", "where results.json goes (default: runs/<notebook>/)"),
    "MEDGAN_CACHE_DIR": ("path", "feature nets and stored checks (default: runs/cache/)"),
    "MEDGAN_INCEPTION_WEIGHTS": ("path", "a local Inception-v3 weights file for the optional Inception FID"),
    "MEDGAN_PRETRAINED": ("path", "a workshop pack folder (medgan pack build): notebooks reuse its trained networks "
                                  "(a notebook's PRETRAINED parameter wins)"),
}

_DEVICE_RE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


def _bool(name: str, raw: str) -> bool:
    word = raw.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise SettingError(f"{name}={raw!r} is not valid: use 1/0, true/false, yes/no or on/off (or unset it).")


#: More threads than this is a typo (torch's thread count is a C int, and no machine has this many cores).
MAX_THREADS = 1024


def _threads(name: str, raw: str) -> int | None:
    if not raw.strip():
        return None
    try:
        n = int(raw.strip()) if len(raw.strip()) <= 12 else 0
    except ValueError:
        n = 0
    if not 1 <= n <= MAX_THREADS:
        shown = raw if len(raw) <= 40 else raw[:37] + "..."
        raise SettingError(f"{name}={shown!r} is not valid: use a whole number from 1 to {MAX_THREADS}, e.g. "
                           f"{name}=2 (or unset it to use every core).")
    return n


def _seconds(name: str, raw: str) -> float | None:
    if not raw.strip():
        return None
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not (value > 0 and value != float("inf")):
        raise SettingError(f"{name}={raw!r} is not valid: use a number of seconds > 0, e.g. {name}=120.")
    return value


def _device(name: str, raw: str) -> str:
    word = raw.strip().lower() or "auto"
    if not _DEVICE_RE.match(word):
        raise SettingError(f"{name}={raw!r} is not valid: use auto, cpu, cuda, cuda:N or mps (or unset it).")
    return word


def _path(name: str, raw: str) -> Path | None:
    return Path(raw).expanduser() if raw.strip() else None


_PARSERS = {"bool": _bool, "threads": _threads, "seconds": _seconds, "device": _device, "path": _path}


@dataclass(frozen=True)
class EnvSettings:
    """The parsed ``MEDGAN_*`` variables (``None``: not set, use the default)."""

    fast: bool = False
    device: str = "auto"
    threads: int | None = None
    data_dir: Path | None = None
    require_real_data: bool = False
    offline: bool = False
    download_timeout: float | None = None
    headless: bool = False
    widgets: bool = False
    results_dir: Path | None = None
    cache_dir: Path | None = None
    inception_weights: Path | None = None
    pretrained: Path | None = None

    @property
    def timeout(self) -> float:
        """The download timeout in seconds (60 unless ``MEDGAN_DOWNLOAD_TIMEOUT`` says otherwise)."""
        return self.download_timeout or 60.0


def read_env(environ: Mapping[str, str] | None = None) -> EnvSettings:
    """Parse every ``MEDGAN_*`` variable of ``environ`` (default ``os.environ``)."""
    environ = os.environ if environ is None else environ
    values = {}
    for name, (kind, _meaning) in VARIABLES.items():
        raw = environ.get(name)
        if raw is not None:
            values[name[len("MEDGAN_"):].lower()] = _PARSERS[kind](name, raw)
    return EnvSettings(**values)


def course_root() -> Path | None:
    """The repository root if the package runs from a checkout (or the cwd is in one), else ``None``."""
    here = Path(__file__).resolve().parents[2]
    if (here / "notebooks").is_dir() and (here / "medgan_utils").is_dir():
        return here
    cwd = Path.cwd()
    for cand in (cwd, *cwd.parents):
        if (cand / "notebooks").is_dir() and (cand / "medgan_utils").is_dir():
            return cand
    return None


def _course_folder() -> Path:
    return course_root() or Path.cwd()


def data_dir() -> Path:
    """The dataset cache: ``MEDGAN_DATA_DIR``, else ``data/`` in the course folder."""
    env = read_env()
    return (env.data_dir or _course_folder() / "data").resolve()


def cache_dir() -> Path:
    """Feature nets and stored checks: ``MEDGAN_CACHE_DIR``, else ``runs/cache/`` in the course folder."""
    return read_env().cache_dir or _course_folder() / "runs" / "cache"


def results_dir(notebook: str) -> Path:
    """Where a notebook's ``results.json`` goes: ``MEDGAN_RESULTS_DIR``, else ``runs/<notebook>/``."""
    return read_env().results_dir or _course_folder() / "runs" / notebook
