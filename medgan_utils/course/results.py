"""Record a notebook's headline numbers in a machine-readable ``results.json``.

Every notebook ends by calling :func:`record_results`. The file goes to
``$MEDGAN_RESULTS_DIR/results.json`` (``medgan run`` sets this to the folder of
the executed notebook), else to ``runs/<notebook>/results.json`` in the course
folder (the current directory outside a checkout). Values may be plain numbers or ``{"mean", "ci95", "n", ...}``
dicts from :func:`mean_ci`.
"""
from __future__ import annotations

import datetime as _dt
import os
import platform
from pathlib import Path

from ..core.device import determinism_status
from ..core.env import results_dir
from ..core.io import atomic_write_json
from ..data.load import datasets_used
from ..evaluation.statistics import mean_ci  # noqa: F401  (re-exported: results and CIs go together)


def results_path(notebook: str) -> Path:
    """Where :func:`record_results` writes for ``notebook``."""
    return results_dir(notebook) / "results.json"


def _fmt(value) -> str:
    if isinstance(value, dict) and "mean" in value:
        if value.get("ci95") is None:
            return f"{value['mean']:.4g} (n={value.get('n', 1)})"
        return f"{value['mean']:.4g} ± {value['ci95']:.2g} (95% CI, n={value['n']})"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def record_results(notebook: str, metrics: dict, cfg=None, params: dict | None = None, show: bool = True,
                   pretrained: dict | None = None) -> dict:
    """Write ``metrics`` (and run context) to ``results.json`` atomically, and show them.

    Args:
        notebook: the notebook's short name, e.g. ``"03_dcgan"``.
        metrics: headline numbers, JSON-serialisable (numbers, strings, lists, :func:`mean_ci` dicts).
        cfg: the notebook's :class:`~medgan_utils.settings.Settings`, for mode, device and seed.
        params: the notebook's parameters as run (so a sweep can be read back).
        pretrained: a workshop pack's ``record()`` (its SHA-256 and the networks reused), stored as ``pretrained``.
    Returns the full record that was written.
    """
    import torch

    record = {
        "notebook": notebook,
        "finished_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "mode": getattr(cfg, "mode", None),
        "device": str(getattr(cfg, "device", "")) or None,
        "seed": getattr(cfg, "seed", None),
        "params": params or {},
        "datasets": datasets_used(),  # what this notebook loaded since setup()
        "metrics": metrics,
        "versions": {"python": platform.python_version(), "torch": torch.__version__},
        "determinism": determinism_status(),  # "on": false when it was off (see core.device)
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "pretrained": pretrained,
    }
    if cfg is not None and getattr(cfg, "device", None) is not None and cfg.device.type == "cuda":
        record["machine"]["gpu"] = torch.cuda.get_device_name(cfg.device)
    path = results_path(notebook)
    atomic_write_json(path, record, role="results file",
                      fix="set MEDGAN_RESULTS_DIR (or medgan run --out) to a writable folder")
    if show:
        _show(record, path)
    return record


def _show(record: dict, path: Path) -> None:
    rows = [(k, _fmt(v)) for k, v in record["metrics"].items()]
    used = ", ".join(f"{k} → {v['used']} ({v['source']})" for k, v in record["datasets"].items()) or "none"
    try:
        from IPython import get_ipython
        from IPython.display import HTML, display

        if get_ipython() is not None:
            body = "".join(f"<tr><td style='text-align:left'>{k}</td><td style='text-align:left'>{v}</td></tr>" for k, v in rows)
            display(HTML(
                f"<b>Results recorded</b> ({record['mode']} mode, {record['device']}, data: {used})"
                f"<table><tr><th>metric</th><th>value</th></tr>{body}</table><small>written to {path}</small>"
            ))
            return
    except Exception:  # pragma: no cover
        pass
    print(f"Results recorded ({record['mode']} mode, {record['device']}, data: {used}) -> {path}")
    for k, v in rows:
        print(f"  {k:<40} {v}")
