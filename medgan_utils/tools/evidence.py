"""The "Evidence" section of ``report.md``: how each run reached its headline number (``medgan report``).

Notebooks 04-08 record, besides their metrics, the evidence behind them in ``results.json``:

* ``metrics.primary``: the pre-declared contrast, ``{"contrast", "estimate", "ci": [lo, hi], "method"}``;
* ``metrics.operating_point``: the decision threshold and what it gives, ``{"threshold_from": "validation",
  "rule", "threshold", "sensitivity": {"estimate", "ci", "name"}, "specificity": {...}}``;
* ``metrics.selection``: every choice made on data, ``[{"name", "chosen", "chosen_on": "validation", "rule",
  "candidates"}, ...]``;
* ``metrics.split``: split hygiene, ``{"grouped", "near_copies": {"val_train", "test_train"}, "label_conflicts"}``,
  or one such object per dataset (``{"breastmnist": {...}, "busi": {...}}``); ``operating_point`` may add rows
  per arm or method (``by_arm`` / ``by_method``);
* ``metrics.test_opened``: how many times the sealed test split was opened.

Every field is untrusted: each is checked and escaped (:mod:`~medgan_utils.tools.untrusted`); a missing one is
left out, a malformed one is shown as malformed, and a threshold or choice not made on validation is flagged.
"""
from __future__ import annotations

from .untrusted import is_number, md_text

KEYS = ("primary", "operating_point", "selection", "split", "test_opened")
LABELS = {"primary": "Primary contrast", "operating_point": "Operating point", "selection": "Selections",
          "split": "Split hygiene", "test_opened": "Test split opened"}
FLAG = "**(!)**"


def _num(v) -> str:
    if not is_number(v):
        raise ValueError(f"not a number: {v!r}")
    return f"{v:.4g}"


def _ci(ci) -> str:
    if not (isinstance(ci, (list, tuple)) and len(ci) == 2):
        raise ValueError("a CI is [low, high]")
    return f"CI {_num(ci[0])} to {_num(ci[1])}"


def _text(d: dict, key: str, default: str | None = None) -> str:
    v = d.get(key, default)
    if v is None or isinstance(v, (dict, list)):
        raise ValueError(f"{key} missing or not text")
    return md_text(v, 120)


def _primary(p: dict) -> str:
    return f"{_text(p, 'contrast')}: {_num(p['estimate'])} ({_ci(p['ci'])}; {_text(p, 'method')})"


def _rate(r, default_name: str) -> str:
    if not isinstance(r, dict):
        raise ValueError("a rate is an object")
    return f"{_text(r, 'name', default_name)} {_num(r['estimate'])} ({_ci(r['ci'])})"


def _operating_point(op: dict) -> str:
    source = _text(op, "threshold_from")
    flag = "" if op.get("threshold_from") == "validation" else f" {FLAG} not chosen on validation"
    threshold = f"threshold {_num(op['threshold'])} " if "threshold" in op else "thresholds "
    parts = [f"{threshold}from the {source} split ({_text(op, 'rule')}){flag}"]
    for key in ("sensitivity", "specificity"):
        if key in op:
            parts.append(_rate(op[key], key))
    rows = op.get("by_arm", op.get("by_method"))
    if rows is not None:
        parts.append(_op_rows(rows))
    return "; ".join(parts)


def _op_rows(rows) -> str:
    """Per-arm (or per-method) operating points: threshold, sensitivity and specificity where given."""
    if not isinstance(rows, list):
        raise ValueError("by_arm / by_method is a list")
    shown = []
    for row in rows[:8]:
        if not isinstance(row, dict):
            raise ValueError("a row is an object")
        name = md_text(row.get("arm", row.get("method", "?")), 40)
        vals = [f"{k} {_num(v if not isinstance(v, dict) else v.get('estimate'))}"
                for k, v in row.items() if k in ("threshold", "sensitivity", "specificity")]
        shown.append(f"{name}: {', '.join(vals) or 'no numbers'}")
    return "per " + " / ".join(shown) + (f" / and {len(rows) - 8} more" if len(rows) > 8 else "")


def _selection(items) -> str:
    if not isinstance(items, list) or not items:
        raise ValueError("a list of choices")
    out = []
    for s in items[:20]:
        if not isinstance(s, dict):
            raise ValueError("a choice is an object")
        flag = "" if s.get("chosen_on") == "validation" else f" {FLAG}"
        cands = s.get("candidates")
        shown = (", ".join(md_text(c, 40) for c in cands[:8]) + (", …" if len(cands) > 8 else "")
                 if isinstance(cands, list) else md_text(cands, 80) if cands is not None else "")
        out.append(f"{_text(s, 'name')} = {md_text(s.get('chosen'), 60)} (chosen on {_text(s, 'chosen_on')}{flag} "
                   f"by {_text(s, 'rule')}" + (f"; candidates: {shown}" if shown else "") + ")")
    return "; ".join(out) + (f"; and {len(items) - 20} more" if len(items) > 20 else "")


def _count(v) -> str:
    if not (is_number(v) and float(v).is_integer() and v >= 0):
        raise ValueError("a count")
    return str(int(v))


def _split(sp: dict) -> str:
    if not ({"grouped", "near_copies", "label_conflicts"} & set(sp)):  # one entry per dataset
        if not sp or not all(isinstance(v, dict) for v in sp.values()):
            raise ValueError("a split object, or one per dataset")
        return " / ".join(f"{md_text(name, 40)}: {_split(v)}" for name, v in list(sp.items())[:6])
    grouped = sp.get("grouped")
    if grouped is not None and not isinstance(grouped, bool):
        raise ValueError("grouped is true or false")
    parts = [] if grouped is None else ["grouped (related images kept in one split)" if grouped
                                        else f"not grouped {FLAG}"]
    near = sp.get("near_copies")
    if near is not None:
        if not isinstance(near, dict):
            raise ValueError("near_copies is an object")
        parts.append("near copies " + ", ".join(f"{md_text(k.replace('_', '–'), 20)} {_count(v)}"
                                                for k, v in near.items()))
    if "label_conflicts" in sp:
        parts.append(f"label conflicts {_count(sp['label_conflicts'])}")
    if not parts:
        raise ValueError("nothing to show")
    return "; ".join(parts)


def _test_opened(n) -> str:
    text = f"{_count(n)} time(s)"
    return text + (f" {FLAG} a sealed test split is opened once" if int(n) > 1 else "")


RENDER = {"primary": _primary, "operating_point": _operating_point, "selection": _selection, "split": _split,
          "test_opened": _test_opened}


def evidence_of(metrics) -> dict:
    """The evidence fields of a run's ``metrics`` (an empty dict when it records none)."""
    return {k: metrics[k] for k in KEYS if isinstance(metrics, dict) and k in metrics}


def evidence_lines(ev: dict) -> list[str]:
    """One Markdown bullet per evidence field present; a malformed field says so instead of failing."""
    lines = []
    for key in KEYS:
        if key not in ev:
            continue
        value = ev[key]
        try:
            if key in ("primary", "operating_point", "split") and not isinstance(value, dict):
                raise ValueError("an object")
            text = RENDER[key](value)
        except (TypeError, ValueError, KeyError, AttributeError, IndexError, OverflowError):
            text = f"malformed in results.json, not shown {FLAG}"
        lines.append(f"- **{LABELS[key]}**: {text}")
    return lines


def evidence_section(runs: list[tuple[str, str, dict]]) -> list[str]:
    """``## Evidence`` with one subsection per run that records any evidence: (run, notebook, evidence)."""
    shown = [(run, nb, ev) for run, nb, ev in runs if ev]
    if not shown:
        return []
    lines = ["", "## Evidence", "", "How each run reached its headline number, as its results.json records it: the "
             "pre-declared contrast with its CI, the operating point and every choice with the split it was made on, "
             f"and split hygiene. {FLAG} marks a choice not made on validation, a split not grouped, or a test split "
             "opened more than once."]
    for run, nb, ev in shown:
        lines += ["", f"### {md_text(run, 120)} ({md_text(nb, 60)})", ""] + evidence_lines(ev)
    return lines
