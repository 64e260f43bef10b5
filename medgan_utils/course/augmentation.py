"""Notebook 04's experiment plumbing: the five arms, cached conditional GANs, synthetic draws.

The notebook keeps the ideas in view (the conditional networks, their training step, the loop over fractions,
seeds and arms); this module only decides which images each arm trains on and keeps trained GANs on disk, so a
rerun with other classifier settings does not retrain them.
"""
from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import torch

from ..core.errors import SettingError
from ..data.sampling import count_matched_indices, synthetic_class_counts
from ..gan.trainer import DCGANTrainer

__all__ = ["ARMS", "SYNTHETIC_ARMS", "check_arms", "arm_training_set", "synthetic_counts_for",
           "draw_synthetic", "cached_conditional_gan", "gan_cache_key"]

#: real only; + classical augmentation; + GAN images; + both; real images resampled to the GAN arm's count.
ARMS = ("real", "classical", "gan", "gan+classical", "count_matched")
#: Arms whose training set depends on the synthetic-to-real ratio.
SYNTHETIC_ARMS = ("gan", "gan+classical", "count_matched")


def check_arms(arms) -> tuple[str, ...]:
    """The arms to run, in the canonical order; ``real`` (the baseline of every paired difference) is required."""
    arms = [arms] if isinstance(arms, str) else list(arms)
    unknown = [a for a in arms if a not in ARMS]
    if unknown:
        raise SettingError(f"Unknown arm(s) {unknown}. Fix: choose from {', '.join(ARMS)}.")
    if "real" not in arms:
        raise SettingError("ARMS must include 'real': every difference is paired against it. Fix: add 'real'.")
    return tuple(a for a in ARMS if a in arms)


def synthetic_counts_for(real_labels, ratio: float, n_classes: int, balanced: bool) -> list[int]:
    """Synthetic images per class for ``ratio`` synthetic images per real one."""
    if not (isinstance(ratio, (int, float)) and math.isfinite(ratio) and ratio > 0):
        raise SettingError(f"A synthetic-to-real ratio must be a positive number, got {ratio!r}. "
                           "Fix: use e.g. SYNTH_RATIOS = [0.5, 1, 2].")
    return synthetic_class_counts(real_labels, round(ratio * len(real_labels)), n_classes, balanced)


def arm_training_set(arm: str, real, synthetic: tuple | None = None, counts: list[int] | None = None,
                     seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """``(images, labels, augment)`` an arm's classifier trains on.

    ``real`` is the real training subset (an ImageSet); ``synthetic`` the ``(images, labels)`` drawn from the GAN
    for this ratio, and ``counts`` its images per class. Validation and test images never enter here.
    """
    if arm in ("real", "classical"):
        return real.images, real.labels, arm == "classical"
    if synthetic is None or counts is None:
        raise SettingError(f"Arm {arm!r} needs the synthetic images and their class counts.")
    if arm == "count_matched":
        idx = count_matched_indices(real.labels, counts, seed=seed)
        return real.images[idx], real.labels[idx], False
    images = torch.cat([real.images, synthetic[0].to(real.images.device)])
    labels = torch.cat([real.labels, synthetic[1].to(real.labels.device)])
    return images, labels, arm == "gan+classical"


@torch.no_grad()
def draw_synthetic(trainer, counts: list[int], seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``counts[c]`` images of each class ``c`` from a conditional trainer's G, from seeded noise."""
    y = torch.cat([torch.full((int(k),), c, dtype=torch.long) for c, k in enumerate(counts)])
    if not len(y):
        return torch.empty(0, *trainer.image_shape), y
    g = torch.Generator().manual_seed(int(seed) + 7919)
    z = torch.randn(len(y), trainer.latent_dim, generator=g)
    return trainer.sample(z=z, y=y), y


def gan_cache_key(dataset: str, fraction: float, seed: int, indices: torch.Tensor, settings: dict) -> str:
    """A folder name for one (dataset, fraction, seed) GAN that changes when its images or settings change."""
    digest = hashlib.sha256(torch.as_tensor(indices).cpu().long().numpy().tobytes())
    digest.update(json.dumps(settings, sort_keys=True, default=str).encode())
    safe = "".join(ch if ch.isalnum() else "_" for ch in Path(str(dataset)).stem)[:40]
    return f"{safe}_f{fraction:g}_s{seed}_{digest.hexdigest()[:10]}"


def cached_conditional_gan(make_pair, real, indices, *, dataset: str, fraction: float, seed: int, cache_dir,
                           steps: int, batch_size: int, step_fn=None, **trainer_options) -> DCGANTrainer:
    """Train (or reload) the conditional GAN of one (dataset, fraction, seed).

    ``real`` must be exactly the fraction's images (``train.select(indices)``): the GAN sees nothing else. The
    trainer checkpoints into ``cache_dir/<key>``; a rerun finds the last checkpoint and trains no further.
    """
    if len(real) != len(indices):
        raise SettingError("real must hold exactly the images at indices (use train.select(indices)).")
    batch_size = max(2, min(int(batch_size), len(real) // 2))
    epochs = math.ceil(int(steps) / (len(real) // batch_size))
    settings = {"steps": int(steps), "batch_size": batch_size, "step": getattr(step_fn, "__name__", "default"),
                **{k: v for k, v in trainer_options.items() if k not in ("device", "progress")}}
    folder = Path(cache_dir) / gan_cache_key(dataset, fraction, seed, indices, settings)
    G, D = make_pair()
    tr = DCGANTrainer(G, D, real, device=trainer_options.pop("device", None), step_fn=step_fn,
                      batch_size=batch_size, seed=seed, checkpoint_dir=folder, checkpoint_every=max(1, epochs),
                      keep_checkpoints=1, resume=True, name="cgan", on_diverge="stop", **trainer_options)
    tr.cache_status = "loaded" if tr.epoch >= epochs else ("resumed" if tr.epoch else "trained")
    tr.fit(epochs)
    tr.cache_folder = folder
    return tr
