"""Every metric for a batch of generated images, each next to its real-data reference."""
from __future__ import annotations

import time

import torch

from ..nets.feature_net import FeatureNet
from .distances import as_features, frechet_distance, kid, knn_radii, precision_recall
from .features import extract_features, images_of
from .memorisation import memorisation_audit

__all__ = ["evaluate_generator", "evaluation_table"]


def evaluate_generator(generated: torch.Tensor, train, test, net: FeatureNet, *, k: int = 3, seed: int = 0,
                       num_subsets: int = 50, subset_size: int = 500, max_real: int | None = None,
                       memorisation: bool = True, val=None, device=None, train_features=None,
                       test_features=None) -> dict:
    """All metrics for a batch of generated images, each with its real-data reference.

    The real reference set is the training split (at most ``max_real`` images).
    ``n = min(len(generated), len(test))`` generated images and ``n`` real test
    images are compared with it in the feature space of ``net``:

    * ``fd`` / ``fd_ref``: Fréchet distance of generated / test features to train features;
    * ``kid``, ``kid_std`` / ``kid_ref``, ``kid_ref_std``: KID (mean, std over subsets);
    * ``precision``, ``recall`` / ``precision_ref``, ``recall_ref``: k-NN manifolds;
    * ``memorisation``: :func:`memorisation_audit` on all generated images (pixel and feature space).

    ``*_ref`` is what a perfect generator would score at this sample size, so read
    each metric against it (e.g. ``fd / fd_ref``; ``fd_ratio`` is included).
    Also returned: ``n_generated``, ``n_real``, ``k``, ``feature_dim``, ``seconds``.

    The test split is not always drawn from the same distribution as the
    training split (PneumoniaMNIST's test set, for instance, has another class
    balance), and then ``*_ref`` includes that shift. Pass ``val`` (real
    validation images, usually split off the same pool as the training images)
    to also get the in-distribution references ``fd_ref_val``, ``kid_ref_val``,
    ``precision_ref_val`` and ``recall_ref_val`` at the same sample size
    (``n`` is then also capped by ``len(val)``).

    ``train_features`` / ``test_features`` (from :func:`extract_features` with the
    same ``net``) save recomputing them when several generators are evaluated
    against the same real data; ``max_real`` is then ignored.
    """
    t0 = time.perf_counter()
    gen = images_of(generated)
    tr, te = images_of(train), images_of(test)
    if gen.shape[-2:] != tr.shape[-2:]:
        raise ValueError(
            f"Generated images are {tuple(gen.shape[-2:])} px but the real ones {tuple(tr.shape[-2:])} px; "
            "evaluate at the size the feature net was trained on (resize with F.interpolate)."
        )
    g = torch.Generator().manual_seed(int(seed))
    if train_features is not None:
        f_train = as_features(train_features)
        if len(f_train) != len(tr):
            raise ValueError(f"train_features has {len(f_train)} rows for {len(tr)} training images.")
    else:
        if max_real is not None and len(tr) > max_real:
            tr = tr[torch.randperm(len(tr), generator=g)[:max_real].to(tr.device)]
        f_train = extract_features(net, tr)
    f_test = extract_features(net, te) if test_features is None else as_features(test_features)
    if len(f_test) != len(te):
        raise ValueError(f"test_features has {len(f_test)} rows for {len(te)} test images.")
    f_gen = extract_features(net, gen)
    f_val = extract_features(net, images_of(val)) if val is not None else None
    n = min(len(f_gen), len(f_test), len(f_val) if f_val is not None else len(f_test))
    gen_idx = torch.randperm(len(f_gen), generator=g)[:n]
    test_idx = torch.randperm(len(f_test), generator=g)[:n]
    fg, ft = f_gen[gen_idx], f_test[test_idx]
    out: dict = {}
    out["fd"] = frechet_distance(f_train, fg)
    out["fd_ref"] = frechet_distance(f_train, ft)
    out["fd_ratio"] = out["fd"] / out["fd_ref"] if out["fd_ref"] > 0 else float("inf")
    out["kid"], out["kid_std"] = kid(f_train, fg, num_subsets, subset_size, seed)
    out["kid_ref"], out["kid_ref_std"] = kid(f_train, ft, num_subsets, subset_size, seed)
    radii = knn_radii(f_train, k, device=device)
    out["precision"], out["recall"] = precision_recall(f_train, fg, k, device=device, real_radii=radii)
    out["precision_ref"], out["recall_ref"] = precision_recall(f_train, ft, k, device=device, real_radii=radii)
    if f_val is not None:
        fv = f_val[torch.randperm(len(f_val), generator=g)[:n]]
        out["fd_ref_val"] = frechet_distance(f_train, fv)
        out["kid_ref_val"], out["kid_ref_val_std"] = kid(f_train, fv, num_subsets, subset_size, seed)
        out["precision_ref_val"], out["recall_ref_val"] = precision_recall(f_train, fv, k, device=device,
                                                                            real_radii=radii)
    out.update(n_generated=n, n_real=len(f_train), k=int(k), feature_dim=int(f_train.shape[1]))
    out["memorisation"] = (memorisation_audit(gen, tr, te, feature_net=net, gen_features=f_gen,
                                              train_features=f_train, test_features=f_test, device=device)
                           if memorisation else None)
    out["seconds"] = time.perf_counter() - t0
    return out


def evaluation_table(result: dict) -> str:
    """A plain-text table of :func:`evaluate_generator`'s metrics next to their references."""
    k = result.get("k", 3)
    rows = [("FD (lower is better)", "fd"), ("KID (lower is better)", "kid"),
            (f"precision (k={k})", "precision"), (f"recall (k={k})", "recall")]
    has_val = "fd_ref_val" in result
    table = [(name, result[key], result[f"{key}_ref"], result.get(f"{key}_ref_val")) for name, key in rows]
    mem = result.get("memorisation")
    if mem:
        table.append(("NN-to-train median (pixel RMS)", mem["gen_nn_median"], mem["test_nn_median"], None))
        table.append(("share closer than test 1% quantile", mem["copy_fraction"], mem["test_copy_fraction"], None))
    width = max(len(r[0]) for r in table)
    head = f"{'metric':<{width}}  {'generated':>10}  {'real test (ref)':>15}"
    lines = [head + (f"  {'real val (ref)':>14}" if has_val else "")]
    for name, a, b, c in table:
        line = f"{name:<{width}}  {a:>10.4g}  {b:>15.4g}"
        if has_val:
            line += f"  {c:>14.4g}" if c is not None else f"  {'':>14}"
        lines.append(line)
    lines.append(f"(n = {result.get('n_generated')} generated vs the same number of real test images; "
                 f"real reference set: {result.get('n_real')} training images)")
    return "\n".join(lines)
