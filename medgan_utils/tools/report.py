"""Collect every ``results.json`` under a folder into a CSV, a Markdown report and plots (``medgan report``).

* ``report.csv``: one row per run (one ``results.json``): notebook, folder, mode, parameters (``param.*``) and
  scalar metrics (``metric.*``; nested dicts and short lists are flattened, ``runs``/``summary`` tables are not);
* ``report_seeds.csv``: the per-seed rows of every run that records ``metrics.runs`` (notebooks 04 onwards),
  with the run's setting;
* ``report.md``: the runs table, then per-seed rows pooled **only within one setting** (every parameter equal
  except the seed parameters) as mean ± 95 % CI, one section per setting;
* ``<metric>_vs_<x>.png``: e.g. AUC against the training fraction, one line per arm with its CI band and one
  panel per setting. Runs whose settings differ are never averaged together: they get separate sections and panels.

``report.md`` ends with the Evidence section of the runs that record it (:mod:`.evidence`). Every results.json and
run.json is untrusted (:mod:`.untrusted`): values are escaped, and a file that is too large, too deeply nested or of
the wrong shape is skipped with a one-line warning that names it.
"""
from __future__ import annotations

import csv
import io
import json
import sys
from collections import defaultdict
from pathlib import Path

from ..core.errors import SettingError
from ..core.io import atomic_path, atomic_write_text
from ..evaluation.statistics import mean_ci
from .evidence import evidence_of, evidence_section
from .untrusted import UnreadableRecord, is_number, md_code, md_text, read_record, safe_name

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


def _warn(message: str) -> None:
    print(f"medgan: warning: {message}", file=sys.stderr, flush=True)


def _checked(path: Path) -> tuple[dict, dict, dict]:
    """(record, params, metrics) of one results.json; :class:`UnreadableRecord` when it cannot be used."""
    rec = read_record(path, "results file")
    params, metrics = rec.get("params") or {}, rec.get("metrics") or {}
    runs = metrics.get("runs") if isinstance(metrics, dict) else None
    for name, value, kind in (("params", params, dict), ("metrics", metrics, dict), ("metrics.runs", runs, list)):
        if value is not None and not isinstance(value, kind):
            raise UnreadableRecord(f"results file {path}: {name} is a JSON {type(value).__name__}, not "
                                   f"{'an object' if kind is dict else 'a list'}. Fix: delete it or rerun that run.")
    sweep_rec = path.parent / "run.json"
    if sweep_rec.exists():  # the sweep's own parameters (e.g. SEED, FAST) complete the notebook's record
        try:
            extra = read_record(sweep_rec, "run record", fix="delete it; the sweep redoes that run")
            params = {**(extra.get("params") if isinstance(extra.get("params"), dict) else {}), **params}
        except UnreadableRecord as err:
            _warn(f"{err} Its parameters are left out.")
    return rec, dict(params), metrics


def collect(folder, evidence: list | None = None) -> tuple[list[dict], list[dict]]:
    """(one row per run, the per-seed rows of every run that has ``metrics.runs``). A file that cannot be used
    (too large, not JSON, nested too deeply, of the wrong shape) is skipped with a one-line warning naming it.
    ``evidence``, when given, receives (run, notebook, evidence fields) per run (:mod:`.evidence`)."""
    folder = Path(folder)
    runs, seeds, skipped = [], [], 0
    for path in find_results(folder):
        try:
            rec, params, metrics = _checked(path)
        except UnreadableRecord as err:
            skipped += 1
            _warn(f"skipped: {err}")
            continue
        params.pop("FAST", None)
        notebook, mode = _label(rec.get("notebook")), _label(rec.get("mode"))
        row = {"notebook": notebook, "run": str(path.parent.relative_to(folder)), "mode": mode,
               "seed": _label(rec.get("seed")), "setting": f"{notebook} [{mode}] {_setting(params)}"}
        flatten(params, "param", row)
        flatten({k: v for k, v in metrics.items() if k not in ("runs", "summary") and not _is_table(v)},
                "metric", row)
        runs.append(row)
        if evidence is not None:
            evidence.append((row["run"], notebook, evidence_of(metrics)))
        for r in metrics.get("runs") or []:
            if isinstance(r, dict):
                seeds.append({"notebook": row["notebook"], "run": row["run"], "setting": row["setting"],
                              **flatten(r, "", {})})
    if not runs:
        raise SettingError(f"None of the {skipped} results.json file(s) under {folder} could be used (see the "
                           "warnings above). Fix: delete them or rerun those runs.")
    return runs, seeds


def _label(value):
    """A record's notebook, mode or seed as given when it is a plain value, else its short text."""
    return value if value is None or isinstance(value, (int, float, bool)) else str(value)[:80]


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
    return is_number(v)


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
                    label = f"{r[k]}: {label}" if k == "task" else f"{label} ({k} {_g(r[k])})"
            cells[r["setting"]][(label, r.get(x) if x else None)].append(float(r[y]))
    return {s: {k: mean_ci(v) for k, v in sorted(c.items(), key=lambda kv: (str(kv[0][0]), kv[0][1] or 0))}
            for s, c in cells.items()}


def _g(v) -> str:
    return f"{v:g}" if is_number(v) else str(v)


def markdown(runs: list[dict], seeds: list[dict], evidence: list | None = None) -> str:
    """The runs table, then one pooled table per setting, then the evidence of each run that records it. Every
    value from a results.json is escaped (:func:`~medgan_utils.tools.untrusted.md_text`)."""
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
        cells = " | ".join(md_text(r[k]) for k in ("run", "notebook", "mode", "seed"))
        lines.append(f"| {cells} | {md_text(short[r['setting']], 300)} |{vals}")
    if len(settings) > 1:
        lines += ["", "Settings in full:", ""] + [f"- {md_code(s)}" for s in settings]
    for group in by_notebook(seeds).values():
        lines += _pooled_tables(group)
    lines += evidence_section(evidence or [])
    return "\n".join(lines) + "\n"


def _pooled_tables(seeds: list[dict]) -> list[str]:
    lines = []
    x, series, ys = axes_of(seeds)
    for y in ys[:3]:
        groups = pooled(seeds, x, series, y)
        for k, (setting, cells) in enumerate(groups.items(), 1):
            head = setting.split("] ")[0] + "]" + (f", setting {k} of {len(groups)}" if len(groups) > 1 else "")
            lines += ["", f"## {y} — {md_text(head)}", "", f"Setting: {md_code(setting)}", "",
                      f"| {series or '-'} | {x or '-'} | n seeds | {y} mean | ± 95 % CI |",
                      "|---|---|---|---|---|"]
            for (label, xv), m in cells.items():
                ci = f"{m['ci95']:.3g}" if m["ci95"] is not None else "n/a (one seed)"
                lines.append(f"| {md_text(label)} | {md_text(xv)} | {m['n']} | {m['mean']:.4f} | {ci} |")
    return lines


def _plain(text) -> str:
    """Text for a figure: matplotlib would read ``$...$`` as a formula (and fail on a malformed one)."""
    return str(text).replace("$", r"\$")


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
            line, = ax.plot(xs, means, marker="o", label=_plain(label))
            half = [p[1]["ci95"] if p[1]["ci95"] is not None else 0.0 for p in pts]
            ax.fill_between(xs, [m - h for m, h in zip(means, half)], [m + h for m, h in zip(means, half)],
                            color=line.get_color(), alpha=0.15)
        ax.set_xlabel(x)
        ax.set_ylabel(f"{y} (mean, 95 % CI band)")
        title = short[setting]
        ax.set_title(_plain(title if len(title) < 70 else title[:67] + "..."), fontsize=8)
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
        ax.set_xticks(range(len(pts)), [_plain(n[:40]) for n, _ in pts], rotation=60, ha="right", fontsize=6)
        ax.set_title(_plain(k[7:]))
    fig.tight_layout()
    with atomic_path(path, role="plot", fix="pass a writable --out folder") as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return path


def write_report(folder, out=None) -> list[Path]:
    """Write ``report.csv``, ``report_seeds.csv`` (if any), ``report.md`` and PNG plots; returns their paths."""
    evidence: list = []
    runs, seeds = collect(folder, evidence)
    out = Path(out) if out is not None else Path(folder)
    written = [_write_csv(out / "report.csv", runs)]
    if seeds:
        written.append(_write_csv(out / "report_seeds.csv", seeds))
    written.append(atomic_write_text(out / "report.md", markdown(runs, seeds, evidence), role="report",
                                     fix="pass a writable --out folder"))
    groups = by_notebook(seeds)
    for notebook, group in groups.items():
        x, series, ys = axes_of(group)
        prefix = f"{safe_name(notebook)}_" if len(groups) > 1 else ""
        if x:
            plots = [plot(group, y, x, series, out / f"{prefix}{y}_vs_{x}.png") for y in ys[:3]]
            written += [p for p in plots if p is not None]
    if not groups and (p := plot_runs(runs, out / "metrics_per_run.png")) is not None:
        written.append(p)
    return written
