"""Reading what notebooks, users or anyone with write access to an output folder put there: ``results.json`` and
``run.json`` are data, never trusted (``medgan run``, ``medgan report``, ``medgan site``).

* :func:`read_record`: a JSON object from a file no larger than :data:`MAX_RECORD_BYTES` and nested no deeper
  than :data:`MAX_DEPTH`, with numbers too large for a float made infinite; anything else raises
  :class:`UnreadableRecord`, whose one-line message names the file and the reason;
* :func:`md_text` and :func:`md_code`: any value as Markdown text (HTML, table and link characters escaped) or
  as a code span, so a value can neither inject HTML into the website nor break a table;
* :func:`safe_name`: a value as a file-name part (no folder separators).
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

from ..core.errors import CourseError

MAX_RECORD_BYTES = 20 * 2 ** 20
MAX_DEPTH = 64
MAX_TEXT = 200
_MD_SPECIAL = re.compile(r"([\\`\[\]|$])")  # code, links and images, table cells, math


class UnreadableRecord(CourseError, ValueError):
    """A results.json or run.json that cannot be used; the message names the file and the reason."""


def _depth_and_numbers(obj):
    """(nesting depth, obj with ints beyond float range made ±inf), without recursion."""
    depth, stack = 0, [(obj, 1)]
    while stack:
        node, d = stack.pop()
        depth = max(depth, d)
        if depth > MAX_DEPTH:
            return depth, obj
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for key, value in items:
            if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 1e300:
                node[key] = math.inf if value > 0 else -math.inf
            elif isinstance(value, (dict, list)):
                stack.append((value, d + 1))
    return depth, obj


def read_record(path, what: str = "results file", *, fix: str = "delete it or rerun that run") -> dict:
    """The JSON object stored in ``path``; :class:`UnreadableRecord` when it is too large, not JSON, too deeply
    nested or not an object (``fix`` completes the message)."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_RECORD_BYTES:
            raise UnreadableRecord(f"{what} {path} is {size / 2 ** 20:.0f} MB, more than the "
                                   f"{MAX_RECORD_BYTES // 2 ** 20} MB a record may have. Fix: {fix}.")
        text = path.read_text(encoding="utf-8")
        obj = json.loads(text)
    except UnreadableRecord:
        raise
    except RecursionError:
        raise UnreadableRecord(f"{what} {path} is nested too deeply to read. Fix: {fix}.") from None
    except (OSError, ValueError) as err:  # unreadable, not UTF-8, not JSON, an integer of 5,000 digits
        reason = str(err).splitlines()[0][:120] if str(err) else type(err).__name__
        raise UnreadableRecord(f"{what} {path} is not readable JSON ({reason}). Fix: {fix}.") from None
    if not isinstance(obj, dict):
        raise UnreadableRecord(f"{what} {path} holds a JSON {type(obj).__name__}, not an object. Fix: {fix}.")
    depth, obj = _depth_and_numbers(obj)
    if depth > MAX_DEPTH:
        raise UnreadableRecord(f"{what} {path} is nested more than {MAX_DEPTH} levels deep. Fix: {fix}.")
    return obj


def md_text(value, limit: int = MAX_TEXT) -> str:
    """``value`` as Markdown text for a paragraph or a table cell: one line, at most ``limit`` characters, with
    ``& < >`` as HTML entities and the Markdown characters that could change its meaning (``|``, links and
    images, code, math) escaped."""
    text = " ".join(str(value).split())
    if len(text) > limit:
        text = text[:limit - 1] + "…"
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MD_SPECIAL.sub(r"\\\1", text)


def md_code(value, limit: int = 400) -> str:
    """``value`` as a Markdown code span (literal text: no HTML, no links), on one line."""
    text = " ".join(str(value).split()).replace("`", "'")
    return f"`{text[:limit - 1] + '…' if len(text) > limit else text}`"


def safe_name(value, limit: int = 60) -> str:
    """``value`` as a part of a file name: letters, digits, ``. _ -``; never a path."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(value)).strip("._")[:limit]
    return name or "_"


def is_number(v) -> bool:
    """A finite int or float (not a bool): what may be formatted with ``:g`` and plotted."""
    try:
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    except OverflowError:  # an int beyond the float range
        return False
