"""What the evidence standard asks of a ``results.json``, checked: a problem list, empty when the record complies.

Notebooks 04–08 write ``metrics.primary`` (the declared contrast with its interval and method),
``metrics.selection`` (every choice, each ``chosen_on: "validation"``), ``metrics.split`` (near copies across
splits), ``metrics.test_opened`` and, for a diagnosis model, ``metrics.operating_point`` (a threshold from
validation). Every interval of a bounded metric must lie in its range. The test session runs this on the
results of every notebook it executes, and ``medgan report`` shows the same keys.
"""
from __future__ import annotations

import math

__all__ = ["EVIDENCE_NOTEBOOKS", "evidence_problems"]

#: notebook → the keys it must write (07 selects nothing and has no test split, but declares a primary contrast)
EVIDENCE_NOTEBOOKS = {
    "04_augmentation": ("primary", "selection", "split", "test_opened", "operating_point"),
    "05_segmentation": ("primary", "selection", "split", "test_opened"),
    "06_enhancement": ("primary", "selection", "split", "test_opened", "operating_point"),
    "07_challenges": ("primary", "selection", "test_opened"),
    "08_trust": ("primary", "selection", "split", "test_opened", "operating_point"),
}
#: metrics whose values, and so whose intervals, lie in [0, 1]
UNIT_RANGE = ("auc", "sensitivity", "specificity", "dice", "iou", "precision", "recall", "ssim_unit")


def _interval_problems(where: str, ci, lo_bound: float, hi_bound: float) -> list[str]:
    if not (isinstance(ci, (list, tuple)) and len(ci) == 2):
        return [f"{where}: the interval is not a pair [lo, hi]"]
    lo, hi = ci
    if not all(isinstance(v, (int, float)) for v in (lo, hi)):
        return [f"{where}: the interval holds a non-number"]
    if all(map(math.isfinite, (lo, hi))) and (lo > hi or lo < lo_bound - 1e-9 or hi > hi_bound + 1e-9):
        return [f"{where}: interval [{lo}, {hi}] is outside [{lo_bound}, {hi_bound}] or reversed"]
    return []


def _bounded_rows(name: str, rows) -> list[str]:
    """Intervals ``<metric>_ci`` of unit-range metrics in summary rows (lists of dicts, or dicts of lists)."""
    out = []
    if isinstance(rows, dict):
        for key, sub in rows.items():
            out += _bounded_rows(f"{name}.{key}", sub)
        return out
    for i, row in enumerate(rows if isinstance(rows, list) else []):
        if isinstance(row, dict):
            for m in UNIT_RANGE:
                if f"{m}_ci" in row:
                    out += _interval_problems(f"{name}[{i}].{m}_ci", row[f"{m}_ci"], 0.0, 1.0)
    return out


def evidence_problems(notebook: str, record: dict) -> list[str]:
    """Every way ``record`` (a parsed ``results.json``) falls short of the evidence standard; [] if none."""
    metrics = record.get("metrics") if isinstance(record, dict) else None
    if not isinstance(metrics, dict):
        return ["metrics is missing or not an object"]
    problems = [f"metrics.{k} is missing" for k in EVIDENCE_NOTEBOOKS.get(notebook, ()) if k not in metrics]
    primary = metrics.get("primary")
    if "primary" in metrics:
        if not isinstance(primary, dict) or not isinstance(primary.get("contrast"), str) or \
                not isinstance(primary.get("method"), str) or not isinstance(primary.get("estimate"), (int, float)):
            problems.append("metrics.primary needs contrast (str), estimate (number), ci and method (str)")
        else:
            problems += _interval_problems("metrics.primary.ci", primary.get("ci"), -math.inf, math.inf)
            if primary.get("metric") in UNIT_RANGE:
                problems += _interval_problems("metrics.primary.ci", primary.get("ci"), -1.0, 1.0)
    for i, entry in enumerate(metrics.get("selection") or []):
        if not isinstance(entry, dict) or entry.get("chosen_on") != "validation":
            problems.append(f"metrics.selection[{i}] was not chosen on validation: {entry!r}")
    op = metrics.get("operating_point")
    if op is not None and (not isinstance(op, dict) or op.get("threshold_from") != "validation"):
        problems.append("metrics.operating_point.threshold_from must be 'validation'")
    if isinstance(op, dict):
        for k in ("sensitivity", "specificity"):
            if isinstance(op.get(k), dict):
                problems += _interval_problems(f"metrics.operating_point.{k}.ci", op[k].get("ci"), 0.0, 1.0)
    split = metrics.get("split")
    splits = [split] if isinstance(split, dict) and "near_copies" in split else \
        list(split.values()) if isinstance(split, dict) else []
    for s in splits:
        nc = s.get("near_copies") if isinstance(s, dict) else None
        if not isinstance(nc, dict) or not all(isinstance(nc.get(k), int) for k in ("val_train", "test_train")):
            problems.append("metrics.split needs near_copies with val_train and test_train counts")
        elif s.get("grouped") and (nc["val_train"] or nc["test_train"]):
            problems.append(f"a grouped split still has near copies across splits: {nc}")
    opened = metrics.get("test_opened")
    if "test_opened" in metrics and not (isinstance(opened, int) and opened >= 0):
        problems.append("metrics.test_opened must be a count")
    for key in ("summary", "operating_point"):
        if key in metrics:
            problems += _bounded_rows(f"metrics.{key}", metrics[key] if key == "summary" else
                                      (metrics[key] or {}).get("by_arm", metrics[key].get("by_method", []))
                                      if isinstance(metrics[key], dict) else [])
    return problems
