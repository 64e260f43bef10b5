"""Exercise answer cells: they stop a learner, run (and so test) the stored solution in a batch run, and can be
skipped.

Each exercise of notebook ``NN`` has an id ``"NN.K"`` (K = 1, 2, ... in notebook order). Its reference
solution is package data, not notebook text: ``solutions/NN.K.py`` (the code) and, optionally,
``solutions/NN.K.md`` (the discussion). The notebook holds the task, the learner's answer cell, which ends with
``student_exercise("NN.K", "<short task>")``, and a check cell, ``check_exercise("NN.K")``
(:mod:`medgan_utils.course.checking`):

* in a **batch run** (the explicit flag ``MEDGAN_HEADLESS=1``, which ``medgan run``, the course's papermill
  runner and the project's nbval conftest set, or a person sets by hand) ``student_exercise`` prints one line
  and runs the reference solution in the notebook's namespace, so every solution and every check is tested;
* **everywhere else** (JupyterLab, Notebook 7, VS Code, Colab, nbclient, IPython, plain Python) it raises
  :class:`~medgan_utils.course.feedback.ExerciseNotDone`: one clean message that says what to do, how to see
  the solution and how to skip, with no package frames. It never runs the solution. Whether a front end can
  render widgets (:func:`~medgan_utils.course.widgets.frontend_available`) plays no part here.

:func:`skip_exercise` marks an exercise as skipped in the notebook's namespace: its check cell then reports
"skipped" instead of failing, so Run All goes on to the cells below. :func:`show_solution` shows a solution
(discussion and code) and runs it with ``run=True``.
"""
from __future__ import annotations

import re
import sys
from importlib import resources

from ..core.env import read_env
from ..core.errors import CourseError
from .feedback import ExerciseNotDone

__all__ = ["student_exercise", "show_solution", "skip_exercise", "is_skipped", "batch_run", "solution_ids",
           "solution_code", "solution_notes", "SKIPPED_KEY"]

_ID = re.compile(r"^\d\d\.\d+$")
#: the key, in the notebook's namespace, of the set of skipped exercise ids
SKIPPED_KEY = "_medgan_skipped_exercises"


def _folder():
    return resources.files(__package__).joinpath("solutions")


def solution_ids() -> list[str]:
    """Every exercise id that has a stored solution, in notebook and exercise order."""
    ids = [p.name[:-3] for p in _folder().iterdir() if p.name.endswith(".py") and _ID.match(p.name[:-3])]
    return sorted(ids, key=lambda i: tuple(int(x) for x in i.split(".")))


def check_id(exercise_id) -> str:
    """``exercise_id`` if it is a known id, else a :class:`CourseError` that lists the known ones."""
    known = solution_ids()
    if not isinstance(exercise_id, str) or exercise_id.strip() not in known:
        raise CourseError(f"Unknown exercise id {exercise_id!r}. Known ids: {', '.join(known)}. "
                          "Fix: use the id printed above the answer cell, e.g. student_exercise(\"03.1\", ...).")
    return exercise_id.strip()


def solution_code(exercise_id: str) -> str:
    """The reference solution of ``exercise_id`` as Python source."""
    return _folder().joinpath(f"{check_id(exercise_id)}.py").read_text(encoding="utf-8")


def solution_notes(exercise_id: str) -> str:
    """The stored discussion of ``exercise_id`` (Markdown), or ``""`` if it has none."""
    notes = _folder().joinpath(f"{check_id(exercise_id)}.md")
    return notes.read_text(encoding="utf-8") if notes.is_file() else ""


def batch_run() -> bool:
    """True only when the explicit batch flag is set (``MEDGAN_HEADLESS=1``): ``medgan run``, the course's
    papermill runner and the project's nbval conftest set it; a person may set it by hand."""
    return read_env().headless


def user_namespace(namespace: dict | None, depth: int) -> dict:
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


def stop_message(exercise_id: str, task: str = "") -> str:
    """The message of an answer cell that has not been answered yet: what to do, how to see the solution, how
    to skip."""
    label = f"Exercise {exercise_id}" + (f" ({task})" if task else "")
    return (f"{label} is waiting for your answer.\n"
            f"  - To answer: write your code in this cell, delete its last line (student_exercise(\"{exercise_id}\", "
            f"...)) and run the cell; then run the check cell below it.\n"
            f"  - To see a solution: show_solution(\"{exercise_id}\") (with run=True it also runs it).\n"
            f"  - To skip it: replace that last line by skip_exercise(\"{exercise_id}\") and run the cell; the check "
            "below then says 'skipped' and Run All goes on.")


def student_exercise(exercise_id: str, task: str = "", *, namespace: dict | None = None) -> None:
    """The last line of an exercise's answer cell.

    In a batch run (:func:`batch_run`) it prints one line and runs the reference solution
    ``solutions/<id>.py`` in the notebook's namespace (``namespace``, default the IPython user namespace).
    Everywhere else it raises :class:`~medgan_utils.course.feedback.ExerciseNotDone` and never runs the
    solution. Unknown ids raise a :class:`~medgan_utils.core.errors.CourseError` that lists the known ones.
    """
    exercise_id = check_id(exercise_id)
    if not batch_run():
        raise ExerciseNotDone(stop_message(exercise_id, task)) from None
    label = f"Exercise {exercise_id}" + (f" ({task})" if task else "")
    print(f"[{label}: batch run (MEDGAN_HEADLESS=1), so the reference solution runs here instead of an answer]")
    _run(exercise_id, user_namespace(namespace, 1))


def skip_exercise(exercise_id: str, *, namespace: dict | None = None) -> None:
    """Skip exercise ``exercise_id``: its check cell reports "skipped" and the cells below run without an answer.

    Put it in place of the answer cell's ``student_exercise(...)`` line. The mark lives in the notebook's
    namespace (``namespace``, default the IPython user namespace), so restarting the kernel clears it."""
    exercise_id = check_id(exercise_id)
    user_namespace(namespace, 1).setdefault(SKIPPED_KEY, set()).add(exercise_id)
    print(f"Exercise {exercise_id} skipped: its check will say so, and the cells below run without your answer. "
          f"show_solution(\"{exercise_id}\") shows the solution whenever you want it.")


def is_skipped(exercise_id: str, namespace: dict) -> bool:
    """Whether :func:`skip_exercise` marked ``exercise_id`` in ``namespace``."""
    return exercise_id in namespace.get(SKIPPED_KEY, ())


def show_solution(exercise_id: str, run: bool = False, *, namespace: dict | None = None) -> None:
    """Show the discussion and the code of an exercise's reference solution; ``run=True`` also executes it
    in the notebook's namespace (``namespace``, default the IPython user namespace)."""
    exercise_id = check_id(exercise_id)
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
        _run(exercise_id, user_namespace(namespace, 1))
