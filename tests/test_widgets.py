import ipywidgets as w
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from medgan_utils.course.widgets import _default, explore, frontend_available  # noqa: E402


def test_headless_runs_callback_once_with_defaults(monkeypatch, capsys):
    monkeypatch.setenv("MEDGAN_HEADLESS", "1")
    assert frontend_available() is False
    calls = []

    def draw(p, name, k):
        calls.append((p, name, k))
        plt.figure()
        plt.plot([0, p])
        return p * k

    out = explore(draw, p=w.FloatSlider(value=0.25, min=0, max=1), name=["a", "b"], k=(2, 10, 2))
    assert calls == [(0.25, "a", 6)] and out == 1.5
    assert "static figure" in capsys.readouterr().out
    plt.close("all")


def test_defaults_of_interact_abbreviations():
    assert _default((0.0, 1.0)) == 0.5
    assert _default((1, 9, 2)) == 5
    assert _default([("one", 1), ("two", 2)]) == 1
    assert _default({"x": 3}) == 3
    assert _default(w.Dropdown(options=["u", "v"], value="v")) == "v"


def test_plain_python_has_no_front_end(monkeypatch):
    monkeypatch.delenv("MEDGAN_HEADLESS", raising=False)
    monkeypatch.delenv("MEDGAN_WIDGETS", raising=False)
    assert frontend_available() is False  # no IPython kernel under pytest
    monkeypatch.setenv("MEDGAN_WIDGETS", "1")
    assert frontend_available() is True


def test_live_explore_leaves_no_stray_output(monkeypatch):
    import ipywidgets

    import medgan_utils.course.widgets as widgets_mod

    calls = []
    monkeypatch.setattr(widgets_mod, "frontend_available", lambda: True)
    monkeypatch.setattr(ipywidgets, "interact", lambda cb, **kw: calls.append((cb, kw)) or cb)
    assert widgets_mod.explore(lambda p=0.5: p, p=(0.0, 1.0)) is None  # nothing for the cell to echo
    assert len(calls) == 1 and "p" in calls[0][1]
