"""medgan sweep: grid checks before anything runs, parallel workers with split threads, GPU pinning, failures
recorded, resume, --list/--only, and the same layout on a Dask LocalCluster.

The runs use a tiny parameterised notebook (no torch import in the kernel), so a run costs a kernel start.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from medgan_utils.core.errors import SettingError
from medgan_utils.tools import cli
from medgan_utils.tools.sweep import (gpu_assignment, list_runs, plan_sweep, read_grid, run_id, split_threads,
                                      sweep, usable_cores, worker_plan)

PARAMS = 'SEED = 0\nSCALE = 1.0\nLABEL = "a"\nFAIL = False\nFAST = None  # type: bool\n'
BODY = '''import json, os, pathlib
if FAIL:
    raise ValueError(f"deliberate failure for seed {SEED}")
out = pathlib.Path(os.environ["MEDGAN_RESULTS_DIR"])
out.mkdir(parents=True, exist_ok=True)
env = {k: os.environ.get(k) for k in ("MEDGAN_THREADS", "OMP_NUM_THREADS", "CUDA_VISIBLE_DEVICES",
                                     "MALLOC_TRIM_THRESHOLD_")}
rec = {"notebook": "tiny", "mode": "fast" if FAST else "full", "params": {"SEED": SEED, "SCALE": SCALE},
       "metrics": {"value": SEED * SCALE, "env": env, "pid": os.getpid()}}
(out / "results.json").write_text(json.dumps(rec))
print("value", SEED * SCALE)
'''


@pytest.fixture
def tiny_notebook(tmp_path) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(PARAMS, metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell(BODY)]
    path = tmp_path / "tiny.ipynb"
    nbformat.write(nb, path)
    return path


def _grid(tmp_path, text: str, name="grid.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_cartesian_and_explicit_grids(tmp_path, tiny_notebook):
    runs = read_grid(_grid(tmp_path, "grid:\n  SEED: [0, 1]\n  SCALE: [1.0, 2.5]\nfixed: {LABEL: b}\n"))
    assert runs == [{"LABEL": "b", "SEED": 0, "SCALE": 1.0}, {"LABEL": "b", "SEED": 0, "SCALE": 2.5},
                    {"LABEL": "b", "SEED": 1, "SCALE": 1.0}, {"LABEL": "b", "SEED": 1, "SCALE": 2.5}]
    explicit = _grid(tmp_path, "runs:\n  - {SEED: 3}\n  - {SEED: 4, SCALE: 2}\n", "runs.yaml")
    specs = plan_sweep(tiny_notebook, explicit)
    assert [s["params"] for s in specs] == [{"SEED": 3}, {"SEED": 4, "SCALE": 2.0}]  # int -> float parameter
    assert run_id({"SEED": 1, "SCALE": 2.0}) == run_id({"SCALE": 2.0, "SEED": 1}) != run_id({"SEED": 2, "SCALE": 2.0})


@pytest.mark.parametrize("text, words", [
    ("grid:\n  SEEDS: [0, 1]\n", ["no parameter 'SEEDS'", "Fix", "SEED"]),
    ("grid:\n  SEED: [0, 'x']\n", ["expects a value of type int", "Run 1", "Fix"]),
    ("grid:\n  SEED: []\n", ["empty list", "Fix"]),
    ("runs: []\n", ["empty", "Fix"]),
    ("grid:\n  SEED: 3\n", ["must be a list", "Fix"]),
    ("grid: {SEED: [0, 1]\n", ["not valid YAML", "line", "Fix"]),
    ("seeds: [1, 2]\n", ["exactly one of 'grid:'", "Fix"]),
    ("runs:\n  - {SEED: 1}\n  - {SEED: 1}\n", ["same parameters", "Fix"]),
])
def test_bad_grid_is_one_clear_line_before_anything_runs(tmp_path, tiny_notebook, capsys, text, words):
    grid = _grid(tmp_path, text)
    out = tmp_path / "out"
    assert cli.main(["sweep", str(tiny_notebook), "--grid", str(grid), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1
    for w in words:
        assert w in err, err
    assert not out.exists()  # nothing started


def test_missing_grid_file(tmp_path, tiny_notebook, capsys):
    assert cli.main(["sweep", str(tiny_notebook), "--grid", str(tmp_path / "nope.yaml")]) == 2
    assert "Cannot read the grid file" in capsys.readouterr().err
    with pytest.raises(SettingError, match="--only 9"):
        sweep(tiny_notebook, _grid(tmp_path, "grid: {SEED: [0]}\n"), tmp_path / "o", only=9)


def test_threads_split_and_gpu_round_robin(monkeypatch):
    assert split_threads(2, 2) == [1, 1] and split_threads(16, 3) == [6, 5, 5] and sum(split_threads(7, 4)) == 7
    assert split_threads(2, 4) == [1, 1, 1, 1]  # more workers than cores: one thread each
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert gpu_assignment(5, n_gpus=4) == ["0", "1", "2", "3", "0"]
    assert gpu_assignment(3, n_gpus=1) == [None, None, None]  # one GPU: every worker shares it, env unchanged
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,6")  # a scheduler gave us GPUs 4 and 6
    assert gpu_assignment(3, n_gpus=2) == ["4", "6", "4"]


def test_medgan_env_shows_the_assignment(monkeypatch, capsys):
    import torch

    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    plan = worker_plan(3)
    assert [w["CUDA_VISIBLE_DEVICES"] for w in plan] == ["0", "1", "0"]
    assert sum(w["threads"] for w in plan) == max(3, usable_cores())
    monkeypatch.setattr("medgan_utils.course.envinfo.environment_report", lambda: {"stub": True})
    monkeypatch.setattr("medgan_utils.course.envinfo.format_report", lambda rep: "report")
    assert cli.main(["env", "--workers", "2"]) == 0
    assert "worker 0: " in (text := capsys.readouterr().out) and "GPU 0" in text and "worker 1" in text and "GPU 1" in text


def _records(out: Path) -> dict:
    return {json.loads(p.read_text())["index"]: json.loads(p.read_text()) for p in out.glob("*/run.json")}


def test_local_sweep_parallel_failures_resume_and_clean_terminal(tmp_path, tiny_notebook):
    grid = _grid(tmp_path, "runs:\n  - {SEED: 0}\n  - {SEED: 1, SCALE: 2.0}\n  - {SEED: 2, FAIL: true}\n"
                           "  - {SEED: 3}\n")
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "medgan_utils.tools.cli", "sweep", str(tiny_notebook), "--grid", str(grid),
           "--workers", "2", "--out", str(out)]
    env = {**os.environ, "PYTHONWARNINGS": "default"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    text = proc.stdout + proc.stderr
    assert proc.returncode == 1, text  # one run failed, the others finished
    for noise in ("TCP", "transport", "Unable to parse", "Traceback (most recent call last)"):
        assert noise not in text, text
    assert "4 run(s), 1 not ok" in proc.stdout and "sweep: 100%" in proc.stderr  # final table, tqdm bar
    recs = _records(out)
    assert [recs[k]["status"] for k in range(4)] == ["ok", "ok", "FAILED", "ok"]
    assert "ValueError" in recs[2]["error"] and "deliberate failure for seed 2" in recs[2]["error"]
    results = {k: json.loads((out / recs[k]["id"] / "results.json").read_text()) for k in (0, 1, 3)}
    assert results[1]["metrics"]["value"] == 2.0
    assert (out / recs[1]["id"] / "tiny.ipynb").exists()
    threads = {r["metrics"]["pid"]: int(r["metrics"]["env"]["MEDGAN_THREADS"]) for r in results.values()}
    assert all(r["metrics"]["env"]["OMP_NUM_THREADS"] == r["metrics"]["env"]["MEDGAN_THREADS"] for r in results.values())
    assert set(threads.values()) <= set(split_threads(usable_cores(), 2))
    # Resume: run 0 is done (skipped), run 3 lost its run.json (half-finished: redone), run 2 failed (redone).
    (out / recs[3]["id"] / "run.json").unlink()
    stamp = (out / recs[0]["id"] / "run.json").stat().st_mtime_ns
    rows = sweep(tiny_notebook, grid, out, workers=2, echo=lambda *a, **k: None)
    assert (out / recs[0]["id"] / "run.json").stat().st_mtime_ns == stamp
    assert [r["status"] for r in rows] == ["ok", "ok", "FAILED", "ok"]
    assert json.loads((out / recs[3]["id"] / "results.json").read_text())["metrics"]["pid"] != results[3]["metrics"]["pid"]
    plan = json.loads((out / "sweep.json").read_text())
    assert [r["id"] for r in plan["runs"]] == [recs[k]["id"] for k in range(4)]


def test_workers_pinned_to_gpus_round_robin(tmp_path, tiny_notebook, monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    grid = _grid(tmp_path, "grid: {SEED: [0, 1, 2, 3]}\n")
    sweep(tiny_notebook, grid, tmp_path / "out", workers=2, n_gpus=2, echo=lambda *a, **k: None)
    seen = {json.loads(p.read_text())["metrics"]["env"]["CUDA_VISIBLE_DEVICES"]
            for p in (tmp_path / "out").glob("*/results.json")}
    assert seen <= {"0", "1"} and len(list((tmp_path / "out").glob("*/results.json"))) == 4


def test_list_and_only_for_job_arrays(tmp_path, tiny_notebook, capsys):
    grid = _grid(tmp_path, "grid: {SEED: [5, 6, 7]}\n")
    out = tmp_path / "out"
    assert cli.main(["sweep", str(tiny_notebook), "--grid", str(grid), "--out", str(out), "--list"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3 and lines[1].split("\t")[0] == "1" and lines[1].split("\t")[2] == "pending"
    assert json.loads(lines[1].split("\t")[3]) == {"SEED": 6}
    before = {k: os.environ.get(k) for k in ("MEDGAN_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    assert cli.main(["sweep", str(tiny_notebook), "--grid", str(grid), "--out", str(out), "--only", "1"]) == 0
    # --only runs in this process: the run's thread settings must not leak into it (or into later kernels).
    assert {k: os.environ.get(k) for k in before} == before
    states = [line.split("\t")[2] for line in list_runs(tiny_notebook, grid, out=out)]
    assert states == ["pending", "done", "pending"]


def test_dask_local_cluster_sweep_same_layout(tmp_path, tiny_notebook):
    from distributed import Client, LocalCluster

    grid = _grid(tmp_path, "grid: {SEED: [0, 1, 2]}\n")
    out = tmp_path / "out"
    # The cluster's nannies write MALLOC_TRIM_THRESHOLD_ etc. into this process; conftest.py restores os.environ.
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        rows = sweep(tiny_notebook, grid, out, executor="dask", scheduler=cluster.scheduler_address,
                     client=client, echo=lambda *a, **k: None)
        worker_env = client.run(lambda: os.environ.get("MALLOC_TRIM_THRESHOLD_"))
    assert set(worker_env.values()) == {"65536"}  # the nanny's setting is on the workers ...
    kernels = {json.loads((out / r["id"] / "results.json").read_text())["metrics"]["env"]["MALLOC_TRIM_THRESHOLD_"]
               for r in rows}
    assert kernels == {None}  # ... but not in the notebooks' kernels (it slows training by about a third)
    assert [r["status"] for r in rows] == ["ok", "ok", "ok"]
    for r in rows:
        res = json.loads((out / r["id"] / "results.json").read_text())
        assert res["metrics"]["value"] == r["params"]["SEED"] * 1.0
        assert (out / r["id"] / "tiny.ipynb").exists()
    threads = {json.loads((out / r["id"] / "results.json").read_text())["metrics"]["env"]["MEDGAN_THREADS"]
               for r in rows}
    assert threads == {str(max(1, usable_cores() // 2))}  # the host's cores shared by its 2 one-thread workers
    assert {p.parent.name for p in out.glob("*/run.json")} == {s["id"] for s in plan_sweep(tiny_notebook, grid)}
