"""The check cell of every exercise: ``check_exercise("NN.K")`` tests the learner's answer and says, in the
learner's terms, what is wrong.

Each exercise has one :class:`Check` (registered by :mod:`.checks_00_02`, :mod:`.checks_03_05` and
:mod:`.checks_06_08`). A check reads the names the task asks the learner to define (``answer``) and the lesson's
objects it needs (``lesson``) from the notebook's namespace, and tests the answer itself, not the solution's
output: shapes and ranges, known values on small cases, invariants, behaviour, the key number against a
recomputation within a stated tolerance, and for explanation-type exercises a short multiple-choice or numeric
question drawn from the discussion (``quiz_NN_K``). In a batch run the stored solution defines the same names,
so every check runs against it too.

A skipped exercise (:func:`~medgan_utils.course.exercises.skip_exercise`) is reported as skipped, not checked.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..core.errors import CourseError
from .exercises import check_id, is_skipped, user_namespace
from .feedback import AnswerIncorrect

__all__ = ["Check", "check_exercise", "checks", "exercise_table", "wrong", "number", "close", "quiz", "call",
           "register"]


@dataclass(frozen=True)
class Check:
    """One exercise's check: the names it reads, what it tests (one line), and the fast-mode minutes of the
    exercise (its stored solution and this check) on a quiet 2-core CPU. The minutes were measured under nbval and
    scaled by the notebook's quiet fast-mode time in BENCHMARKS.md (the measuring machine was shared), rounded up."""

    exercise: str
    answer: tuple
    lesson: tuple
    tests: str
    minutes: float
    run: Callable


_REGISTRY: dict[str, Check] = {}


def register(exercise: str, answer: tuple, lesson: tuple = (), *, tests: str, minutes: float):
    """Decorator: ``run(a) -> str`` becomes the check of ``exercise``; ``a`` maps every name of ``answer`` and
    ``lesson`` to its value in the notebook; the returned text completes the PASS line."""
    def wrap(run):
        _REGISTRY[exercise] = Check(exercise, tuple(answer), tuple(lesson), tests, float(minutes), run)
        return run
    return wrap


def checks() -> dict[str, Check]:
    """Every registered check, by exercise id, in course order."""
    from . import checks_00_02, checks_03_05, checks_06_08  # noqa: F401 - they register themselves

    return dict(sorted(_REGISTRY.items(), key=lambda kv: tuple(int(x) for x in kv[0].split("."))))


# ------------------------------------------------------------------------------------------ helpers for checks

def wrong(text: str) -> AnswerIncorrect:
    """The error a check raises: ``text`` says what is wrong in the learner's terms and what to try."""
    return AnswerIncorrect(text)


def number(name: str, value, lo: float = -math.inf, hi: float = math.inf) -> float:
    """``value`` as a finite float in [lo, hi], or an :class:`AnswerIncorrect` naming ``name``."""
    try:
        x = float(value.item() if hasattr(value, "item") else value)
    except (TypeError, ValueError):
        raise wrong(f"{name} should be a number, but it is {type(value).__name__} {value!r:.60}.") from None
    if not math.isfinite(x) or not lo <= x <= hi:
        raise wrong(f"{name} = {x:.6g} is outside the possible range [{lo:g}, {hi:g}].")
    return x


def close(name: str, got, want: float, tol: float, hint: str = "") -> float:
    """``got`` (a number) within ``tol`` of ``want``, or an :class:`AnswerIncorrect` that shows both."""
    x = number(name, got)
    if not abs(x - want) <= tol:
        raise wrong(f"{name} = {x:.6g}, but recomputing it gives {want:.6g} (tolerance ±{tol:g}). {hint}".rstrip())
    return x


def quiz(a: dict, var: str, answer, explain: str, tol: float = 0.0) -> None:
    """A multiple-choice (a letter) or numeric question: ``a[var]`` must be ``answer`` (within ``tol``)."""
    given = a[var]
    if isinstance(answer, str):
        text = str(given).strip().lower().strip("()")
        if text in ("", "?", "none") or len(text) != 1:
            raise wrong(f"{var} should be one letter, e.g. {var} = \"b\"; it is {given!r}.")
        if text != answer:
            raise wrong(f"{var} = {given!r} is not the best answer. {explain}")
        return
    x = number(var, given)
    if abs(x - answer) > tol:
        raise wrong(f"{var} = {x:g} is not right (within ±{tol:g}). {explain}")


def call(what: str, fn, *args, **kwargs):
    """``fn(*args, **kwargs)``; an error inside the learner's code becomes an :class:`AnswerIncorrect` that names
    ``what`` and keeps the learner's own frames (shown under the message)."""
    if not callable(fn):
        raise wrong(f"{what} should be a function, but it is {type(fn).__name__}.")
    try:
        return fn(*args, **kwargs)
    except (AnswerIncorrect, NotImplementedError):
        raise
    except Exception as err:
        raise wrong(f"{what} raised {type(err).__name__}: {err}") from err


# ------------------------------------------------------------------------------------------ check_exercise

def _gather(check: Check, ns: dict, given: dict) -> dict:
    values, missing, lesson_missing = {}, [], []
    for name in check.answer + check.lesson:
        if name in given:
            values[name] = given[name]
        elif name in ns:
            values[name] = ns[name]
        else:
            (missing if name in check.answer else lesson_missing).append(name)
    eid = check.exercise
    if lesson_missing:
        raise wrong(f"Exercise {eid}: the check needs the lesson's {', '.join(lesson_missing)}, which the cells above "
                    "define: run them first (Run All, or Run > Run All Above).")
    if missing:
        raise wrong(f"Exercise {eid}: your answer should define {', '.join(missing)} (the task says what each "
                    f"holds). Run your answer cell first, or skip the exercise with skip_exercise(\"{eid}\").")
    return values


def check_exercise(exercise_id: str, *, namespace: dict | None = None, **given) -> bool | None:
    """Check the learner's answer to ``exercise_id``: print ``PASS`` and what was checked, or raise an
    :class:`~medgan_utils.course.feedback.AnswerIncorrect` that says what is wrong.

    The names the task asks for are read from the notebook's namespace (``namespace``, default the IPython user
    namespace); keyword arguments override them. A skipped exercise prints "skipped" and returns ``None``.
    """
    eid = check_id(exercise_id)
    ns = user_namespace(namespace, 1)
    if is_skipped(eid, ns):
        print(f"Exercise {eid}: skipped, so not checked. show_solution(\"{eid}\") shows the solution.")
        return None
    check = checks().get(eid)
    if check is None:  # pragma: no cover - a test ties every notebook exercise to a check
        raise CourseError(f"Exercise {eid} has no check. Fix: register one in medgan_utils/course/checks_*.py.")
    try:
        detail = check.run(_gather(check, ns, given))
    except AnswerIncorrect as err:
        text = str(err)
        if not text.startswith(f"Exercise {eid}"):
            text = f"Exercise {eid}: {text}"
        raise AnswerIncorrect(text).with_traceback(None) from err.__cause__
    print(f"PASS (exercise {eid}): {detail}")
    return True


# ------------------------------------------------------------------------------------------ the list of exercises

_STUB = re.compile(r"""^student_exercise\(\s*["'](\d\d\.\d+)["']\s*(?:,\s*(?:"([^"]*)"|'([^']*)'))?""", re.M)


def exercise_table(notebooks: Path | None = None) -> list[dict]:
    """One row per exercise found in the notebooks (``notebooks``: the course's folder): id, notebook, task,
    checked (a registered check *and* a ``check_exercise("NN.K")`` cell in the notebook), fast-mode minutes and
    what the check tests."""
    from ..core.env import course_root

    folder = notebooks or ((course_root() or Path.cwd()) / "notebooks")
    paths = sorted(Path(folder).glob("[0-9][0-9]_*.ipynb"))
    if not paths:
        raise CourseError(f"No course notebooks in {folder}. Fix: run the command in the course folder.")
    registry, rows = checks(), []
    for path in paths:
        cells = ["".join(c["source"]) for c in json.loads(path.read_text(encoding="utf-8"))["cells"]
                 if c["cell_type"] == "code"]
        code = "\n".join(cells)
        for src in cells:
            for m in _STUB.finditer(src):
                eid, check = m.group(1), registry.get(m.group(1))
                cell_calls = re.search(rf"""check_exercise\(\s*["']{re.escape(eid)}["']""", code) is not None
                rows.append({"id": eid, "notebook": path.name, "task": m.group(2) or m.group(3) or "",
                             "checked": bool(check) and cell_calls,
                             "fast_minutes": check.minutes if check else None,
                             "check": check.tests if check else None})
    return rows
