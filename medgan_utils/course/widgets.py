"""ipywidgets that degrade to a static figure when no front end is attached.

A notebook executed by nbval or papermill has a kernel but no browser: a
widget there can never be moved and its output area is never drawn. So
:func:`explore` runs the callback once with every control at its default and
shows that figure. In JupyterLab, Notebook 7, VS Code or Colab it shows the
live controls instead.

``MEDGAN_HEADLESS=1`` forces the static path (``medgan run`` and the tests set
it); ``MEDGAN_WIDGETS=1`` forces live widgets. A control that cannot move (a
slider with min = max, a list with one option) is never shown: it is passed to
the callback as a fixed value. Whether widgets render is all this guess
decides: exercise cells stop a learner whatever the front end (see
:mod:`medgan_utils.course.exercises`).
"""
from __future__ import annotations

import os
import sys

from ..core.env import read_env


def frontend_available() -> bool:
    """Best guess whether a live front end can render widgets."""
    env = read_env()
    if env.headless:
        return False
    if env.widgets:
        return True
    try:
        from IPython import get_ipython

        ip = get_ipython()
    except ImportError:
        return False
    if ip is None or not hasattr(ip, "kernel"):
        return False
    if "google.colab" in sys.modules:
        return True
    # jupyter_server (JupyterLab, Notebook 7) and VS Code set these for the kernels they start.
    return any(os.environ.get(k) for k in ("JPY_SESSION_NAME", "VSCODE_PID", "VSCODE_CWD"))


def _default(control):
    """The default value of an ``interact``-style control."""
    try:
        import ipywidgets as w

        if isinstance(control, w.ValueWidget):
            return control.value
    except ImportError:  # pragma: no cover
        pass
    if isinstance(control, tuple) and len(control) in (2, 3) and all(isinstance(x, (int, float)) for x in control):
        lo, hi = control[0], control[1]
        mid = (lo + hi) / 2
        return type(lo)(mid) if isinstance(lo, int) and isinstance(hi, int) else mid
    if isinstance(control, (list, tuple)) and control:
        first = control[0]
        return first[1] if isinstance(first, tuple) and len(first) == 2 else first
    if isinstance(control, dict) and control:
        return next(iter(control.values()))
    return control


def movable(control) -> bool:
    """Whether an ``interact``-style control offers more than one value (a slider with min < max, a list or a
    dropdown with two or more options)."""
    try:
        import ipywidgets as w

        if isinstance(control, w.fixed):
            return False
        if isinstance(control, (w.IntSlider, w.FloatSlider, w.IntRangeSlider, w.FloatRangeSlider,
                                w.FloatLogSlider)):
            return control.max > control.min
        if isinstance(control, (w.Dropdown, w.SelectionSlider, w.RadioButtons, w.ToggleButtons, w.Select)):
            return len(control.options) > 1
        if isinstance(control, w.ValueWidget):
            return True
    except ImportError:  # pragma: no cover
        pass
    if isinstance(control, tuple) and len(control) in (2, 3) and all(isinstance(x, (int, float)) for x in control):
        return control[1] > control[0]
    if isinstance(control, (list, tuple, dict)):
        return len(control) > 1
    return False


def explore(callback, static_note: str | None = None, **controls):
    """``ipywidgets.interact(callback, **controls)`` with a static fallback.

    Controls may be ipywidgets or ``interact`` abbreviations (a ``(min, max, step)``
    tuple, a list of options, a fixed value). Without a front end the callback runs
    once with the defaults and its figure is shown; the return value is then the
    callback's result. With a front end it shows the live controls and returns ``None``; a control that cannot
    move (:func:`movable`) is not shown but passed as its one value.
    """
    if frontend_available():
        import ipywidgets as w

        live = {k: v if movable(v) else w.fixed(_default(v)) for k, v in controls.items()}
        w.interact(callback, **live)  # displays the controls and the figure itself
        return None  # (returning interact's result would print a stray "<function ...>" under the cell)
    values = {k: _default(v) for k, v in controls.items()}
    shown = ", ".join(f"{k}={v!r}" for k, v in values.items())
    print(static_note or f"[static figure: no interactive front end; showing the defaults {shown}. "
          "Open the notebook in Jupyter or Colab to move the controls.]")
    result = callback(**values)
    try:
        import matplotlib.pyplot as plt

        if plt.get_fignums():
            plt.show()
    except ImportError:  # pragma: no cover
        pass
    return result
