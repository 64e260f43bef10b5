"""Environment report: versions, device, threads and which datasets are ready offline."""
from __future__ import annotations

import os
import platform
import sys
import tempfile
from pathlib import Path

from ..core.device import DeviceUnavailable, device_name, get_device
from ..core.cores import live_kernels, usable_cores
from ..core.env import data_dir, read_env
from ..core.precision import cpu_class, native_bf16, resolve_precision
from ..data.download import check_file
from ..data.registry import COURSE_DATASETS, file_spec


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for dist in ("torch", "torchvision", "numpy", "medmnist", "medsegbench", "papermill"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = None
    return out


def _gpu_info() -> dict | None:
    import torch

    if not torch.cuda.is_available():
        return None
    props = torch.cuda.get_device_properties(0)
    return {"name": props.name, "memory_gib": round(props.total_memory / 2**30, 1),
            "capability": f"{props.major}.{props.minor}", "native_bf16": native_bf16("cuda:0"),
            "count": torch.cuda.device_count()}


def _writable(folder: Path) -> bool:
    """Can a file really be created in ``folder`` (or its nearest existing parent)? Creates nothing that stays."""
    probe = folder
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    if not probe.is_dir():
        return False
    try:
        with tempfile.TemporaryFile(dir=probe):
            return True
    except OSError:
        return False


def environment_report(datasets=None) -> dict:
    """Everything a learner or instructor needs to know before running the course.

    Args:
        datasets: ``(name, size)`` pairs to check; default: the course's datasets at their default sizes.
    """
    import torch

    env = read_env()
    try:
        device, device_error = get_device(), None
    except DeviceUnavailable as err:  # e.g. MEDGAN_DEVICE=cuda on a CPU-only machine
        device, device_error = None, str(err)
    checks = []
    for name, size in datasets or list(COURSE_DATASETS.items()):
        spec = file_spec(name, size)
        st = check_file(spec)
        checks.append({"name": name, "size": size, "file": spec.filename, "status": st["status"],
                       "variant": st.get("variant"), "ready_offline": st["status"] == "verified",
                       "fix": None if st["status"] == "verified" else spec.fetch_command})
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "versions": _versions(),
        "device": str(device) if device is not None else None,
        "device_name": device_name(device) if device is not None else None,
        "device_error": device_error,
        "precision_auto": resolve_precision("auto", device) if device is not None else None,
        "gpu": _gpu_info(),
        "mps": bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()),
        "cpu_count": os.cpu_count(),
        "usable_cores": usable_cores(),
        "cpu_class": cpu_class(),
        "torch_threads": torch.get_num_threads(),
        "course_kernels": live_kernels(),
        "fast_mode": env.fast,
        "require_real_data": env.require_real_data,
        "offline": env.offline,
        "data_dir": str(data_dir()),
        "data_dir_writable": _writable(data_dir()),
        "datasets": checks,
    }


def format_report(rep: dict) -> str:
    """A plain-text rendering of :func:`environment_report`."""
    lines = [
        f"python        {rep['python']}  ({rep['platform']})",
        "packages      " + ", ".join(f"{k} {v}" for k, v in rep["versions"].items()),
        f"device        {rep['device'] + ' (' + str(rep['device_name']) + ')' if rep['device'] else 'ERROR: ' + str(rep['device_error'])}",
        f"gpu           {_gpu_line(rep['gpu'])}",
        f"precision     auto -> {rep['precision_auto']} (CPU class {rep.get('cpu_class', '?')})",
        f"threads       {rep['torch_threads']} torch threads, {rep.get('usable_cores', rep['cpu_count'])} usable "
        f"core(s) of {rep['cpu_count']} CPUs",
        f"mode          {'FAST' if rep['fast_mode'] else 'full'}; require real data: {rep['require_real_data']}; offline: {rep['offline']}",
        f"data dir      {rep['data_dir']} ({'writable' if rep['data_dir_writable'] else 'read-only'})",
        *_kernel_lines(rep),
        "datasets:",
    ]
    for d in rep["datasets"]:
        state = "ready (verified)" if d["ready_offline"] else f"{d['status']} -> run `{d['fix']}`"
        if d.get("variant"):
            state += " [documented variant]"
        lines.append(f"  {d['name']:<16} {d['size']:>4} px  {d['file']:<22} {state}")
    return "\n".join(lines)


def _kernel_lines(rep: dict) -> list[str]:
    """Live course kernels, and a warning when their threads add up to more than the usable cores."""
    kernels = rep.get("course_kernels") or []
    if not kernels:
        return ["kernels       no other course kernel is running"]
    used = sum(k["threads"] for k in kernels)
    line = (f"kernels       {len(kernels)} course kernel(s) running (pid "
            + ", ".join(f"{k['pid']}: {k['threads']} thread(s)" for k in kernels) + ")")
    cores = rep.get("usable_cores") or rep["cpu_count"] or 1
    if used >= cores:
        return [line, f"WARNING: they use {used} thread(s) on {cores} core(s): a new notebook gets 1 thread, and "
                      "threads that share a core slow every kernel 3-4x. Fix: shut down the notebooks you are not "
                      "using (Kernel > Shut Down Kernel), or set MEDGAN_THREADS."]
    return [line]


def _gpu_line(gpu: dict | None) -> str:
    if not gpu:
        return "none"
    return (f"{gpu['name']} ({gpu['memory_gib']} GiB, compute capability {gpu['capability']}, "
            f"native bf16: {gpu['native_bf16']}, {gpu['count']} visible)")
