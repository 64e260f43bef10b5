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

import contextlib
import json
import os
import signal
import threading
import time
import traceback
from pathlib import Path

from ..core.env import read_env
from ..core.errors import SettingError
from ..core.io import FolderInUse, atomic_write_json, folder_lock, lock_owner
from .grid import MAX_RUNS, iter_plan, plan_sweep, read_grid, run_id  # noqa: F401  (the sweep's names)
from .param_rules import value_problem
from .runner import run_notebook, temporary_environ

RUN_FILE = "run.json"
PLAN_FILE = "sweep.json"
THREAD_VARS = ("MEDGAN_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


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
    """``done`` (run.json says ok and results.json exists), ``failed``, ``running`` (a live process holds the
    run folder's lock), ``partial`` (interrupted, e.g. by a kill -9) or ``pending``."""
    folder = Path(folder)
    try:
        rec = json.loads((folder / RUN_FILE).read_text())
    except (OSError, ValueError):
        rec = None
    if isinstance(rec, dict) and rec.get("status") == "ok" and (folder / "results.json").exists():
        return "done"
    owner = lock_owner(folder / ".medgan.lock")
    if owner and owner["alive"]:
        return "running"
    if rec is None:
        return "partial" if folder.exists() else "pending"
    return "failed"


def run_one(task: dict) -> dict:
    """Execute one run (in a worker process); never raises. The run folder's lock is held from before the old
    ``run.json`` goes until the new one is written (last, atomically). A folder another live process holds (a
    second sweep into the same --out, or a worker of a sweep killed with -9 still finishing) is left untouched:
    the record says ``busy`` and nothing is written."""
    folder = Path(task["out"]) / task["id"]
    start = time.perf_counter()
    rec = {"index": task["index"], "id": task["id"], "notebook": Path(task["notebook"]).stem,
           "params": task["params"], "status": "FAILED", "error": None, "seconds": 0.0, "env": task.get("env") or {},
           "host": os.uname().nodename if hasattr(os, "uname") else None}
    try:
        with folder_lock(folder, "run folder", "wait for the other sweep to finish, or pass another --out folder"):
            (folder / RUN_FILE).unlink(missing_ok=True)  # from here on the run counts as half-finished
            rec.update(_execute_run(task, folder), seconds=round(time.perf_counter() - start, 1))
            try:
                atomic_write_json(folder / RUN_FILE, rec, role="run record", fix="pass a writable --out folder")
            except Exception as err:  # disk full: the message names the file
                rec["status"], rec["error"] = "FAILED", f"cannot write run.json: {err}"
    except FolderInUse as err:
        rec.update(status="busy", error=str(err))
    except Exception as err:  # the run folder cannot be created or locked
        rec.update(error=f"{type(err).__name__}: {err}")
    return rec


def _execute_run(task: dict, folder: Path) -> dict:
    """Status and error of one notebook run (the caller holds the folder's lock)."""
    try:
        # `--only` runs here, in the caller's process: its settings must not outlive the run.
        with temporary_environ(unset=task.get("unset_env", ()), **(task.get("env") or {})):
            row = run_notebook(Path(task["notebook"]), folder.parent, task["params"], timeout=task.get("timeout"),
                               folder=folder, lock=False)
    except Exception as err:  # an unwritable folder, ...
        tail = traceback.format_exc().strip().splitlines()[-4:]
        row = {"status": "FAILED", "error": f"{type(err).__name__}: " + " | ".join(tail)}
    return {"status": row.get("status", "FAILED"), "error": row.get("error")}


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
    """Plan, skip finished runs, run the rest, write ``sweep.json``; returns one record per run, in order.

    A whole sweep holds ``OUT``'s lock, so a second sweep into the same folder is refused at once; ``only``
    (one run of a job array, many at a time) locks just its run folder.
    """
    specs = plan_sweep(notebook, grid_path, fast=fast)
    out = Path(out).resolve()
    if out.exists() and not out.is_dir():
        raise SettingError(f"--out {out} is a file, not a folder. Fix: pass a folder path.")
    if only is not None:
        if not 0 <= int(only) < len(specs):
            raise SettingError(f"--only {only}: the grid has runs 0..{len(specs) - 1}. Fix: pick one of those "
                               "(see --list).")
        specs = [specs[int(only)]]
    if executor != "dask":  # the runs start here: the devices they name must exist here
        for spec in specs:
            device = spec["params"].get("DEVICE")
            if device is not None and (why := value_problem(Path(notebook).stem, "DEVICE", device)) is not None:
                raise SettingError(f"Run {spec['index']} of {grid_path}: parameter DEVICE {why}, got {device!r}. "
                                   "Fix: use a device this machine has, or leave DEVICE out.")
    fix = "wait for the other sweep into this folder to finish, or pass another --out"
    lock = contextlib.nullcontext() if only is not None else folder_lock(out, "sweep folder", fix)
    with lock:
        return _sweep(notebook, grid_path, out, specs, workers, timeout, executor, scheduler, only, echo, client,
                      n_gpus)


def _sweep(notebook, grid_path, out: Path, specs, workers, timeout, executor, scheduler, only, echo, client,
           n_gpus) -> list[dict]:
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
    owner = lock_owner(Path(out) / spec["id"] / ".medgan.lock")
    if owner and owner["alive"]:
        return {**spec, "status": "running", "error": f"still being run by pid {owner['pid']}"
                + (f" on {owner['host']}" if owner["host"] else "") + "; run the sweep again when it is done",
                "seconds": 0.0}
    try:
        rec = json.loads((Path(out) / spec["id"] / RUN_FILE).read_text())
        if isinstance(rec, dict) and isinstance(rec.get("status"), str):
            return rec
        raise ValueError("not a run record")
    except (OSError, ValueError):
        return {**spec, "status": "missing", "error": "no run.json: not run, or interrupted", "seconds": 0.0}


def list_runs(notebook, grid_path, out=None, fast: bool = False):
    """One line per run, as each is checked: ``K<TAB>run id<TAB>status<TAB>parameters as JSON`` (job arrays)."""
    for s in iter_plan(notebook, grid_path, fast=fast):
        state = run_status(Path(out) / s["id"]) if out is not None else "-"
        yield f"{s['index']}\t{s['id']}\t{state}\t{json.dumps(s['params'], sort_keys=True, default=str)}"


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
