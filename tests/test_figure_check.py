"""Figures: the layout check that nbval applies to every figure of every notebook (titles never overlap an image, a
plot or another title), image grids with row and column labels, and the backend that records overlaps."""
import json
import os
import subprocess
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from medgan_utils.course.figure_check import title_overlaps  # noqa: E402
from medgan_utils.course.plotting import show_grid  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _grid_of_titled_images(height):
    """Notebook 05's first figure: 2 x 7 images, each with a title, under a suptitle."""
    fig, axes = plt.subplots(2, 7, figsize=(13, height))
    for ax in axes.flat:
        ax.imshow(np.zeros((64, 64)), cmap="gray")
        ax.set_title("benign, 12%", fontsize=8)
        ax.axis("off")
    fig.suptitle("training images with their lesion outline (64 px)")
    fig.tight_layout()
    return fig


def test_titles_hidden_under_the_row_above_are_found():
    """The learner's report: 05's second-row titles sat under the first row's images (figsize 13 x 4.2)."""
    problems = title_overlaps(_grid_of_titled_images(4.2))
    assert problems and all("overlaps axes" in p and "image" in p for p in problems), problems
    assert any(p.startswith("axes 7 title 'benign, 12%' overlaps axes 0 image") for p in problems), problems
    plt.close("all")
    assert title_overlaps(_grid_of_titled_images(4.6)) == []  # the fixed size
    plt.close("all")


def test_overlapping_titles_and_plots_are_found_and_clean_layouts_pass():
    fig, (a, b) = plt.subplots(2, 1, figsize=(4, 2.2))
    a.plot([0, 1])
    b.plot([0, 1])
    b.set_title("a long title that sits on the plot above\nover two lines", fontsize=14)
    assert any("overlaps axes 0 plot area" in p for p in title_overlaps(fig))
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.plot([0, 1])
    ax.set(title="fine", xlabel="x", ylabel="y")
    fig.suptitle("also fine")
    fig.tight_layout()
    assert title_overlaps(fig) == []
    plt.close("all")


def test_image_grids_label_rows_and_columns_without_overlapping_the_title():
    images = torch.rand(6, 1, 16, 16) * 2 - 1
    fig, ax = plt.subplots(figsize=(4, 3.4))
    show_grid(images, nrow=3, ax=ax, title="real and generated, seed 0", row_labels=["real", "generated"],
              col_labels=["a", "b", "c"])
    fig.tight_layout()
    texts = [t.get_text() for t in ax.texts]
    assert texts == ["a", "b", "c", "real", "generated"]
    assert title_overlaps(fig) == []
    renderer = fig.canvas.get_renderer()
    title = ax.title.get_window_extent(renderer)
    assert all(t.get_window_extent(renderer).y1 <= title.y0 + 1 for t in ax.texts[:3]), "column labels under the title"
    plt.close("all")


def test_the_backend_records_overlaps_of_every_figure_a_notebook_shows(tmp_path):
    """nbval's kernels use this backend (conftest.py): plt.show() checks, records, then shows as inline does."""
    code = ("import matplotlib.pyplot as plt, numpy as np\n"
            "fig, axes = plt.subplots(2, 7, figsize=(13, 4.2))\n"
            "for ax in axes.flat:\n"
            "    ax.imshow(np.zeros((64, 64))); ax.set_title('benign, 12%', fontsize=8); ax.axis('off')\n"
            "plt.suptitle('training images')\n"
            "plt.tight_layout()\n"
            "plt.show()\n"
            "fig, ax = plt.subplots()\n"
            "ax.plot([0, 1]); ax.set(title='fine', xlabel='x', ylabel='y')\n"
            "plt.show()\n"
            "print('open figures after show:', len(plt.get_fignums()))\n")
    env = {**os.environ, "MPLBACKEND": "module://medgan_utils.course.figure_check",
           "MEDGAN_RESULTS_DIR": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "open figures after show: 0" in out.stdout
    recorded = json.loads((tmp_path / "figure_layout.json").read_text())
    assert len(recorded) == 7 and all(r.startswith("figure 1 'training images': axes ") for r in recorded), recorded


def test_the_test_session_checks_the_notebooks_figures():
    text = (ROOT / "conftest.py").read_text()
    assert 'FIGURE_BACKEND = "module://medgan_utils.course.figure_check"' in text
    assert 'os.environ["MPLBACKEND"] = FIGURE_BACKEND' in text and "_figure_failures()) and exitstatus == 0" in text


def test_plots_without_axis_labels_are_found():
    """05's lesion-area histogram had no y label."""
    from medgan_utils.course.figure_check import layout_problems, missing_axis_labels

    fig, ax = plt.subplots(figsize=(6, 3))
    ax.hist(np.random.default_rng(0).random(50), bins=10)
    ax.set_xlabel("lesion area (fraction of the image)")
    assert missing_axis_labels(fig) == ["axes 0 ('') has no y label"]
    ax.set_ylabel("training images")
    assert missing_axis_labels(fig) == []
    fig, axes = plt.subplots(1, 2, figsize=(8, 3), sharey=True)  # a shared axis needs its label once
    for a in axes:
        a.plot([0, 1])
        a.set_xlabel("step")
    axes[0].set_ylabel("loss")
    im_fig, im_ax = plt.subplots()
    im_fig.colorbar(im_ax.imshow(np.zeros((4, 4))), ax=im_ax)  # images and colour bars need no axis labels
    assert missing_axis_labels(fig) == [] and layout_problems(im_fig) == []
    plt.close("all")


def test_a_kernel_on_the_checking_backend_keeps_figures_as_png(tmp_path):
    """The executed notebooks nbval keeps (and the website built from them) must hold the figures as images: in a
    real kernel this backend renders them as PNG, as the inline backend does, not as "<Figure ...>" text."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("import matplotlib.pyplot as plt\nfig, ax = plt.subplots()\n"
                                          "ax.plot([0, 1]); ax.set(xlabel='x', ylabel='y')\nplt.show()")]
    env_before = {k: os.environ.get(k) for k in ("MPLBACKEND", "MEDGAN_RESULTS_DIR")}
    os.environ.update(MPLBACKEND="module://medgan_utils.course.figure_check", MEDGAN_RESULTS_DIR=str(tmp_path))
    try:
        NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}).execute()
    finally:
        for k, v in env_before.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
    kinds = [k for o in nb.cells[0].outputs for k in o.get("data", {})]
    assert "image/png" in kinds, kinds
