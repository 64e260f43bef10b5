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


def test_animations_need_no_network_and_notebooks_use_the_offline_player():
    """matplotlib's player loads Font Awesome from a CDN; offline its buttons were blank (seen on the website)."""
    import json
    from pathlib import Path

    import matplotlib.pyplot as plt
    from matplotlib import animation

    from medgan_utils import animation_html

    fig, ax = plt.subplots()
    im = ax.imshow([[0.0, 1.0]])
    anim = animation.FuncAnimation(fig, lambda k: (im.set_data([[k, 1.0 - k]]), im)[1:], frames=2)
    raw, html = anim.to_jshtml(default_mode="once"), animation_html(anim)
    plt.close(fig)
    assert "font-awesome" in raw and 'class="fa ' in raw  # what the fix removes is really there
    assert "font-awesome" not in html and 'class="fa ' not in html and "https://" not in html
    assert "\u25b6" in html and "Play" in html and html.count("<button") == raw.count("<button")
    for nb in sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        code = "".join("".join(c["source"]) for c in json.loads(nb.read_text())["cells"] if c["cell_type"] == "code")
        assert "to_jshtml(" not in code, f"{nb.name}: use animation_html(anim), which works offline"


def test_controls_that_cannot_move_are_not_shown(monkeypatch):
    """04's 'fraction #' slider had min = max = 0 in fast mode: such a control is passed as a fixed value."""
    import ipywidgets

    import medgan_utils.course.widgets as widgets_mod

    calls = []
    monkeypatch.setattr(widgets_mod, "frontend_available", lambda: True)
    monkeypatch.setattr(ipywidgets, "interact", lambda cb, **kw: calls.append(kw) or cb)
    widgets_mod.explore(lambda **kw: None, stuck=w.IntSlider(value=0, min=0, max=0), one=w.Dropdown(options=["a"]),
                        pair=(3, 3), free=w.IntSlider(value=1, min=0, max=5), choice=["x", "y"])
    shown = calls[0]
    assert isinstance(shown["stuck"], w.fixed) and shown["stuck"].value == 0
    assert isinstance(shown["one"], w.fixed) and shown["one"].value == "a"
    assert isinstance(shown["pair"], w.fixed) and shown["pair"].value == 3
    assert isinstance(shown["free"], w.IntSlider) and shown["choice"] == ["x", "y"]
    assert not widgets_mod.movable(w.FloatSlider(min=1.0, max=1.0)) and widgets_mod.movable((0.0, 1.0))
