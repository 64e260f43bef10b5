"""A trainer's state as a checkpoint: everything needed to continue, loadable with ``weights_only=True``.

Exact resume covers the same device type: the trainer's random generator
(shuffling and noise) is restored bit for bit when the checkpoint was written on
the same kind of device. A CUDA generator's state cannot seed a CPU one (16 bytes
against 5,056), so on a mismatch the generator is reseeded from the run's seed
and step, with a warning: training continues, no longer bit-identical to an
uninterrupted run. The process-wide (global) RNG is never touched.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import torch

from ..core.io import CheckpointError, load_checkpoint

CHECKPOINT_FORMAT = "medgan-dcgan-v2"
READABLE_FORMATS = {"medgan-dcgan-v1", CHECKPOINT_FORMAT}
MUST_MATCH = ("image_shape", "latent_dim", "batch_size", "n_train", "n_classes")


def trainer_state(tr) -> dict:
    """Everything needed to continue exactly: tensors, numbers, strings, lists and dicts only."""
    return {
        "format": CHECKPOINT_FORMAT,
        "epoch": tr.epoch,
        "global_step": tr.global_step,
        "G": tr.G_raw.state_dict(),
        "D": tr.D_raw.state_dict(),
        "opt_G": tr.opt_G.state_dict(),
        "opt_D": tr.opt_D.state_dict(),
        "scaler": tr.scaler.state_dict() if tr.scaler.is_enabled() else {},
        "G_ema": tr.G_ema.state_dict() if tr.G_ema is not None else {},
        "rng": {"trainer": tr.gen.get_state(), "device_type": tr.device.type},
        "fixed_noise": tr.fixed_noise,
        "history": tr.history,
        "epoch_log": tr.epoch_log,
        "snapshots": tr.snapshots,
        "snapshot_epochs": tr.snapshot_epochs,
        "train_seconds": tr.train_seconds,
        "config": tr.resume_config(),
    }


def check_checkpoint_dir(folder: Path | None) -> None:
    """Refuse, before any training, a checkpoint folder that is a file or lies below one."""
    if folder is None:
        return
    blocker = next((p for p in (folder, *folder.parents) if p.exists()), None)
    if blocker is not None and not blocker.is_dir():
        where = "is a file" if blocker == folder else f"cannot be created: {blocker} is a file"
        raise CheckpointError(f"checkpoint_dir {folder} {where}, not a folder. Fix: pass a folder for the "
                              "checkpoints (it is created if missing), or None for no checkpoints.")


def _check_compatible(state, path: Path, mine: dict) -> None:
    if not isinstance(state, dict) or state.get("format") not in READABLE_FORMATS:
        raise CheckpointError(f"{path} is not a course DCGAN checkpoint. Fix: delete it or use another checkpoint_dir.")
    cfg = state.get("config")
    if not isinstance(cfg, dict):
        raise CheckpointError(f"{path} has no readable config (got {type(cfg).__name__}). Fix: delete it.")
    for key in MUST_MATCH:
        if cfg.get(key) != mine[key]:
            raise CheckpointError(f"{path} has {key}={cfg.get(key)}, this run has {mine[key]}. "
                                  "Fix: use another checkpoint_dir, or resume=False.")
    if cfg.get("precision") != mine["precision"]:
        warnings.warn(f"Checkpoint {path.name} was trained in {cfg.get('precision')}, continuing in "
                      f"{mine['precision']}.", RuntimeWarning, stacklevel=4)


def _restore_generator(tr, rng: dict, path: Path) -> None:
    saved = rng.get("trainer")
    saved_type = rng.get("device_type")
    now = tr.gen.get_state()
    same = torch.is_tensor(saved) and (saved_type == tr.device.type if saved_type else saved.numel() == now.numel())
    if same:
        tr.gen.set_state(saved)
        return
    tr.gen.manual_seed(tr.seed * 1_000_003 + tr.global_step)
    warnings.warn(f"Checkpoint {path.name} was written on {saved_type or 'another device type'}, this run is on "
                  f"{tr.device.type}: its random generator was reseeded from the seed and step {tr.global_step}. "
                  "Training continues, but not bit-identical to an uninterrupted run.", RuntimeWarning, stacklevel=4)


def _check_architecture(weights, net, which: str, path: Path) -> None:
    """One line when the checkpoint's ``which`` has other layers or shapes than ``net`` (another width, size or
    normalisation), instead of load_state_dict's list of every mismatch."""
    if not isinstance(weights, dict):
        raise CheckpointError(f"{path} has no weights for {which}. Fix: delete it, or use another checkpoint_dir.")
    mine = net.state_dict()
    fix = (f"Fix: build {which} as the run that wrote it did (the same base width, image size and "
           "normalisation), or use another checkpoint_dir, or resume=False.")
    for key, value in mine.items():
        theirs = weights.get(key)
        if torch.is_tensor(theirs) and tuple(theirs.shape) != tuple(value.shape):
            raise CheckpointError(f"{path} holds a {which} of another architecture: {key} has shape "
                                  f"{list(theirs.shape)} there and {list(value.shape)} here (another width or "
                                  f"image size?). {fix}")
    missing, extra = sorted(set(mine) - set(weights)), sorted(set(weights) - set(mine))
    if missing or extra:
        what = f"lacks {missing[0]}" if missing else f"has {extra[0]}, which this {which} lacks"
        raise CheckpointError(f"{path} holds a {which} with other layers: it {what} "
                              f"({len(missing)} missing, {len(extra)} extra). {fix}")


def restore_trainer(tr, path: Path) -> None:
    """Load ``path`` into the trainer ``tr`` (models, optimisers, scaler, counters, history, its generator)."""
    state = load_checkpoint(path, map_location="cpu")
    _check_compatible(state, path, tr.resume_config())
    if "G" in state and "D" in state:
        _check_architecture(state["G"], tr.G_raw, "G", path)
        _check_architecture(state["D"], tr.D_raw, "D", path)
    try:
        tr.G_raw.load_state_dict(state["G"])
        tr.D_raw.load_state_dict(state["D"])
        tr.opt_G.load_state_dict(state["opt_G"])
        tr.opt_D.load_state_dict(state["opt_D"])
        scaler = state.get("scaler") or state.get("scalers", {}).get("D")
        if scaler and tr.scaler.is_enabled():
            tr.scaler.load_state_dict(scaler)
        if tr.G_ema is not None and state.get("G_ema"):
            tr.G_ema.load_state_dict(state["G_ema"])
        tr.epoch, tr.global_step = int(state["epoch"]), int(state["global_step"])
        _restore_generator(tr, state["rng"], path)
        tr.fixed_noise = state["fixed_noise"]
        tr.history = {k: list(v) for k, v in state["history"].items()}
        tr.epoch_log = [dict(e) for e in state["epoch_log"]]
        tr.snapshots = list(state["snapshots"])
        tr.snapshot_epochs = list(state["snapshot_epochs"])
        tr.train_seconds = float(state["train_seconds"])
    except (KeyError, TypeError, ValueError, AttributeError, RuntimeError) as err:
        first = (str(err).strip().splitlines() or [""])[0][:160]
        raise CheckpointError(f"{path} is incomplete or damaged ({type(err).__name__}: {first}). Fix: delete it.") \
            from err
    tr.diverged = None
