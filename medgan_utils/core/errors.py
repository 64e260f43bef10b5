"""The course's errors, and the checks that raise them.

Every error a learner can cause derives from :class:`CourseError`. Its message
names the thing at fault, what was wrong with it, and the fix; the ``medgan``
command prints it as one line (no traceback) and exits with status 2.
"""
from __future__ import annotations

import math
import numbers
import os


class CourseError(Exception):
    """Base class of every error whose message names the fault and the fix."""


class SettingError(CourseError, ValueError):
    """A ``MEDGAN_*`` environment variable or a parameter has an invalid value."""


class CoursePathError(CourseError, OSError):
    """A file or folder of the course (data, results, cache, checkpoints) cannot be used."""


def positive_int(value, what: str, *, minimum: int = 1, fix: str | None = None, maximum: int | None = None) -> int:
    """``value`` as an int ≥ ``minimum`` (and ≤ ``maximum``, if given); bools, fractions, NaN, inf and text that is
    not a whole number fail.

    ``what`` names the thing in the message (for example ``"batch size"`` or ``"--size"``).
    """
    ok = False
    number = None
    if isinstance(value, str):
        text = value.strip()
        try:
            number, ok = int(text), True
        except ValueError:
            ok = False
    elif isinstance(value, numbers.Integral) and not isinstance(value, bool):
        number, ok = int(value), True
    elif isinstance(value, numbers.Real) and not isinstance(value, bool):
        f = float(value)
        ok = math.isfinite(f) and f.is_integer()
        number = int(f) if ok else None
    if ok and number is not None and number >= minimum and (maximum is None or number <= maximum):
        return number
    hint = f" Fix: {fix}" if fix else ""
    wanted = f">= {minimum}" + (f" and <= {maximum}" if maximum is not None else "")
    shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
    raise SettingError(f"{what} must be a whole number {wanted}, got {shown}.{hint}")


def check_names(values, allowed, what: str, *, lower: bool = False, example: str | None = None) -> list[str]:
    """``values`` (a name or a list of names; lower-cased with ``lower``) as a non-empty list drawn from
    ``allowed``; otherwise a :class:`SettingError` naming ``what``, the bad entries and the choices."""
    names = [values] if isinstance(values, str) else list(values or [])
    keys = [str(v).strip().lower() for v in names] if lower else names
    bad = [v for v, k in zip(names, keys) if k not in allowed]
    if bad or not keys:
        hint = f", e.g. {example}" if example else ""
        raise SettingError(f"{what}: unknown or no entries {bad or names!r}. "
                           f"Fix: choose from {', '.join(allowed)}{hint}.")
    return keys


def describe_os_error(err: OSError) -> str:
    """A short reason for an ``OSError`` (``'permission denied'``, ``'not a directory'``, ...)."""
    reason = err.strerror or type(err).__name__
    return reason[0].lower() + reason[1:] if reason else "an OS error"


def path_error(path: os.PathLike | str, role: str, err: OSError, fix: str) -> CoursePathError:
    """A :class:`CoursePathError` for ``err`` on ``path``: ``"<role> <path>: <reason>. Fix: <fix>"``."""
    return CoursePathError(f"{role} {path}: {describe_os_error(err)}. Fix: {fix}")
