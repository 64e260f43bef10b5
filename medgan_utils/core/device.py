"""Devices and process-wide backend flags: one code path for CUDA, Apple MPS and the CPU.

* :func:`get_device` picks ``cuda`` → ``mps`` → ``cpu`` (or what ``MEDGAN_DEVICE`` names).
* Backend flags (cuDNN benchmark/determinism, TF32, deterministic algorithms) are
  process-wide. Only :func:`set_backend_flags` changes them, called once by
  ``setup()``; code that wants other flags for a while uses
  :func:`temporary_backend_flags`, which restores them afterwards.
* :func:`data_placement` is the memory guard for keeping a dataset on a GPU.
* ``CUBLAS_WORKSPACE_CONFIG`` is set when this module is imported, before any CUDA work (cuBLAS reads it once);
  :func:`determinism_status` says whether deterministic mode is really on.
"""
from __future__ import annotations

import contextlib
import os
import platform
import random
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from .env import read_env
from .errors import CourseError


#: cuBLAS workspace settings under which cuBLAS is deterministic (CUDA's documentation); the first is set here.
DETERMINISTIC_CUBLAS = (":4096:8", ":16:8")


def _set_cublas_workspace() -> bool:
    """Set ``CUBLAS_WORKSPACE_CONFIG`` unless the user did; True if CUDA was already in use (then too late)."""
    if os.environ.get("CUBLAS_WORKSPACE_CONFIG"):
        return False
    late = bool(torch.cuda.is_initialized())
    os.environ["CUBLAS_WORKSPACE_CONFIG"] = DETERMINISTIC_CUBLAS[0]
    return late


_CUBLAS_SET_LATE = _set_cublas_workspace()


class DeviceUnavailable(CourseError, RuntimeError):
    """The device that was asked for is not present on this machine."""


def mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def available_devices() -> list[str]:
    """Names of the devices this machine can use, CPU last."""
    out = [f"cuda:{i}" for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
    if mps_available():
        out.append("mps")
    return out + ["cpu"]


def get_device(name: str | torch.device | None = None) -> torch.device:
    """The compute device: ``name``, else ``MEDGAN_DEVICE``, else cuda → mps → cpu.

    Naming a device that is not present raises :class:`DeviceUnavailable`, which
    says what *is* available, instead of failing later inside a CUDA call.
    """
    if isinstance(name, torch.device):
        name = str(name)
    wanted = str(name or read_env().device or "auto").strip().lower()
    if wanted == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if mps_available() else torch.device("cpu")
    try:
        dev = torch.device(wanted)
    except RuntimeError:
        raise DeviceUnavailable(f"Unknown device {wanted!r}. Fix: use auto, cpu, cuda, cuda:N or mps.") from None
    have = ", ".join(available_devices())
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceUnavailable(f"Device {wanted!r} was requested but no CUDA GPU is visible (available: {have}). "
                                    "Fix: unset MEDGAN_DEVICE / DEVICE, or set it to 'cpu'.")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise DeviceUnavailable(f"Device {wanted!r} was requested but only {torch.cuda.device_count()} CUDA "
                                    f"device(s) exist (available: {have}). Fix: pick one of those.")
    elif dev.type == "mps" and not mps_available():
        raise DeviceUnavailable(f"Device 'mps' was requested but Apple MPS is not available (available: {have}). "
                                "Fix: unset MEDGAN_DEVICE / DEVICE, or set it to 'cpu'.")
    elif dev.type not in {"cpu", "cuda", "mps"}:
        raise DeviceUnavailable(f"Unsupported device {wanted!r}. Fix: use auto, cpu, cuda, cuda:N or mps.")
    return dev


def device_name(device: torch.device) -> str:
    """Human-readable name of ``device`` (the GPU model on CUDA, the CPU model on the CPU)."""
    device = torch.device(device)
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


def synchronize(device: torch.device) -> None:
    """Wait for queued work on ``device`` (the one GPU sync helper; a no-op on the CPU)."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def configure_threads(n: int | None = None) -> int:
    """Use ``n`` intra-op threads; returns the count. By default ``MEDGAN_THREADS``, else the cores this process
    may use that other live course kernels leave free (at least one; :mod:`~medgan_utils.core.cores`)."""
    if n is None:
        from .cores import threads_for_new_kernel

        n = read_env().threads or threads_for_new_kernel()
    n = int(n)
    if n < 1:
        raise CourseError(f"threads must be >= 1, got {n}. Fix: pass a positive number.")
    torch.set_num_threads(n)
    return n


def prefers_channels_last(device: torch.device) -> bool:
    """channels_last pays on CUDA and on CPUs with oneDNN; on MPS it has been much slower, so it is off."""
    device = torch.device(device)
    if device.type == "cuda":
        return True
    if device.type == "cpu":
        return bool(torch.backends.mkldnn.is_available())
    return False


# --------------------------------------------------------------------------- backend flags
def backend_flags() -> dict:
    """The process-wide backend flags as they are now."""
    return {
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "deterministic_warn_only": torch.is_deterministic_algorithms_warn_only_enabled(),
        "cudnn_deterministic": bool(torch.backends.cudnn.deterministic),
        "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
        "cudnn_allow_tf32": bool(torch.backends.cudnn.allow_tf32),
        "matmul_allow_tf32": bool(torch.backends.cuda.matmul.allow_tf32),
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
    }


def set_backend_flags(**flags) -> dict:
    """Set the named flags (keys of :func:`backend_flags`); returns the flags as they were before."""
    before = backend_flags()
    unknown = set(flags) - set(before)
    if unknown:
        raise ValueError(f"Unknown backend flag(s) {sorted(unknown)}; known: {sorted(before)}.")
    if "deterministic_algorithms" in flags or "deterministic_warn_only" in flags:
        # warn_only defaults to True (setup()'s choice); restoring a strict mode keeps it strict
        on = flags.get("deterministic_algorithms", before["deterministic_algorithms"])
        torch.use_deterministic_algorithms(bool(on), warn_only=bool(flags.get("deterministic_warn_only", True)))
    if "cudnn_deterministic" in flags:
        torch.backends.cudnn.deterministic = bool(flags["cudnn_deterministic"])
    if "cudnn_benchmark" in flags:
        torch.backends.cudnn.benchmark = bool(flags["cudnn_benchmark"])
    if "cudnn_allow_tf32" in flags:
        torch.backends.cudnn.allow_tf32 = bool(flags["cudnn_allow_tf32"])
    if "matmul_allow_tf32" in flags:
        torch.backends.cuda.matmul.allow_tf32 = bool(flags["matmul_allow_tf32"])
    if "float32_matmul_precision" in flags:
        torch.set_float32_matmul_precision(str(flags["float32_matmul_precision"]))
    return before


@contextlib.contextmanager
def temporary_backend_flags(**flags) -> Iterator[dict]:
    """Set ``flags`` for the body and restore every flag afterwards, even on error."""
    before = set_backend_flags(**flags)
    try:
        yield backend_flags()
    finally:
        set_backend_flags(**before)


def fast_kernel_flags(device: torch.device) -> dict:
    """Flags that trade bit-exactness for speed on ``device``: cuDNN autotuning and TF32 on CUDA, nothing elsewhere."""
    if torch.device(device).type != "cuda":
        return {}
    return {"deterministic_algorithms": False, "cudnn_deterministic": False, "cudnn_benchmark": True,
            "cudnn_allow_tf32": True, "matmul_allow_tf32": True}


def seed_everything(seed: int = 0, deterministic: bool = True) -> torch.Generator:
    """Seed Python, NumPy and torch (all devices); with ``deterministic`` also ask for deterministic kernels.

    Returns a CPU ``torch.Generator`` seeded the same way, for code that wants its own stream.
    """
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    if deterministic:
        set_backend_flags(deterministic_algorithms=True, cudnn_deterministic=True, cudnn_benchmark=False)
    else:
        set_backend_flags(deterministic_algorithms=False)
    return torch.Generator().manual_seed(seed)


def determinism_status() -> dict:
    """Is deterministic mode really on? ``{"on": bool, "warn_only": bool, "reason": str}``.

    Off when deterministic algorithms are off, cuDNN autotunes, ``CUBLAS_WORKSPACE_CONFIG`` is not one of
    :data:`DETERMINISTIC_CUBLAS`, or CUDA was in use before the package could set it. ``warn_only``: an operation
    without a deterministic kernel warns and runs anyway (``setup()``'s choice).
    """
    flags = backend_flags()
    cublas = os.environ.get("CUBLAS_WORKSPACE_CONFIG", "")
    reason = ""
    if not flags["deterministic_algorithms"]:
        reason = "deterministic algorithms are off (setup(deterministic=False), or a trainer's speed flags)"
    elif flags["cudnn_benchmark"]:
        reason = "cuDNN autotuning (cudnn.benchmark) is on"
    elif torch.cuda.is_available() and cublas not in DETERMINISTIC_CUBLAS:
        reason = (f"CUBLAS_WORKSPACE_CONFIG={cublas!r}, not one of {', '.join(DETERMINISTIC_CUBLAS)}; "
                  "fix: unset it and restart the kernel")
    elif torch.cuda.is_available() and _CUBLAS_SET_LATE:
        reason = ("CUDA was in use before medgan_utils set CUBLAS_WORKSPACE_CONFIG; fix: restart the kernel and "
                  "import medgan_utils before any CUDA work")
    on = not reason
    return {"on": on, "warn_only": on and flags["deterministic_warn_only"],
            "reason": reason or ("warn only: an operation without a deterministic kernel warns and runs anyway"
                                 if flags["deterministic_warn_only"] else "strict")}


# --------------------------------------------------------------------------- memory guard
def data_placement(nbytes: int, device: torch.device, *, fraction: float = 0.5, mem_get_info=None) -> tuple[str, str]:
    """Where to keep ``nbytes`` of training data for ``device``: ``("device" | "host", reason)``.

    On CUDA the data goes to the GPU only if it takes at most ``fraction`` of the
    free memory reported by ``torch.cuda.mem_get_info`` (passed in for tests);
    otherwise it stays in host memory and each batch is copied over through pinned memory (:func:`batch_to`).
    On the CPU "device" and "host" are the same; MPS shares memory with the host.
    """
    device = torch.device(device)
    if device.type != "cuda":
        return "device", f"{device.type}: no separate device memory"
    free, total = (mem_get_info or torch.cuda.mem_get_info)(device)
    gib = 2 ** 30
    if nbytes <= fraction * free:
        return "device", f"{nbytes / gib:.2f} GiB of data fits in {free / gib:.1f} GiB free GPU memory"
    return "host", (f"{nbytes / gib:.2f} GiB of training data is more than {fraction:.0%} of the {free / gib:.1f} GiB "
                    f"free on {device} ({total / gib:.1f} GiB in all): keeping it in host memory and copying each "
                    "batch over through pinned memory (slower, but it fits)")


def batch_to(data: torch.Tensor, rows: torch.Tensor, device) -> torch.Tensor:
    """``data[rows]`` on ``device``. Rows of host-resident data bound for a GPU are gathered into pinned memory
    first: ``index_select`` returns ordinary (pageable) memory, from which a ``non_blocking`` copy is synchronous."""
    device = torch.device(device)
    batch = data.index_select(0, rows.to(data.device))
    if batch.device.type == "cpu" and device.type == "cuda":
        batch = batch.pin_memory()
    return batch.to(device, non_blocking=True)
