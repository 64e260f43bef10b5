"""The one precision policy: which number format a device trains in, and the step numerics around it.

``precision="auto"`` resolves, per device, to

* **CUDA**: bf16 where the GPU computes it natively (compute capability ≥ 8.0:
  A100, H100, RTX 30xx and newer); fp16 with a ``GradScaler`` on older GPUs
  (T4 = 7.5, V100 = 7.0, P100 = 6.0). ``torch.cuda.is_bf16_supported()`` is not
  used: it also counts emulation, which cuDNN cannot use for convolutions.
* **CPU**: bf16 where the CPU has native bf16 (oneDNN with AVX-512 BF16 or AMX)
  *and* a stored quality check on this machine said bf16 trains as well as fp32
  (``medgan bench precision``); fp32 otherwise.
* **MPS**: fp32, unless a stored check on this Mac said fp16 is as good. fp16 on MPS needs torch ≥ 2.5
  (MPS autocast arrived there; before it autocast runs fp32 silently), so older torch refuses it.

Asking explicitly for bf16 where it is not native raises a clear error.
"""
from __future__ import annotations

import contextlib
import json
import re
import warnings

import torch

from .device import device_name
from .env import cache_dir
from .errors import SettingError

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
ALIASES = {"float32": "fp32", "32": "fp32", "bfloat16": "bf16", "float16": "fp16", "half": "fp16", "16": "fp16"}
#: The reduced precision a stored check may allow, per device type.
CHECKED_PRECISION = {"cpu": "bf16", "mps": "fp16"}
#: The first torch whose autocast covers MPS: before it, fp16 on MPS silently computes in fp32.
MPS_AUTOCAST_TORCH = (2, 5)


def torch_release(version: str | None = None) -> tuple[int, int]:
    """(major, minor) of ``version`` (default: the installed torch), e.g. (2, 14) for '2.14.1+cu130'."""
    m = re.match(r"^\s*(\d+)\.(\d+)", str(version if version is not None else torch.__version__))
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


def mps_fp16_refusal() -> str | None:
    """Why fp16 cannot run on MPS with this torch (one line naming the fix), or ``None`` when it can."""
    if torch_release() >= MPS_AUTOCAST_TORCH:
        return None
    return (f"fp16 on MPS needs torch >= {'.'.join(map(str, MPS_AUTOCAST_TORCH))} (MPS autocast arrived there); "
            f"torch {torch.__version__} would silently train in fp32. Fix: pip install -U 'torch>=2.5', or use "
            "precision='fp32'.")


def normalise_precision(precision) -> str:
    """``'auto'|'fp32'|'bf16'|'fp16'`` (aliases such as ``'bfloat16'`` accepted); anything else raises."""
    p = str(precision if precision is not None else "auto").strip().lower()
    p = ALIASES.get(p, p)
    if p not in PRECISIONS:
        raise SettingError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}.")
    return p


def cuda_capability(device) -> tuple[int, int]:
    """Compute capability of the CUDA ``device`` (not of whichever GPU is current)."""
    return tuple(torch.cuda.get_device_capability(torch.device(device)))


def cpu_has_native_bf16() -> bool:
    """True if this CPU runs bf16 convolutions natively (oneDNN with AVX-512 BF16 or AMX)."""
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except Exception:  # pragma: no cover - private API may move
        return False


def cpu_class() -> str:
    """The CPU's kernel class as torch dispatches it: ``"avx512+bf16"``, ``"avx512"``, ``"avx2"``, ``"default"``...

    It follows ``ATEN_CPU_CAPABILITY`` and ``ONEDNN_MAX_CPU_ISA``, so ``ATEN_CPU_CAPABILITY=avx2
    ONEDNN_MAX_CPU_ISA=AVX2`` makes any x86 machine behave, and be labelled, like an AVX2 laptop.
    """
    try:
        cap = str(torch.backends.cpu.get_cpu_capability()).lower()
    except Exception:  # pragma: no cover - an old torch
        cap = "unknown"
    return cap + ("+bf16" if cpu_has_native_bf16() else "")


def native_bf16(device) -> bool:
    """Whether ``device`` computes bf16 natively (CUDA ≥ 8.0, or a CPU with native bf16)."""
    device = torch.device(device)
    if device.type == "cuda":
        return cuda_capability(device) >= (8, 0)
    if device.type == "cpu":
        return cpu_has_native_bf16()
    return False


# --------------------------------------------------------------------------- stored checks
def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60] or "device"


def precision_check_path(device, device_label: str | None = None):
    """Where the stored precision check of this device type, model and torch version lives."""
    device = torch.device(device)
    label = device_label or device_name(device)
    if device.type == "cpu" and device_label is None:  # one verdict per CPU class: an AVX2 run never reuses AVX-512's
        label = f"{label} {cpu_class()}"
    version = torch.__version__.split("+")[0]
    return cache_dir() / "checks" / f"precision_{device.type}_{_slug(label)}_torch{version}.json"


def stored_precision_check(device) -> dict | None:
    """The stored result of ``medgan bench precision`` for this device, or ``None``."""
    path = precision_check_path(device)
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def reduced_precision_allowed(device) -> bool:
    """Did a stored check on this machine find the reduced precision as good as fp32?"""
    check = stored_precision_check(device)
    return bool(check and check.get("verdict") == "pass"
                and check.get("precision") == CHECKED_PRECISION.get(torch.device(device).type))


def resolve_precision(precision="auto", device=None) -> str:
    """The precision ``device`` trains in for the request ``precision`` (see the module docstring)."""
    p = normalise_precision(precision)
    device = torch.device(device) if device is not None else torch.device("cpu")
    if p == "bf16" and not native_bf16(device):
        where = (f"compute capability {'.'.join(map(str, cuda_capability(device)))}; bf16 needs 8.0 or newer"
                 if device.type == "cuda" else f"{device.type} has no native bf16")
        raise SettingError(f"precision='bf16' was requested on {device}, which does not compute bf16 natively "
                           f"({where}). Fix: use precision='fp16' on an older GPU, or 'auto' / 'fp32'.")
    if p == "fp16" and device.type == "mps":
        if (why := mps_fp16_refusal()) is not None:
            raise SettingError(why)
        warnings.warn("fp16 on MPS is not covered by a stored check; fp32 is the safe choice.", stacklevel=2)
    if p != "auto":
        return p
    if device.type == "cuda":
        return "bf16" if native_bf16(device) else "fp16"
    if device.type == "cpu":
        return "bf16" if (cpu_has_native_bf16() and reduced_precision_allowed(device)) else "fp32"
    if device.type == "mps":
        return "fp16" if reduced_precision_allowed(device) and mps_fp16_refusal() is None else "fp32"
    return "fp32"


def autocast(device, precision: str):
    """The autocast context for ``precision`` on ``device`` (a no-op in fp32)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(torch.device(device).type, dtype=dtype)


def grad_scaler(device, precision: str) -> torch.amp.GradScaler:
    """A ``GradScaler`` that is enabled only for fp16 (disabled, it passes losses and steps through unchanged)."""
    device = torch.device(device)
    enabled = precision == "fp16" and device.type in {"cuda", "cpu", "mps"}
    return torch.amp.GradScaler(device.type, enabled=enabled)


def optimizer_step(loss: torch.Tensor, optimizer: torch.optim.Optimizer, scaler=None) -> None:
    """``zero_grad``, ``backward`` and ``step``, through ``scaler`` when it is enabled (fp16)."""
    optimizer.zero_grad(set_to_none=True)
    if scaler is not None and scaler.is_enabled():
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    else:
        loss.backward()
        optimizer.step()


def make_adam(params, lr: float, betas=(0.9, 0.999), device=None) -> torch.optim.Adam:
    """Adam with the fastest implementation the device has: fused on CUDA and the CPU, else foreach.

    The fused kernels also take a ``GradScaler``'s inf check without a host sync.
    """
    params = list(params)
    device = torch.device(device) if device is not None else (params[0].device if params else torch.device("cpu"))
    betas = tuple(float(b) for b in betas)
    if device.type in {"cuda", "cpu"}:
        try:
            return torch.optim.Adam(params, lr=lr, betas=betas, fused=True)
        except (RuntimeError, TypeError, ValueError):
            pass
    return torch.optim.Adam(params, lr=lr, betas=betas, foreach=True)
