"""Layout checks of the notebooks' figures: no title may overlap an image, another axes' plot area or another
title (matplotlib's rendered bounding boxes, in pixels), and every plot labels the axes it shows ticks for.

:func:`title_overlaps` and :func:`missing_axis_labels` check one figure. The module is also a matplotlib backend: with
``MPLBACKEND=module://medgan_utils.course.figure_check`` every figure a notebook shows is drawn, checked and then
shown as by the inline backend; problems are appended to ``figure_layout.json`` in the results folder. The test
session (``conftest.py``) sets this backend for the notebooks nbval runs and fails when a notebook's figures overlap,
so every figure of every notebook is checked in fast mode at the cost of one extra draw per figure.
"""
from __future__ import annotations

import json

from matplotlib._pylab_helpers import Gcf
from matplotlib_inline import backend_inline as _inline
from matplotlib_inline.backend_inline import (FigureCanvas, new_figure_manager,  # noqa: F401 - the backend API
                                              new_figure_manager_given_figure)

__all__ = ["title_overlaps", "missing_axis_labels", "layout_problems", "show", "FigureCanvas", "new_figure_manager"]

#: overlaps smaller than this many pixels in either direction are rounding, not a problem
SLACK_PX = 2.0


def _titles(fig):
    out = []
    if getattr(fig, "_suptitle", None) is not None and fig._suptitle.get_text() and fig._suptitle.get_visible():
        out.append(("suptitle", None, fig._suptitle))
    for i, ax in enumerate(fig.axes):
        for t in (ax.title, ax._left_title, ax._right_title):
            if t.get_text() and t.get_visible() and ax.get_visible():
                out.append((f"axes {i} title", ax, t))
    return out


def _hit(a, b) -> bool:
    w = min(a.x1, b.x1) - max(a.x0, b.x0)
    h = min(a.y1, b.y1) - max(a.y0, b.y0)
    return w > SLACK_PX and h > SLACK_PX


def _areas(fig, renderer):
    """``(label, owner axes, bbox)`` of every image and of every plot area (axes without images) in the figure."""
    out = []
    for i, ax in enumerate(fig.axes):
        if not ax.get_visible():
            continue
        if ax.images:
            for im in ax.images:
                box = im.get_window_extent(renderer)
                clipped = box.intersection(box, ax.bbox) if ax.get_clip_on() else box
                out.append((f"axes {i} image", ax, clipped or box))
        elif ax.axison and ax.patch.get_visible():
            out.append((f"axes {i} plot area", ax, ax.bbox))
    return out


def title_overlaps(fig) -> list[str]:
    """Every title of ``fig`` that overlaps an image (its own or another axes'), another axes' plot area or another
    title, as one line each (empty: the layout is clean)."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    titles = [(name, ax, t, t.get_window_extent(renderer)) for name, ax, t in _titles(fig)]
    problems = []
    for name, ax, text, box in titles:
        for label, owner, area in _areas(fig, renderer):
            if owner is ax and label.endswith("plot area"):
                continue  # a title inside its own plot area is matplotlib's placement, not an overlap
            if _hit(box, area):
                problems.append(f"{name} {text.get_text()[:50]!r} overlaps {label}")
    for k, (name, _, text, box) in enumerate(titles):
        for other, _, text2, box2 in titles[k + 1:]:
            if _hit(box, box2):
                problems.append(f"{name} {text.get_text()[:50]!r} overlaps {other} {text2.get_text()[:50]!r}")
    return problems


def _labelled(ax, which: str) -> bool:
    """Whether ``ax`` or an axes sharing that axis with it (``sharex``/``sharey``, ``twinx``) has a label there."""
    get = "get_xlabel" if which == "x" else "get_ylabel"
    shared = ax.get_shared_x_axes() if which == "x" else ax.get_shared_y_axes()
    return any(getattr(other, get)() for other in [ax, *shared.get_siblings(ax)])


def _shows_ticks(ax, which: str) -> bool:
    axis = ax.xaxis if which == "x" else ax.yaxis
    return axis.get_visible() and any(t.get_visible() and t.get_text() for t in axis.get_ticklabels())


def missing_axis_labels(fig) -> list[str]:
    """Every plot (an axes with data and no image, not a colour bar) that shows tick labels on an axis without a
    label there, or on an axis it shares with one, as one line each."""
    fig.canvas.draw()
    problems = []
    for i, ax in enumerate(fig.axes):
        if not ax.get_visible() or not ax.axison or ax.images or getattr(ax, "_colorbar", None) is not None \
                or not ax.has_data():
            continue
        for which in ("x", "y"):
            if _shows_ticks(ax, which) and not _labelled(ax, which):
                problems.append(f"axes {i} ({ax.get_title()[:40]!r}) has no {which} label")
    return problems


def layout_problems(fig) -> list[str]:
    """:func:`title_overlaps` and :func:`missing_axis_labels` of one figure."""
    return title_overlaps(fig) + missing_axis_labels(fig)


def _record(problems: list[str]) -> None:
    from .results import results_path

    path = results_path("figure_layout").with_name("figure_layout.json")
    old = json.loads(path.read_text()) if path.is_file() else []
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(old + problems, indent=1))


def show(close=None, block=None):
    """The backend's ``plt.show``: check every open figure's layout (titles, axis labels), record problems, then show
    as inline does."""
    problems = []
    for manager in Gcf.get_all_fig_managers():
        fig = manager.canvas.figure
        label = fig.get_suptitle() if hasattr(fig, "get_suptitle") else ""
        problems += [f"figure {manager.num} {label[:40]!r}: {p}" for p in layout_problems(fig)]
    if problems:
        _record(problems)
    return _inline.show(close=close, block=block)



def _post_execute() -> None:
    """Figures a cell left open without ``plt.show()`` are checked and shown at the end of the cell, as inline does."""
    if Gcf.get_all_fig_managers():
        show()


def _install() -> None:
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover
        return
    ip = get_ipython()
    if ip is not None and _post_execute not in ip.events.callbacks["post_execute"]:
        ip.events.register("post_execute", _post_execute)
        # IPython renders figures as PNG only for the inline backend's name; this backend must do the same, or the
        # executed notebooks (and the website built from them) keep "<Figure ...>" text instead of the image.
        _inline.select_figure_formats(ip, {"png"})


_install()
