"""The ``medgan`` command: environment check, data management, notebook runs, benchmarks and checks.

Every error a user can cause is a :class:`~medgan_utils.core.errors.CourseError`
(or an ``OSError`` on a path they named): it is printed as one line that names
the fault and the fix, and the command exits with status 2. No traceback.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _print_json(obj) -> None:
    print(json.dumps(obj, indent=2, default=str))


def _default_size(name: str, size) -> int:
    if size is not None:
        return size
    from ..data.registry import COURSE_DATASETS

    return COURSE_DATASETS.get(str(name).lower(), 28)


def cmd_env(args) -> int:
    from ..course.envinfo import environment_report, format_report

    from .sweep import format_worker_plan, worker_plan

    if args.workers is not None:
        from ..core.errors import positive_int

        positive_int(args.workers, "--workers", maximum=1024, fix="give the number of sweep workers, e.g. --workers 2.")
    rep = environment_report()
    rep["sweep_workers"] = worker_plan(args.workers)
    _print_json(rep) if args.json else print(format_report(rep) + "\n" + format_worker_plan(rep["sweep_workers"]))
    return 0


def cmd_data_list(args) -> int:
    from ..data.registry import available_datasets, supported_sizes

    rows = [{"name": k, "kind": v, "sizes": list(supported_sizes(k)) or "any >= 8"}
            for k, v in available_datasets().items()]
    if args.json:
        _print_json(rows)
        return 0
    for r in rows:
        sizes = r["sizes"] if isinstance(r["sizes"], str) else ", ".join(map(str, r["sizes"]))
        print(f"{r['name']:<16} {sizes:<18} {r['kind']}")
    return 0


def cmd_data_info(args) -> int:
    from ..data.load import dataset_info

    info = dataset_info(args.name, _default_size(args.name, args.size))
    if args.json:
        _print_json(info)
        return 0
    for k, v in info.items():
        print(f"{k:<18} {v}")
    return 0


def cmd_data_fetch(args) -> int:
    from ..data.download import check_file, ensure_file
    from ..data.registry import COURSE_FILES, DataError, file_spec

    if args.all:
        targets = list(COURSE_FILES)
    elif args.names:
        targets = [(n, _default_size(n, args.size)) for n in args.names]
    else:
        print("medgan: error: name at least one dataset, or use --all (see `medgan data list`).", file=sys.stderr)
        return 2
    for name, size in targets:  # bad names and sizes are usage errors (exit 2), before any download
        file_spec(name, size)
    failed = 0
    for name, size in targets:
        try:
            before = check_file(file_spec(name, size))["status"]
            path = ensure_file(name, size, force=args.force)
            state = "already present, verified" if before == "verified" and not args.force else "downloaded, verified"
            print(f"ok      {name:<16} {size:>4} px  {path}  ({state})")
        except DataError as err:
            failed += 1
            print(f"FAILED  {name:<16} {size:>4} px  {err}", file=sys.stderr)
    return 1 if failed else 0


def cmd_run(args) -> int:
    from ..core.io import atomic_write_json
    from .runner import format_summary, parse_value, plan_parameters, resolve_notebooks, run_notebooks

    raw = {k: v for k, v in (args.param or [])}
    params = {k: parse_value(v) for k, v in raw.items()}
    paths = resolve_notebooks(args.notebooks)
    plan_parameters(paths, params, raw)  # bad keys and types fail here, before anything runs
    if args.timeout is not None:
        from ..core.errors import positive_int

        positive_int(args.timeout, "--timeout", fix="give the per-cell limit in seconds, or leave it out.")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        print(f"medgan: error: --out {out} is a file, not a folder. Fix: pass a folder path.", file=sys.stderr)
        return 2
    rows = run_notebooks(paths, out, params, fast=args.fast, timeout=args.timeout, raw=raw)
    print()
    print(format_summary(rows))
    print(f"executed notebooks and results.json files are in {out.resolve()}")
    atomic_write_json(out / "summary.json", rows, role="run summary", fix="pass a writable --out folder")
    return 0 if all(r["status"] == "ok" for r in rows) else 1


def cmd_sweep(args) -> int:
    from .runner import resolve_notebooks
    from .sweep import format_sweep_table, list_runs, sweep

    (path,) = resolve_notebooks([args.notebook])
    if args.list:  # one line per run as soon as it is checked (a SLURM recipe reads them as they come)
        for line in list_runs(path, args.grid, out=args.out, fast=args.fast):
            print(line, flush=True)
        return 0
    if args.executor == "dask" and not args.scheduler:
        print("medgan: error: --executor dask needs --scheduler ADDRESS (e.g. tcp://10.0.0.5:8786).", file=sys.stderr)
        return 2
    from ..core.errors import positive_int

    positive_int(args.workers, "--workers", fix="give the number of notebooks to run at once, e.g. --workers 2.")
    records = sweep(path, args.grid, args.out, workers=args.workers, fast=args.fast, timeout=args.timeout,
                    executor=args.executor, scheduler=args.scheduler, only=args.only)
    print()
    print(format_sweep_table(records))
    print(f"executed notebooks, results.json and run.json per run are in {Path(args.out).resolve()}; "
          f"next: medgan report {args.out}")
    return 0 if all(r["status"] == "ok" for r in records) else 1


def cmd_report(args) -> int:
    from .report import write_report

    written = write_report(args.folder, out=args.out)
    for p in written:
        print(p)
    return 0


def cmd_site(args) -> int:
    from .site import build_site

    index = build_site(args.out, full=args.full, notebooks=args.notebooks, from_run=args.from_run,
                       timeout=args.timeout, mathjax=args.mathjax)
    print(f"site built: {index}  (open it in a browser, or: python -m http.server -d {index.parent})")
    return 0


def cmd_exercises(args) -> int:
    from ..course.checking import exercise_table

    rows = exercise_table()
    if args.json:
        _print_json(rows)
        return 0
    print(f"{'id':<6} {'notebook':<24} {'checked':<8} {'fast min':>8}  task")
    for r in rows:
        minutes = f"{r['fast_minutes']:.2f}" if r["fast_minutes"] is not None else "-"
        print(f"{r['id']:<6} {r['notebook']:<24} {'yes' if r['checked'] else 'NO':<8} {minutes:>8}  {r['task']}")
    total = sum(r["fast_minutes"] or 0 for r in rows)
    print(f"{len(rows)} exercises, {sum(r['checked'] for r in rows)} checked; about {total:.0f} min of compute in "
          "fast mode on a 2-core CPU (answers and checks), plus the time to write them")
    return 0


def cmd_pack_build(args) -> int:
    from .pack import build_pack

    build_pack(args.from_dir, args.out, only=args.only, with_data=args.with_data, as_trained=args.as_trained)
    return 0


def cmd_pack_verify(args) -> int:
    from .pack import verify_pack

    verify_pack(args.pack)
    return 0


def _add_pack(sub) -> None:
    k = sub.add_parser("pack", help="the workshop pack: trained networks (and data) of a run, for every laptop")
    ksub = k.add_subparsers(dest="pack_command", required=True)
    kb = ksub.add_parser("build", help="collect the networks a medgan run (or sweep) saved, with a manifest")
    kb.add_argument("--from", dest="from_dir", required=True, metavar="RUN_DIR", help="the run's --out folder")
    kb.add_argument("--out", required=True, metavar="PACK_DIR", help="the pack folder to write (replaced if a pack)")
    kb.add_argument("--only", nargs="+", default=None, metavar="NN", help="only these notebooks, e.g. --only 03 04")
    kb.add_argument("--with-data", action="store_true", help="add the MD5-checked dataset files the runs used")
    kb.add_argument("--as-trained", action="store_true", help="keep every network in the precision it was trained "
                    "in (by default the generators behind exploratory numbers are stored in fp16: half their size)")
    kb.set_defaults(func=cmd_pack_build)
    kv = ksub.add_parser("verify", help="check a pack's hashes, versions and completeness; what each notebook reuses")
    kv.add_argument("pack", metavar="PACK_DIR")
    kv.set_defaults(func=cmd_pack_verify)


def _add_site(sub) -> None:
    s = sub.add_parser("site", help="execute the notebooks and build the course website (Sphinx, offline)")
    s.add_argument("notebooks", nargs="*", help="a subset (default: every notebook, in order)")
    s.add_argument("--full", action="store_true", help="full mode (default: fast mode)")
    s.add_argument("--out", default="runs/site", help="output folder; the site is OUT/html (default runs/site)")
    s.add_argument("--from-run", default=None, metavar="DIR", help="use the executed notebooks of a medgan run folder")
    s.add_argument("--timeout", type=int, default=None, help="per-cell timeout in seconds")
    s.add_argument("--mathjax", default=None, metavar="DIR", help="a local MathJax 2 or 3 folder (default: Debian's)")
    s.set_defaults(func=cmd_site)


def _add_sweep(sub) -> None:
    s = sub.add_parser("sweep", help="run one notebook over a parameter grid (parallel, resumable)",
                       description="Grid file: 'grid: {NAME: [v1, v2], ...}' (every combination) or "
                                   "'runs: [{NAME: v, ...}, ...]', plus an optional 'fixed: {NAME: v}'.")
    s.add_argument("notebook", help="path, name or number prefix, e.g. 04")
    s.add_argument("--grid", required=True, metavar="GRID.yaml")
    s.add_argument("--workers", type=int, default=1, help="notebooks run at once (the cores are split)")
    s.add_argument("--out", default="runs/sweep", help="output folder (default runs/sweep)")
    s.add_argument("--fast", action="store_true", help="fast mode (FAST=True) in every run")
    s.add_argument("--timeout", type=int, default=None, help="per-cell timeout in seconds")
    s.add_argument("--executor", choices=["local", "dask"], default="local")
    s.add_argument("--scheduler", default=None, metavar="ADDRESS", help="Dask scheduler (with --executor dask)")
    s.add_argument("--list", action="store_true", help="print one run per line: K, id, status, parameters")
    s.add_argument("--only", type=int, default=None, metavar="K", help="run only run K (e.g. a SLURM array task)")
    s.set_defaults(func=cmd_sweep)
    r = sub.add_parser("report", help="collect every results.json under a folder: CSV, Markdown table, plots")
    r.add_argument("folder")
    r.add_argument("--out", default=None, help="where to write (default: the folder itself)")
    r.set_defaults(func=cmd_report)


def cmd_bench_dcgan(args) -> int:
    from .bench import run_dcgan_bench

    compile_mode = {"off": False, "on": True}.get(args.compile, args.compile)
    res = run_dcgan_bench(size=args.size, batch=args.batch, device=args.device, channels=args.channels,
                          seconds=args.seconds, precision=args.precision, compile=compile_mode)
    _print_json(res)
    return 0


def cmd_bench_precision(args) -> int:
    from .precision_check import run_precision_check

    res = run_precision_check(args.device, epochs=args.epochs, seed=args.seed, dataset=args.dataset)
    _print_json(res)
    return 0


def _add_data(sub) -> None:
    d = sub.add_parser("data", help="list, inspect and prefetch datasets")
    dsub = d.add_subparsers(dest="data_command", required=True)
    dl = dsub.add_parser("list", help="datasets the course can load")
    dl.add_argument("--json", action="store_true")
    dl.set_defaults(func=cmd_data_list)
    di = dsub.add_parser("info", help="per-split counts, channels, real or phantom, path, checksum")
    di.add_argument("name")
    di.add_argument("--size", type=int, default=None, help="image size (default 28; busi 128)")
    di.add_argument("--json", action="store_true")
    di.set_defaults(func=cmd_data_info)
    df = dsub.add_parser("fetch", help="download and verify datasets for offline use")
    df.add_argument("names", nargs="*")
    df.add_argument("--size", type=int, default=None)
    df.add_argument("--all", action="store_true", help="every file the course notebooks use")
    df.add_argument("--force", action="store_true", help="re-download even if a file is present")
    df.set_defaults(func=cmd_data_fetch)


def _add_bench(sub) -> None:
    b = sub.add_parser("bench", help="throughput benchmarks and the precision check")
    bsub = b.add_subparsers(dest="bench_command", required=True)
    bd = bsub.add_parser("dcgan", help="DCGAN training img/s: our trainer vs the classic tutorial loop")
    bd.add_argument("--size", type=int, default=64)
    bd.add_argument("--batch", type=int, default=128)
    bd.add_argument("--device", default=None)
    bd.add_argument("--channels", type=int, default=1)
    bd.add_argument("--seconds", type=float, default=None, help="timed seconds per implementation")
    bd.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"],
                    help="our trainer's best precision (it is also timed in fp32; the reference is always fp32)")
    bd.add_argument("--compile", default="off", metavar="MODE",
                    help="torch.compile our networks: off, on (CUDA graphs on CUDA), or a compile mode")
    bd.set_defaults(func=cmd_bench_dcgan)
    bp = bsub.add_parser("precision", help="does bf16 (CPU) / fp16 (MPS) train as well as fp32 here? stores the verdict")
    bp.add_argument("--device", default=None)
    bp.add_argument("--epochs", type=int, default=10)
    bp.add_argument("--seed", type=int, default=0)
    bp.add_argument("--dataset", default="pneumoniamnist")
    bp.set_defaults(func=cmd_bench_precision)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="medgan", description="MedGAN Course: environment, data, notebook runs, benchmarks.")
    sub = p.add_subparsers(dest="command", required=True)
    e = sub.add_parser("env", help="versions, device, precision, threads and which datasets are ready offline")
    e.add_argument("--json", action="store_true")
    e.add_argument("--workers", type=int, default=None, help="show the threads and GPU of N sweep workers")
    e.set_defaults(func=cmd_env)
    _add_data(sub)
    r = sub.add_parser("run", help="execute notebooks with papermill and print a summary")
    r.add_argument("notebooks", nargs="*", help="paths, names or number prefixes (default: all, in order)")
    r.add_argument("--fast", action="store_true", help="fast mode (FAST=True)")
    r.add_argument("-p", "--param", nargs=2, action="append", metavar=("KEY", "VALUE"), help="notebook parameter")
    r.add_argument("--out", default="runs/latest", help="output folder (default runs/latest)")
    r.add_argument("--timeout", type=int, default=None, help="per-cell timeout in seconds")
    r.set_defaults(func=cmd_run)
    _add_sweep(sub)
    x = sub.add_parser("exercises", help="every exercise: id, notebook, checked or not, fast-mode minutes")
    x.add_argument("--json", action="store_true", help="the same list as JSON, for tools")
    x.set_defaults(func=cmd_exercises)
    _add_site(sub)
    _add_bench(sub)
    _add_pack(sub)
    return p


def main(argv=None) -> int:
    from ..core.errors import CourseError, describe_os_error

    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except CourseError as err:
        print(f"medgan: error: {err}", file=sys.stderr)
    except OSError as err:
        where = f" {err.filename}" if getattr(err, "filename", None) else ""
        print(f"medgan: error:{where} {describe_os_error(err)}. Fix: check the path and its permissions.",
              file=sys.stderr)
    except KeyboardInterrupt:
        print("medgan: interrupted; nothing half-written was kept.", file=sys.stderr)
        return 130
    return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
