"""Diagnosis classifiers: the training recipe, and AUC / ACC the way MedMNIST scores them.

* :func:`train_classifier`: Adam (lr 10⁻³), the learning rate cut ×0.1 at 50 % and 75 % of the maximum budget
  (MedMNIST v2's schedule), the same maximum number of **updates** for every arm (so arms with more images do not
  also get more updates), early stopping once the **validation** AUC has not improved for ``patience``
  evaluations, and the weights of the update with the best validation AUC kept. An optional ``augment`` function transforms each
  batch (classical augmentation). The test split is never seen here.
* :func:`diagnosis_metrics`: AUC and ACC with ``medmnist.evaluator.getAUC`` / ``getACC`` (the functions
  ``medmnist.Evaluator`` calls), and the disease-class sensitivity under ACC's own rule (p = 0.5 for a binary
  task): kept to *show* why that cut misleads; the course's sensitivity and specificity are read at a threshold
  fixed on validation (:mod:`~medgan_utils.evaluation.operating_point`). :func:`official_test_metrics` runs ``medmnist.Evaluator`` itself on a published split.
"""
from __future__ import annotations

import copy
import math
import time

import numpy as np
import torch
from torch import nn

from ..core.errors import SettingError, positive_int
from ..core.precision import autocast, grad_scaler, make_adam, optimizer_step, resolve_precision

__all__ = ["train_classifier", "predict_proba", "diagnosis_metrics", "official_test_metrics", "minority_class",
           "task_of", "SUPPORTED_TASKS"]

SUPPORTED_TASKS = ("binary-class", "multi-class", "ordinal-regression")


def task_of(n_classes: int, task: str | None = None) -> str:
    """MedMNIST's task string; multi-label sets are refused (one class per image is needed here)."""
    task = task or ("binary-class" if n_classes == 2 else "multi-class")
    if task not in SUPPORTED_TASKS:
        raise SettingError(f"Task {task!r} is not supported by the diagnosis classifier. Fix: use a dataset with one "
                           f"class per image ({', '.join(SUPPORTED_TASKS)}), e.g. breastmnist or bloodmnist.")
    return task


def minority_class(labels: torch.Tensor, n_classes: int) -> int:
    """The rarest class of ``labels`` (the lowest index on a tie)."""
    counts = torch.bincount(torch.as_tensor(labels).cpu().long().view(-1), minlength=n_classes)
    return int(torch.argmin(counts))


@torch.no_grad()
def predict_proba(net: nn.Module, images: torch.Tensor, batch_size: int = 512, precision: str = "fp32") -> np.ndarray:
    """Softmax class probabilities (N × K, float64 numpy) with ``net`` in eval mode."""
    device = next(net.parameters()).device
    was_training = net.training
    net.eval()
    out = []
    try:
        for chunk in images.split(batch_size):
            with autocast(device, precision):
                out.append(torch.softmax(net(chunk.to(device)).float(), dim=1).cpu())
    finally:
        net.train(was_training)
    return torch.cat(out).double().numpy()


def diagnosis_metrics(labels, scores: np.ndarray, task: str, positive: int) -> dict:
    """``auc`` and ``acc`` as MedMNIST's Evaluator computes them, and ``sensitivity_at_half``: the share of class
    ``positive`` (the disease) called ``positive`` under ACC's rule (class 1 when p(1) > 0.5; argmax otherwise)."""
    from medmnist.evaluator import getACC, getAUC

    y = np.asarray(torch.as_tensor(labels).cpu()).reshape(-1)
    auc, acc = float(getAUC(y, scores, task)), float(getACC(y, scores, task))
    if task == "binary-class":  # getACC's rule: class 1 when p(1) > 0.5
        pred = (scores[:, -1] > 0.5).astype(int)
    else:
        pred = scores.argmax(axis=1)
    positives = y == positive
    sens = float((pred[positives] == positive).mean()) if positives.any() else float("nan")
    return {"auc": auc, "acc": acc, "sensitivity_at_half": sens}


def official_test_metrics(flag: str, scores: np.ndarray, size: int, root, split: str = "test") -> dict:
    """``medmnist.Evaluator(flag, split, size, root).evaluate(scores)`` as a dict (published files only)."""
    from medmnist import Evaluator

    metrics = Evaluator(flag, split, size=size, root=str(root)).evaluate(scores)
    return {"auc": float(metrics.AUC), "acc": float(metrics.ACC)}


def _batches(n: int, batch_size: int, gen: torch.Generator):
    """Endless shuffled index batches over n samples (epochs roll over; the last partial batch is dropped)."""
    while True:
        order = torch.randperm(n, generator=gen)
        for i in range(0, n - batch_size + 1, batch_size):
            yield order[i:i + batch_size]


def train_classifier(net: nn.Module, images: torch.Tensor, labels: torch.Tensor, val_images: torch.Tensor,
                     val_labels: torch.Tensor, *, steps: int, task: str, batch_size: int = 128, lr: float = 1e-3,
                     seed: int = 0, augment=None, eval_every: int | None = None, patience: int | None = None,
                     precision: str = "auto", device=None) -> tuple[nn.Module, dict]:
    """Train ``net`` for at most ``steps`` updates and return it with the weights of its best validation AUC.

    The validation AUC is computed every ``eval_every`` updates; with ``patience`` the run stops once that many
    evaluations in a row have not beaten the best one (early stopping), ``None`` runs the whole budget.
    Returns ``(net, info)`` with ``best_step``, ``val_auc`` (at that step), ``stopped_step`` (the last update
    run), ``stopped_early``, ``seconds``, ``n_train``, ``steps`` (the maximum budget).
    The run is a function of its arguments: dropout draws from the global RNG, which is seeded with ``seed``
    for the run and restored afterwards, so what ran before (a cached or a freshly trained GAN) changes nothing.
    """
    device = torch.device(device) if device is not None else next(net.parameters()).device
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(int(seed))
        return _train_classifier(net, images, labels, val_images, val_labels, steps=steps, task=task,
                                 batch_size=batch_size, lr=lr, seed=seed, augment=augment, eval_every=eval_every,
                                 patience=patience, precision=precision, device=device)


def _train_classifier(net, images, labels, val_images, val_labels, *, steps, task, batch_size, lr, seed, augment,
                      eval_every, patience, precision, device):
    steps = positive_int(steps, "classifier steps")
    patience = math.inf if patience is None else positive_int(patience, "classifier patience")
    precision = resolve_precision(precision, device)
    net.to(device)
    n = len(images)
    batch_size = min(int(batch_size), n)
    eval_every = int(eval_every or max(1, min(steps // 20, math.ceil(n / batch_size))))
    x, y = images.to(device), torch.as_tensor(labels).long().view(-1).to(device)
    opt = make_adam(net.parameters(), lr, device=device)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, [steps // 2, (3 * steps) // 4], gamma=0.1)
    scaler, loss_fn = grad_scaler(device, precision), nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(int(seed))
    minority = minority_class(y, int(max(y.max().item(), val_labels.max().item())) + 1)
    best = {"val_auc": -math.inf, "best_step": 0, "state": None}
    stale, t0 = 0, time.perf_counter()
    net.train()
    for step, idx in enumerate(_batches(n, batch_size, gen), start=1):
        xb = x[idx.to(device)]
        xb = augment(xb, gen) if augment is not None else xb
        with autocast(device, precision):
            loss = loss_fn(net(xb).float(), y[idx.to(device)])
        optimizer_step(loss, opt, scaler)
        sched.step()
        if step % eval_every == 0 or step == steps:
            val_auc = diagnosis_metrics(val_labels, predict_proba(net, val_images, precision=precision), task,
                                        minority)["auc"]
            if val_auc > best["val_auc"]:
                best, stale = {"val_auc": val_auc, "best_step": step, "state": copy.deepcopy(net.state_dict())}, 0
            else:
                stale += 1
        if step >= steps or stale >= patience:
            break
    net.load_state_dict(best["state"])
    info = {"best_step": best["best_step"], "val_auc": best["val_auc"], "steps": steps, "stopped_step": step,
            "stopped_early": step < steps, "n_train": n, "seconds": time.perf_counter() - t0, "precision": precision}
    return net, info
