"""Clinical operating points: the disease class, a threshold fixed on validation, sensitivity and specificity
with Wilson intervals, and calibration (ECE and the reliability diagram).

A diagnosis model is used at one threshold. Reading sensitivity at p = 0.5 mixes two things: what the model
knows, and where its probabilities happen to sit (rebalancing the training set moves them). So the threshold is
fixed on the **validation** split, by Youden's J or a target specificity, and then read on test. The positive
class is the disease, named clinically ("malignancy", "pneumonia"), never "the minority".
"""
from __future__ import annotations

import numpy as np

from ..core.errors import SettingError
from .evidence import bootstrap_contrast, fast_auc, wilson_interval

__all__ = ["DISEASE_CLASSES", "disease_class", "fix_threshold", "sensitivity_specificity", "calibration",
           "positive_scores", "THRESHOLD_RULES", "diagnosis_bootstrap", "DIAGNOSIS_METRICS"]

#: dataset → (index of the disease class, its clinical name). BreastMNIST: 0 = malignant; PneumoniaMNIST:
#: 1 = pneumonia; BUSI's benign/malignant label: 1 = malignant.
DISEASE_CLASSES = {"breastmnist": (0, "malignancy"), "pneumoniamnist": (1, "pneumonia"), "busi": (1, "malignancy")}
THRESHOLD_RULES = ("youden", "specificity")
#: what :func:`diagnosis_bootstrap` can resample: the disease-class AUC (one against the rest), and sensitivity
#: and specificity at each model's validation threshold.
DIAGNOSIS_METRICS = ("auc", "sensitivity", "specificity")


def disease_class(dataset: str, label_names: dict, labels=None, override=None) -> dict:
    """``{"index", "name", "label", "how"}``: the class whose sensitivity the notebook reports.

    ``override`` (an index or a label name, e.g. a notebook's ``POSITIVE_CLASS``) wins; then the known datasets;
    then, for anyone's own data, the rarest class of ``labels``, with ``how`` saying so.
    """
    names = {int(k): str(v) for k, v in label_names.items()}
    if override is not None:
        if isinstance(override, str) and not override.strip().lstrip("-").isdigit():
            hits = [k for k, v in names.items() if v.strip().lower() == override.strip().lower()]
            if not hits:
                raise SettingError(f"POSITIVE_CLASS {override!r} is not a class of {dataset}. Fix: use one of "
                                   f"{sorted(names.values())} or its index.")
            idx = hits[0]
        else:
            idx = int(override)
            if idx not in names:
                raise SettingError(f"POSITIVE_CLASS {override!r} is not a class index of {dataset}. Fix: use one "
                                   f"of {sorted(names)}.")
        return {"index": idx, "name": names[idx], "label": names[idx], "how": "set by POSITIVE_CLASS"}
    key = str(dataset).strip().lower()
    if key in DISEASE_CLASSES:
        idx, clinical = DISEASE_CLASSES[key]
        return {"index": idx, "name": clinical, "label": names.get(idx, str(idx)), "how": f"{key}'s disease class"}
    if labels is None:
        raise SettingError(f"{dataset} has no known disease class. Fix: set POSITIVE_CLASS to a class name.")
    counts = np.bincount(np.asarray(labels).reshape(-1).astype(int), minlength=max(names) + 1)
    idx = int(np.argmin(np.where(counts > 0, counts, np.iinfo(np.int64).max)))
    return {"index": idx, "name": names.get(idx, str(idx)), "label": names.get(idx, str(idx)),
            "how": "the rarest training class (set POSITIVE_CLASS to name the disease)"}


def positive_scores(proba: np.ndarray, positive: int) -> np.ndarray:
    """The probability of the positive class from an N × K probability matrix (one-vs-rest)."""
    p = np.asarray(proba, dtype=float)
    return p[:, int(positive)] if p.ndim == 2 else p.reshape(-1)


def fix_threshold(labels, p_pos, positive: int, rule: str = "youden", target_specificity: float = 0.9) -> dict:
    """The threshold, read on **validation** ``labels`` and positive-class scores ``p_pos``.

    ``rule="youden"`` maximises sensitivity + specificity − 1 (Youden's J); ``rule="specificity"`` takes the
    lowest threshold whose specificity is at least ``target_specificity``. A case is called positive when its
    score is ≥ the threshold.
    """
    from sklearn.metrics import roc_curve

    if rule not in THRESHOLD_RULES:
        raise SettingError(f"Threshold rule {rule!r} is unknown. Fix: use one of {', '.join(THRESHOLD_RULES)}.")
    y = (np.asarray(labels).reshape(-1) == int(positive)).astype(int)
    if y.min() == y.max():
        raise SettingError("The validation split holds one class only, so no threshold can be fixed on it. "
                           "Fix: use a validation split with both classes.")
    fpr, tpr, thresholds = roc_curve(y, np.asarray(p_pos, dtype=float))
    thresholds = np.minimum(thresholds, 1.0)     # sklearn's first threshold is +inf (nothing called positive)
    if rule == "youden":
        i = int(np.argmax(tpr - fpr))
        how = "Youden's J (max sensitivity + specificity − 1) on validation"
    else:
        ok = np.flatnonzero(1 - fpr >= float(target_specificity))
        i = int(ok[np.argmax(tpr[ok])])
        how = f"highest sensitivity with validation specificity ≥ {target_specificity:g}"
    return {"threshold": float(thresholds[i]), "rule": how, "threshold_from": "validation",
            "val_sensitivity": float(tpr[i]), "val_specificity": float(1 - fpr[i])}


def sensitivity_specificity(labels, p_pos, positive: int, threshold: float) -> dict:
    """Sensitivity (disease called disease) and specificity (the rest called not disease) at ``threshold``,
    each with its Wilson interval and counts."""
    y = np.asarray(labels).reshape(-1) == int(positive)
    called = np.asarray(p_pos, dtype=float).reshape(-1) >= float(threshold)
    return {"sensitivity": wilson_interval(int((called & y).sum()), int(y.sum())),
            "specificity": wilson_interval(int((~called & ~y).sum()), int((~y).sum())),
            "threshold": float(threshold)}


def calibration(labels, p_pos, positive: int, n_bins: int = 10) -> dict:
    """Expected calibration error of the positive-class probability, and the reliability diagram's bins.

    Equal-width bins on [0, 1]; ECE = Σ_b (n_b / N) · |mean predicted − observed frequency| (torchmetrics'
    ``BinaryCalibrationError(norm="l1")``, which a test checks it against).
    """
    y = (np.asarray(labels).reshape(-1) == int(positive)).astype(float)
    p = np.clip(np.asarray(p_pos, dtype=float).reshape(-1), 0, 1)
    edges = np.linspace(0, 1, n_bins + 1)
    which = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, n_bins - 1)  # [lo, hi) bins, 1.0 in the last
    bins, ece = [], 0.0
    for b in range(n_bins):
        sel = which == b
        if not sel.any():
            continue
        conf, freq = float(p[sel].mean()), float(y[sel].mean())
        ece += sel.mean() * abs(conf - freq)
        bins.append({"low": b / n_bins, "high": (b + 1) / n_bins, "n": int(sel.sum()), "confidence": conf,
                     "frequency": freq})
    return {"ece": float(ece), "bins": bins, "n_bins": int(n_bins)}


def diagnosis_bootstrap(metric: str, arm: dict, base: dict | None = None, *, labels, positive: int,
                        n_boot: int = 2000, seed: int = 0) -> dict:
    """:func:`~medgan_utils.evaluation.evidence.bootstrap_contrast` for a diagnosis metric.

    ``arm`` and ``base`` map a seed to ``(p_pos, threshold)``: the model's positive-class probabilities on the
    test images and its threshold fixed on validation. Test images are resampled within each class, with the
    seeds; every interval stays in [0, 1] (a difference in [−1, 1]).
    """
    if metric not in DIAGNOSIS_METRICS:
        raise SettingError(f"Unknown diagnosis metric {metric!r}. Fix: use one of {', '.join(DIAGNOSIS_METRICS)}.")
    y = np.asarray(labels).reshape(-1) == int(positive)

    def value(entry, idx):
        p, t = np.asarray(entry[0], dtype=float)[idx], float(entry[1])
        yy = y[idx]
        if metric == "auc":
            return fast_auc(yy, p)
        return float(np.mean(p[yy] >= t)) if metric == "sensitivity" else float(np.mean(p[~yy] < t))

    return bootstrap_contrast(value, arm, base, n_items=len(y), strata=y, bounds=(0.0, 1.0), n_boot=n_boot,
                              seed=seed)
