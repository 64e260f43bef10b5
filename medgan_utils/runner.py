"""Run course notebooks with papermill and summarise them (``medgan run``).

Each notebook ``notebooks/NN_name.ipynb`` is executed into
``OUT/NN_name/NN_name.ipynb`` with ``OUT/NN_name/results.json`` beside it
(the notebook writes that file through :func:`medgan_utils.results.record_results`).
"""
from __future__ import annotations

import ast
import contextlib
import json
import os
import time
from pathlib import Path

from .settings import course_root

INLINE_BACKEND = "module://matplotlib_inline.backend_inline"


def parse_value(text: str):
    """Turn a ``-p KEY VALUE`` string into a Python value (numbers, bools, None, lists, else str)."""
    word = text.strip()
    low = word.lower()
    if low in {"true", "yes", "on"}:
        return True
    if low in {"false", "no", "off"}:
        return False
    if low in {"none", "null"}:
        return None
    try:
        return ast.literal_eval(word)
    except (ValueError, SyntaxError):
        return text


def discover_notebooks(root: Path | None = None) -> list[Path]:
    """The course notebooks in order (``notebooks/NN_*.ipynb``)."""
    root = root or course_root() or Path.cwd()
    nbs = sorted(p for p in (Path(root) / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    if not nbs:
        raise FileNotFoundError(f"No notebooks found in {Path(root) / 'notebooks'}; run from the course folder.")
    return nbs


def resolve_notebooks(names) -> list[Path]:
    """Map CLI arguments (paths, file names, or prefixes like ``03``) to notebook paths."""
    if not names:
        return discover_notebooks()
    out = []
    for name in names:
        p = Path(name)
        if p.suffix == ".ipynb" and p.is_file():
            out.append(p.resolve())
            continue
        matches = [nb for nb in discover_notebooks() if nb.stem == name or nb.name == name or nb.stem.startswith(str(name))]
        if len(matches) != 1:
            known = ", ".join(nb.stem for nb in discover_notebooks())
            raise FileNotFoundError(f"Notebook {name!r} not found (or ambiguous). Known notebooks: {known}.")
        out.append(matches[0])
    return out


@contextlib.contextmanager
def _env(**values):
    old = {k: os.environ.get(k) for k in values}
    os.environ.update({k: str(v) for k, v in values.items() if v is not None})
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run_notebook(path: Path, out_dir: Path, parameters: dict | None = None, fast: bool = False,
                 timeout: int | None = None, kernel_name: str = "python3") -> dict:
    """Execute one notebook with papermill; returns a summary row (never raises on notebook errors)."""
    import papermill as pm

    path = Path(path).resolve()
    folder = Path(out_dir).resolve() / path.stem
    folder.mkdir(parents=True, exist_ok=True)
    out_nb = folder / path.name
    results_file = folder / "results.json"
    if results_file.exists():
        results_file.unlink()  # never report a stale result as this run's
    params = dict(parameters or {})
    if fast:
        params["FAST"] = True
    row = {"notebook": path.stem, "output": str(out_nb), "results": str(results_file), "status": "ok", "error": None}
    start = time.perf_counter()
    # Figures must land in the executed notebook: force the inline backend even if the caller's
    # environment says MPLBACKEND=Agg (common on servers and in CI).
    with _env(MEDGAN_RESULTS_DIR=str(folder), MEDGAN_HEADLESS="1", MPLBACKEND=INLINE_BACKEND):
        try:
            pm.execute_notebook(str(path), str(out_nb), parameters=params, cwd=str(path.parent),
                                kernel_name=kernel_name, progress_bar=False, execution_timeout=timeout)
        except Exception as err:  # PapermillExecutionError, timeouts, dead kernels
            row["status"] = "FAILED"
            row["error"] = _short_error(err)
    row["seconds"] = round(time.perf_counter() - start, 1)
    with contextlib.suppress(Exception):
        meta = json.loads(out_nb.read_text())["metadata"].get("papermill", {})
        if meta.get("duration") is not None:
            row["executed_seconds"] = round(float(meta["duration"]), 1)
    if results_file.exists():
        rec = json.loads(results_file.read_text())
        row["mode"] = rec.get("mode")
        row["datasets"] = {k: v.get("used") for k, v in rec.get("datasets", {}).items()}
        row["metrics"] = len(rec.get("metrics", {}))
    elif row["status"] == "ok":
        row["status"] = "FAILED"
        row["error"] = "the notebook finished but wrote no results.json (record_results was not reached)"
    return row


def _short_error(err: Exception) -> str:
    text = str(err).strip().splitlines()
    keep = [line for line in text if line.strip()][-6:]
    return f"{type(err).__name__}: " + " | ".join(keep)[:800]


def run_notebooks(paths, out_dir: Path, parameters: dict | None = None, fast: bool = False,
                  timeout: int | None = None, echo=print) -> list[dict]:
    """Run ``paths`` in order; every notebook runs even if an earlier one failed."""
    rows = []
    for i, path in enumerate(paths, 1):
        echo(f"[{i}/{len(paths)}] {Path(path).stem} ({'fast' if fast else 'full'} mode) ...", flush=True)
        row = run_notebook(path, out_dir, parameters, fast=fast, timeout=timeout)
        echo(f"      {row['status']} in {row['seconds']:.1f} s", flush=True)
        rows.append(row)
    return rows


def format_summary(rows: list[dict]) -> str:
    """A fixed-width table of notebook, status, wall time and datasets used."""
    head = f"{'notebook':<28} {'status':<7} {'wall s':>7}  {'mode':<5} data used"
    lines = [head, "-" * len(head)]
    for r in rows:
        used = ", ".join(f"{k}->{v}" if k != v else k for k, v in (r.get("datasets") or {}).items()) or "-"
        lines.append(f"{r['notebook']:<28} {r['status']:<7} {r['seconds']:>7.1f}  {str(r.get('mode') or '-'):<5} {used}")
        if r.get("error"):
            lines.append(f"    error: {r['error']}")
    total = sum(r["seconds"] for r in rows)
    failed = sum(r["status"] != "ok" for r in rows)
    lines.append("-" * len(head))
    lines.append(f"{len(rows)} notebook(s), {failed} failed, {total:.1f} s in all")
    return "\n".join(lines)
