"""The course's evidence standard: intervals over test images *and* seeds, Wilson intervals, Holm, one primary
contrast, and selections that read validation only.

* :func:`bootstrap_contrast`: a paired, two-level percentile bootstrap. Each replicate draws the seeds with
  replacement and, independently, the test images (patients) with replacement, within each class when
  ``strata`` is given; the statistic is the seed-mean of ``metric(arm) − metric(base)`` on the same images. The
  interval therefore covers the test-set sampling (which a t-interval over seeds ignores) and the seed noise.
  It is clipped to the metric's range, so a sensitivity never gets an interval past 1.
* :func:`wilson_interval`: a proportion read at a fixed threshold (via ``scipy.stats.binomtest``).
* :func:`holm`: Holm–Bonferroni adjusted p-values for the exploratory contrasts.
* :class:`EvidenceTable`: a notebook declares its **primary contrast** before anything runs; every other
  contrast is exploratory and judged on its Holm-adjusted p-value. A sentence claims a difference only when
  the interval supports it, and never from a zero-width interval.
* :class:`SelectionLog`: every choice (λ, strength, checkpoint, threshold) is recorded with the split it read;
  a choice made after the sealed test split was opened raises :class:`SelectionOnTestError`.

Nothing here knows what a GAN is.
"""
from __future__ import annotations

import math

import numpy as np

from ..core.errors import SettingError

__all__ = ["bootstrap_contrast", "seed_contrast", "wilson_interval", "holm", "bootstrap_p_value", "claim", "EvidenceTable",
           "SelectionLog", "SelectionOnTestError", "fast_auc", "BOOTSTRAP_METHOD", "NO_DIFFERENCE"]

NO_DIFFERENCE = "no detectable difference at this sample size"
BOOTSTRAP_METHOD = "paired bootstrap over seeds and test images (percentile, {n} resamples)"


def fast_auc(labels, scores) -> float:
    """AUC of binary ``labels`` (1 = positive) against ``scores`` by the Mann–Whitney rank sum (ties count ½);
    equal to ``sklearn.metrics.roc_auc_score`` (a test checks it), and fast enough for thousands of replicates."""
    from scipy.stats import rankdata

    y = np.asarray(labels).astype(bool).reshape(-1)
    s = np.asarray(scores, dtype=float).reshape(-1)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(s)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _as_seed_dict(scores) -> dict:
    if isinstance(scores, dict):
        return dict(scores)
    if isinstance(scores, (list, tuple)):
        return dict(enumerate(scores))
    return {0: scores}


def _item_draw(rng, n_items: int, strata) -> np.ndarray:
    """Indices of one bootstrap draw of the items, within each stratum when ``strata`` is given."""
    if strata is None:
        return rng.integers(0, n_items, n_items)
    parts = [members[rng.integers(0, len(members), len(members))] for members in strata]
    return np.concatenate(parts)


def bootstrap_p_value(replicates, estimate: float, null: float = 0.0) -> float:
    """Two-sided p-value of ``null`` from the bootstrap standard error: 2·Φ(−|estimate − null| / sd(replicates)).

    A tail count of the replicates cannot go below 1/(B + 1), and Holm multiplies the smallest p-value by the
    number of contrasts, so with a few hundred resamples and dozens of contrasts nothing could pass. The normal
    approximation gives continuous p-values; the percentile interval stays the interval of record.
    """
    from scipy.stats import norm

    reps = np.asarray(replicates, dtype=float)
    reps = reps[np.isfinite(reps)]
    if reps.size < 2:
        return float("nan")
    se = float(reps.std(ddof=1))
    if se == 0:
        return 1.0 if estimate == null else 0.0
    return float(2 * norm.sf(abs(float(estimate) - null) / se))


def bootstrap_contrast(metric, arm, base=None, *, n_items: int, strata=None, bounds=(-math.inf, math.inf),
                       n_boot: int = 2000, seed: int = 0, confidence: float = 0.95) -> dict:
    """Estimate and interval of ``mean_seeds[metric(arm[s]) − metric(base[s])]`` (or of ``metric(arm)`` alone).

    Args:
        metric: ``metric(scores, idx) -> float``, the metric of one model's per-item ``scores`` on the items
            ``idx`` (an AUC of ``labels[idx]`` and ``scores[idx]``, a mean per-image Dice, ...).
        arm, base: per-seed scores, ``{seed: scores}`` (a list or a single array is one seed per entry). The
            seeds of ``arm`` and ``base`` are paired: only shared seeds count.
        n_items: number of test items (patients) the scores cover.
        strata: item labels; resampling then keeps each class's count (an AUC needs both classes).
        bounds: the range of the *metric* (e.g. ``(0, 1)``); the interval of a contrast is clipped to
            ``(lo − hi, hi − lo)``, that of a single arm to ``bounds``.
    Returns:
        ``{"estimate", "ci": [lo, hi], "p_value", "n_seeds", "n_items", "n_boot", "method"}``; the p-value tests
        a zero difference with the bootstrap standard error (``None`` for a single arm).
    """
    arm = _as_seed_dict(arm)
    base = None if base is None else _as_seed_dict(base)
    seeds = sorted(set(arm) & set(base), key=str) if base is not None else sorted(arm, key=str)
    if not seeds:
        raise ValueError("No seed is shared by the two arms, so they cannot be paired.")
    n_items = int(n_items)
    if n_items < 1:
        raise ValueError("bootstrap_contrast needs at least one test item.")
    groups = None
    if strata is not None:
        strata = np.asarray(strata).reshape(-1)
        groups = [np.flatnonzero(strata == v) for v in np.unique(strata)]

    def value(s, idx):
        m = float(metric(arm[s], idx))
        return m - float(metric(base[s], idx)) if base is not None else m

    every = np.arange(n_items)
    estimate = float(np.mean([value(s, every) for s in seeds]))
    rng = np.random.default_rng(int(seed))
    reps = np.empty(int(n_boot))
    for b in range(int(n_boot)):
        drawn = [seeds[i] for i in rng.integers(0, len(seeds), len(seeds))]
        idx = _item_draw(rng, n_items, groups)
        reps[b] = np.mean([value(s, idx) for s in drawn])
    lo_b, hi_b = (float(bounds[0]), float(bounds[1]))
    if base is not None:
        lo_b, hi_b = lo_b - hi_b, hi_b - lo_b
    alpha = (1 - confidence) / 2
    finite = reps[np.isfinite(reps)]
    lo, hi = (np.quantile(finite, [alpha, 1 - alpha]) if finite.size else (math.nan, math.nan))
    return {"estimate": float(np.clip(estimate, lo_b, hi_b)),
            "ci": [float(np.clip(lo, lo_b, hi_b)), float(np.clip(hi, lo_b, hi_b))],
            "p_value": bootstrap_p_value(finite, estimate) if base is not None else None,
            "n_seeds": len(seeds), "n_items": n_items, "n_boot": int(n_boot),
            "method": BOOTSTRAP_METHOD.format(n=int(n_boot)) + (", stratified by class" if groups else "")}


def seed_contrast(arm: dict, base: dict | None = None, *, bounds=(-math.inf, math.inf),
                  confidence: float = 0.95) -> dict:
    """Estimate, Student-t interval and paired t-test p-value of a set-level metric over seeds.

    For numbers that exist once per trained model and have no per-image values to resample (an FD ratio, a
    precision or recall over a sample set), the seed is the only unit. ``arm`` and ``base`` map a seed to a value;
    the interval is clipped to the metric's range (a contrast's to ± its width). One seed gives no interval.
    """
    from scipy import stats

    seeds = sorted(set(arm) & set(base), key=str) if base is not None else sorted(arm, key=str)
    if not seeds:
        raise ValueError("No seed is shared by the two arms, so they cannot be paired.")
    vals = np.array([float(arm[s]) - (float(base[s]) if base is not None else 0.0) for s in seeds])
    lo_b, hi_b = float(bounds[0]), float(bounds[1])
    if base is not None:
        lo_b, hi_b = lo_b - hi_b, hi_b - lo_b
    est = float(vals.mean())
    if len(vals) < 2:
        ci, p = [math.nan, math.nan], math.nan
    else:
        half = float(stats.t.ppf(0.5 + confidence / 2, len(vals) - 1) * vals.std(ddof=1) / math.sqrt(len(vals)))
        ci = [float(np.clip(est - half, lo_b, hi_b)), float(np.clip(est + half, lo_b, hi_b))]
        p = float(stats.ttest_1samp(vals, 0.0).pvalue) if vals.std(ddof=1) > 0 else (1.0 if est == 0 else 0.0)
    return {"estimate": float(np.clip(est, lo_b, hi_b)), "ci": ci, "p_value": p if base is not None else None,
            "n_seeds": len(vals), "method": f"paired t over {len(vals)} seeds (no per-image values)"}


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> dict:
    """A proportion ``successes / n`` and its Wilson score interval (always within [0, 1])."""
    from scipy.stats import binomtest

    successes, n = int(successes), int(n)
    if n <= 0:
        return {"estimate": float("nan"), "ci": [float("nan"), float("nan")], "n": 0, "k": 0,
                "method": "Wilson score interval"}
    ci = binomtest(successes, n).proportion_ci(confidence_level=confidence, method="wilson")
    return {"estimate": successes / n, "ci": [float(ci.low), float(ci.high)], "n": n, "k": successes,
            "method": "Wilson score interval"}


def holm(p_values) -> list[float]:
    """Holm–Bonferroni adjusted p-values, in the input order (NaN stays NaN and is not counted)."""
    p = np.asarray([np.nan if v is None else float(v) for v in p_values], dtype=float)
    ok = np.flatnonzero(np.isfinite(p))
    out = np.full(p.shape, np.nan)
    m = len(ok)
    running = 0.0
    for rank, i in enumerate(ok[np.argsort(p[ok], kind="stable")]):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out.tolist()


def claim(result: dict, label: str, higher_is_better: bool = True, p_adjusted: float | None = None,
          alpha: float = 0.05) -> tuple[str, str]:
    """``(verdict, sentence)`` for one contrast, from its numbers only.

    The verdict is ``"improvement"``, ``"harm"`` or :data:`NO_DIFFERENCE`. A difference is claimed only when the
    interval excludes 0, has non-zero width and, for an exploratory contrast, its Holm-adjusted p-value
    (``p_adjusted``) is below ``alpha``.
    """
    est, (lo, hi) = result["estimate"], result["ci"]
    width_ok = all(map(math.isfinite, (lo, hi))) and hi > lo
    excludes = width_ok and (lo > 0 or hi < 0)
    if p_adjusted is not None and not (p_adjusted < alpha):
        excludes = False
    verdict = NO_DIFFERENCE
    if excludes:
        verdict = "improvement" if ((lo > 0) == bool(higher_is_better)) else "harm"
    finite = all(map(math.isfinite, (lo, hi)))
    ci = (f"[{lo:+.3f}, {hi:+.3f}]" if width_ok else "(zero-width interval: no claim)" if finite
          else "(no interval: one seed or no data)")
    adj = f", Holm-adjusted p = {p_adjusted:.3g}" if p_adjusted is not None and math.isfinite(p_adjusted) else ""
    word = {"improvement": "improves", "harm": "worsens"}.get(verdict, NO_DIFFERENCE)
    return verdict, f"{label}: {word}; Δ = {est:+.3f} {ci}{adj}"


class EvidenceTable:
    """One primary contrast, declared before the experiment runs, and exploratory contrasts judged with Holm.

    ``ev = EvidenceTable("gan − count_matched, test AUC, 10 % of the data")`` in the notebook's set-up cell;
    later ``ev.add(name, bootstrap_contrast(...))`` for every contrast (the one named as primary included);
    ``ev.sentences()`` prints the verdicts and ``ev.to_results()`` gives ``metrics.primary`` and
    ``metrics.exploratory`` for ``results.json``.
    """

    def __init__(self, primary: str, higher_is_better: bool = True):
        self.primary_name, self.primary_higher = str(primary), bool(higher_is_better)
        self.rows: dict[str, dict] = {}

    def add(self, name: str, result: dict, higher_is_better: bool = True, metric: str = "") -> dict:
        if name in self.rows:
            raise SettingError(f"Contrast {name!r} was added twice. Fix: give each contrast its own name.")
        if name == self.primary_name:
            higher_is_better = self.primary_higher
        self.rows[name] = {**result, "contrast": name, "higher_is_better": bool(higher_is_better), "metric": metric}
        return self.rows[name]

    def _adjusted(self) -> dict:
        names = [n for n in self.rows if n != self.primary_name]
        return dict(zip(names, holm([self.rows[n].get("p_value") for n in names])))

    def verdicts(self) -> dict:
        adjusted = self._adjusted()
        out = {}
        for name, row in self.rows.items():
            p_adj = adjusted.get(name) if name != self.primary_name else None
            v, sentence = claim(row, name, row["higher_is_better"], p_adj)
            out[name] = {"verdict": v, "sentence": sentence, "p_holm": p_adj}
        return out

    def sentences(self) -> list[str]:
        if self.primary_name not in self.rows:
            raise SettingError(f"The primary contrast {self.primary_name!r} was declared but never measured. "
                               "Fix: add it with ev.add(...) under the name declared.")
        v = self.verdicts()
        lines = ["PRIMARY  " + v[self.primary_name]["sentence"]]
        lines += [f"explor.  {v[n]['sentence']}" for n in self.rows if n != self.primary_name]
        return lines

    def to_results(self) -> dict:
        v = self.verdicts()
        prim = self.rows.get(self.primary_name)
        primary = None if prim is None else {
            "contrast": self.primary_name, "estimate": prim["estimate"], "ci": list(prim["ci"]),
            "method": prim.get("method", ""), "p_value": prim.get("p_value"), "metric": prim.get("metric", ""),
            "verdict": v[self.primary_name]["verdict"]}
        exploratory = [{"contrast": n, "estimate": r["estimate"], "ci": list(r["ci"]), "metric": r.get("metric", ""),
                        "p_value": r.get("p_value"), "p_holm": v[n]["p_holm"], "verdict": v[n]["verdict"],
                        "method": r.get("method", "")} for n, r in self.rows.items() if n != self.primary_name]
        return {"primary": primary, "exploratory": exploratory}


class SelectionOnTestError(SettingError):
    """A model, λ, strength, checkpoint or threshold was chosen after the sealed test split was opened."""


class SelectionLog:
    """Every choice the notebook makes, with the split it read; ``SelectionLog(TEST)`` for the sealed test split.

    ``choose(name, {candidate: validation score}, rule)`` returns the best candidate and records it. Any choice
    after ``TEST.open(...)`` raises :class:`SelectionOnTestError`: once the test split is open, a choice could
    have read it.
    """

    def __init__(self, sealed=None):
        self.sealed, self.entries = sealed, []

    def _guard(self, name: str) -> None:
        opened = getattr(self.sealed, "opened_for", None)
        if opened is not None:
            raise SelectionOnTestError(
                f"{name!r} is chosen after the test split was opened (for {opened!r}). Every choice reads the "
                "validation split only. Fix: make the choice before TEST.open(...), on validation scores.")

    def record(self, name: str, chosen, rule: str, candidates: dict | None = None, chosen_on: str = "validation"):
        self._guard(name)
        if chosen_on != "validation":
            raise SelectionOnTestError(f"{name!r} was chosen on {chosen_on!r}. Fix: choose it on 'validation'.")
        entry = {"name": str(name), "chosen": chosen, "chosen_on": "validation", "rule": str(rule)}
        if candidates is not None:
            entry["candidates"] = {str(k): float(v) for k, v in candidates.items()}
        self.entries.append(entry)
        return chosen

    def choose(self, name: str, candidates: dict, rule: str, higher_is_better: bool = True):
        if not candidates:
            raise SettingError(f"No candidate to choose {name!r} from. Fix: run at least one setting.")
        self._guard(name)
        pick = (max if higher_is_better else min)(candidates, key=lambda k: candidates[k])
        return self.record(name, pick, rule, candidates)

    def as_list(self) -> list[dict]:
        return [dict(e) for e in self.entries]
