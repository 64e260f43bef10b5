"""Collect every ``results.json`` under a folder into a CSV, a Markdown report and plots (``medgan report``).

* ``report.csv``: one row per run (one ``results.json``): notebook, folder, mode, parameters (``param.*``) and
  scalar metrics (``metric.*``; nested dicts and short lists are flattened, ``runs``/``summary`` tables are not);
* ``report_seeds.csv``: the per-seed rows of every run that records ``metrics.runs`` (notebooks 04 onwards),
  with the run's setting;
* ``report.md``: the runs table, then per-seed rows pooled **only within one setting** (every parameter equal
  except the seed parameters) as mean ± 95 % CI, one section per setting;
* ``<metric>_vs_<x>.png``: e.g. AUC against the training fraction, one line per arm with its CI band and one
  panel per setting. Runs whose settings differ are never averaged together: they get separate sections and panels.
"""
from __future__ import annotations

import csv
import io
import json
import math
from collections import defaultdict
from pathlib import Path

from ..core.errors import SettingError
from ..core.io import atomic_path, atomic_write_text
from ..evaluation.statistics import mean_ci

#: Parameters that only pick seeds: runs that differ only in these are repeats of one setting.
SEED_PARAMS = {"SEED", "N_SEEDS"}
#: Parameters whose values are a column of the per-seed rows (so they do not split a setting).
ROW_PARAMS = {"FRACTIONS": "fraction", "SYNTH_RATIOS": "ratio", "ARMS": "arm"}
SERIES_KEYS = ("arm", "method", "model", "variant")
X_KEYS = ("fraction", "level", "epsilon", "lambda", "ratio", "size")
#: Columns that split a series further when they take several values within one setting.
SPLIT_KEYS = ("task", "ratio")
Y_KEYS = ("auc", "dice", "acc", "fd", "psnr", "ssim")


def find_results(folder) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise SettingError(f"{folder} is not a folder. Fix: pass the --out folder of `medgan run` or `medgan sweep`.")
    found = sorted(p for p in folder.rglob("results.json") if ".ipynb_checkpoints" not in p.parts)
    if not found:
        raise SettingError(f"No results.json under {folder}. Fix: pass the --out folder of a finished "
                           "`medgan run` or `medgan sweep`.")
    return found


def flatten(value, prefix: str, out: dict) -> dict:
    """Scalars as they are; dicts as ``prefix.key``; lists of up to 4 scalars as ``prefix.0`` ...; longer lists
    and lists of dicts are left out (they are tables, reported separately)."""
    if isinstance(value, dict):
        for k, v in value.items():
            flatten(v, f"{prefix}.{k}" if prefix else str(k), out)
    elif isinstance(value, (list, tuple)):
        if len(value) <= 4 and all(not isinstance(v, (dict, list, tuple)) for v in value):
            for i, v in enumerate(value):
                out[f"{prefix}.{i}"] = v
    else:
        out[prefix] = value
    return out


def _setting(params: dict) -> str:
    """The setting of a run: every parameter except the seed ones and those that are per-seed row columns."""
    keep = {k: v for k, v in sorted(params.items()) if k not in SEED_PARAMS and k not in ROW_PARAMS}
    return ", ".join(f"{k}={json.dumps(v, default=str, separators=(',', ':'))}" for k, v in keep.items()) or "defaults"


def short_labels(settings) -> dict:
    """setting -> the part of it that differs from the other settings (all of it when there is one)."""
    parts = {s: s.split(", ") for s in settings}
    common = set.intersection(*(set(p) for p in parts.values())) if len(parts) > 1 else set()
    return {s: ", ".join(x for x in p if x not in common) or s for s, p in parts.items()}


def collect(folder) -> tuple[list[dict], list[dict]]:
    """(one row per run, the per-seed rows of every run that has ``metrics.runs``)."""
    folder = Path(folder)
    runs, seeds = [], []
    for path in find_results(folder):
        try:
            rec = json.loads(path.read_text())
        except (OSError, ValueError) as err:
            raise SettingError(f"{path} is not readable JSON ({err}). Fix: delete it or rerun that run.") from None
        params = dict(rec.get("params") or {})
        sweep_rec = path.parent / "run.json"
        if sweep_rec.exists():  # the sweep's own parameters (e.g. SEED, FAST) complete the notebook's record
            params = {**json.loads(sweep_rec.read_text()).get("params", {}), **params}
        params.pop("FAST", None)
        metrics = rec.get("metrics") or {}
        row = {"notebook": rec.get("notebook"), "run": str(path.parent.relative_to(folder)), "mode": rec.get("mode"),
               "seed": rec.get("seed"), "setting": f"{rec.get('notebook')} [{rec.get('mode')}] {_setting(params)}"}
        flatten(params, "param", row)
        flatten({k: v for k, v in metrics.items() if k not in ("runs", "summary") and not _is_table(v)},
                "metric", row)
        runs.append(row)
        for r in metrics.get("runs") or []:
            if isinstance(r, dict):
                seeds.append({"notebook": row["notebook"], "run": row["run"], "setting": row["setting"],
                              **flatten(r, "", {})})
    return runs, seeds


def _is_table(value) -> bool:
    return isinstance(value, list) and any(isinstance(v, dict) for v in value)


def _write_csv(path: Path, rows: list[dict]) -> Path:
    columns = list(dict.fromkeys(k for r in rows for k in r))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns)
    w.writeheader()
    w.writerows(rows)
    return atomic_write_text(path, buf.getvalue(), role="report", fix="pass a writable --out folder")


def _numeric(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def axes_of(seeds: list[dict]) -> tuple[str | None, str | None, list[str]]:
    """(x column, series column, y metrics) of per-seed rows, chosen from the columns they have."""
    cols = set().union(*(r.keys() for r in seeds)) if seeds else set()
    x = next((k for k in X_KEYS if k in cols), None)
    series = next((k for k in SERIES_KEYS if k in cols), None)
    ys = [k for k in Y_KEYS if k in cols and any(_numeric(r.get(k)) for r in seeds)]
    return x, series, ys


def by_notebook(seeds: list[dict]) -> dict:
    """Per-seed rows grouped by notebook: each notebook's rows get their own axes, tables and plots."""
    groups: dict = defaultdict(list)
    for r in seeds:
        groups[r.get("notebook") or "-"].append(r)
    return dict(groups)


def pooled(seeds: list[dict], x: str | None, series: str | None, y: str) -> dict:
    """setting -> {(series, x): mean_ci of y over seeds}. Rows are pooled only inside one setting and one cell."""
    def where(r, k):  # task: several in one setting; ratio: several for one arm
        return (r["setting"], k, r.get(series) if k == "ratio" else None)

    values: dict = defaultdict(set)  # a column with several values there splits the series
    for r in seeds:
        for k in SPLIT_KEYS:
            if k != x and k != series and r.get(k) is not None:
                values[where(r, k)].add(r[k])
    cells: dict = defaultdict(lambda: defaultdict(list))
    for r in seeds:
        if _numeric(r.get(y)) and (x is None or _numeric(r.get(x))):
            label = str(r.get(series, "-")) if series else "-"
            for k in SPLIT_KEYS:
                if len(values.get(where(r, k), ())) > 1:
                    label = f"{r[k]}: {label}" if k == "task" else f"{label} ({k} {r[k]:g})"
            cells[r["setting"]][(label, r.get(x) if x else None)].append(float(r[y]))
    return {s: {k: mean_ci(v) for k, v in sorted(c.items(), key=lambda kv: (str(kv[0][0]), kv[0][1] or 0))}
            for s, c in cells.items()}


def markdown(runs: list[dict], seeds: list[dict]) -> str:
    """The runs table, then one pooled table per setting."""
    settings = sorted({r["setting"] for r in runs})
    lines = ["# Results report", "", f"{len(runs)} run(s) in {len(settings)} setting(s). Per-seed rows are "
             "pooled only within one setting (same parameters apart from the seed); different settings are "
             "never averaged together.", "", "## Runs", ""]
    shown = [k for k in ("metric.auc", "metric.fd", "metric.kid", "metric.dice") if any(k in r for r in runs)]
    short = short_labels(settings)
    lines += ["| run | notebook | mode | seed | setting (what differs) |" + "".join(f" {s[7:]} |" for s in shown),
              "|---" * (5 + len(shown)) + "|"]
    for r in runs:
        vals = "".join(f" {r[k]:.4g} |" if _numeric(r.get(k)) else " |" for k in shown)
        lines.append(f"| {r['run']} | {r['notebook']} | {r['mode']} | {r['seed']} | {short[r['setting']]} |{vals}")
    if len(settings) > 1:
        lines += ["", "Settings in full:", ""] + [f"- `{s}`" for s in settings]
    for group in by_notebook(seeds).values():
        lines += _pooled_tables(group)
    return "\n".join(lines) + "\n"


def _pooled_tables(seeds: list[dict]) -> list[str]:
    lines = []
    x, series, ys = axes_of(seeds)
    for y in ys[:3]:
        groups = pooled(seeds, x, series, y)
        for k, (setting, cells) in enumerate(groups.items(), 1):
            head = setting.split("] ")[0] + "]" + (f", setting {k} of {len(groups)}" if len(groups) > 1 else "")
            lines += ["", f"## {y} — {head}", "", f"Setting: `{setting}`", "",
                      f"| {series or '-'} | {x or '-'} | n seeds | {y} mean | ± 95 % CI |",
                      "|---|---|---|---|---|"]
            for (label, xv), m in cells.items():
                ci = f"{m['ci95']:.3g}" if m["ci95"] is not None else "n/a (one seed)"
                lines.append(f"| {label} | {xv} | {m['n']} | {m['mean']:.4f} | {ci} |")
    return lines


def plot(seeds: list[dict], y: str, x: str, series: str | None, path: Path) -> Path | None:
    """``y`` against ``x``, one line per series with its 95 % CI band, one panel per setting; ``None`` (and no
    file) when no row has both ``x`` and ``y``."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    groups = pooled(seeds, x, series, y)
    if not groups:
        return None
    short = short_labels(groups)
    fig, axes = plt.subplots(1, len(groups), figsize=(5.5 * len(groups), 4), squeeze=False)
    for ax, (setting, cells) in zip(axes[0], groups.items()):
        ax.set_prop_cycle(color=plt.cm.tab20.colors)
        by_series = defaultdict(list)
        for (label, xv), m in cells.items():
            by_series[label].append((xv, m))
        for label, pts in by_series.items():
            pts.sort(key=lambda p: p[0])
            xs, means = [p[0] for p in pts], [p[1]["mean"] for p in pts]
            line, = ax.plot(xs, means, marker="o", label=f"{label}")
            half = [p[1]["ci95"] if p[1]["ci95"] is not None else 0.0 for p in pts]
            ax.fill_between(xs, [m - h for m, h in zip(means, half)], [m + h for m, h in zip(means, half)],
                            color=line.get_color(), alpha=0.15)
        ax.set_xlabel(x)
        ax.set_ylabel(f"{y} (mean, 95 % CI band)")
        title = short[setting]
        ax.set_title(title if len(title) < 70 else title[:67] + "...", fontsize=8)
        ax.legend(fontsize=7)
        if x == "fraction":
            ax.set_xscale("log")
    fig.tight_layout()
    with atomic_path(path, role="plot", fix="pass a writable --out folder") as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return path


def plot_runs(runs: list[dict], path: Path) -> Path | None:
    """Without per-seed tables (notebooks 00-03): the first headline metrics, one bar per run."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    keys = [k for k in ("metric.fd", "metric.kid", "metric.precision", "metric.recall", "metric.auc")
            if any(_numeric(r.get(k)) for r in runs)][:4]
    if not keys:
        return None
    fig, axes = plt.subplots(1, len(keys), figsize=(4 * len(keys), 3.5), squeeze=False)
    for ax, k in zip(axes[0], keys):
        pts = [(r["run"], r[k]) for r in runs if _numeric(r.get(k))]
        ax.bar(range(len(pts)), [v for _, v in pts])
        ax.set_xticks(range(len(pts)), [n for n, _ in pts], rotation=60, ha="right", fontsize=6)
        ax.set_title(k[7:])
    fig.tight_layout()
    with atomic_path(path, role="plot", fix="pass a writable --out folder") as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return path


def write_report(folder, out=None) -> list[Path]:
    """Write ``report.csv``, ``report_seeds.csv`` (if any), ``report.md`` and PNG plots; returns their paths."""
    runs, seeds = collect(folder)
    out = Path(out) if out is not None else Path(folder)
    written = [_write_csv(out / "report.csv", runs)]
    if seeds:
        written.append(_write_csv(out / "report_seeds.csv", seeds))
    written.append(atomic_write_text(out / "report.md", markdown(runs, seeds), role="report",
                                     fix="pass a writable --out folder"))
    groups = by_notebook(seeds)
    for notebook, group in groups.items():
        x, series, ys = axes_of(group)
        prefix = f"{notebook}_" if len(groups) > 1 else ""
        if x:
            plots = [plot(group, y, x, series, out / f"{prefix}{y}_vs_{x}.png") for y in ys[:3]]
            written += [p for p in plots if p is not None]
    if not groups and (p := plot_runs(runs, out / "metrics_per_run.png")) is not None:
        written.append(p)
    return written
