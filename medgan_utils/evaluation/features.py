"""Domain features: a small CNN trained once on a real training split, and the embeddings it gives.

:class:`~medgan_utils.nets.feature_net.FeatureNet` is trained on the labels of
the *real training split* of the dataset being modelled
(:func:`train_feature_net`). Its 128-d penultimate embedding
(:func:`extract_features`) is the space in which the distribution metrics of
:mod:`medgan_utils.evaluation.distances` are computed. A trained net is cached
under a name built from the data and its settings (``MEDGAN_CACHE_DIR``), so one
fixed feature net serves every seed and notebook that asks for the same one;
``info["hash"]`` identifies it in ``results.json``.
"""
from __future__ import annotations

import hashlib
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from ..core.device import batch_to, data_placement, get_device, prefers_channels_last
from ..core.env import cache_dir
from ..core.io import CheckpointError, load_checkpoint, save_checkpoint
from ..core.precision import autocast, grad_scaler, make_adam, optimizer_step, resolve_precision
from ..nets.feature_net import FeatureNet

FEATURE_NET_VERSION = 3  # 2: fused Adam where the device has it; 3: fp32 on every device, precision in the hash

__all__ = ["train_feature_net", "fixed_feature_net", "extract_features", "default_cache_dir", "FEATURE_NET_VERSION"]

#: The course's one fixed feature net recipe: trained once per dataset and size, on the whole real training split.
FIXED_RECIPE = {"epochs": 5, "seed": 0, "batch_size": 256, "lr": 1e-3, "width": 32}


def images_of(obj) -> torch.Tensor:
    """The image tensor of an ImageSet, or the tensor itself."""
    imgs = getattr(obj, "images", obj)
    if not isinstance(imgs, torch.Tensor):
        imgs = torch.as_tensor(np.asarray(imgs))
    if imgs.ndim != 4:
        raise ValueError(f"Expected images of shape N×C×H×W, got {tuple(imgs.shape)}.")
    return imgs.detach()


def _task_of(labels: torch.Tensor, label_names: dict | None) -> tuple[str, int]:
    """('binary' | 'multi-class' | 'multi-label', number of outputs)."""
    if labels.ndim == 2 and labels.shape[1] > 1:
        return "multi-label", int(labels.shape[1])
    n = max(len(label_names or {}), int(labels.max().item()) + 1 if labels.numel() else 0, 2)
    return ("binary" if n == 2 else "multi-class"), n


def _fingerprint(*parts) -> str:
    h = hashlib.md5()
    for p in parts:
        if isinstance(p, torch.Tensor):
            p = p.detach().cpu().contiguous()
            h.update(str(tuple(p.shape)).encode())
            h.update(p.numpy().tobytes())
        else:
            h.update(repr(p).encode())
    return h.hexdigest()[:10]


def default_cache_dir() -> Path:
    """Where feature nets are cached: ``feature_nets/`` in the course cache (``MEDGAN_CACHE_DIR``)."""
    return cache_dir() / "feature_nets"


def _precision_for(device: torch.device, amp: bool | None) -> str:
    """fp32 on every device (so one recipe means one kind of net on a laptop and on Colab); the course's
    policy only with ``amp=True``, and then the precision is part of the net's identity (:func:`_cache_path`)."""
    return resolve_precision("auto", device) if amp else "fp32"

def _memory_format(device: torch.device):
    return torch.channels_last if prefers_channels_last(device) else torch.contiguous_format


def _fmt(x: torch.Tensor) -> torch.Tensor:
    return x.contiguous(memory_format=_memory_format(x.device))


def match_channels(x: torch.Tensor, in_channels: int) -> torch.Tensor:
    if x.shape[1] == in_channels:
        return x
    if x.shape[1] == 1 and in_channels == 3:
        return x.expand(-1, 3, -1, -1)
    if x.shape[1] == 3 and in_channels == 1:
        return x.mean(1, keepdim=True)
    raise ValueError(f"Images have {x.shape[1]} channels but the network expects {in_channels}.")


@torch.no_grad()
def _classifier_metrics(net: FeatureNet, images: torch.Tensor, labels: torch.Tensor, task: str,
                        batch_size: int = 512) -> dict:
    """Accuracy, AUC (scikit-learn) and the majority-class rate of ``net`` on a labelled set."""
    from sklearn.metrics import roc_auc_score

    device = next(net.parameters()).device
    was_training = net.training
    net.eval()
    logits = []
    for i in range(0, len(images), batch_size):
        x = match_channels(images[i:i + batch_size].to(device).float(), net.in_channels)
        logits.append(net(_fmt(x)).float().cpu())
    net.train(was_training)
    logits = torch.cat(logits)
    y = labels.cpu()
    out: dict = {}
    if task == "multi-label":
        prob = torch.sigmoid(logits)
        out["accuracy"] = float(((prob > 0.5).long() == y).float().mean())
        pos = y.float().mean(0)
        out["majority_rate"] = float(torch.maximum(pos, 1 - pos).mean())
        aucs = [roc_auc_score(y[:, j].numpy(), prob[:, j].numpy()) for j in range(y.shape[1])
                if 0 < int(y[:, j].sum()) < len(y)]
        out["auc"] = float(np.mean(aucs)) if aucs else None
        return out
    y = y.view(-1)
    prob = torch.softmax(logits, 1)
    out["accuracy"] = float((prob.argmax(1) == y).float().mean())
    out["majority_rate"] = float(torch.bincount(y, minlength=logits.shape[1]).max() / len(y))
    try:
        if task == "binary":
            out["auc"] = float(roc_auc_score(y.numpy(), prob[:, 1].numpy()))
        else:
            out["auc"] = float(roc_auc_score(y.numpy(), prob.numpy(), multi_class="ovr",
                                             labels=list(range(logits.shape[1]))))
    except ValueError:  # a class missing from this split
        out["auc"] = None
    return out


@torch.no_grad()
def _recalibrate_batchnorm(net: FeatureNet, images: torch.Tensor, batch_size: int) -> None:
    """Recompute BatchNorm running statistics for the final weights (exact averages over ``images``)."""
    bns = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    net.train()
    for i in range(0, len(images), batch_size):
        x = match_channels(images[i:i + batch_size].to(next(net.parameters()).device).float(), net.in_channels)
        net.features(_fmt(x))
    for m, mom in zip(bns, momenta):
        m.momentum = mom


def train_feature_net(train, *, val=None, epochs: int = 5, device=None, seed: int = 0, batch_size: int = 256,
                      cache_dir=None, lr: float = 1e-3, width: int = 32, amp: bool | None = None,
                      retrain: bool = False, verbose: bool = True) -> tuple[FeatureNet, dict]:
    """Train (or load from cache) a :class:`FeatureNet` on the labels of a real training split.

    Adam (``lr``) with cross-entropy for single-label tasks and binary cross-entropy
    for multi-label ones (ChestMNIST), ``epochs`` passes over ``train`` in
    mini-batches shuffled by ``seed``. Afterwards the BatchNorm statistics are
    recomputed on the training images so that eval mode matches the final weights.
    Initialisation and shuffling use their own seeded generators, so the global
    random state is untouched (a cache hit and a fresh run leave the notebook's
    later random numbers the same). It trains in fp32 on every device (``amp=True``:
    the course's precision policy, recorded in the hash); on CPU, the same inputs and
    thread count give bitwise the same network.

    The weights are saved atomically with :func:`medgan_utils.core.io.save_checkpoint`
    to ``cache_dir`` (default :func:`default_cache_dir`), under a name built from
    the dataset, image size, channels, epochs, seed and a hash of the training
    data and hyper-parameters; a later call with the same inputs loads them with
    ``weights_only=True`` instead of training. ``cache_dir=False`` disables the
    cache, ``retrain=True`` ignores an existing file.

    Args:
        train: an :class:`~medgan_utils.data.ImageSet` of *real* training images.
        val: optional ImageSet for the reported validation metrics.

    Returns:
        ``(net, info)``: the network in eval mode on ``device``, and a dict with
        ``val_accuracy``, ``val_auc`` (scikit-learn; macro one-vs-rest or mean
        over labels beyond binary), ``val_majority_rate`` (accuracy of always
        answering the most common class), ``task``, ``epochs``, ``seconds``
        (this call), ``train_seconds``, ``cached``, ``path``, ``hash`` (the
        net's identity, for results.json) and ``history`` (loss per epoch).
    """
    t0 = time.perf_counter()
    device = device if isinstance(device, torch.device) else get_device(device)
    images, labels, precision = images_of(train), train.labels.detach(), _precision_for(device, amp)
    task, num_classes = _task_of(labels, getattr(train, "label_names", None))
    in_channels, size = int(images.shape[1]), int(images.shape[-1])
    used = str(getattr(train, "used", None) or getattr(train, "name", None) or "images")
    config = {"in_channels": in_channels, "num_classes": num_classes, "width": int(width), "embed_dim": 128}
    key, path = _cache_path(images, labels, task, config, used, epochs, seed, batch_size, lr, cache_dir, precision)
    if path is not None and path.is_file() and not retrain:
        try:
            net, info = _load_cached(path, device)
            info.update(_val_metrics(net, val, task), cached=True, path=str(path), hash=key,
                        seconds=time.perf_counter() - t0, device=str(device))
            if verbose:
                print(f"Feature net loaded from cache {path} ({_describe(info)})")
            return net, info
        except (CheckpointError, RuntimeError, KeyError, TypeError) as err:
            warnings.warn(f"Ignoring unusable feature-net cache {path}: {err}. Retraining.", stacklevel=2)

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = FeatureNet(**config)
    net.to(device=device, memory_format=_memory_format(device)).train()
    where, why = data_placement(images.numel() * 4, device)  # the memory guard of the GAN trainer
    if where != "device" and verbose:
        print(f"Memory guard: {why}.")
    x_all = _fmt(images.to(device).float()) if where == "device" else images.float().cpu()
    t_train = time.perf_counter()
    history = _fit(net, x_all, labels.to(device), task, epochs=int(epochs), seed=int(seed),
                   batch_size=int(batch_size), lr=float(lr), precision=precision, verbose=verbose)
    _recalibrate_batchnorm(net, x_all, max(batch_size, 512))
    net.eval()
    info = {"task": task, "num_classes": num_classes, "dataset": used, "size": size, "channels": in_channels,
            "epochs": int(epochs), "seed": int(seed), "batch_size": int(batch_size), "lr": float(lr),
            "n_train": len(x_all), "history": history, "train_seconds": time.perf_counter() - t_train,
            "hash": key, "precision": precision, "version": FEATURE_NET_VERSION, **_val_metrics(net, val, task)}
    if path is not None:
        state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
        save_checkpoint(path, {"state_dict": state, "config": net.config, "info": info,
                               "version": FEATURE_NET_VERSION})
    info.update(cached=False, path=None if path is None else str(path), seconds=time.perf_counter() - t0,
                device=str(device))
    if verbose:
        print(f"Feature net trained ({_describe(info)})" + (f", saved to {path}" if path else ""))
    return net, info


def fixed_feature_net(train, *, val=None, device=None, verbose: bool = True) -> tuple[FeatureNet, dict]:
    """The course's fixed feature net for ``train``'s dataset and size (:data:`FIXED_RECIPE`, cached).

    Pass the *whole* real training split: every seed, mode and later notebook that asks
    for the same data gets the same network (``info["hash"]`` identifies it), so FDs
    are comparable across runs. Generated images never enter it.
    """
    if not getattr(train, "is_real", True):
        warnings.warn("The fixed feature net is being trained on phantoms: its numbers say nothing medical.",
                      stacklevel=2)
    return train_feature_net(train, val=val, device=device, verbose=verbose, **FIXED_RECIPE)


def _cache_path(images, labels, task, config, used, epochs, seed, batch_size, lr, cache_dir, precision="fp32"):
    """The net's identity (a hash of data, recipe and training precision) and its cache file (``None`` with
    ``cache_dir=False``)."""
    key = _fingerprint(images, labels, task, config, int(epochs), int(seed), int(batch_size), float(lr),
                       FEATURE_NET_VERSION, str(precision))
    name = f"{used}_{int(images.shape[-1])}px_c{config['in_channels']}_e{int(epochs)}_s{int(seed)}_{key}.pt"
    return key, (None if cache_dir is False else Path(cache_dir or default_cache_dir()) / name)


def _load_cached(path: Path, device: torch.device) -> tuple[FeatureNet, dict]:
    ckpt = load_checkpoint(path, map_location="cpu")
    net = FeatureNet(**ckpt["config"])
    net.load_state_dict(ckpt["state_dict"])
    net.to(device=device, memory_format=_memory_format(device)).eval()
    return net, dict(ckpt["info"])


def _val_metrics(net: FeatureNet, val, task: str) -> dict:
    """Validation accuracy, AUC and majority-class rate (``None`` without a validation set)."""
    if val is None:
        return {"val_accuracy": None, "val_auc": None, "val_majority_rate": None, "n_val": 0}
    m = _classifier_metrics(net, images_of(val), val.labels, task)
    return {"val_accuracy": m["accuracy"], "val_auc": m["auc"], "val_majority_rate": m["majority_rate"],
            "n_val": len(images_of(val))}


def _fit(net: FeatureNet, x_all: torch.Tensor, labels: torch.Tensor, task: str, *, epochs: int, seed: int,
         batch_size: int, lr: float, precision: str, verbose: bool) -> list[dict]:
    """Mini-batch Adam on (x_all, labels), shuffled by its own generator; returns the loss per epoch."""
    device = next(net.parameters()).device  # x_all may stay on the host (memory guard): batches are moved over
    y_all = (labels.float() if task == "multi-label" else labels.view(-1).long()).to(device)
    loss_fn = nn.BCEWithLogitsLoss() if task == "multi-label" else nn.CrossEntropyLoss()
    opt = make_adam(net.parameters(), lr, device=device)
    scaler = grad_scaler(device, precision)
    gen = torch.Generator().manual_seed(seed)
    n = len(x_all)
    history = []
    for epoch in range(epochs):
        t_ep = time.perf_counter()
        order = torch.randperm(n, generator=gen).to(device)
        total = torch.zeros((), device=device)
        for i in range(0, n, batch_size):
            idx = order[i:i + batch_size]
            with autocast(device, precision):
                loss = loss_fn(net(_fmt(batch_to(x_all, idx, device))).float(), y_all[idx])
            optimizer_step(loss, opt, scaler)
            total += loss.detach() * len(idx)
        history.append({"epoch": epoch + 1, "loss": float(total / n), "seconds": time.perf_counter() - t_ep})
        if verbose:
            print(f"  feature net epoch {epoch + 1}/{epochs}: loss {history[-1]['loss']:.4f} "
                  f"({history[-1]['seconds']:.1f} s)")
    return history


def _describe(info: dict) -> str:
    parts = [f"{info['dataset']} {info['size']} px", f"{info['epochs']} epoch(s)"]
    if info.get("val_accuracy") is not None:
        parts.append(f"val acc {info['val_accuracy']:.3f} (majority {info['val_majority_rate']:.3f})")
    if info.get("val_auc") is not None:
        parts.append(f"val AUC {info['val_auc']:.3f}")
    parts.append(f"{info['seconds']:.1f} s")
    return ", ".join(parts)


@torch.no_grad()
def extract_features(net: FeatureNet, images, batch_size: int = 512, *, amp: bool = False) -> torch.Tensor:
    """Penultimate features of ``images`` (tensor N×C×H×W in [-1, 1], or an ImageSet).

    Runs in eval mode without gradients on the network's device, in batches of
    ``batch_size``; grayscale images are repeated to 3 channels for an RGB net
    and vice versa. ``amp=True`` enables autocast on CUDA (off by default: at
    these sizes it saves little and perturbs the metrics). The network's
    train/eval mode is restored afterwards.

    Returns:
        float32 tensor (N, D) on the CPU.
    """
    imgs = images_of(images)
    device = next(net.parameters()).device
    was_training = net.training
    net.eval()
    out = torch.empty((len(imgs), net.feature_dim), dtype=torch.float32)
    try:
        for i in range(0, len(imgs), batch_size):
            x = match_channels(imgs[i:i + batch_size].to(device, non_blocking=True).float(), net.in_channels)
            with autocast(device, _precision_for(device, bool(amp))):
                f = net.features(_fmt(x))
            out[i:i + len(x)] = f.float().cpu()
    finally:
        net.train(was_training)
    return out
