"""Every metric for a batch of generated images, each next to its real-data reference."""
from __future__ import annotations

import time

import numpy as np
import torch

from ..nets.feature_net import FeatureNet
from .distances import as_features, frechet_distance, kid, knn_radii, precision_recall
from .features import extract_features, images_of
from .memorisation import memorisation_audit

__all__ = ["evaluate_generator", "evaluation_table"]


def evaluate_generator(generated: torch.Tensor, train, test, net: FeatureNet, *, val=None, k: int = 3,
                       seed: int = 0, num_subsets: int = 50, subset_size: int = 500, max_real: int | None = None,
                       memorisation: bool = True, device=None, train_features=None, test_features=None,
                       n_boot: int = 200, mem_max_shift: int = 1) -> dict:
    """All metrics for a batch of generated images, each next to real-data references at the same sample size.

    Everything is measured in the feature space of ``net`` against the real training
    split (at most ``max_real`` images). ``n`` generated images are compared with ``n``
    real **validation** images (``*_ref_val``: the primary reference, drawn from the
    same distribution as the training split, i.e. what a perfect generator would score)
    and with ``n`` real **test** images (``*_ref_test``: shown for contrast, because a
    test split can be shifted; PneumoniaMNIST's has another class balance).
    ``n = min(len(generated), len(val), len(test))``: FD is biased by the sample size,
    so all three sets are compared at the same ``n``.

    Returns ``fd``, ``fd_ci`` (95 % percentile bootstrap over the generated samples,
    ``n_boot`` resamples), ``fd_ref_val``, ``fd_ratio_val`` with ``fd_ratio_val_ci``, ``fd_ref_test``,
    ``fd_ratio_test``; ``kid``, ``kid_ci``, ``kid_std`` and its references; k-NN
    ``precision`` and ``recall`` and their references; ``memorisation`` (pixel and
    feature space; shifts of up to ``mem_max_shift`` px are searched); ``primary_reference``, ``n``, ``n_real``, ``k``, ``feature_dim``,
    ``seconds``. Without ``val`` the test split is the only reference.
    """
    t0 = time.perf_counter()
    gen, tr, te = images_of(generated), images_of(train), images_of(test)
    if gen.shape[-2:] != tr.shape[-2:]:
        raise ValueError(f"Generated images are {tuple(gen.shape[-2:])} px but the real ones {tuple(tr.shape[-2:])} px; "
                         "evaluate at the size the feature net was trained on (resize with F.interpolate).")
    g = torch.Generator().manual_seed(int(seed))
    tr, f_train = _train_features(net, tr, train_features, max_real, g)
    f_test = extract_features(net, te) if test_features is None else as_features(test_features)
    if len(f_test) != len(te):
        raise ValueError(f"test_features has {len(f_test)} rows for {len(te)} test images.")
    f_gen = extract_features(net, gen)
    f_val = extract_features(net, images_of(val)) if val is not None else None
    n = min(len(f_gen), len(f_test), len(f_val) if f_val is not None else len(f_test))
    sets = {"": f_gen, "_ref_test": f_test, **({"_ref_val": f_val} if f_val is not None else {})}
    sets = {key: f[torch.randperm(len(f), generator=g)[:n]] for key, f in sets.items()}
    radii = knn_radii(f_train, k, device=device)
    out: dict = {"primary_reference": "val" if f_val is not None else "test", "n": n, "n_generated": n,
                 "n_real": len(f_train), "k": int(k), "feature_dim": int(f_train.shape[1])}
    for key, f in sets.items():
        out[f"fd{key}"] = frechet_distance(f_train, f)
        out[f"kid{key}"], out[f"kid{key}_std"] = kid(f_train, f, num_subsets, subset_size, seed)
        out[f"precision{key}"], out[f"recall{key}"] = precision_recall(f_train, f, k, device=device,
                                                                       real_radii=radii)
    for ref in ("test", "val"):
        if f"fd_ref_{ref}" in out:
            out[f"fd_ratio_{ref}"] = out["fd"] / out[f"fd_ref_{ref}"] if out[f"fd_ref_{ref}"] > 0 else float("inf")
    out.update(_bootstrap_cis(f_train, sets, n_boot, seed, subset_size))
    # the audit's held-out reference is in-distribution too: validation when given (a shifted test split's images
    # lie further from the training images, which would make a generator look less like a copier than it is)
    held, f_held = (images_of(val), f_val) if f_val is not None else (te, f_test)
    out["memorisation"] = (memorisation_audit(gen, tr, held, feature_net=net, gen_features=f_gen,
                                              max_shift=mem_max_shift, train_features=f_train, test_features=f_held,
                                              device=device) if memorisation else None)
    if out["memorisation"] is not None:
        out["memorisation"]["held_out"] = "val" if f_val is not None else "test"
    out["seconds"] = time.perf_counter() - t0
    return out


def _train_features(net, tr, train_features, max_real, g):
    if train_features is not None:
        f_train = as_features(train_features)
        if len(f_train) != len(tr):
            raise ValueError(f"train_features has {len(f_train)} rows for {len(tr)} training images.")
        return tr, f_train
    if max_real is not None and len(tr) > max_real:
        tr = tr[torch.randperm(len(tr), generator=g)[:max_real].to(tr.device)]
    return tr, extract_features(net, tr)


def _bootstrap_cis(f_train, sets: dict, n_boot: int, seed: int, subset_size: int) -> dict:
    """95 % percentile-bootstrap intervals over resamples (with replacement) of the compared sets.

    A resample repeats some images, which inflates FD, so ``fd_ci`` leans high; the ratio to
    the validation reference, resampled the same way at the same ``n``, cancels most of that
    (``fd_ratio_val_ci``). Between-seed intervals (several runs) remain the primary uncertainty.
    """
    nan = [float("nan")] * 2
    if n_boot < 2:
        return {"fd_ci": nan, "kid_ci": nan, **({"fd_ratio_val_ci": nan} if "_ref_val" in sets else {})}
    g = torch.Generator().manual_seed(int(seed) + 7)
    fds, ratios, kids = [], [], []
    for b in range(int(n_boot)):
        f_gen = sets[""][torch.randint(0, len(sets[""]), (len(sets[""]),), generator=g)]
        fds.append(frechet_distance(f_train, f_gen))
        if "_ref_val" in sets:
            f_val = sets["_ref_val"][torch.randint(0, len(sets["_ref_val"]), (len(sets["_ref_val"]),), generator=g)]
            ratios.append(fds[-1] / max(frechet_distance(f_train, f_val), 1e-12))
        if b < max(2, n_boot // 4):  # KID is costlier: a quarter as many resamples
            kids.append(kid(f_train, f_gen, num_subsets=10, subset_size=subset_size, seed=seed + b)[0])
    q = lambda v: [float(x) for x in np.quantile(np.asarray(v), [0.025, 0.975])]  # noqa: E731
    return {"fd_ci": q(fds), "kid_ci": q(kids), **({"fd_ratio_val_ci": q(ratios)} if ratios else {})}


def evaluation_table(result: dict) -> str:
    """A plain-text table of :func:`evaluate_generator`'s metrics next to their references."""
    k = result.get("k", 3)
    rows = [("FD (lower is better)", "fd"), ("KID (lower is better)", "kid"),
            (f"precision (k={k})", "precision"), (f"recall (k={k})", "recall")]
    has_val = "fd_ref_val" in result
    table = [(name, result[key], result.get(f"{key}_ref_val"), result[f"{key}_ref_test"]) for name, key in rows]
    mem = result.get("memorisation")
    if mem:
        held = mem.get("held_out", "test")
        ref = (mem["test_nn_median"], None) if held == "val" else (None, mem["test_nn_median"])
        share = (mem["test_copy_fraction"], None) if held == "val" else (None, mem["test_copy_fraction"])
        table.append(("NN-to-train median (pixel RMS)", mem["gen_nn_median"], *ref))
        table.append((f"share closer than {held} 1% quantile", mem["copy_fraction"], *share))
    width = max(len(r[0]) for r in table)
    head = f"{'metric':<{width}}  {'generated':>10}"
    head += f"  {'real val (in-distribution ref)':>30}" if has_val else ""
    lines = [head + f"  {'real test (shifted ref)':>23}"]
    for name, a, b, c in table:
        line = f"{name:<{width}}  {a:>10.4g}"
        if has_val:
            line += f"  {b:>30.4g}" if b is not None else f"  {'':>30}"
        lines.append(line + (f"  {c:>23.4g}" if c is not None else ""))
    if "fd_ci" in result:
        lo, hi = result["fd_ci"]
        rlo, rhi = result.get("fd_ratio_val_ci", [float("nan")] * 2)
        lines.append(f"FD 95% bootstrap CI [{lo:.3g}, {hi:.3g}]; FD ratio vs val "
                     f"{result.get('fd_ratio_val', float('nan')):.3g} (95% CI [{rlo:.3g}, {rhi:.3g}]), "
                     f"vs test {result['fd_ratio_test']:.3g}")
    lines.append(f"(n = {result['n']} images in each compared set; real reference set: {result.get('n_real')} "
                 "training images)")
    return "\n".join(lines)
