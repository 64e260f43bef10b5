"""Offline evaluation of image generators for small medical images.

Everything here runs without a network connection and on any device:

* **Domain features.** :class:`FeatureNet` is a small CNN classifier trained on
  the *real training split* of the dataset being modelled
  (:func:`train_feature_net`). Its 128-d penultimate embedding
  (:func:`extract_features`) is the space in which the distribution metrics
  below are computed.
* **Fréchet distance** (:func:`frechet_distance`): fit one Gaussian to each
  feature set and compare them,
  ``FD = ||mu_a - mu_b||^2 + Tr(C_a + C_b - 2 (C_a C_b)^{1/2})``.
* **KID** (:func:`kid`): the unbiased estimate of the squared maximum mean
  discrepancy with the cubic polynomial kernel
  ``k(x, y) = (x·y / d + 1)^3``, averaged over random subsets. Unlike FD it has
  no bias from the sample size, so ~0 really means "same distribution".
* **Precision and recall** (:func:`precision_recall`) on k-nearest-neighbour
  manifolds (Kynkäänniemi et al., NeurIPS 2019), k = 3: precision is the share
  of generated samples that fall inside the real manifold (fidelity), recall the
  share of real samples inside the generated manifold (coverage, i.e. no mode
  collapse).
* **Memorisation audit** (:func:`memorisation_audit`): the distance of each
  generated image to its nearest *training* image, compared with the same
  distance for real *test* images, which the generator never saw.

Each metric comes with a **reference value**: the same metric for real test
images against real training images, at the same sample size
(:func:`evaluate_generator` returns both). A perfect generator, one that draws
fresh samples from the data distribution, would score about the reference, so
read ``fd`` next to ``fd_ref`` rather than as an absolute number.

Why ImageNet-Inception FID is questionable for medical images
-------------------------------------------------------------
The usual FID embeds images with an Inception-v3 network trained to name the
1,000 ImageNet classes of everyday photographs. Its 2048 pooled features were
shaped by colour, object parts and natural textures, not by the cues a reader of
chest X-rays or breast ultrasound relies on, such as a faint patchy opacity or an
irregular lesion margin. Feeding it a 28-px grayscale image means copying one
channel into three identical "colours" and upsampling more than tenfold to
299 × 299 px, so the network sees a blurred, colourless picture unlike anything
it was trained on, and part of what its features then measure is interpolation
artefacts. Distances in that space need not follow the differences that matter
for diagnosis, its label semantics (dog breeds, vehicles) have no counterpart in
the medical task, and the numbers cannot be compared with FIDs published for
natural-image datasets (nor even across Inception ports: torchvision's weights
are not the TensorFlow graph used by the reference FID code). A classifier
trained on the real training split embeds images by what separates the
diagnostic labels of *this* dataset; that is why this module uses such domain
features by default, with the caveat that its numbers compare only within one
dataset, image size and feature net. :func:`inception_fid` is offered for
comparison, and only when the weights are already on disk: it never downloads.
"""
from __future__ import annotations

import hashlib
import math
import os
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .io import load_checkpoint, save_checkpoint
from .settings import get_device
from .train import optimizer_step

FEATURE_NET_VERSION = 1
_CHUNK_ELEMENTS = 1 << 24  # entries of one distance block (64 MB in float32)

#: The paragraph above, as a string a notebook can print.
def _docstring_section(doc: str, heading: str) -> str:
    lines = (doc or "").splitlines()
    start = next((i for i, line in enumerate(lines) if line.strip() == heading), None)
    if start is None:
        return ""
    body = []
    for line in lines[start + 2:]:  # skip the underline
        if not line.strip():
            break
        body.append(line.strip())
    return " ".join(body).replace(":func:", "")


INCEPTION_FID_CAVEAT = _docstring_section(__doc__, "Why ImageNet-Inception FID is questionable for medical images")

__all__ = [
    "FeatureNet", "train_feature_net", "extract_features", "frechet_distance", "frechet_distance_from_stats",
    "kid", "precision_recall", "knn_radii",
    "memorisation_audit", "evaluate_generator", "plot_memorisation_pairs", "evaluation_table",
    "inception_features_available", "inception_weights_path", "inception_fid", "InceptionWeightsUnavailable",
    "INCEPTION_FID_CAVEAT",
]


# --------------------------------------------------------------------------- the feature network
class FeatureNet(nn.Module):
    """A small CNN classifier whose penultimate layer serves as an image embedding.

    Three blocks of (3×3 conv → batch norm → ReLU → 2×2 max-pool) with ``width``,
    ``2·width`` and ``4·width`` channels, global average pooling, a
    ``embed_dim``-d fully connected embedding with ReLU, and a linear head.
    Global pooling makes it work for any input size from 28 px up (e.g. 28–128).

    Args:
        in_channels: 1 (grayscale) or 3 (RGB).
        num_classes: number of logits (classes, or labels for a multi-label task).
        width: channels of the first block.
        embed_dim: size of the feature vector returned by :meth:`features`.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 2, width: int = 32, embed_dim: int = 128):
        super().__init__()
        self.config = {"in_channels": int(in_channels), "num_classes": int(num_classes), "width": int(width),
                       "embed_dim": int(embed_dim)}
        chans = [int(in_channels), width, 2 * width, 4 * width]
        blocks = []
        for cin, cout in zip(chans[:-1], chans[1:]):
            blocks += [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
                       nn.ReLU(inplace=True), nn.MaxPool2d(2)]
        self.body = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.embed = nn.Sequential(nn.Flatten(), nn.Linear(4 * width, embed_dim), nn.ReLU(inplace=True))
        self.head = nn.Linear(embed_dim, num_classes)

    @property
    def in_channels(self) -> int:
        return self.config["in_channels"]

    @property
    def feature_dim(self) -> int:
        return self.config["embed_dim"]

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, embed_dim) penultimate embedding of images ``x`` (N×C×H×W in [-1, 1])."""
        return self.embed(self.pool(self.body(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits (N, num_classes)."""
        return self.head(self.features(x))


def _images_of(obj) -> torch.Tensor:
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
    """Where feature nets are cached: ``MEDGAN_FEATURE_NET_DIR``, else ``runs/feature_nets`` in the course folder."""
    from .settings import course_root

    env = os.environ.get("MEDGAN_FEATURE_NET_DIR")
    return Path(env).expanduser() if env else (course_root() or Path.cwd()) / "runs" / "feature_nets"


def _autocast(device: torch.device, enabled: bool):
    """bf16 autocast on CUDA when supported, else fp16; a no-op elsewhere or when disabled."""
    if not enabled or device.type != "cuda":
        return torch.autocast(device_type="cpu", enabled=False)
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.autocast(device_type="cuda", dtype=dtype)


def _match_channels(x: torch.Tensor, in_channels: int) -> torch.Tensor:
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
        x = _match_channels(images[i:i + batch_size].to(device).float(), net.in_channels)
        logits.append(net(x.contiguous(memory_format=torch.channels_last)).float().cpu())
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
        x = _match_channels(images[i:i + batch_size].float(), net.in_channels)
        net.features(x.contiguous(memory_format=torch.channels_last))
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
    later random numbers the same). On CPU, the same inputs and thread count give
    bitwise the same network; on CUDA, autocast (bf16, else fp16 with a gradient
    scaler) is on unless ``amp=False``.

    The weights are saved atomically with :func:`medgan_utils.io.save_checkpoint`
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
        (this call), ``train_seconds``, ``cached``, ``path`` and ``history``
        (loss per epoch).
    """
    t0 = time.perf_counter()
    device = device if isinstance(device, torch.device) else get_device(device)
    images = _images_of(train)
    labels = train.labels.detach()
    task, num_classes = _task_of(labels, getattr(train, "label_names", None))
    in_channels = int(images.shape[1])
    size = int(images.shape[-1])
    used = str(getattr(train, "used", None) or getattr(train, "name", None) or "images")
    config = {"in_channels": in_channels, "num_classes": num_classes, "width": int(width), "embed_dim": 128}
    key = _fingerprint(images, labels, task, config, int(epochs), int(seed), int(batch_size), float(lr),
                       FEATURE_NET_VERSION)
    name = f"{used}_{size}px_c{in_channels}_e{int(epochs)}_s{int(seed)}_{key}.pt"
    path = None if cache_dir is False else Path(cache_dir or default_cache_dir()) / name

    if path is not None and path.is_file() and not retrain:
        try:
            ckpt = load_checkpoint(path, map_location="cpu")
            net = FeatureNet(**ckpt["config"])
            net.load_state_dict(ckpt["state_dict"])
            net.to(device=device, memory_format=torch.channels_last).eval()
            info = dict(ckpt["info"])
            if val is not None:  # the validation set may differ from the one used when the file was written
                m = _classifier_metrics(net, _images_of(val), val.labels, task)
                info.update(val_accuracy=m["accuracy"], val_auc=m["auc"], val_majority_rate=m["majority_rate"],
                            n_val=len(_images_of(val)))
            info.update(cached=True, path=str(path), seconds=time.perf_counter() - t0, device=str(device))
            if verbose:
                print(f"Feature net loaded from cache {path} ({_describe(info)})")
            return net, info
        except (RuntimeError, KeyError, TypeError) as err:
            warnings.warn(f"Ignoring unusable feature-net cache {path}: {err}. Retraining.", stacklevel=2)

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = FeatureNet(**config)
    net.to(device=device, memory_format=torch.channels_last).train()
    x_all = images.to(device).float().contiguous(memory_format=torch.channels_last)
    y_all = labels.to(device)
    y_all = y_all.float() if task == "multi-label" else y_all.view(-1).long()
    loss_fn = nn.BCEWithLogitsLoss() if task == "multi-label" else nn.CrossEntropyLoss()
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    use_amp = (device.type == "cuda") if amp is None else bool(amp and device.type == "cuda")
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and not torch.cuda.is_bf16_supported()) \
        if device.type == "cuda" else None
    gen = torch.Generator().manual_seed(seed)
    n = len(x_all)
    history = []
    t_train = time.perf_counter()
    for epoch in range(int(epochs)):
        t_ep = time.perf_counter()
        order = torch.randperm(n, generator=gen).to(device)
        total = torch.zeros((), device=device)
        for i in range(0, n, batch_size):
            idx = order[i:i + batch_size]
            with _autocast(device, use_amp):
                loss = loss_fn(net(x_all[idx]).float(), y_all[idx])
            optimizer_step(loss, opt, scaler)
            total += loss.detach() * len(idx)
        history.append({"epoch": epoch + 1, "loss": float(total / n), "seconds": time.perf_counter() - t_ep})
        if verbose:
            print(f"  feature net epoch {epoch + 1}/{epochs}: loss {history[-1]['loss']:.4f} "
                  f"({history[-1]['seconds']:.1f} s)")
    _recalibrate_batchnorm(net, x_all, max(batch_size, 512))
    net.eval()
    train_seconds = time.perf_counter() - t_train

    info = {"task": task, "num_classes": num_classes, "dataset": used, "size": size, "channels": in_channels,
            "epochs": int(epochs), "seed": int(seed), "batch_size": int(batch_size), "lr": float(lr),
            "n_train": n, "history": history, "train_seconds": train_seconds,
            "val_accuracy": None, "val_auc": None, "val_majority_rate": None, "n_val": 0}
    if val is not None:
        m = _classifier_metrics(net, _images_of(val), val.labels, task)
        info.update(val_accuracy=m["accuracy"], val_auc=m["auc"], val_majority_rate=m["majority_rate"],
                    n_val=len(_images_of(val)))
    if path is not None:
        state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
        save_checkpoint(path, {"state_dict": state, "config": net.config, "info": info,
                               "version": FEATURE_NET_VERSION})
    info.update(cached=False, path=None if path is None else str(path), seconds=time.perf_counter() - t0,
                device=str(device))
    if verbose:
        print(f"Feature net trained ({_describe(info)})" + (f", saved to {path}" if path else ""))
    return net, info


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
    imgs = _images_of(images)
    device = next(net.parameters()).device
    was_training = net.training
    net.eval()
    out = torch.empty((len(imgs), net.feature_dim), dtype=torch.float32)
    try:
        for i in range(0, len(imgs), batch_size):
            x = _match_channels(imgs[i:i + batch_size].to(device, non_blocking=True).float(), net.in_channels)
            with _autocast(device, amp):
                f = net.features(x.contiguous(memory_format=torch.channels_last))
            out[i:i + len(x)] = f.float().cpu()
    finally:
        net.train(was_training)
    return out


# --------------------------------------------------------------------------- distribution metrics
def _as_numpy64(feats) -> np.ndarray:
    if isinstance(feats, torch.Tensor):
        feats = feats.detach().cpu().double().numpy()
    arr = np.asarray(feats, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"Features must be a 2-D array (N, D), got shape {arr.shape}.")
    return arr


def _as_torch32(feats) -> torch.Tensor:
    t = feats.detach() if isinstance(feats, torch.Tensor) else torch.as_tensor(np.asarray(feats))
    if t.ndim != 2:
        raise ValueError(f"Features must be a 2-D array (N, D), got shape {tuple(t.shape)}.")
    return t.float().cpu()


def _psd_sqrt(c: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric PSD matrix (tiny negative eigenvalues clipped to 0)."""
    w, v = np.linalg.eigh((c + c.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def trace_sqrt_product(c1: np.ndarray, c2: np.ndarray) -> float:
    """``Tr((C1 C2)^{1/2})`` for covariance matrices, stably.

    ``C1 C2`` is not symmetric, but it is similar to the symmetric PSD matrix
    ``S C2 S`` with ``S = C1^{1/2}``, so its eigenvalues are real and ≥ 0 and the
    trace of its square root is the sum of their square roots. Working with
    symmetric eigen-decompositions avoids the complex round-off of a general
    matrix square root and copes with singular (rank-deficient) covariances.
    """
    s = _psd_sqrt(c1)
    m = s @ c2 @ s
    ev = np.linalg.eigvalsh((m + m.T) / 2)
    return float(np.sqrt(np.clip(ev, 0, None)).sum())


def frechet_distance_from_stats(mu1, c1, mu2, c2, method: str = "eigh") -> float:
    """Fréchet distance between the Gaussians N(mu1, c1) and N(mu2, c2); see :func:`frechet_distance`."""
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    c1, c2 = np.atleast_2d(np.asarray(c1, np.float64)), np.atleast_2d(np.asarray(c2, np.float64))
    if mu1.shape != mu2.shape or c1.shape != c2.shape:
        raise ValueError(f"Feature dimensions differ: {mu1.shape} vs {mu2.shape}.")
    diff = mu1 - mu2
    if method == "eigh":
        tr_sqrt = trace_sqrt_product(c1, c2)
    elif method == "sqrtm":
        from scipy import linalg

        covmean = linalg.sqrtm(c1 @ c2)
        if not np.all(np.isfinite(covmean)):  # singular product: nudge the diagonals
            eps = 1e-6 * max(np.trace(c1), np.trace(c2), 1e-12) / len(c1)
            offset = np.eye(len(c1)) * eps
            covmean = linalg.sqrtm((c1 + offset) @ (c2 + offset))
        covmean = np.real(covmean)  # imaginary parts are round-off
        tr_sqrt = float(np.trace(covmean))
    else:
        raise ValueError(f"Unknown method {method!r}; use 'eigh' or 'sqrtm'.")
    fd = float(diff @ diff + np.trace(c1) + np.trace(c2) - 2.0 * tr_sqrt)
    return max(fd, 0.0)


def frechet_distance(feats_a, feats_b, *, method: str = "eigh") -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (N_a×D and N_b×D).

    ``FD = ||mu_a - mu_b||^2 + Tr(C_a) + Tr(C_b) - 2 Tr((C_a C_b)^{1/2})``, in
    float64. ``method='eigh'`` (default) takes the matrix square root through
    symmetric eigen-decompositions (:func:`trace_sqrt_product`), which is stable
    for singular covariances (fewer samples than dimensions); ``'sqrtm'`` uses
    :func:`scipy.linalg.sqrtm` and drops round-off imaginary parts. The result is
    clipped at 0. FD is biased upwards for small samples, so compare values only
    at equal sample sizes.
    """
    a, b = _as_numpy64(feats_a), _as_numpy64(feats_b)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"Feature dimensions differ: {a.shape[1]} vs {b.shape[1]}.")
    if len(a) < 2 or len(b) < 2:
        raise ValueError("Fréchet distance needs at least 2 samples per set.")
    return frechet_distance_from_stats(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False),
                                       method=method)


def kid(feats_a, feats_b, num_subsets: int = 50, subset_size: int = 500, seed: int = 0, *,
        degree: int = 3, coef0: float = 1.0) -> tuple[float, float]:
    """Kernel Inception Distance (Bińkowski et al. 2018) on any features: ``(mean, std)``.

    For each of ``num_subsets`` random subsets of ``m = min(subset_size, N_a, N_b)``
    samples per set (drawn without replacement, seeded), the unbiased estimate

    ``MMD² = mean_{i≠j} k(a_i, a_j) + mean_{i≠j} k(b_i, b_j) - 2 mean_{i,j} k(a_i, b_j)``

    with the polynomial kernel ``k(x, y) = (x·y / D + coef0)^degree``. The mean
    over subsets is unbiased, so it scatters around 0 (and can be slightly
    negative) for two samples of one distribution; ``std`` is the spread across
    subsets.
    """
    a = _as_torch32(feats_a).double()
    b = _as_torch32(feats_b).double()
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"Feature dimensions differ: {a.shape[1]} vs {b.shape[1]}.")
    m = min(int(subset_size), len(a), len(b))
    if m < 2:
        raise ValueError("KID needs at least 2 samples per set.")
    d = a.shape[1]
    g = torch.Generator().manual_seed(int(seed))

    def kernel(u, v):  # batched over subsets: (S, m, D) × (S, m, D) → (S, m, m)
        return torch.bmm(u, v.transpose(1, 2)).div_(d).add_(coef0).pow_(degree)

    def mean_off_diagonal(k):
        return (k.sum((1, 2)) - k.diagonal(dim1=1, dim2=2).sum(1)) / (m * (m - 1))

    idx_a = torch.stack([torch.randperm(len(a), generator=g)[:m] for _ in range(int(num_subsets))])
    idx_b = torch.stack([torch.randperm(len(b), generator=g)[:m] for _ in range(int(num_subsets))])
    vals = torch.empty(int(num_subsets), dtype=torch.float64)
    step = max(1, (1 << 22) // (m * m))  # subsets per batch: kernel blocks of at most 32 MB
    for s in range(0, int(num_subsets), step):
        x, y = a[idx_a[s:s + step]], b[idx_b[s:s + step]]
        vals[s:s + step] = (mean_off_diagonal(kernel(x, x)) + mean_off_diagonal(kernel(y, y))
                            - 2 * kernel(x, y).mean((1, 2)))
    std = float(vals.std()) if len(vals) > 1 else 0.0
    return float(vals.mean()), std


# --------------------------------------------------------------------------- nearest neighbours, in chunks
def _rows_per_chunk(n_ref: int) -> int:
    return max(1, _CHUNK_ELEMENTS // max(1, n_ref))


def _kth_neighbour_distance(x: torch.Tensor, k: int, device=None) -> torch.Tensor:
    """Distance of each row of ``x`` to its k-th nearest *other* row (chunked ``torch.cdist``)."""
    n = len(x)
    if n <= k:
        raise ValueError(f"Need more than k={k} samples for k-NN radii, got {n}.")
    dev = torch.device(device) if device is not None else x.device
    xr = x.to(dev)
    out = torch.empty(n, dtype=x.dtype)
    step = _rows_per_chunk(n)
    for i in range(0, n, step):
        d = torch.cdist(xr[i:i + step], xr)
        rows = torch.arange(len(d), device=dev)
        d[rows, rows + i] = float("inf")  # exclude the point itself
        out[i:i + len(d)] = d.topk(k, dim=1, largest=False).values[:, k - 1].cpu()
    return out


def _inside_any_ball(query: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor, device=None) -> torch.Tensor:
    """Boolean (N_query,): is the query within ``radii[j]`` of some centre j?"""
    dev = torch.device(device) if device is not None else query.device
    c, r = centres.to(dev), radii.to(dev)
    out = torch.empty(len(query), dtype=torch.bool)
    step = _rows_per_chunk(len(c))
    for i in range(0, len(query), step):
        d = torch.cdist(query[i:i + step].to(dev), c)
        out[i:i + len(d)] = (d <= r[None, :]).any(1).cpu()
    return out


def _nearest(query: torch.Tensor, ref: torch.Tensor, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Distance and index of each query row's nearest row of ``ref``.

    The search uses chunked ``torch.cdist``; the distance to the chosen
    neighbour is then recomputed directly, so exact copies give exactly 0.
    """
    dev = torch.device(device) if device is not None else query.device
    r = ref.to(dev)
    idx = torch.empty(len(query), dtype=torch.long)
    step = _rows_per_chunk(len(r))
    for i in range(0, len(query), step):
        d = torch.cdist(query[i:i + step].to(dev), r)
        idx[i:i + len(d)] = d.argmin(1).cpu()
    dist = (query.cpu() - ref.cpu()[idx]).norm(dim=1)
    return dist, idx


def knn_radii(feats, k: int = 3, *, device=None) -> torch.Tensor:
    """Distance of each sample to its k-th nearest other sample (the k-NN ball radii of :func:`precision_recall`)."""
    return _kth_neighbour_distance(_as_torch32(feats), int(k), device)


def precision_recall(real_feats, fake_feats, k: int = 3, *, device=None, real_radii=None) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019) on k-NN manifolds.

    Each sample spans a ball reaching its k-th nearest neighbour within its own
    set; the union of a set's balls estimates its manifold.

    * precision = share of fake samples inside the real manifold (are samples realistic?);
    * recall = share of real samples inside the fake manifold (is the data's variety covered?).

    Distances are computed in chunks with ``torch.cdist`` (on ``device`` if given),
    so memory stays bounded for tens of thousands of samples. ``real_radii``
    (from :func:`knn_radii` with the same ``k``) skips recomputing the real balls
    when one real set is compared with several fake ones.
    """
    real, fake = _as_torch32(real_feats), _as_torch32(fake_feats)
    if real.shape[1] != fake.shape[1]:
        raise ValueError(f"Feature dimensions differ: {real.shape[1]} vs {fake.shape[1]}.")
    k = int(k)
    r_rad = _kth_neighbour_distance(real, k, device) if real_radii is None else torch.as_tensor(real_radii).float()
    if len(r_rad) != len(real):
        raise ValueError(f"real_radii has {len(r_rad)} entries for {len(real)} real samples.")
    f_rad = _kth_neighbour_distance(fake, k, device)
    precision = _inside_any_ball(fake, real, r_rad, device).float().mean()
    recall = _inside_any_ball(real, fake, f_rad, device).float().mean()
    return float(precision), float(recall)


# --------------------------------------------------------------------------- memorisation
def _nn_summary(gen_d: torch.Tensor, gen_i: torch.Tensor, test_d: torch.Tensor, quantile: float,
                near_exact: float, k_pairs: int) -> dict:
    thr = float(torch.quantile(test_d.double(), quantile))
    copies = (gen_d < thr) | (gen_d <= near_exact)
    test_copies = (test_d < thr) | (test_d <= near_exact)
    g_med, t_med = float(gen_d.median()), float(test_d.median())
    ratio = g_med / t_med if t_med > 0 else (0.0 if g_med == 0 else float("inf"))
    order = torch.argsort(gen_d, stable=True)[:k_pairs]
    return {
        "gen_nn_median": g_med, "test_nn_median": t_med, "ratio": ratio,
        "n_copies": int(copies.sum()), "copy_fraction": float(copies.float().mean()),
        "test_copy_fraction": float(test_copies.float().mean()),
        "threshold": thr, "threshold_quantile": quantile, "near_exact": near_exact,
        "n_generated": len(gen_d), "n_test": len(test_d),
        "pairs": [[int(g), int(gen_i[g])] for g in order],
        "pair_distances": [float(gen_d[g]) for g in order],
        "gen_nn_dist": gen_d, "gen_nn_index": gen_i, "test_nn_dist": test_d,
    }


def memorisation_audit(generated, train, test, *, feature_net: FeatureNet | None = None, k_pairs: int = 8,
                       quantile: float = 0.01, near_exact: float = 0.02, device=None,
                       gen_features=None, train_features=None, test_features=None) -> dict:
    """Does the generator copy its training images?

    For every generated image, find its nearest *training* image; do the same for
    every real *test* image. Test images were never trained on, so their
    nearest-training distances show how close two different real images
    usually are. A generator that samples fresh images gives about the same
    distances (``ratio`` ≈ 1); one that memorises gives much smaller ones
    (``ratio`` ≪ 1).

    Pixel space (the primary result): RMS distance per pixel in [-1, 1] units,
    ``||x - y||_2 / sqrt(C·H·W)``. A generated image counts as a copy
    (``n_copies``) if it is closer to a training image than the ``quantile``
    (1 %) of the test→train distances, or near-exact (RMS ≤ ``near_exact``).
    By construction about 1 % of test images fall below the threshold
    (``test_copy_fraction``), which is the reference for ``copy_fraction``.

    With ``feature_net`` (or precomputed ``*_features``) the same analysis in
    feature space is returned under ``"feature"``.

    Returns:
        dict with ``gen_nn_median``, ``test_nn_median``, ``ratio``, ``n_copies``,
        ``copy_fraction``, ``test_copy_fraction``, ``threshold``, ``pairs``
        (``[generated_index, train_index]`` for the ``k_pairs`` closest
        generated images, for :func:`plot_memorisation_pairs`),
        ``pair_distances``, the per-sample tensors ``gen_nn_dist``,
        ``gen_nn_index``, ``test_nn_dist``, ``space`` and ``feature`` (or None).
    """
    g_img, tr_img, te_img = _images_of(generated), _images_of(train), _images_of(test)
    if g_img.shape[1:] != tr_img.shape[1:] or te_img.shape[1:] != tr_img.shape[1:]:
        raise ValueError(
            f"Generated {tuple(g_img.shape[1:])}, train {tuple(tr_img.shape[1:])} and test "
            f"{tuple(te_img.shape[1:])} images must have the same C×H×W for a pixel-space audit "
            "(resize the generated images with torch.nn.functional.interpolate)."
        )
    g = g_img.flatten(1).float().cpu()
    tr = tr_img.flatten(1).float().cpu()
    te = te_img.flatten(1).float().cpu()
    scale = math.sqrt(g.shape[1])
    gd, gi = _nearest(g, tr, device)
    td, _ = _nearest(te, tr, device)
    out = _nn_summary(gd / scale, gi, td / scale, quantile, near_exact, k_pairs)
    out["space"] = "pixel (RMS per pixel, images in [-1, 1])"
    out["feature"] = None
    if feature_net is not None or gen_features is not None:
        if gen_features is None or train_features is None or test_features is None:
            if feature_net is None:
                raise ValueError("Pass feature_net, or all three of gen_/train_/test_features.")
            gen_features = extract_features(feature_net, g_img) if gen_features is None else gen_features
            train_features = extract_features(feature_net, tr_img) if train_features is None else train_features
            test_features = extract_features(feature_net, te_img) if test_features is None else test_features
        fg, ftr, fte = _as_torch32(gen_features), _as_torch32(train_features), _as_torch32(test_features)
        fgd, fgi = _nearest(fg, ftr, device)
        ftd, _ = _nearest(fte, ftr, device)
        feat = _nn_summary(fgd, fgi, ftd, quantile, 0.0, k_pairs)
        feat["space"] = "feature (L2 in the feature net's embedding)"
        out["feature"] = feat
    return out


def plot_memorisation_pairs(audit: dict, generated, train, n: int = 8, title: str | None = None):
    """Figure: the generated images closest to the training set (top) above their nearest training image.

    Each column is titled with the pixel-space RMS distance; a red title marks a
    pair counted as a copy. Returns the matplotlib figure.
    """
    import matplotlib.pyplot as plt

    from .plotting import to_display

    g_img, tr_img = _images_of(generated), _images_of(train)
    pairs = audit["pairs"][:n]
    dists = audit.get("pair_distances", [None] * len(pairs))[:n]
    thr = audit.get("threshold", 0.0)
    cols = max(1, len(pairs))
    fig, axes = plt.subplots(2, cols, figsize=(1.3 * cols + 0.8, 3.0), squeeze=False)
    for j, ((gi, ti), d) in enumerate(zip(pairs, dists)):
        for row, img in enumerate((g_img[gi], tr_img[ti])):
            ax = axes[row, j]
            im = to_display(img[None])[0]
            if im.shape[0] == 1:
                ax.imshow(im[0].numpy(), cmap="gray", vmin=0, vmax=1)
            else:
                ax.imshow(im.permute(1, 2, 0).numpy())
            ax.set_xticks([])
            ax.set_yticks([])
        if d is not None:
            is_copy = d < thr or d <= audit.get("near_exact", 0.0)
            axes[0, j].set_title(f"d={d:.3f}", fontsize=8, color="red" if is_copy else "black")
    axes[0, 0].set_ylabel("generated", fontsize=9)
    axes[1, 0].set_ylabel("nearest train", fontsize=9)
    fig.suptitle(title or (f"Closest generated–training pairs (copy threshold d < {thr:.3f}; "
                           f"test median {audit.get('test_nn_median', float('nan')):.3f})"), fontsize=9)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- everything at once
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
    gen = _images_of(generated)
    tr, te = _images_of(train), _images_of(test)
    if gen.shape[-2:] != tr.shape[-2:]:
        raise ValueError(
            f"Generated images are {tuple(gen.shape[-2:])} px but the real ones {tuple(tr.shape[-2:])} px; "
            "evaluate at the size the feature net was trained on (resize with F.interpolate)."
        )
    g = torch.Generator().manual_seed(int(seed))
    if train_features is not None:
        f_train = _as_torch32(train_features)
        if len(f_train) != len(tr):
            raise ValueError(f"train_features has {len(f_train)} rows for {len(tr)} training images.")
    else:
        if max_real is not None and len(tr) > max_real:
            tr = tr[torch.randperm(len(tr), generator=g)[:max_real].to(tr.device)]
        f_train = extract_features(net, tr)
    f_test = extract_features(net, te) if test_features is None else _as_torch32(test_features)
    if len(f_test) != len(te):
        raise ValueError(f"test_features has {len(f_test)} rows for {len(te)} test images.")
    f_gen = extract_features(net, gen)
    f_val = extract_features(net, _images_of(val)) if val is not None else None
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


# --------------------------------------------------------------------------- ImageNet Inception (optional, local only)
INCEPTION_WEIGHTS_ENV = "MEDGAN_INCEPTION_WEIGHTS"
_INCEPTION_CACHE: dict = {}


class InceptionWeightsUnavailable(FileNotFoundError):
    """torchvision's Inception-v3 ImageNet weights are not on this machine (nothing is downloaded)."""


def _inception_filename() -> str:
    try:
        from torchvision.models import Inception_V3_Weights

        return Path(Inception_V3_Weights.IMAGENET1K_V1.url).name
    except Exception:  # pragma: no cover - older/newer torchvision
        return "inception_v3_google-0cc3c7bd.pth"


def _inception_candidates(weights_path=None) -> list[Path]:
    if weights_path is not None:
        return [Path(weights_path).expanduser()]
    cands = []
    env = os.environ.get(INCEPTION_WEIGHTS_ENV)
    if env:
        cands.append(Path(env).expanduser())
    cands.append(Path(torch.hub.get_dir()) / "checkpoints" / _inception_filename())
    return cands


def inception_weights_path(weights_path=None) -> Path | None:
    """The local Inception-v3 weights file that :func:`inception_fid` would use, or ``None``.

    Looked up in order: ``weights_path``; ``$MEDGAN_INCEPTION_WEIGHTS``; torchvision's
    file in the torch hub cache (``$TORCH_HOME/hub/checkpoints/``, by default
    ``~/.cache/torch/hub/checkpoints/``). Never downloads.
    """
    for p in _inception_candidates(weights_path):
        if p.is_file():
            return p
    return None


def inception_features_available(weights_path=None) -> bool:
    """Whether ImageNet Inception-v3 weights are already on disk (see :func:`inception_weights_path`)."""
    return inception_weights_path(weights_path) is not None


def _inception_missing_message(weights_path=None) -> str:
    looked = ", ".join(str(p) for p in _inception_candidates(weights_path))
    fname = _inception_filename()
    return (
        f"ImageNet Inception-v3 weights not found (looked in: {looked}). This course never downloads them. "
        f"To enable inception_fid: on a machine with internet run "
        f"`python -c \"import torchvision; torchvision.models.inception_v3(weights='IMAGENET1K_V1')\"`, "
        f"which stores {fname} in the torch hub cache ($TORCH_HOME/hub/checkpoints/, default "
        f"~/.cache/torch/hub/checkpoints/); or copy that file there; or set {INCEPTION_WEIGHTS_ENV}=/path/to/{fname} "
        f"(or pass weights_path=...). The domain-feature metrics (frechet_distance, kid, precision_recall on "
        f"extract_features) need no download."
    )


def _load_inception(path: Path, device: torch.device) -> nn.Module:
    key = (str(path), path.stat().st_mtime_ns, str(device))
    if key not in _INCEPTION_CACHE:
        from torchvision.models import inception_v3

        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:
            raise RuntimeError(f"Inception weights {path} could not be loaded safely ({type(err).__name__}: {err}). "
                               "Delete the file and fetch it again.") from err
        model = inception_v3(weights=None, aux_logits=True, init_weights=False, transform_input=False)
        model.load_state_dict(state)
        model.fc = nn.Identity()
        model.AuxLogits = None
        model.aux_logits = False
        _INCEPTION_CACHE.clear()
        _INCEPTION_CACHE[key] = model.to(device).eval()
    return _INCEPTION_CACHE[key]


@torch.no_grad()
def inception_features(images, *, device=None, batch_size: int = 64, weights_path=None) -> torch.Tensor:
    """2048-d pooled ImageNet Inception-v3 features (float32, CPU) of [-1, 1] images; local weights only.

    Grayscale is repeated to RGB and images are resized bilinearly to 299×299.
    Google's Inception expects inputs in [-1, 1], which is the course's range, so
    no further normalisation is applied. Raises :class:`InceptionWeightsUnavailable`
    when the weights are not on disk.
    """
    path = inception_weights_path(weights_path)
    if path is None:
        raise InceptionWeightsUnavailable(_inception_missing_message(weights_path))
    device = device if isinstance(device, torch.device) else get_device(device)
    model = _load_inception(path, device)
    imgs = _images_of(images)
    out = []
    for i in range(0, len(imgs), batch_size):
        x = imgs[i:i + batch_size].to(device).float()
        x = _match_channels(x, 3)
        x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False).clamp(-1, 1)
        out.append(model(x).float().cpu())
    return torch.cat(out)


def inception_fid(images_a, images_b, *, device=None, batch_size: int = 64, weights_path=None) -> float:
    """FID with torchvision's ImageNet Inception-v3, only if its weights are already on disk.

    Never downloads: without the weights it raises
    :class:`InceptionWeightsUnavailable` explaining how to provide them (check first
    with :func:`inception_features_available`). Read :data:`INCEPTION_FID_CAVEAT`
    (the module docstring) before trusting the number: natural-image features,
    28-px grayscale upsampled to 299-px RGB, and ImageNet label semantics make it a
    weak yardstick for medical images, and torchvision's weights differ from the
    TensorFlow Inception used for published FIDs, so the values are not comparable
    with the literature.
    """
    fa = inception_features(images_a, device=device, batch_size=batch_size, weights_path=weights_path)
    fb = inception_features(images_b, device=device, batch_size=batch_size, weights_path=weights_path)
    return frechet_distance(fa, fb)
