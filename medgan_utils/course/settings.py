"""``setup()`` and ``cfg``: what every notebook decides in its first code cell after ``parameters``.

The same cell runs on CUDA, Apple MPS or a laptop CPU without edits. ``setup()``
is the one place that sets process-wide state: it seeds every generator, sets the
backend flags (and prints them), and starts the record of datasets this notebook
uses (for ``results.json``).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from ..core.cores import in_kernel, register_kernel
from ..core.device import (backend_flags, configure_threads, determinism_status, device_name, get_device,
                           seed_everything)
from ..core.env import TRUE_WORDS, data_dir, read_env
from ..core.precision import resolve_precision
from ..data.load import reset_datasets_used


def is_fast(FAST: bool | str | None = None) -> bool:
    """Fast mode: the papermill parameter ``FAST`` wins, else ``MEDGAN_FAST``, else off."""
    if FAST is not None:
        if isinstance(FAST, str):  # papermill -p FAST true arrives as a string in some shells
            return FAST.strip().lower() in TRUE_WORDS
        return bool(FAST)
    return read_env().fast


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
        """A GPU of any kind (CUDA or Apple MPS)."""
        return self.device.type in {"cuda", "mps"}

    @property
    def on_cuda(self) -> bool:
        return self.device.type == "cuda"

    def pick(self, fast, full, gpu=None, mps=None):
        """A setting by mode and device: ``fast`` in fast mode; ``gpu`` on CUDA (if given);
        ``mps`` on Apple MPS (if given, else ``full``: a Mac gets the laptop defaults); else ``full``."""
        if self.fast:
            return fast
        if self.device.type == "cuda" and gpu is not None:
            return gpu
        if self.device.type == "mps" and mps is not None:
            return mps
        return full

    def as_dict(self) -> dict:
        d = asdict(self)
        d.update(device=str(self.device), data_dir=str(self.data_dir), mode=self.mode)
        return d


def setup(FAST=None, DEVICE=None, SEED: int = 0, deterministic: bool = True, quiet: bool = False) -> Settings:
    """One call at the top of every notebook: mode, device, seed, threads and backend flags; prints them."""
    fast = is_fast(FAST)
    device = get_device(DEVICE)
    threads = configure_threads()   # MEDGAN_THREADS, else the cores other live course kernels leave free
    if in_kernel():
        register_kernel(threads)    # so that a second notebook opened now does not oversubscribe the cores
    seed_everything(SEED, deterministic=deterministic)
    reset_datasets_used()
    cfg = Settings(fast=fast, device=device, seed=int(SEED), threads=threads, data_dir=data_dir())
    cfg.extra["backend_flags"] = backend_flags()
    cfg.extra["auto_precision"] = resolve_precision("auto", device)
    cfg.extra["determinism"] = determinism_status()
    if not quiet:
        print(f"MedGAN Course | mode: {cfg.mode.upper()} | device: {device} ({device_name(device)}) | "
              f"seed: {SEED} | threads: {threads} | torch {torch.__version__}\n"
              f"data dir: {cfg.data_dir}\n"
              f"precision (auto): {cfg.extra['auto_precision']} | deterministic kernels: "
              f"{'on' if cfg.extra['determinism']['on'] else 'OFF'} ({cfg.extra['determinism']['reason']})")
    return cfg
