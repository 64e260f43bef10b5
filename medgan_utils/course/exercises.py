"""Exercise stubs that stop a learner but not a batch run.

In a notebook opened in Jupyter, VS Code or Colab, :func:`student_exercise`
raises ``NotImplementedError("Student exercise: ...")`` so "Run all" stops at the
first unfinished exercise, as learners expect. In a headless run (papermill
sweeps, nbval, ``medgan run``) it only prints a note: papermill treats every
error as a failed notebook, and a parameter sweep must not fail on purpose.
Stub cells are also tagged ``raises-exception`` for tools that honour the tag.
"""
from __future__ import annotations

from .widgets import frontend_available


def student_exercise(task: str) -> None:
    """Mark an unfinished exercise: raise interactively, print a note in headless runs."""
    text = task if task.startswith("Student exercise") else f"Student exercise: {task}"
    if frontend_available():
        raise NotImplementedError(text + "  (write your answer in this cell; the hidden solution follows)")
    print(f"[{text} -- skipped in a headless run; open the notebook to try it]")
