"""A gate a generator must pass before its images may enter a training set (notebook 04).

Three checks, each against real held-out (validation) images, never the test split:

* **class fidelity**, per class: the share of a class's synthetic images that a fixed real-data classifier (the
  feature net) assigns to the class asked for, at least its accuracy on real validation images of that class;
* **memorisation**: :func:`~medgan_utils.evaluation.memorisation.memorisation_audit` with validation images as the
  held-out reference: not more near copies of training images than real held-out images show, and generated
  images not much closer to the training set than held-out ones;
* **per-class KID** (Bińkowski et al. 2018, the unbiased polynomial-kernel MMD²) on the feature net's embeddings,
  with a bootstrap interval, next to the same distance for the real training images of the class (the reference a
  perfect generator would score). Reported; it gates only when ``max_kid`` is given.
"""
from __future__ import annotations

import numpy as np
import torch

from .diagnosis import predict_proba
from .distances import as_features, polynomial_kernel, unbiased_mmd2
from .features import extract_features
from .memorisation import memorisation_audit

__all__ = ["kid_unbiased", "kid_interval", "gate_verdict", "gan_gate"]


def _f64(x) -> torch.Tensor:
    """Features as float64 without a float32 detour (numpy arrays keep their precision)."""
    return torch.as_tensor(x, dtype=torch.float64) if isinstance(x, np.ndarray) else as_features(x).double()


def kid_unbiased(feats_a, feats_b, *, degree: int = 3, coef0: float = 1.0) -> float:
    """KID on all samples: ``mean_{i≠j} k(a_i, a_j) + mean_{i≠j} k(b_i, b_j) − 2 mean_{i,j} k(a_i, b_j)`` with
    ``k(x, y) = (x·y / D + coef0)^degree``, in float64 (about 0 for two samples of one distribution)."""
    a, b = _f64(feats_a), _f64(feats_b)
    if len(a) < 2 or len(b) < 2:
        raise ValueError("KID needs at least 2 samples per set.")
    return float(unbiased_mmd2(polynomial_kernel(a, a, degree, coef0), polynomial_kernel(b, b, degree, coef0),
                               polynomial_kernel(a, b, degree, coef0)))


def kid_interval(feats_a, feats_b, *, n_boot: int = 200, seed: int = 0, level: float = 0.95) -> dict:
    """:func:`kid_unbiased` with a percentile bootstrap interval: each replicate resamples both sets with
    replacement (self-pairs left out). Returns ``{"estimate", "ci", "n_a", "n_b"}``."""
    a, b = _f64(feats_a), _f64(feats_b)
    kaa, kbb, kab = polynomial_kernel(a, a), polynomial_kernel(b, b), polynomial_kernel(a, b)
    est = float(unbiased_mmd2(kaa, kbb, kab))
    g = torch.Generator().manual_seed(int(seed))
    reps = []
    for _ in range(int(n_boot)):
        ia, ib = torch.randint(len(a), (len(a),), generator=g), torch.randint(len(b), (len(b),), generator=g)
        if len(ia.unique()) > 1 and len(ib.unique()) > 1:
            reps.append(float(unbiased_mmd2(kaa, kbb, kab, ia, ib)))
    tail = (1 - level) / 2
    ci = [float(np.quantile(reps, tail)), float(np.quantile(reps, 1 - tail))] if reps else [est, est]
    return {"estimate": est, "ci": ci, "n_a": len(a), "n_b": len(b)}


def gate_verdict(fidelity: dict, fidelity_ref: dict, memorisation: dict, kid_rows: dict | None = None, *,
                 fidelity_tolerance: float = 0.0, max_copy_fraction: float = 0.05, min_nn_ratio: float = 0.5,
                 max_kid: float | None = None) -> dict:
    """The gate's verdict from its numbers: ``{"passed", "reasons", "per_class", "memorisation"}``.

    ``fidelity`` and ``fidelity_ref`` map class → share; ``memorisation`` holds the audit's ``copy_fraction``,
    ``test_copy_fraction`` and ``ratio``; ``kid_rows`` maps class → ``{"kid": {...}, "kid_ref": {...}}``.
    A class fails when its fidelity is below the real reference by more than ``fidelity_tolerance``; the audit
    fails when more than ``max(max_copy_fraction, 2 × the held-out copy fraction)`` of the images are copies, or
    when their nearest-training distances are below ``min_nn_ratio`` × the held-out ones.
    """
    reasons, per_class = [], {}
    for c in fidelity:
        ok = fidelity[c] >= fidelity_ref[c] - fidelity_tolerance
        row = {"fidelity": float(fidelity[c]), "fidelity_ref_val": float(fidelity_ref[c]), "fidelity_ok": bool(ok)}
        if not ok:
            reasons.append(f"class {c}: fidelity {fidelity[c]:.2f} < real validation {fidelity_ref[c]:.2f}")
        if kid_rows and c in kid_rows:
            row.update(kid_rows[c])
            if max_kid is not None and kid_rows[c]["kid"]["ci"][0] > max_kid:
                reasons.append(f"class {c}: KID interval above {max_kid:g}")
        per_class[str(c)] = row
    copy_limit = max(max_copy_fraction, 2 * memorisation["test_copy_fraction"])
    mem = {k: float(memorisation[k]) for k in ("copy_fraction", "test_copy_fraction", "ratio")}
    mem["copy_limit"], mem["passed"] = copy_limit, True
    if memorisation["copy_fraction"] > copy_limit:
        mem["passed"] = False
        reasons.append(f"memorisation: {memorisation['copy_fraction']:.1%} near copies of training images "
                       f"(limit {copy_limit:.1%})")
    if memorisation["ratio"] < min_nn_ratio:
        mem["passed"] = False
        reasons.append(f"memorisation: nearest-training distance ratio {memorisation['ratio']:.2f} < {min_nn_ratio:g}")
    return {"passed": not reasons, "reasons": reasons, "per_class": per_class, "memorisation": mem}


def gan_gate(fake, fake_labels, gan_train, gan_train_labels, val_images, val_labels, feature_net, *,
             n_boot: int = 200, seed: int = 0, **limits) -> dict:
    """Gate one generator: ``fake`` (N×C×H×W in [-1, 1]) drawn for ``fake_labels``; ``gan_train`` the exact images
    the GAN trained on; validation images as the held-out reference. ``limits`` go to :func:`gate_verdict`."""
    fake_labels, val_labels = torch.as_tensor(fake_labels).view(-1), torch.as_tensor(val_labels).view(-1)
    gan_train_labels = torch.as_tensor(gan_train_labels).view(-1)
    fake_pred = torch.as_tensor(predict_proba(feature_net, fake).argmax(1))
    val_pred = torch.as_tensor(predict_proba(feature_net, val_images).argmax(1))
    f_fake, f_val = extract_features(feature_net, fake), extract_features(feature_net, val_images)
    f_train = extract_features(feature_net, gan_train)
    fidelity, ref, kid_rows = {}, {}, {}
    for c in sorted(set(fake_labels.tolist())):
        fidelity[c] = float((fake_pred[fake_labels == c] == c).float().mean())
        ref[c] = float((val_pred[val_labels == c] == c).float().mean())
        fv, ft = f_val[val_labels == c], f_train[gan_train_labels == c]
        if len(fv) >= 2 and int((fake_labels == c).sum()) >= 2 and len(ft) >= 2:
            kid_rows[c] = {"kid": kid_interval(f_fake[fake_labels == c], fv, n_boot=n_boot, seed=seed),
                           "kid_ref": kid_interval(ft, fv, n_boot=n_boot, seed=seed)}
    audit = memorisation_audit(fake, gan_train, val_images)
    return gate_verdict(fidelity, ref, audit, kid_rows, **limits)
