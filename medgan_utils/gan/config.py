"""The trainer's settings as one validated, frozen dataclass."""
from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from pathlib import Path

from ..core.errors import SettingError, positive_int

__all__ = ["TrainConfig", "config_from", "compile_modes"]


@dataclass(frozen=True)
class TrainConfig:
    """The trainer's settings; every keyword of :class:`DCGANTrainer` beyond G, D and data is one of these.

    batch_size: images per step (the last incomplete batch of an epoch is dropped).
    lr, betas: Adam for both networks (DCGAN: 2e-4, (0.5, 0.999)); ``lr_G``/``lr_D`` override ``lr``.
    loss: a loss name for :func:`~medgan_utils.gan.steps.make_step` (instead of a ``step_fn``).
    precision: ``'auto'|'fp32'|'bf16'|'fp16'`` (see :mod:`medgan_utils.core.precision`).
    channels_last: ``None`` = where it pays (CUDA, CPU with oneDNN; never MPS).
    ema_decay: keep an exponential moving average of G's weights (e.g. 0.999) and sample from it.
    ema_rampup: warm the EMA up: its half-life is ``ema_rampup`` × the updates so far, capped by ``ema_decay``
        (:mod:`medgan_utils.gan.ema`; Karras et al.'s StyleGAN2-ADA code uses 0.05).
    compile: ``torch.compile`` G and D: ``True`` (CUDA graphs on CUDA) or a compile mode string.
    seed: seeds the trainer's own generator (shuffling and noise) and the fixed noise.
    checkpoint_dir, checkpoint_every, keep_checkpoints, resume: checkpointing; with ``resume=False``
        old checkpoints in the folder are deleted when training starts.
    n_fixed, max_snapshots: fixed-noise samples drawn after every epoch, and how many epochs to keep.
    log_every: read the on-device losses back every N steps (progress bar, NaN check).
    on_diverge: ``'raise'`` (:class:`TrainingDiverged`) or ``'stop'`` (return with ``diverged`` set).
    deterministic: ``False`` lets CUDA autotune kernels and use TF32 during training (not bit-exact).
    """

    batch_size: int = 128
    lr: float = 2e-4
    betas: tuple = (0.5, 0.999)
    lr_G: float | None = None
    lr_D: float | None = None
    loss: str | None = None
    precision: str = "auto"
    channels_last: bool | None = None
    compile: bool | str = False
    ema_decay: float | None = None
    ema_rampup: float | None = None
    seed: int = 0
    checkpoint_dir: str | Path | None = None
    checkpoint_every: int = 1
    keep_checkpoints: int = 2
    resume: bool = False
    n_fixed: int = 64
    max_snapshots: int = 60
    log_every: int = 50
    on_diverge: str = "raise"
    progress: bool = True
    deterministic: bool = False
    name: str = "dcgan"

    def validated(self) -> "TrainConfig":
        for key in ("batch_size", "checkpoint_every", "keep_checkpoints", "max_snapshots", "log_every"):
            positive_int(getattr(self, key), key)
        positive_int(self.n_fixed, "n_fixed", minimum=0)
        for key in ("lr", "lr_G", "lr_D"):
            value = getattr(self, key)
            if value is not None and not (isinstance(value, (int, float)) and 0 < value < math.inf):
                raise SettingError(f"{key} must be a positive number, got {value!r}.")
        if len(tuple(self.betas)) != 2 or not all(0 <= float(b) < 1 for b in self.betas):
            raise SettingError(f"betas must be two numbers in [0, 1), got {self.betas!r}.")
        if self.on_diverge not in {"raise", "stop"}:
            raise SettingError(f"on_diverge must be 'raise' or 'stop', got {self.on_diverge!r}.")
        if self.ema_decay is not None and not (isinstance(self.ema_decay, (int, float)) and 0 < self.ema_decay < 1):
            raise SettingError(f"ema_decay must be a number in (0, 1), e.g. 0.999, or None; got {self.ema_decay!r}.")
        if self.ema_rampup is not None and not (isinstance(self.ema_rampup, (int, float)) and 0 < self.ema_rampup <= 1
                                                and self.ema_decay is not None):
            raise SettingError(f"ema_rampup must be a number in (0, 1], e.g. 0.05, with ema_decay set; got "
                               f"ema_rampup={self.ema_rampup!r}, ema_decay={self.ema_decay!r}.")
        if isinstance(self.compile, str) and self.compile not in compile_modes():
            raise SettingError(f"compile={self.compile!r} is not a torch.compile mode. "
                               f"Fix: use True, False or one of {', '.join(compile_modes())}.")
        return replace(self, batch_size=int(self.batch_size), betas=tuple(float(b) for b in self.betas))


def compile_modes() -> tuple[str, ...]:
    """The mode strings ``torch.compile`` accepts."""
    try:
        from torch._inductor import list_mode_options

        return tuple(list_mode_options())
    except Exception:  # pragma: no cover - private API may move
        return ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


def config_from(config: TrainConfig | None, options: dict) -> TrainConfig:
    known = {f.name for f in fields(TrainConfig)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise SettingError(f"Unknown trainer option(s) {unknown}. Fix: use the fields of TrainConfig: "
                           f"{', '.join(sorted(known))}.")
    return replace(config or TrainConfig(), **options).validated()
