"""Exercise answer cells that stop a learner but run (and test) the solution in a batch run.

Each exercise of notebook ``NN`` has an id ``"NN.K"`` (K = 1, 2, ... in notebook order). Its reference
solution is package data, not notebook text: ``solutions/NN.K.py`` (the code) and, optionally,
``solutions/NN.K.md`` (the discussion). The notebooks hold only the task and the learner's answer cell,
which ends with ``student_exercise("NN.K", "<short task>")``:

* in a front end (JupyterLab, Notebook 7, VS Code, Colab) it raises ``NotImplementedError``, so
  "Run All" runs the whole lesson and stops at the first unfinished exercise;
* in a headless run (nbval, papermill, ``medgan run``; ``MEDGAN_HEADLESS=1``) it prints one line and
  runs the reference solution in the notebook's namespace, so batch runs execute every solution.

:func:`show_solution` shows a solution (discussion and code) when the learner asks for it, and runs it
with ``run=True``. Which case applies is decided by :func:`~medgan_utils.course.widgets.frontend_available`.
"""
from __future__ import annotations

import re
import sys
from importlib import resources

from ..core.errors import CourseError
from .widgets import frontend_available

__all__ = ["student_exercise", "show_solution", "solution_ids", "solution_code", "solution_notes"]

_ID = re.compile(r"^\d\d\.\d+$")


def _folder():
    return resources.files(__package__).joinpath("solutions")


def solution_ids() -> list[str]:
    """Every exercise id that has a stored solution, in notebook and exercise order."""
    ids = [p.name[:-3] for p in _folder().iterdir() if p.name.endswith(".py") and _ID.match(p.name[:-3])]
    return sorted(ids, key=lambda i: tuple(int(x) for x in i.split(".")))


def _check_id(exercise_id) -> str:
    known = solution_ids()
    if not isinstance(exercise_id, str) or exercise_id.strip() not in known:
        raise CourseError(f"Unknown exercise id {exercise_id!r}. Known ids: {', '.join(known)}. "
                          "Fix: use the id printed above the answer cell, e.g. student_exercise(\"03.1\", ...).")
    return exercise_id.strip()


def solution_code(exercise_id: str) -> str:
    """The reference solution of ``exercise_id`` as Python source."""
    return _folder().joinpath(f"{_check_id(exercise_id)}.py").read_text(encoding="utf-8")


def solution_notes(exercise_id: str) -> str:
    """The stored discussion of ``exercise_id`` (Markdown), or ``""`` if it has none."""
    notes = _folder().joinpath(f"{_check_id(exercise_id)}.md")
    return notes.read_text(encoding="utf-8") if notes.is_file() else ""


def _user_namespace(namespace: dict | None, depth: int) -> dict:
    """``namespace``, else the IPython user namespace, else the globals of the notebook-level caller."""
    if namespace is not None:
        return namespace
    try:
        from IPython import get_ipython

        ip = get_ipython()
    except ImportError:  # pragma: no cover - IPython is a dependency via ipykernel
        ip = None
    if ip is not None:
        return ip.user_ns
    return sys._getframe(depth + 1).f_globals


def _run(exercise_id: str, namespace: dict) -> None:
    path = _folder().joinpath(f"{exercise_id}.py")
    code = compile(path.read_text(encoding="utf-8"), str(path), "exec")  # tracebacks show the solution's lines
    exec(code, namespace)


def student_exercise(exercise_id: str, task: str = "", *, namespace: dict | None = None) -> None:
    """The last line of an exercise's answer cell.

    With a front end it raises ``NotImplementedError`` (the learner has not answered yet); in a
    headless run it prints one line and runs the reference solution ``solutions/<id>.py`` in the
    notebook's namespace (``namespace``, default the IPython user namespace). Unknown ids raise a
    :class:`~medgan_utils.core.errors.CourseError` that lists the known ones.
    """
    exercise_id = _check_id(exercise_id)
    label = f"Exercise {exercise_id}" + (f" ({task})" if task else "")
    if frontend_available():
        raise NotImplementedError(
            f"{label}: write your answer in this cell (and delete this student_exercise line), then run it. "
            f"To see a solution: show_solution('{exercise_id}')")
    print(f"[{label}: headless run, so the reference solution runs here instead of an answer]")
    _run(exercise_id, _user_namespace(namespace, 1))


def show_solution(exercise_id: str, run: bool = False, *, namespace: dict | None = None) -> None:
    """Show the discussion and the code of an exercise's reference solution; ``run=True`` also executes it
    in the notebook's namespace (``namespace``, default the IPython user namespace)."""
    exercise_id = _check_id(exercise_id)
    notes, code = solution_notes(exercise_id), solution_code(exercise_id)
    text = f"**Solution of exercise {exercise_id}**\n\n" + (notes.strip() + "\n\n" if notes else "")
    text += "```python\n" + code.rstrip() + "\n```\n"
    try:
        from IPython import get_ipython
        from IPython.display import Markdown, display
    except ImportError:  # pragma: no cover
        get_ipython = None
    if get_ipython is not None and get_ipython() is not None:
        display(Markdown(text))
    else:
        print(text)
    if run:
        _run(exercise_id, _user_namespace(namespace, 1))
