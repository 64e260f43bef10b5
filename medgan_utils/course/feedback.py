"""What a learner sees when an exercise stops or an answer is wrong: one clean message, no package frames.

Both exceptions carry IPython's ``_render_traceback_`` hook, so a notebook shows only their message (and, for
an error raised inside the learner's own code, the learner's frames), never the course package's frames. In a
plain Python process they are ordinary exceptions with ordinary tracebacks.

* :class:`ExerciseNotDone` (a ``NotImplementedError``): the answer cell still ends with ``student_exercise``.
* :class:`AnswerIncorrect` (an ``AssertionError``): a check rejected the answer, in the learner's terms.
"""
from __future__ import annotations

import traceback
from pathlib import Path

__all__ = ["ExerciseNotDone", "AnswerIncorrect", "learner_frames"]

_PACKAGE = Path(__file__).resolve().parents[1]


def _is_package_frame(filename: str) -> bool:
    try:
        Path(filename).resolve().relative_to(_PACKAGE)
    except (ValueError, OSError):
        return "site-packages" in filename or "dist-packages" in filename or filename.startswith("<frozen")
    return "solutions" not in Path(filename).parts  # a stored solution is shown like the learner's code


def learner_frames(err: BaseException | None) -> list[str]:
    """The formatted frames of ``err``'s traceback that are the learner's (notebook cells, their own files),
    without the course package's, the standard library's or installed libraries' frames."""
    if err is None or err.__traceback__ is None:
        return []
    keep = [f for f in traceback.extract_tb(err.__traceback__) if not _is_package_frame(f.filename)]
    return traceback.format_list(keep)


class _Clean:
    """Mixin: IPython renders the message (and the learner's frames of the cause), nothing else."""

    def _render_traceback_(self) -> list[str]:
        lines = str(self).splitlines() or [type(self).__name__]
        frames = learner_frames(self.__cause__)
        if frames:
            lines += ["", "Where it happened in your code:"] + [ln.rstrip("\n") for f in frames for ln in f.splitlines()]
            lines.append(f"{type(self.__cause__).__name__}: {self.__cause__}")
        return lines


class ExerciseNotDone(_Clean, NotImplementedError):
    """An answer cell that still ends with ``student_exercise(...)`` outside a batch run."""


class AnswerIncorrect(_Clean, AssertionError):
    """A check of an exercise rejected the learner's answer; the message says what is wrong and what to try."""
