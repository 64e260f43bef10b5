"""The one-call GPU check: ``bash tools/gpu_check.sh [--dry-run] [OUT]`` (this module does the work).

Run it whenever a GPU is available; it takes about 8 minutes on one GPU (a budget of 10, checks that would start
after it are skipped and say so) and writes ``OUT/gpu_check.json`` (default ``runs/gpu_check``) with the card,
the date, every check's status and time, and its numbers, plus each check's own files. The checks:

1. ``env``: ``medgan env --json`` (device, compute capability, precision policy, determinism);
2. ``fp16_d_steps_2``: forced fp16 (an enabled GradScaler) with two D steps per G step;
3. ``ddp_2_processes``: ``torchrun`` with 2 processes on one GPU (gloo, ``--share-gpu``) or on two (NCCL,
   ``--sync-bn``), plain batch norm in D called several times per step;
4. ``bench_64_compiled``: ``compile=True`` (CUDA graphs) with ``TORCH_LOGS=recompiles,graph_breaks,cudagraphs``;
   the steady-state rate (after warm-up and compilation) and the number of recompilations;
5. ``bench_28_eager`` and ``bench_64_eager``: the three benchmark ratios of ``medgan bench dcgan``;
6. ``feature_net_cpu_vs_gpu``: the fixed feature net trained on the CPU and on the GPU: the same identity (hash),
   how far their embeddings and the FDs measured in them are apart;
7. ``notebooks_03_08_fast``: ``medgan run 03 04 05 06 07 08 --fast``.

``--dry-run`` needs no GPU: it lists every check with its command and writes ``OUT/gpu_check_plan.json``.
Set ``MEDGAN_DATA_DIR`` to a folder with the datasets when the machine has no network.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from ..core.io import atomic_write_json

BUDGET_S = 600
TORCH_LOGS = "recompiles,graph_breaks,cudagraphs"


def plan(out: Path, n_gpus: int = 1) -> list[dict]:
    """Every check: name, what it shows, command, the file its stdout goes to (if any), extra environment and
    its own time limit (seconds)."""
    py = sys.executable
    medgan = [py, "-m", "medgan_utils.tools.cli"]
    me = [py, "-m", "medgan_utils.tools.gpu_check"]
    bench = medgan + ["bench", "dcgan", "--batch", "128", "--device", "cuda", "--seconds", "8"]
    ddp = [py, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m",
           "medgan_utils.tools.train_ddp", "--device", "cuda", "--epochs", "1", "--batch", "256", "--out",
           str(out / "ddp")] + (["--sync-bn"] if n_gpus >= 2 else ["--share-gpu"])
    return [
        {"name": "env", "what": "device, compute capability, precision policy, determinism",
         "cmd": medgan + ["env", "--json"], "stdout": "env.json", "timeout": 60},
        {"name": "fp16_d_steps_2", "what": "forced fp16 (enabled GradScaler) with d_steps=2",
         "cmd": me + ["fp16-d-steps", str(out / "fp16_d_steps_2.json")], "timeout": 120},
        {"name": "ddp_2_processes", "what": "DistributedDataParallel, 2 processes, batch norm in D",
         "cmd": ddp, "timeout": 180},
        {"name": "bench_64_compiled", "what": "compile=True: steady-state img/s, recompiles, CUDA-graph logs",
         "cmd": bench + ["--size", "64", "--compile", "on"], "stdout": "bench_64_compiled.json",
         "env": {"TORCH_LOGS": TORCH_LOGS}, "stderr": "compile_logs.txt", "timeout": 240},
        {"name": "bench_28_eager", "what": "the three benchmark ratios at 28 px",
         "cmd": bench + ["--size", "28"], "stdout": "bench_28_eager.json", "timeout": 120},
        {"name": "bench_64_eager", "what": "the three benchmark ratios at 64 px",
         "cmd": bench + ["--size", "64"], "stdout": "bench_64_eager.json", "timeout": 120},
        {"name": "feature_net_cpu_vs_gpu", "what": "the fixed feature net trained on CPU and GPU: hash and distance",
         "cmd": me + ["feature-net", str(out / "feature_net.json")], "timeout": 240},
        {"name": "notebooks_03_08_fast", "what": "notebooks 03-08 in fast mode",
         "cmd": medgan + ["run", "03", "04", "05", "06", "07", "08", "--fast", "--out", str(out / "notebooks")],
         "timeout": 420},
    ]


def run_checks(out: Path, budget_s: float = BUDGET_S) -> dict:
    """Run :func:`plan` within ``budget_s`` seconds; returns (and writes) the report."""
    import torch

    out.mkdir(parents=True, exist_ok=True)
    start, rows = time.perf_counter(), []
    for check in plan(out, torch.cuda.device_count()):
        left = budget_s - (time.perf_counter() - start)
        row = {"name": check["name"], "what": check["what"], "cmd": " ".join(check["cmd"])}
        if left < 30:
            rows.append({**row, "status": "skipped", "reason": f"the {budget_s:.0f} s budget was spent"})
            continue
        print(f"== {check['name']}: {check['what']}", flush=True)
        rows.append({**row, **_run_one(check, out, min(check["timeout"], left))})
        print(f"   {rows[-1]['status']} in {rows[-1]['seconds']} s", flush=True)
    report = {"card": torch.cuda.get_device_name(0), "torch": torch.__version__,
              "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
              "seconds": round(time.perf_counter() - start, 1), "checks": rows, "numbers": numbers(out)}
    atomic_write_json(out / "gpu_check.json", report, role="GPU check report", fix="pass a writable OUT folder")
    return report


def _run_one(check: dict, out: Path, timeout: float) -> dict:
    env = {**os.environ, **check.get("env", {})}
    t0 = time.perf_counter()
    stdout = open(out / check["stdout"], "w") if check.get("stdout") else None
    stderr = open(out / check["stderr"], "w") if check.get("stderr") else None
    try:
        proc = subprocess.run(check["cmd"], stdout=stdout, stderr=stderr, env=env, timeout=timeout)
        status = "ok" if proc.returncode == 0 else f"failed (exit {proc.returncode})"
    except subprocess.TimeoutExpired:
        status = f"timed out after {timeout:.0f} s"
    finally:
        for fh in (stdout, stderr):
            if fh is not None:
                fh.close()
    return {"status": status, "seconds": round(time.perf_counter() - t0, 1)}


def _json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def numbers(out: Path) -> dict:
    """The headline numbers of the checks' files (``None`` where a check wrote nothing readable)."""
    res = {}
    for name in ("bench_28_eager", "bench_64_eager", "bench_64_compiled"):
        b = _json(out / f"{name}.json") or {}
        res[name] = {k: b.get(k) for k in ("precision", "ours_best_img_s", "reference_img_s", "ratios",
                                           "first_step_s")} if b else None
    try:
        logs = (out / "compile_logs.txt").read_text(errors="replace")
        res["recompiles"] = logs.count("Recompiling")
    except OSError:
        res["recompiles"] = None
    res["fp16_d_steps_2"] = _json(out / "fp16_d_steps_2.json")
    ddp = _json(out / "ddp" / "results.json")
    res["ddp_2_processes"] = ddp.get("metrics") if isinstance(ddp, dict) else None
    res["feature_net_cpu_vs_gpu"] = _json(out / "feature_net.json")
    summary = _json(out / "notebooks" / "summary.json")
    res["notebooks"] = ({r.get("notebook"): {"status": r.get("status"), "seconds": r.get("seconds")} for r in summary
                         if isinstance(r, dict)} if isinstance(summary, list) else None)
    return res


def check_fp16_d_steps(path: Path, epochs: int = 2, *, device: str = "cuda", n_images: int = 2048,
                       base: int = 64, batch_size: int = 128) -> dict:
    """A DCGAN in forced fp16 with two D steps per step: it must train (an enabled scaler, finite losses).
    (``device="cpu"`` runs the same on the CPU's GradScaler: the test suite's smoke check.)"""
    import torch

    from ..gan.regularisers import make_stable_step
    from ..gan.trainer import DCGANTrainer
    from ..nets.dcgan import make_dcgan

    images = torch.rand(n_images, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1
    G, D = make_dcgan(28, 1, base=base, seed=0)
    tr = DCGANTrainer(G, D, images, device=device, step_fn=make_stable_step(d_steps=2), precision="fp16",
                      progress=False, on_diverge="stop", batch_size=batch_size)
    summary = tr.fit(epochs)
    res = {"precision": tr.precision, "scaler_enabled": tr.scaler.is_enabled(), "scale": tr.scaler.get_scale(),
           "steps": summary["global_step"], "img_per_s": summary["img_per_s"], "diverged": summary["diverged"],
           "ok": bool(tr.scaler.is_enabled() and not summary["diverged"] and summary["global_step"] > 0)}
    atomic_write_json(path, res, role="check result", fix="pass a writable OUT folder")
    return res


def check_feature_net(path: Path) -> dict:
    """The fixed feature net on the CPU and on the GPU: one identity, and how far apart the nets measure."""
    from ..data.load import load_dataset
    from ..evaluation.distances import frechet_distance
    from ..evaluation.features import FIXED_RECIPE, extract_features, train_feature_net

    train, val, test = (load_dataset("pneumoniamnist", s, 28) for s in ("train", "val", "test"))
    res, feats = {"data": train.used}, {}
    for dev in ("cpu", "cuda"):
        net, info = train_feature_net(train, val=val, device=dev, cache_dir=False, verbose=False, **FIXED_RECIPE)
        f_val, f_test = extract_features(net, val), extract_features(net, test)
        feats[dev] = f_val
        res[dev] = {"hash": info["hash"], "precision": info["precision"], "val_auc": info["val_auc"],
                    "fd_val_test": frechet_distance(f_val, f_test), "train_seconds": round(info["train_seconds"], 1)}
    diff = (feats["cpu"] - feats["cuda"]).abs()
    res.update(same_identity=res["cpu"]["hash"] == res["cuda"]["hash"], embedding_max_abs_diff=float(diff.max()),
               embedding_mean_abs_diff=float(diff.mean()),
               fd_ratio_gpu_over_cpu=res["cuda"]["fd_val_test"] / max(res["cpu"]["fd_val_test"], 1e-12))
    atomic_write_json(path, res, role="check result", fix="pass a writable OUT folder")
    return res


def _resolves(cmd: list[str]) -> bool:
    """Whether the module that ``python -m MODULE`` would run is importable here (the last ``-m`` counts)."""
    import importlib.util

    mods = [cmd[i + 1] for i, a in enumerate(cmd[:-1]) if a == "-m"]
    return all(importlib.util.find_spec(m) is not None for m in mods)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="bash tools/gpu_check.sh", description=__doc__.split("\n\n")[0])
    p.add_argument("--dry-run", action="store_true", help="list every check and its command; needs no GPU")
    p.add_argument("--budget", type=float, default=BUDGET_S, help="seconds for all checks (default 600)")
    p.add_argument("what", nargs="?", default="runs/gpu_check", help="OUT folder, or fp16-d-steps / feature-net")
    p.add_argument("path", nargs="?", help="(internal) the JSON file of one in-process check")
    args = p.parse_args(argv)
    if args.what in ("fp16-d-steps", "feature-net"):
        fn = check_fp16_d_steps if args.what == "fp16-d-steps" else check_feature_net
        return 0 if fn(Path(args.path)).get("ok", True) else 1
    out = Path(args.what)
    if args.dry_run:
        checks = plan(out)
        missing = [c["name"] for c in checks if not _resolves(c["cmd"])]
        if missing:
            print(f"gpu_check: error: the command of {', '.join(missing)} does not resolve. Fix: pip install -e "
                  "\".[dev]\" in this Python.", file=sys.stderr)
            return 2
        print(f"gpu_check --dry-run: {len(checks)} checks would run (budget {args.budget:.0f} s), output in {out}:")
        for i, c in enumerate(checks, 1):
            env = " ".join(f"{k}={v}" for k, v in c.get("env", {}).items())
            print(f"{i}. {c['name']}: {c['what']} (limit {c['timeout']} s)\n   $ {env + ' ' if env else ''}"
                  f"{' '.join(c['cmd'])}")
        atomic_write_json(out / "gpu_check_plan.json", checks, role="GPU check plan", fix="pass a writable OUT folder")
        return 0
    import torch

    if not torch.cuda.is_available():
        print("gpu_check: error: no CUDA GPU is visible. Fix: run it on a GPU machine, or use --dry-run to list "
              "the checks.", file=sys.stderr)
        return 2
    report = run_checks(out, args.budget)
    bad = [c["name"] for c in report["checks"] if c["status"] != "ok"]
    print(f"wrote {out / 'gpu_check.json'} ({report['card']}, {report['seconds']} s); "
          + (f"not ok: {', '.join(bad)}" if bad else "every check ok"))
    return 1 if bad else 0


def _main(argv=None) -> int:
    from ..core.errors import CourseError

    try:
        return main(argv)
    except CourseError as err:  # an unwritable OUT, no data, ...: one line
        print(f"gpu_check: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(_main())
