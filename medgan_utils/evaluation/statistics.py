"""Seeds, intervals and verdicts: mean ± Student-t CIs, paired differences, and conclusions printed from them.

A claim of improvement or harm is made only when the 95 % interval of the paired difference excludes zero;
otherwise the verdict is "no detectable difference at this sample size". Nothing here knows what a GAN is.
"""
from __future__ import annotations

import math
from collections import defaultdict

import numpy as np

__all__ = ["mean_ci", "interval", "paired_difference", "paired_bootstrap", "verdict", "summarise_runs", "conclusions"]

NO_DIFFERENCE = "no detectable difference at this sample size"


def mean_ci(values, confidence: float = 0.95) -> dict:
    """Mean and a Student-t confidence half-width of ``values`` (several seeds or runs).

    Returns ``{"mean", "ci95", "std", "n", "values"}``; with one value the
    half-width is ``None`` (one run gives no interval).
    """
    arr = np.asarray([float(v) for v in values], dtype=float)
    n = int(arr.size)
    if n == 0:
        raise ValueError("mean_ci needs at least one value.")
    mean = float(arr.mean())
    if n == 1:
        return {"mean": mean, "ci95": None, "std": None, "n": 1, "values": arr.tolist()}
    std = float(arr.std(ddof=1))
    from scipy import stats

    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1) * std / math.sqrt(n))
    return {"mean": mean, "ci95": half, "std": std, "n": n, "values": arr.tolist()}


def interval(values, confidence: float = 0.95) -> dict:
    """``{"mean", "ci_low", "ci_high", "n"}``; the bounds are ``None`` for a single value."""
    m = mean_ci(values, confidence)
    if m["ci95"] is None:
        return {"mean": m["mean"], "ci_low": None, "ci_high": None, "n": m["n"]}
    return {"mean": m["mean"], "ci_low": m["mean"] - m["ci95"], "ci_high": m["mean"] + m["ci95"], "n": m["n"]}


def paired_difference(treated: dict, baseline: dict, confidence: float = 0.95) -> dict:
    """Mean and CI of ``treated[seed] - baseline[seed]`` over the seeds both have (pairing removes the seed's
    share of the noise: the same data subset, GAN and initialisation on both sides)."""
    seeds = sorted(set(treated) & set(baseline))
    if not seeds:
        raise ValueError("No seed is shared by the two arms, so they cannot be paired.")
    return interval([treated[s] - baseline[s] for s in seeds], confidence)


def verdict(diff: dict, higher_is_better: bool = True) -> str:
    """``"improvement"``, ``"harm"`` or :data:`NO_DIFFERENCE`, from the interval of a difference alone; a
    zero-width interval (three identical seeds, say) supports no claim."""
    lo, hi = diff.get("ci_low"), diff.get("ci_high")
    if lo is None or hi is None or (lo <= 0 <= hi) or not hi > lo:
        return NO_DIFFERENCE
    better = lo > 0 if higher_is_better else hi < 0
    return "improvement" if better else "harm"


def paired_bootstrap(metric, arm_scores: list, base_scores, n_items: int, n_boot: int = 500, seed: int = 0,
                     confidence: float = 0.95) -> dict:
    """Percentile bootstrap CI of ``metric(arm) − metric(base)`` on the same test items.

    ``metric(scores, idx) -> float`` scores the items ``idx`` (e.g. an AUC of ``labels[idx]`` and
    ``scores[idx]``, or a mean per-image Dice). ``arm_scores`` is a list (one entry per seed): in every
    replicate the arm's metric is averaged over its entries, so the interval covers the sampling of test items
    (which a seed interval ignores) and the seeds' average. Returns ``{"mean", "ci_low", "ci_high", "n_boot"}``.
    """
    rng = np.random.default_rng(int(seed))
    every = np.arange(int(n_items))

    def delta(idx):
        return float(np.mean([metric(a, idx) for a in arm_scores])) - float(metric(base_scores, idx))

    reps = np.array([delta(rng.integers(0, n_items, n_items)) for _ in range(int(n_boot))])
    alpha = (1 - confidence) / 2
    return {"mean": delta(every), "ci_low": float(np.quantile(reps, alpha)),
            "ci_high": float(np.quantile(reps, 1 - alpha)), "n_boot": int(n_boot)}


def summarise_runs(runs: list[dict], metrics=("auc", "acc"), baseline_arm: str = "real",
                   group=("dataset", "fraction", "arm", "ratio"), bounds: dict | None = None) -> list[dict]:
    """One row per ``group`` with mean / ci_low / ci_high of each metric over seeds, and for every arm the paired
    ``delta_<metric>`` against ``baseline_arm`` of the same dataset and fraction (paired by ``seed``).

    These are seed intervals only (Student t): the spread of retraining. Intervals that also cover the test
    images come from :func:`~medgan_utils.evaluation.evidence.bootstrap_contrast`. ``bounds`` maps a metric to
    its range, e.g. ``{"precision": (0, 1)}``: its intervals are clipped to it (a difference to ±the width)."""
    cells: dict[tuple, list[dict]] = defaultdict(list)
    for r in runs:
        cells[tuple(r[k] for k in group)].append(r)
    rows = []
    for key, members in cells.items():
        row = dict(zip(group, key))
        row["n_seeds"] = len({r["seed"] for r in members})
        for m in metrics:
            iv = _clipped(interval([r[m] for r in members]), (bounds or {}).get(m))
            row.update({m: iv["mean"], f"{m}_ci_low": iv["ci_low"], f"{m}_ci_high": iv["ci_high"]})
        base = [r for r in runs if r["arm"] == baseline_arm and all(r[k] == row[k] for k in group[:2])]
        if base and row["arm"] != baseline_arm:
            for m in metrics:
                b = (bounds or {}).get(m)
                d = _clipped(paired_difference({r["seed"]: r[m] for r in members}, {r["seed"]: r[m] for r in base}),
                             None if b is None else (b[0] - b[1], b[1] - b[0]))
                row.update({f"delta_{m}": d["mean"], f"delta_{m}_ci_low": d["ci_low"],
                            f"delta_{m}_ci_high": d["ci_high"]})
        rows.append(row)
    return rows


def _clipped(iv: dict, bounds) -> dict:
    if bounds is None or iv["ci_low"] is None:
        return iv
    lo, hi = float(bounds[0]), float(bounds[1])
    return {**iv, "ci_low": min(max(iv["ci_low"], lo), hi), "ci_high": min(max(iv["ci_high"], lo), hi)}


def _fmt_ci(mean, lo, hi) -> str:
    return f"{mean:+.3f}" + (f" (95% CI {lo:+.3f} to {hi:+.3f})" if lo is not None else " (one seed: no interval)")


def _describe_arm(row: dict, ratio_label: str) -> str:
    ratio = f", {ratio_label} {row['ratio']:g}" if row.get("ratio") else ""
    return f"{row['dataset']} at {row['fraction']:.0%} of the training split, {row['arm']}{ratio}"


def conclusions(summary: list[dict], metric: str = "auc", label: str = "AUC", higher_is_better: bool = True,
                ratio_label: str = "synthetic:real", describe=None) -> list[str]:
    """One sentence per non-baseline row, generated from its paired difference and its interval only
    (``higher_is_better=False`` for errors and distances such as HD95; ``ratio_label`` names the rows'
    ``ratio`` field, e.g. ``"λ"``; ``describe(row) -> str`` names a row, by default its dataset, training
    fraction, arm and ratio)."""
    out = []
    for row in summary:
        if f"delta_{metric}" not in row:
            continue
        d = {"ci_low": row[f"delta_{metric}_ci_low"], "ci_high": row[f"delta_{metric}_ci_high"]}
        v = verdict(d, higher_is_better)
        up, down = (f"raises {label}", f"lowers {label}")
        what = {"improvement": up if higher_is_better else down, "harm": down if higher_is_better else up,
                NO_DIFFERENCE: NO_DIFFERENCE}[v]
        what = {"improvement": "improves", "harm": "worsens"}.get(v, "") + f" ({what})" if v != NO_DIFFERENCE else what
        where = describe(row) if describe else _describe_arm(row, ratio_label)
        out.append(f"{where}: {what}; "
                   f"Δ{label} {_fmt_ci(row[f'delta_{metric}'], d['ci_low'], d['ci_high'])}, "
                   f"{row['n_seeds']} paired seeds.")
    return out
