"""Parameter sweeps of one notebook with papermill (``medgan sweep``).

A grid file (YAML) is either a cartesian product or an explicit list of runs::

    grid:                      # every combination: 2 x 2 = 4 runs
      FRACTIONS: [[0.1], [0.25]]
      SEED: [0, 1]
    fixed: {N_SEEDS: 1}        # optional: the same in every run

    runs:                      # or: these runs exactly
      - {SEED: 0, CLASSIFIER: cnn}
      - {SEED: 1, CLASSIFIER: resnet18}

Every run is checked against the notebook's ``parameters`` cell before anything starts. Run ``K`` goes to
``OUT/<run id>/`` (executed notebook, ``results.json``, and ``run.json`` written last, atomically): a run with
``run.json`` status ``ok`` is skipped on the next call, anything else is redone. Workers are processes; the
machine's cores are split between them (``MEDGAN_THREADS``/``OMP_NUM_THREADS``) and, on a multi-GPU host, each
worker sees one GPU (``CUDA_VISIBLE_DEVICES``, round-robin). ``executor="dask"`` sends the runs to a Dask
distributed scheduler instead; the layout of ``OUT`` is the same.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
import signal
import threading
import time
import traceback
from pathlib import Path

from ..core.env import read_env
from ..core.errors import SettingError
from ..core.io import atomic_write_json
from .runner import check_parameters, notebook_parameters, run_notebook, temporary_environ

RUN_FILE = "run.json"
PLAN_FILE = "sweep.json"
GRID_KEYS = {"grid", "runs", "fixed"}
THREAD_VARS = ("MEDGAN_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


# --------------------------------------------------------------------------- the grid
def read_grid(grid_path) -> list[dict]:
    """The runs a grid file asks for, in order (cartesian: the last key varies fastest)."""
    import yaml

    grid_path = Path(grid_path)
    fix = "check the file against the example in `medgan sweep --help` (a 'grid:' or a 'runs:' section)"
    try:
        spec = yaml.safe_load(grid_path.read_text(encoding="utf-8"))
    except OSError as err:
        raise SettingError(f"Cannot read the grid file {grid_path}: {err.strerror or err}. "
                           "Fix: pass the path of an existing YAML file.") from err
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        where = getattr(err, "problem_mark", None)
        line = f" (line {where.line + 1})" if where is not None else ""
        raise SettingError(f"The grid file {grid_path} is not valid YAML{line}: "
                           f"{getattr(err, 'problem', None) or err}. Fix: {fix}.") from err
    if not isinstance(spec, dict) or not spec or set(spec) - GRID_KEYS or ("grid" in spec) == ("runs" in spec):
        raise SettingError(f"The grid file {grid_path} must hold exactly one of 'grid:' (name: list of values) "
                           f"or 'runs:' (a list of parameter sets), plus an optional 'fixed:'. Fix: {fix}.")
    fixed = spec.get("fixed") or {}
    if not isinstance(fixed, dict):
        raise SettingError(f"'fixed:' in {grid_path} must map names to values. Fix: {fix}.")
    if "grid" in spec:
        runs = _cartesian(spec["grid"], grid_path, fix)
    else:
        runs = spec["runs"]
        if not isinstance(runs, list) or not all(isinstance(r, dict) for r in runs):
            raise SettingError(f"'runs:' in {grid_path} must be a list of name: value mappings. Fix: {fix}.")
    if not runs:
        raise SettingError(f"The grid in {grid_path} is empty: it gives no run. Fix: list at least one value.")
    return [{**fixed, **r} for r in runs]


def _cartesian(grid, grid_path: Path, fix: str) -> list[dict]:
    if not isinstance(grid, dict) or not grid:
        raise SettingError(f"'grid:' in {grid_path} must map each parameter to a list of values. Fix: {fix}.")
    for key, values in grid.items():
        if not isinstance(values, list):
            raise SettingError(f"grid value of {key} in {grid_path} must be a list (e.g. {key}: [{values!r}]), "
                               f"got {values!r}. Fix: put the values in square brackets.")
        if not values:
            raise SettingError(f"grid value of {key} in {grid_path} is an empty list, so the grid gives no run. "
                               "Fix: list at least one value, or remove the key.")
    keys = list(grid)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(grid[k] for k in keys))]


def run_id(params: dict) -> str:
    """A readable, stable folder name for one parameter set (the same set always gets the same name)."""
    text = json.dumps(params, sort_keys=True, default=str)
    digest = hashlib.sha1(text.encode()).hexdigest()[:8]
    parts = (re.sub(r"[^A-Za-z0-9.+-]+", "", f"{k}-{v}") for k, v in sorted(params.items()))
    slug = "_".join(parts)[:60]
    return f"{slug}_{digest}" if slug else digest


def plan_sweep(notebook, grid_path, fast: bool = False) -> list[dict]:
    """Checked run specs ``{index, id, params}``; every error is raised before anything runs."""
    notebook = Path(notebook)
    known = notebook_parameters(notebook)
    specs, seen = [], {}
    for i, params in enumerate(read_grid(grid_path)):
        if fast:
            params = {**params, "FAST": True}
        try:
            checked = check_parameters(notebook, params, known=known)
        except SettingError as err:
            raise SettingError(f"Run {i} of {grid_path} ({params}): {err}") from None
        rid = run_id(checked)
        if rid in seen:
            raise SettingError(f"Runs {seen[rid]} and {i} of {grid_path} have the same parameters {checked}. "
                               "Fix: remove the duplicate.")
        seen[rid] = i
        specs.append({"index": i, "id": rid, "params": checked})
    return specs


# --------------------------------------------------------------------------- resources
def usable_cores() -> int:
    """Cores this process may use (affinity / SLURM's cgroup aware)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return os.cpu_count() or 1


def split_threads(cores: int, workers: int) -> list[int]:
    """Threads per worker so that ``workers`` workers use ``cores`` threads in all (at least 1 each)."""
    base, extra = divmod(int(cores), int(workers))
    return [max(1, base + (i < extra)) for i in range(int(workers))]


def gpu_assignment(workers: int, n_gpus: int | None = None) -> list[str | None]:
    """``CUDA_VISIBLE_DEVICES`` of each worker: GPUs round-robin on a multi-GPU host, else ``None`` (unchanged)."""
    if n_gpus is None:
        import torch

        n_gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if n_gpus < 2:
        return [None] * int(workers)
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    ids = [s.strip() for s in visible.split(",")] if visible else [str(i) for i in range(n_gpus)]
    return [ids[i % len(ids)] for i in range(int(workers))]


def worker_env(threads: int, gpu: str | None) -> dict:
    env = {k: str(threads) for k in THREAD_VARS}
    if gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = gpu
    return env


def worker_plan(workers: int | None = None, n_gpus: int | None = None) -> list[dict]:
    """What each of ``workers`` sweep workers gets (default: one per GPU, else 1): threads and GPU."""
    if n_gpus is None:
        import torch

        n_gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    workers = int(workers or max(1, n_gpus))
    pairs = zip(split_threads(usable_cores(), workers), gpu_assignment(workers, n_gpus))
    return [{"worker": i, "threads": t, "CUDA_VISIBLE_DEVICES": g if g is not None else "unchanged"}
            for i, (t, g) in enumerate(pairs)]


def format_worker_plan(plan: list[dict]) -> str:
    cells = [f"worker {w['worker']}: {w['threads']} thread(s), GPU {w['CUDA_VISIBLE_DEVICES']}" for w in plan]
    return f"sweep workers ({len(plan)}):  " + "; ".join(cells)


# --------------------------------------------------------------------------- one run
def run_status(folder: Path) -> str:
    """``done`` (run.json says ok and results.json exists), ``failed``, ``partial`` or ``pending``."""
    folder = Path(folder)
    try:
        rec = json.loads((folder / RUN_FILE).read_text())
    except (OSError, ValueError):
        return "partial" if folder.exists() else "pending"
    if rec.get("status") == "ok" and (folder / "results.json").exists():
        return "done"
    return "failed"


def run_one(task: dict) -> dict:
    """Execute one run (in a worker process); never raises. Writes ``run.json`` last, atomically."""
    folder = Path(task["out"]) / task["id"]
    (folder / RUN_FILE).unlink(missing_ok=True)  # from here on the run counts as half-finished
    start = time.perf_counter()
    try:
        # `--only` runs here, in the caller's process: its settings must not outlive the run.
        with temporary_environ(unset=task.get("unset_env", ()), **(task.get("env") or {})):
            row = run_notebook(Path(task["notebook"]), folder.parent, task["params"], timeout=task.get("timeout"),
                               folder=folder)
    except Exception as err:  # a lock held by a live process, an unwritable folder, ...
        tail = traceback.format_exc().strip().splitlines()[-4:]
        row = {"status": "FAILED", "error": f"{type(err).__name__}: " + " | ".join(tail)}
    rec = {"index": task["index"], "id": task["id"], "notebook": Path(task["notebook"]).stem,
           "params": task["params"], "status": row.get("status", "FAILED"), "error": row.get("error"),
           "seconds": round(time.perf_counter() - start, 1), "env": task.get("env") or {},
           "host": os.uname().nodename if hasattr(os, "uname") else None}
    try:
        atomic_write_json(folder / RUN_FILE, rec, role="run record", fix="pass a writable --out folder")
    except Exception as err:  # pragma: no cover - disk full
        rec["status"], rec["error"] = "FAILED", f"cannot write run.json: {err}"
    return rec


_WORKER_ENV: dict = {}


def _init_worker(slots) -> None:
    """Pool initializer: take a worker slot, i.e. a share of the threads and (multi-GPU) one GPU."""
    _WORKER_ENV.update(slots.get())


def _run_in_pool(task: dict) -> dict:
    return run_one({**task, "env": dict(_WORKER_ENV)})


# --------------------------------------------------------------------------- executors
def _progress(total: int):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="sweep", unit="run", dynamic_ncols=True)


def _report(bar, rec: dict, rows: list) -> None:
    rows.append(rec)
    bar.update(1)
    bar.set_postfix(failed=sum(r["status"] != "ok" for r in rows))
    bar.write(f"  run {rec['index']:>3}  {rec['status']:<6} {rec['seconds']:>7.1f} s  {rec['id']}")


def run_local(tasks: list[dict], workers: int, n_gpus: int | None = None) -> list[dict]:
    """Run ``tasks`` on ``workers`` processes of this machine; Ctrl-C stops the workers and their kernels."""
    import multiprocessing as mp

    workers = max(1, min(int(workers), len(tasks)))
    threads, gpus = split_threads(usable_cores(), workers), gpu_assignment(workers, n_gpus)
    ctx = mp.get_context("spawn")
    slots = ctx.Queue()
    for t, g in zip(threads, gpus):
        slots.put(worker_env(t, g))
    rows: list[dict] = []
    bar = _progress(len(tasks))
    pool = ctx.Pool(workers, initializer=_init_worker, initargs=(slots,))
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminate) if main_thread else None  # `kill PID` stops the workers
    try:
        for rec in pool.imap_unordered(_run_in_pool, tasks):
            _report(bar, rec, rows)
        pool.close()
    except BaseException:
        pool.terminate()
        raise
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)
        bar.close()
        pool.join()
    return rows


def _terminate(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def dask_threads(client) -> dict:
    """Threads per task on each Dask worker: the host's cores shared by all task slots on that host."""
    info = client.scheduler_info(n_workers=-1)["workers"] if _accepts_n_workers(client) else \
        client.scheduler_info()["workers"]
    cores = client.run(usable_cores)
    slots_per_host: dict = {}
    for w in info.values():
        slots_per_host[w["host"]] = slots_per_host.get(w["host"], 0) + int(w["nthreads"])
    return {addr: max(1, cores.get(addr, 1) // slots_per_host[w["host"]]) for addr, w in info.items()}


def _accepts_n_workers(client) -> bool:
    import inspect

    return "n_workers" in inspect.signature(client.scheduler_info).parameters


def _run_on_dask_worker(task: dict, threads: dict) -> dict:
    from distributed import get_worker

    n = threads.get(get_worker().address, 1)
    return run_one({**task, "env": worker_env(n, None), "unset_env": dask_only_environ()})


def dask_only_environ() -> list[str]:
    """Variables a Dask nanny set for its worker that the notebook's kernel should not inherit.

    The nanny's ``MALLOC_TRIM_THRESHOLD_=65536`` keeps the worker's memory reports honest, but in a kernel that
    trains networks it makes glibc hand memory back after every large tensor: notebook 07 in fast mode ran
    in 29.9 s instead of 22.2 s with it (BENCHMARKS.md). Its thread variables are replaced by ours anyway.
    """
    import dask

    preset = dask.config.get("distributed.nanny.pre-spawn-environ", default={}) or {}
    return [k for k, v in preset.items() if k.startswith("MALLOC_") and os.environ.get(k) == str(v)]


def run_dask(tasks: list[dict], scheduler: str, client=None) -> list[dict]:
    """Run ``tasks`` on a Dask distributed cluster (``scheduler`` address, or a ready ``client``)."""
    from distributed import Client, as_completed

    own = client is None
    if own:
        try:
            client = Client(scheduler, timeout="20s")
        except (OSError, TimeoutError) as err:
            raise SettingError(f"Cannot reach the Dask scheduler at {scheduler!r} ({err}). Fix: start it "
                               "(`dask scheduler`, then `dask worker ADDRESS --nthreads 1`) and pass its address.") \
                from None
    rows: list[dict] = []
    bar = _progress(len(tasks))
    try:
        threads = dask_threads(client)
        futures = [client.submit(_run_on_dask_worker, t, threads, key=f"medgan-sweep-{t['id']}", pure=False)
                   for t in tasks]
        for fut in as_completed(futures):
            _report(bar, fut.result(), rows)
    finally:
        bar.close()
        if own:
            client.close()
    return rows


# --------------------------------------------------------------------------- the sweep
def sweep(notebook, grid_path, out, workers: int = 1, fast: bool = False, timeout: int | None = None,
          executor: str = "local", scheduler: str | None = None, only: int | None = None,
          echo=print, client=None, n_gpus: int | None = None) -> list[dict]:
    """Plan, skip finished runs, run the rest, write ``sweep.json``; returns one record per run, in order."""
    specs = plan_sweep(notebook, grid_path, fast=fast)
    out = Path(out).resolve()
    if only is not None:
        if not 0 <= int(only) < len(specs):
            raise SettingError(f"--only {only}: the grid has runs 0..{len(specs) - 1}. Fix: pick one of those "
                               "(see --list).")
        specs = [specs[int(only)]]
    tasks = [{"notebook": str(Path(notebook).resolve()), "out": str(out), "timeout": timeout, **s} for s in specs]
    todo = [t for t in tasks if run_status(out / t["id"]) != "done"]
    echo(f"{len(tasks)} run(s): {len(tasks) - len(todo)} already done, {len(todo)} to run"
         + (f" on {executor} ({scheduler})" if executor == "dask" else f" with {min(workers, max(len(todo), 1))} "
            f"worker(s)") + f"; output in {out}", flush=True)
    if only is None:
        atomic_write_json(out / PLAN_FILE, {"notebook": Path(notebook).stem, "grid": str(grid_path), "runs": specs},
                          role="sweep plan", fix="pass a writable --out folder")
    if todo and executor == "dask":
        run_dask(todo, scheduler, client=client)
    elif todo and only is not None:
        run_one({**todo[0], "env": worker_env(read_env().threads or usable_cores(), None)})
    elif todo:
        run_local(todo, workers, n_gpus=n_gpus)
    return [collect_record(out, s) for s in specs]


def collect_record(out: Path, spec: dict) -> dict:
    """A run's record as stored (``run.json``), or a placeholder saying it has not finished."""
    try:
        return json.loads((Path(out) / spec["id"] / RUN_FILE).read_text())
    except (OSError, ValueError):
        return {**spec, "status": "missing", "error": "no run.json: not run, or interrupted", "seconds": 0.0}


def list_runs(notebook, grid_path, out=None, fast: bool = False) -> list[str]:
    """One line per run: ``K<TAB>run id<TAB>status<TAB>parameters as JSON`` (for job arrays)."""
    lines = []
    for s in plan_sweep(notebook, grid_path, fast=fast):
        state = run_status(Path(out) / s["id"]) if out is not None else "-"
        lines.append(f"{s['index']}\t{s['id']}\t{state}\t{json.dumps(s['params'], sort_keys=True, default=str)}")
    return lines


def format_sweep_table(records: list[dict]) -> str:
    """The final table: run, status, wall time, parameters, error."""
    head = f"{'K':>3}  {'status':<7} {'wall s':>7}  parameters"
    lines = [head, "-" * 72]
    for r in records:
        params = ", ".join(f"{k}={v}" for k, v in (r.get("params") or {}).items())
        lines.append(f"{r.get('index', '?'):>3}  {r['status']:<7} {float(r.get('seconds') or 0):>7.1f}  {params}")
        if r.get("error"):
            lines.append(f"       error: {r['error'][:400]}")
    failed = sum(r["status"] != "ok" for r in records)
    lines += ["-" * 72, f"{len(records)} run(s), {failed} not ok"]
    return "\n".join(lines)
