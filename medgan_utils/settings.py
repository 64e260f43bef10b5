"""Course-wide settings: device choice, seeding, fast/full mode and threads.

Every notebook calls :func:`setup` right after its ``parameters`` cell, so the
same cell runs on CUDA, Apple MPS or a laptop CPU without edits.
"""
from __future__ import annotations

import os
import platform
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"0", "false", "no", "off", ""}


def env_flag(name: str, default: bool = False) -> bool:
    """Read a boolean environment variable (``1/true/yes/on`` or ``0/false/no/off``)."""
    raw = os.environ.get(name)
    if raw is None:
        return default
    word = raw.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ValueError(f"{name}={raw!r} is not a boolean; use 1/0, true/false, yes/no or on/off.")


def is_fast(FAST: bool | None = None) -> bool:
    """Fast mode: the papermill parameter ``FAST`` wins, else ``MEDGAN_FAST``, else off."""
    if FAST is not None:
        if isinstance(FAST, str):  # papermill -p FAST true arrives as a string in some shells
            return FAST.strip().lower() in TRUE_WORDS
        return bool(FAST)
    return env_flag("MEDGAN_FAST", False)


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def get_device(name: str | None = None) -> torch.device:
    """Pick the compute device: ``name``, else ``MEDGAN_DEVICE``, else cuda → mps → cpu.

    Naming a device that is not present raises a ``RuntimeError`` that says what
    *is* available, instead of failing later inside a CUDA call.
    """
    wanted = name or os.environ.get("MEDGAN_DEVICE") or "auto"
    wanted = str(wanted).strip().lower()
    if wanted == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(wanted)
    except RuntimeError as err:
        raise RuntimeError(f"Unknown device {wanted!r}; use auto, cpu, cuda, cuda:N or mps.") from err
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError(
                f"Device {wanted!r} was requested but no CUDA GPU is visible "
                f"(available: {', '.join(available_devices())}). "
                "Unset MEDGAN_DEVICE / DEVICE or set it to 'cpu'."
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise RuntimeError(f"{wanted!r} requested but only {torch.cuda.device_count()} CUDA device(s) exist.")
    elif dev.type == "mps" and not _mps_available():
        raise RuntimeError(
            f"Device 'mps' was requested but Apple MPS is not available "
            f"(available: {', '.join(available_devices())})."
        )
    elif dev.type not in {"cpu", "cuda", "mps"}:
        raise RuntimeError(f"Unsupported device {wanted!r}; use auto, cpu, cuda, cuda:N or mps.")
    return dev


def available_devices() -> list[str]:
    """Names of the devices this machine can use, CPU last."""
    out = [f"cuda:{i}" for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
    if _mps_available():
        out.append("mps")
    return out + ["cpu"]


def device_name(device: torch.device) -> str:
    """Human-readable name of ``device`` (the GPU model on CUDA)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "mps":
        return "Apple MPS"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "cpu"


def configure_threads(n: int | None = None) -> int:
    """Use all physical cores for intra-op work (``MEDGAN_THREADS`` overrides); returns the count."""
    if n is None:
        env = os.environ.get("MEDGAN_THREADS")
        n = int(env) if env else (os.cpu_count() or 1)
    n = max(1, int(n))
    torch.set_num_threads(n)
    return n


def seed_everything(seed: int = 0, deterministic: bool = True) -> torch.Generator:
    """Seed Python, NumPy and torch (all devices) in one call.

    With ``deterministic=True`` cuDNN picks deterministic kernels and torch warns
    (not fails) where an op has no deterministic version. Returns a CPU
    ``torch.Generator`` seeded the same way, for code that wants its own stream.
    """
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        if torch.backends.cudnn.is_available():
            torch.backends.cudnn.deterministic = True
            torch.backends.cudnn.benchmark = False
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    else:
        torch.use_deterministic_algorithms(False)
    return torch.Generator().manual_seed(seed)


def data_dir() -> Path:
    """The dataset cache: ``MEDGAN_DATA_DIR``, else ``data/`` at the course root (or the cwd)."""
    env = os.environ.get("MEDGAN_DATA_DIR")
    if env:
        return Path(env).expanduser().resolve()
    root = course_root()
    return (root / "data") if root else (Path.cwd() / "data")


def course_root() -> Path | None:
    """The repository root if the package runs from a checkout, else ``None``."""
    here = Path(__file__).resolve().parent.parent
    if (here / "notebooks").is_dir() and (here / "medgan_utils").is_dir():
        return here
    cwd = Path.cwd()
    for cand in (cwd, *cwd.parents):
        if (cand / "notebooks").is_dir() and (cand / "medgan_utils").is_dir():
            return cand
    return None


@dataclass
class Settings:
    """What :func:`setup` decided; notebooks keep it as ``cfg``."""

    fast: bool
    device: torch.device
    seed: int
    threads: int
    data_dir: Path
    extra: dict = field(default_factory=dict)

    @property
    def mode(self) -> str:
        return "fast" if self.fast else "full"

    @property
    def on_gpu(self) -> bool:
        return self.device.type in {"cuda", "mps"}

    def pick(self, fast, full, gpu=None):
        """Choose a setting by mode: ``fast`` in fast mode, ``gpu`` on a GPU (if given), else ``full``."""
        if self.fast:
            return fast
        if gpu is not None and self.on_gpu:
            return gpu
        return full

    def as_dict(self) -> dict:
        d = asdict(self)
        d["device"] = str(self.device)
        d["data_dir"] = str(self.data_dir)
        d["mode"] = self.mode
        return d


def setup(FAST=None, DEVICE=None, SEED: int = 0, deterministic: bool = True, quiet: bool = False) -> Settings:
    """One call at the top of every notebook: mode, device, seed, threads; prints a config block."""
    fast = is_fast(FAST)
    device = get_device(DEVICE)
    threads = configure_threads()
    seed_everything(SEED, deterministic=deterministic)
    cfg = Settings(fast=fast, device=device, seed=int(SEED), threads=threads, data_dir=data_dir())
    if not quiet:
        print(
            f"MedGAN Course | mode: {cfg.mode.upper()} | device: {device} ({device_name(device)}) | "
            f"seed: {SEED} | threads: {threads} | torch {torch.__version__}\n"
            f"data dir: {cfg.data_dir}"
        )
    return cfg
