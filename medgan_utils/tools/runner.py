"""Run course notebooks with papermill and summarise them (``medgan run``).

Each notebook ``notebooks/NN_name.ipynb`` is executed into
``OUT/NN_name/NN_name.ipynb`` with ``OUT/NN_name/results.json`` beside it
(the notebook writes that file through :func:`medgan_utils.results.record_results`).
"""
from __future__ import annotations

import ast
import contextlib
import json
import logging
import os
import secrets
import time
import warnings
from pathlib import Path

from ..core.env import course_root
from ..core.errors import CourseError, SettingError
from ..core.io import PART_SUFFIX, WRITE_ERRNOS, folder_lock, remove_stale_parts
from .param_rules import value_problem

INLINE_BACKEND = "module://matplotlib_inline.backend_inline"
#: The kernel's own log (e.g. its warning about TCP transport) stays off the learner's terminal.
KERNEL_QUIET = ["--IPKernelApp.log_level=ERROR"]
#: What the kernel process itself prints (its shutdown noise, a crash report) goes here, beside the notebook.
KERNEL_LOG = "kernel.log"


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


TYPE_NAMES = {"int": (int,), "float": (int, float), "bool": (bool,), "str": (str,), "tuple": (list, tuple),
              "list": (list, tuple), "dict": (dict,)}


class NotebookNotFound(CourseError, FileNotFoundError):
    """A notebook named on the command line does not exist."""


def notebook_parameters(path: Path) -> dict[str, dict]:
    """The ``parameters`` cell of ``path`` as papermill reads it: name → {default, type, help}.

    A parameter's type is its default's type, or the ``# type: T`` comment when the default is ``None``.
    """
    import papermill as pm

    with quiet_papermill():
        raw = pm.inspect_notebook(str(path))
    out = {}
    for name, p in raw.items():
        try:
            default = ast.literal_eval(p["default"])
        except (ValueError, SyntaxError):
            default = p["default"]
        declared = p.get("inferred_type_name") or "None"
        kind = declared if declared in TYPE_NAMES else (type(default).__name__ if default is not None else None)
        out[name] = {"default": default, "type": kind, "help": p.get("help", "")}
    return out


def check_parameters(path: Path, params: dict, raw: dict | None = None, *, skip_unknown: bool = False,
                     known: dict | None = None, devices: bool = True) -> dict:
    """Validate ``params`` against the notebook's ``parameters`` cell before anything runs.

    Keys must be identifiers that the cell defines; values must match the default's
    type (``None`` is accepted where the default is ``None``) and the value rules of
    :mod:`~medgan_utils.tools.param_rules` (ranges, sizes, and with ``devices`` a device this
    machine has). Returns the values to pass (a ``str`` parameter gets the text as typed).
    Raises :class:`SettingError` naming the fix. ``known`` is the notebook's
    :func:`notebook_parameters`, when the caller has read it already.
    """
    known = notebook_parameters(path) if known is None else known
    out = {}
    for key, value in params.items():
        if skip_unknown and str(key).isidentifier() and key not in known:
            continue
        if not str(key).isidentifier() or key not in known:
            raise SettingError(f"{Path(path).stem} has no parameter {key!r}. Fix: use one of "
                               f"{', '.join(known)} (see the notebook's parameters cell).")
        kind, default = known[key]["type"], known[key]["default"]
        if kind == "str" and not isinstance(value, str) and value is not None:
            value = (raw or {}).get(key, str(value))
        allowed = TYPE_NAMES.get(kind)
        ok = (allowed is None or (value is None and default is None)
              or (isinstance(value, allowed) and not (isinstance(value, bool) and bool not in allowed)))
        if not ok:
            example = f", e.g. -p {key} {default!r}" if default is not None else ""
            raise SettingError(f"Parameter {key} of {Path(path).stem} expects a value of type {kind} (default "
                               f"{default!r}), got {short_repr(value)}. Fix: pass a {kind} value{example}.")
        out[key] = float(value) if kind == "float" and isinstance(value, int) else value
        if (why := value_problem(Path(path).stem, key, out[key], devices=devices)) is not None:
            raise SettingError(f"Parameter {key} of {Path(path).stem} {why}, got {short_repr(out[key])}. Fix: pass "
                               f"an allowed value, or leave {key} out to use the notebook's default.")
    return out


def short_repr(value, limit: int = 60) -> str:
    """``repr(value)``, cut to ``limit`` characters: an error message never prints a huge value."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


@contextlib.contextmanager
def quiet_papermill():
    """Keep papermill's parsing and the kernel's transport warnings off the learner's terminal."""
    loggers = [logging.getLogger(n) for n in ("papermill", "papermill.translators", "traitlets")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*(TCP|transport|Unable to parse|does not end in).*")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def discover_notebooks(root: Path | None = None) -> list[Path]:
    """The course notebooks in order (``notebooks/NN_*.ipynb``)."""
    root = root or course_root() or Path.cwd()
    nbs = sorted(p for p in (Path(root) / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    if not nbs:
        raise NotebookNotFound(f"No notebooks found in {Path(root) / 'notebooks'}. Fix: run from the course folder.")
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
            raise NotebookNotFound(f"Notebook {name!r} not found (or ambiguous). Fix: use one of {known}.")
        out.append(matches[0])
    return out


@contextlib.contextmanager
def temporary_environ(unset=(), **values):
    """Set environment variables for the ``with`` block (``None`` leaves one as it is) and remove those named in
    ``unset``; afterwards restore them all."""
    old = {k: os.environ.get(k) for k in [*values, *unset]}
    os.environ.update({k: str(v) for k, v in values.items() if v is not None})
    for k in unset:
        os.environ.pop(k, None)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run_notebook(path: Path, out_dir: Path, parameters: dict | None = None, fast: bool = False,
                 timeout: int | None = None, kernel_name: str = "python3", folder: Path | None = None,
                 lock: bool = True) -> dict:
    """Execute one notebook with papermill; returns a summary row (never raises on notebook errors).

    The notebook's output folder is locked for the run: a second run into the same
    folder is refused (:class:`~medgan_utils.core.io.FolderInUse`) instead of deleting
    or overwriting this run's ``results.json``. ``folder`` (a sweep's run folder) replaces ``out_dir/NN_name``;
    ``lock=False``: the caller holds that folder's lock already.
    """
    path = Path(path).resolve()
    folder = Path(folder).resolve() if folder is not None else Path(out_dir).resolve() / path.stem
    params = dict(parameters or {})
    if fast:
        params["FAST"] = True
    if not lock:
        folder.mkdir(parents=True, exist_ok=True)
        return _execute(path, folder, params, timeout, kernel_name)
    with folder_lock(folder, "results folder", "wait for the other run to finish, or pass another --out folder"):
        return _execute(path, folder, params, timeout, kernel_name)


def _execute(path: Path, folder: Path, params: dict, timeout, kernel_name: str) -> dict:
    import papermill as pm

    out_nb, results_file, kernel_log = folder / path.name, folder / "results.json", folder / KERNEL_LOG
    results_file.unlink(missing_ok=True)  # never report a stale result as this run's
    out_nb.unlink(missing_ok=True)  # nor a stale executed notebook (papermill replaced it at the start, too)
    (folder / "networks.json").unlink(missing_ok=True)  # nor a stale run's saved networks (medgan pack build)
    remove_stale_parts(folder, path.name)  # the half-written notebook of a run that was killed (kill -9)
    partial = folder / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}{PART_SUFFIX}"
    row = {"notebook": path.stem, "output": str(out_nb), "results": str(results_file), "status": "ok", "error": None}
    start = time.perf_counter()
    # Figures must land in the executed notebook: force the inline backend even if the caller's
    # environment says MPLBACKEND=Agg (common on servers and in CI).
    notebook_env = temporary_environ(MEDGAN_RESULTS_DIR=str(folder), MEDGAN_HEADLESS="1", MPLBACKEND=INLINE_BACKEND)
    with notebook_env, quiet_papermill():
        try:
            pm.execute_notebook(str(path), str(partial), parameters=params, cwd=str(path.parent),
                                kernel_name=kernel_name, progress_bar=False, execution_timeout=timeout,
                                extra_arguments=KERNEL_QUIET,
                                kernel_manager_class=kernel_manager_logging_to(kernel_log))
        except Exception as err:  # PapermillExecutionError, timeouts, dead kernels
            row["status"] = "FAILED"
            row["error"] = _short_error(err)
            if isinstance(err, OSError) and err.errno in WRITE_ERRNOS:  # a full disk: say which file
                row["error"] += f" (while writing {out_nb}; free some space or pass another --out)"
            if kernel_log.is_file() and kernel_log.stat().st_size:
                row["error"] += f" (the kernel's own messages are in {kernel_log})"
        finally:
            _keep_executed(partial, out_nb)
    with contextlib.suppress(OSError):
        if kernel_log.stat().st_size == 0:
            kernel_log.unlink()  # an empty log says nothing
    row["seconds"] = round(time.perf_counter() - start, 1)
    with contextlib.suppress(Exception):
        meta = json.loads(out_nb.read_text())["metadata"].get("papermill", {})
        if meta.get("duration") is not None:
            row["executed_seconds"] = round(float(meta["duration"]), 1)
    if results_file.exists():
        _summarise_results(results_file, row)
    elif row["status"] == "ok":
        row["status"] = "FAILED"
        row["error"] = "the notebook finished but wrote no results.json (record_results was not reached)"
    return row


def _summarise_results(results_file: Path, row: dict) -> None:
    """Mode, datasets and metric count of a notebook's results.json into ``row`` (a malformed file fails the row)."""
    from .untrusted import UnreadableRecord, read_record

    try:
        rec = read_record(results_file, "results file", fix="see the executed notebook")
    except UnreadableRecord as err:
        row.update(status="FAILED", error=str(err))
        return
    datasets, metrics = rec.get("datasets"), rec.get("metrics")
    row["mode"] = rec.get("mode") if isinstance(rec.get("mode"), str) else None
    row["datasets"] = ({str(k): v.get("used") for k, v in datasets.items() if isinstance(v, dict)}
                       if isinstance(datasets, dict) else {})
    row["metrics"] = len(metrics) if isinstance(metrics, dict) else 0


def _keep_executed(partial: Path, out_nb: Path) -> None:
    """Rename papermill's output over ``out_nb`` when it is a whole notebook (a failed run's too: it shows the
    error); a file cut short (Ctrl-C during a write) is removed. A kill -9 leaves only the ``.part`` file, which
    the next run removes: never a 0-byte or half-written notebook under the real name."""
    try:
        json.loads(partial.read_text(encoding="utf-8"))
        os.replace(partial, out_nb)
    except (OSError, ValueError):
        with contextlib.suppress(OSError):
            partial.unlink()


def kernel_manager_logging_to(log_path: Path):
    """A kernel manager class whose kernel process writes its stdout and stderr to ``log_path``.

    Cell outputs still reach the notebook (they travel over ZMQ); what stays off the terminal is the
    kernel's own chatter, e.g. the "KeyboardInterrupt caught in kernel" and ZMQ tracebacks that ipykernel
    prints when it is shut down while several kernels run side by side in a sweep.
    """
    from jupyter_client.manager import AsyncKernelManager  # nbclient's own choice (a sync one hangs on a dead kernel)

    class KernelLoggingToFile(AsyncKernelManager):
        async def _async_launch_kernel(self, kernel_cmd, **kw):
            with open(log_path, "wb") as log:  # this run's log; Popen duplicates the descriptor, ours closes now
                await super()._async_launch_kernel(kernel_cmd, **{**kw, "stdout": log, "stderr": log})

    return KernelLoggingToFile


def _short_error(err: Exception) -> str:
    """A notebook's exception as its type and message (papermill's ``ename``/``evalue``), not the cell's code."""
    if getattr(err, "ename", None) and getattr(err, "evalue", None) is not None:
        return f"{err.ename}: {err.evalue}"[:800]
    text = str(err).strip().splitlines()
    keep = [line for line in text if line.strip()][-6:]
    return f"{type(err).__name__}: " + " | ".join(keep)[:800]


def plan_parameters(paths, parameters: dict | None, raw: dict | None = None) -> list[dict]:
    """Checked parameters for each notebook of ``paths``; each key must belong to at least one of them."""
    parameters = dict(parameters or {})
    if len(paths) == 1:
        return [check_parameters(paths[0], parameters, raw)]
    plans = [check_parameters(p, parameters, raw, skip_unknown=True) for p in paths]
    for key in parameters:
        if not any(key in plan for plan in plans):
            check_parameters(paths[0], {key: parameters[key]}, raw)  # raises with the list of parameters
    return plans


def run_notebooks(paths, out_dir: Path, parameters: dict | None = None, fast: bool = False,
                  timeout: int | None = None, echo=print, raw: dict | None = None) -> list[dict]:
    """Run ``paths`` in order; every notebook runs even if an earlier one failed.

    Parameters are checked against every notebook's ``parameters`` cell first, so a
    misspelt key or a wrong type fails before anything runs.
    """
    plans = plan_parameters(paths, parameters, raw)
    rows = []
    for i, (path, params) in enumerate(zip(paths, plans), 1):
        echo(f"[{i}/{len(paths)}] {Path(path).stem} ({'fast' if fast else 'full'} mode) ...", flush=True)
        row = run_notebook(path, out_dir, params, fast=fast, timeout=timeout)
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
