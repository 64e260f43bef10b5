"""Notebook 04's "real or synthetic?" exercise: a shuffled mix, the learner's guesses, and two yardsticks.

The score is compared with chance (a one-sided binomial test: could a coin have done as well?) and with a
detector that looks at the fixed feature net's embeddings (a cross-validated logistic regression). Frid-Adar et
al. (2018) ran the same kind of visual Turing test with radiologists on GAN-made liver lesions. Without a live
front end (papermill, nbval) :func:`real_or_synthetic_widget` draws a static figure and a scripted guesser plays.
"""
from __future__ import annotations

import numpy as np
import torch

from ..core.errors import SettingError
from .widgets import frontend_available

__all__ = ["real_or_synthetic_quiz", "score_guesses", "feature_detector_accuracy", "scripted_guesses",
           "real_or_synthetic_widget"]


def real_or_synthetic_quiz(real: torch.Tensor, synthetic: torch.Tensor, n: int = 16, seed: int = 0) -> dict:
    """``n`` images, half real and half synthetic (drawn without replacement), in a seeded random order:
    ``{"images": N×C×H×W, "is_synthetic": bool array}``."""
    n = int(n)
    if n < 2 or n % 2 or len(real) < n // 2 or len(synthetic) < n // 2:
        raise SettingError(f"The quiz needs an even n >= 2 and n/2 images of each kind, got n={n}. "
                           "Fix: use e.g. QUIZ_IMAGES = 16.")
    g = torch.Generator().manual_seed(int(seed))
    pick_r = torch.randperm(len(real), generator=g)[: n // 2]
    pick_s = torch.randperm(len(synthetic), generator=g)[: n // 2]
    images = torch.cat([real[pick_r].cpu(), synthetic[pick_s].cpu()])
    truth = np.r_[np.zeros(n // 2, bool), np.ones(n // 2, bool)]
    order = torch.randperm(n, generator=g).numpy()
    return {"images": images[order], "is_synthetic": truth[order]}


def score_guesses(guesses, is_synthetic) -> dict:
    """Correct guesses, accuracy and the one-sided binomial p-value against chance (p = 0.5)."""
    from scipy.stats import binomtest

    guesses, truth = np.asarray(guesses, bool), np.asarray(is_synthetic, bool)
    if guesses.shape != truth.shape:
        raise SettingError(f"{guesses.size} guesses for {truth.size} images. Fix: guess every image once.")
    k, n = int((guesses == truth).sum()), int(truth.size)
    return {"correct": k, "n": n, "accuracy": k / n, "p_vs_chance": float(binomtest(k, n, 0.5, "greater").pvalue)}


def feature_detector_accuracy(real_feats, synthetic_feats, folds: int = 5, seed: int = 0) -> dict:
    """How well a logistic regression on feature-net embeddings tells real from synthetic images: the mean
    ``folds``-fold cross-validated accuracy on balanced classes, and its fold-to-fold range."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    r, s = np.asarray(real_feats, float), np.asarray(synthetic_feats, float)
    m = min(len(r), len(s))
    if m < folds:
        raise SettingError(f"Need at least {folds} images of each kind for {folds}-fold CV, got {m}.")
    rng = np.random.default_rng(seed)
    x = np.r_[r[rng.permutation(len(r))[:m]], s[rng.permutation(len(s))[:m]]]
    y = np.r_[np.zeros(m), np.ones(m)]
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    acc = cross_val_score(model, x, y, cv=StratifiedKFold(folds, shuffle=True, random_state=seed))
    return {"accuracy": float(acc.mean()), "fold_range": [float(acc.min()), float(acc.max())], "n_per_kind": m}


def scripted_guesses(images: torch.Tensor) -> np.ndarray:
    """A stand-in learner for batch runs: calls an image synthetic when its pixel-to-pixel roughness (mean
    absolute difference of neighbours) is below the quiz's median. A rule of thumb, not a detector."""
    x = images.float()
    rough = (x[..., 1:, :] - x[..., :-1, :]).abs().mean((1, 2, 3)) + (x[..., 1:] - x[..., :-1]).abs().mean((1, 2, 3))
    rough = rough.numpy()
    return rough < np.median(rough)


def _show(images, titles, colours=None):
    import matplotlib.pyplot as plt

    from ..data.imageset import to_display

    n = len(images)
    cols = min(8, n)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.2 * cols, 1.4 * rows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            im = to_display(images[i:i + 1])[0]
            ax.imshow((im[0] if im.shape[0] == 1 else im.permute(1, 2, 0)).numpy(), cmap="gray", vmin=0, vmax=1)
            ax.set_title(titles[i], fontsize=7, color=(colours or ["black"] * n)[i])
    fig.tight_layout()
    return fig


def real_or_synthetic_widget(quiz: dict, on_done=None):
    """Live: a toggle per image and a "score me" button that calls ``on_done(guesses)``. Without a front end:
    a static figure of the numbered images, the scripted guesser's answers passed to ``on_done``; returns them."""
    import matplotlib.pyplot as plt

    images, n = quiz["images"], len(quiz["is_synthetic"])
    if not frontend_available():
        guesses = scripted_guesses(images)
        _show(images, [f"#{i + 1}" for i in range(n)])
        plt.show()
        return on_done(guesses) if on_done else guesses
    import ipywidgets as w
    from IPython.display import display

    _show(images, [f"#{i + 1}" for i in range(n)])
    plt.show()
    toggles = [w.ToggleButtons(options=["real", "synthetic"], value=None, description=f"#{i + 1}",
                               style={"button_width": "70px"}) for i in range(n)]
    button, out = w.Button(description="score me"), w.Output()

    def score(_):
        with out:
            out.clear_output()
            if any(t.value is None for t in toggles):
                print("Guess every image first.")
                return
            guesses = np.array([t.value == "synthetic" for t in toggles])
            if on_done:
                on_done(guesses)

    button.on_click(score)
    display(w.VBox([w.GridBox(toggles, layout=w.Layout(grid_template_columns="repeat(2, 320px)")), button, out]))
    return None
