"""Environment report: versions, device, threads and which datasets are ready offline."""
from __future__ import annotations

import os
import platform
import sys

from .settings import data_dir, device_name, env_flag, get_device


def environment_report(datasets=None) -> dict:
    """Everything a learner or instructor needs to know before running the course.

    Args:
        datasets: ``(name, size)`` pairs to check; default: the course's main sets
            (PneumoniaMNIST and BreastMNIST at 28 px, BUSI at 128 px).
    """
    import numpy
    import torch
    import torchvision

    from .data import check_file, file_spec

    try:
        device = get_device()
        device_error = None
    except RuntimeError as err:  # e.g. MEDGAN_DEVICE=cuda on a CPU-only machine
        device, device_error = None, str(err)
    gpu = None
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        gpu = {"name": props.name, "memory_gib": round(props.total_memory / 2**30, 1),
               "bf16": bool(torch.cuda.is_bf16_supported()), "count": torch.cuda.device_count()}
    from importlib.metadata import PackageNotFoundError, version

    def _version(dist):
        try:
            return version(dist)
        except PackageNotFoundError:
            return None

    msb = _version("medsegbench")
    checks = []
    for name, size in datasets or [("pneumoniamnist", 28), ("breastmnist", 28), ("busi", 128)]:
        spec = file_spec(name, size)
        st = check_file(spec)
        checks.append({"name": name, "size": size, "file": spec.filename, "status": st["status"],
                       "variant": st.get("variant"), "ready_offline": st["status"] == "verified",
                       "fix": None if st["status"] == "verified" else spec.fetch_command})
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "versions": {"torch": torch.__version__, "torchvision": torchvision.__version__,
                     "numpy": numpy.__version__, "medmnist": _version("medmnist"), "papermill": _version("papermill"),
                     "medsegbench": msb},
        "device": str(device) if device is not None else None,
        "device_name": device_name(device) if device is not None else None,
        "device_error": device_error,
        "gpu": gpu,
        "mps": bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "fast_mode": env_flag("MEDGAN_FAST"),
        "require_real_data": env_flag("MEDGAN_REQUIRE_REAL_DATA"),
        "offline": env_flag("MEDGAN_OFFLINE"),
        "data_dir": str(data_dir()),
        "data_dir_writable": os.access(data_dir() if data_dir().exists() else data_dir().parent, os.W_OK),
        "datasets": checks,
    }


def format_report(rep: dict) -> str:
    """A plain-text rendering of :func:`environment_report`."""
    lines = [
        f"python        {rep['python']}  ({rep['platform']})",
        "packages      " + ", ".join(f"{k} {v}" for k, v in rep["versions"].items()),
        f"device        {rep['device'] + ' (' + str(rep['device_name']) + ')' if rep['device'] else 'ERROR: ' + str(rep['device_error'])}",
        f"gpu           {rep['gpu']['name'] + ' (' + str(rep['gpu']['memory_gib']) + ' GiB, bf16=' + str(rep['gpu']['bf16']) + ')' if rep['gpu'] else 'none'}",
        f"threads       {rep['torch_threads']} torch threads, {rep['cpu_count']} CPUs",
        f"mode          {'FAST' if rep['fast_mode'] else 'full'}; require real data: {rep['require_real_data']}; offline: {rep['offline']}",
        f"data dir      {rep['data_dir']} ({'writable' if rep['data_dir_writable'] else 'read-only'})",
        "datasets:",
    ]
    for d in rep["datasets"]:
        state = "ready (verified)" if d["ready_offline"] else f"{d['status']} -> run `{d['fix']}`"
        if d.get("variant"):
            state += " [documented variant]"
        lines.append(f"  {d['name']:<16} {d['size']:>4} px  {d['file']:<22} {state}")
    return "\n".join(lines)
