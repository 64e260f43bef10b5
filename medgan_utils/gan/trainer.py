"""The DCGAN trainer: the plumbing around a training step, one code path for CUDA, Apple MPS and the CPU.

Notebook 03 writes the step (forward, loss, ``zero_grad``, ``backward``, ``step``);
:class:`DCGANTrainer` runs it, or the package's copy :data:`~medgan_utils.gan.steps.dcgan_step`,
with what a real run needs:

* **speed**: the training set kept on the device as ``uint8`` (4× smaller than float32)
  and converted per batch, shuffled by an on-device ``randperm`` (no ``DataLoader``);
  a memory guard keeps it in host memory when it would not fit (batches go over pinned); channels_last
  where it pays; the precision policy of :mod:`medgan_utils.core.precision`; fused Adam;
  optional ``torch.compile`` (CUDA graphs on CUDA). Losses stay on the device and are
  read back every ``log_every`` steps and once per epoch;
* **monitoring**: a ``tqdm`` bar, a per-step history of ``loss_D``, ``loss_G``, ``D(x)``
  and ``D(G(z))``, and a grid from fixed noise after every epoch (small ``uint8`` tensors);
* **robustness**: atomic checkpoints (:mod:`medgan_utils.gan.checkpoints`), ``resume=True``,
  and a divergence guard that stops on a NaN/inf loss and never overwrites the last good
  checkpoint.

Process-wide state is left as it was found: speed flags (cuDNN autotuning, TF32) are set
only inside :meth:`fit`, :meth:`run_steps` and :meth:`sample` and restored afterwards, and
all randomness comes from the trainer's own ``torch.Generator``.
"""
from __future__ import annotations

import math
import re
import time
import warnings
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from ..core.device import batch_to, data_placement, fast_kernel_flags, prefers_channels_last, temporary_backend_flags
from ..core.errors import CourseError, SettingError, positive_int
from ..core.io import CheckpointError, save_checkpoint
from ..core.precision import autocast, grad_scaler, make_adam, resolve_precision
from ..data.imageset import from_uint8, to_uint8
from .checkpoints import check_checkpoint_dir, restore_trainer, trainer_state
from .config import TrainConfig, config_from
from .ema import make_generator_ema
from .steps import cgan_step, dcgan_step, make_step

__all__ = ["DCGANTrainer", "TrainConfig", "TrainingDiverged", "METRIC_KEYS"]

METRIC_KEYS = ("loss_D", "loss_G", "D_x", "D_G_z")


class TrainingDiverged(CourseError, RuntimeError):
    """A loss became NaN or infinite; the last good checkpoint (if any) was kept and reloaded."""

    def __init__(self, message: str, *, epoch: int, step: int, checkpoint: str | None = None):
        super().__init__(message)
        self.epoch, self.step, self.checkpoint = epoch, step, checkpoint


class DCGANTrainer:
    """Train a generator/discriminator pair with checkpoints, resume and a divergence guard.

    ``DCGANTrainer(G, D, data, step_fn=..., device=..., **options)``: ``data`` holds the
    training images in [-1, 1] (an ``ImageSet`` or an N×C×H×W tensor); ``step_fn`` is
    ``step(trainer, real, z) -> dict`` (default :data:`~medgan_utils.gan.steps.dcgan_step`);
    ``options`` are the fields of :class:`TrainConfig` (or pass ``config=TrainConfig(...)``).

    A **conditional** G (one with an ``n_classes`` attribute, e.g.
    :class:`~medgan_utils.nets.conditional.ConditionalGenerator`) is trained on (image, class)
    pairs: the labels come from ``labels`` or the ``ImageSet``, the step is
    ``step(trainer, real, z, y)`` (default :data:`~medgan_utils.gan.steps.cgan_step`), and
    :meth:`sample` takes the classes to draw.
    """

    def __init__(self, G: nn.Module, D: nn.Module, data, *, step_fn: Callable | None = None, device=None,
                 labels=None, config: TrainConfig | None = None, **options):
        cfg = self.config = config_from(config, options)
        if step_fn is not None and cfg.loss is not None:
            raise SettingError("Pass either step_fn or loss, not both.")
        self.device = torch.device(device) if device is not None else next(G.parameters()).device
        if cfg.compile and self.device.type == "mps":
            raise SettingError("compile is not supported on Apple MPS here (torch.compile's MPS backend is "
                               "experimental). Fix: leave COMPILE / compile off on a Mac.")
        self.precision = resolve_precision(cfg.precision, self.device)
        self.channels_last = prefers_channels_last(self.device) if cfg.channels_last is None else cfg.channels_last
        self.memory_format = torch.channels_last if self.channels_last else torch.contiguous_format
        self._speed_flags = {} if cfg.deterministic else fast_kernel_flags(self.device)
        self.G_raw = G.to(self.device, memory_format=self.memory_format)
        self.D_raw = D.to(self.device, memory_format=self.memory_format)
        self.latent_dim = int(getattr(G, "latent_dim", 100))
        self.n_classes = getattr(G, "n_classes", None)
        self._place_data(data)
        self._place_labels(data, labels)
        self.batch_size = cfg.batch_size
        if self.n_train < self.batch_size:
            raise SettingError(f"batch_size={self.batch_size} exceeds the {self.n_train} training images. "
                               "Fix: use a smaller batch_size.")
        self.steps_per_epoch = self.n_train // self.batch_size
        self.lr_G, self.lr_D = float(cfg.lr_G or cfg.lr), float(cfg.lr_D or cfg.lr)
        self.opt_G = make_adam(self.G_raw.parameters(), self.lr_G, cfg.betas, self.device)
        self.opt_D = make_adam(self.D_raw.parameters(), self.lr_D, cfg.betas, self.device)
        self.scaler = grad_scaler(self.device, self.precision)
        self.G_ema = make_generator_ema(self.G_raw, cfg.ema_decay, cfg.ema_rampup) if cfg.ema_decay else None
        self._compile(cfg.compile)
        default_step = cgan_step if self.n_classes else dcgan_step
        self.step_fn = make_step(cfg.loss) if cfg.loss is not None else (step_fn or default_step)
        self.seed = int(cfg.seed)
        self.gen = torch.Generator(device=self.device).manual_seed(self.seed)
        self.fixed_noise = torch.randn(int(cfg.n_fixed), self.latent_dim, 1, 1,
                                       generator=torch.Generator().manual_seed(self.seed + 1))
        self._nan = torch.full((), float("nan"), device=self.device)
        self.epoch = self.global_step = 0
        self.history: dict[str, list] = {"step": [], **{k: [] for k in METRIC_KEYS}}
        self.epoch_log: list[dict] = []
        self.snapshots: list[torch.Tensor] = []
        self.snapshot_epochs: list[int] = []
        self.diverged: str | None = None
        self.train_seconds = 0.0
        self.name, self.progress, self.on_diverge = str(cfg.name), bool(cfg.progress), cfg.on_diverge
        self.checkpoint_dir = Path(cfg.checkpoint_dir) if cfg.checkpoint_dir is not None else None
        check_checkpoint_dir(self.checkpoint_dir)
        self.resumed_from: str | None = None
        self._fresh_start_pending = False
        if self.checkpoint_dir is not None:
            if cfg.resume and self.checkpoints():
                self.resumed_from = str(self._load_latest())
            elif not cfg.resume:
                self._fresh_start_pending = bool(self.checkpoints())

    # ------------------------------------------------------------------ set-up helpers
    def _place_data(self, data) -> None:
        """Keep the images as uint8 when they are exactly 8-bit levels, on the device if they fit."""
        images = data.images if hasattr(data, "images") else data
        if not torch.is_tensor(images) or images.ndim != 4:
            raise SettingError("data must be an ImageSet or an N×C×H×W tensor of images in [-1, 1].")
        images = images.detach()
        q = to_uint8(images)
        self.data_dtype = "uint8" if torch.equal(from_uint8(q), images.float()) else "float32"
        stored = q if self.data_dtype == "uint8" else images.float()
        where, self.placement_reason = data_placement(stored.numel() * stored.element_size(), self.device)
        self.data_on_device = where == "device"
        if self.data_on_device:
            self.data = stored.to(self.device)
        else:
            print(f"Memory guard: {self.placement_reason}.")
            self.data = stored.cpu()  # each batch is gathered into pinned memory on its way over (batch_to)
        self.n_train = int(self.data.shape[0])
        self.image_shape = list(self.data.shape[1:])

    def _place_labels(self, data, labels) -> None:
        """Class labels next to the images (conditional G only)."""
        self.labels = None
        if not self.n_classes:
            return
        labels = labels if labels is not None else getattr(data, "labels", None)
        if labels is None or torch.as_tensor(labels).shape != (self.n_train,):
            raise SettingError(f"A conditional G needs one class label per training image ({self.n_train}). "
                               "Fix: pass an ImageSet with labels, or labels=<tensor of shape (N,)>.")
        labels = torch.as_tensor(labels).long()
        if int(labels.min()) < 0 or int(labels.max()) >= self.n_classes:
            raise SettingError(f"Labels must lie in 0..{self.n_classes - 1}, the classes G was built for; found "
                               f"{int(labels.min())}..{int(labels.max())}. Fix: build G with n_classes covering them.")
        self.labels = labels.to(self.data.device)

    def class_cycle(self, n: int) -> torch.Tensor:
        """Classes 0, 1, ..., K-1, 0, 1, ... for ``n`` conditional samples."""
        return torch.arange(int(n)) % int(self.n_classes)

    def _compile(self, compile) -> None:
        self.compiled = bool(compile)
        self._cudagraphs = False
        if not compile:
            self.G, self.D = self.G_raw, self.D_raw
            return
        mode = compile if isinstance(compile, str) else ("reduce-overhead" if self.device.type == "cuda" else None)
        self.compile_mode = mode
        self._cudagraphs = self.device.type == "cuda" and mode in {"reduce-overhead", "max-autotune"}
        self.G = torch.compile(self.G_raw, mode=mode)
        self.D = torch.compile(self.D_raw, mode=mode)

    # ------------------------------------------------------------------ used by step functions
    def autocast(self):
        """Autocast context for the trainer's precision (a no-op in fp32)."""
        return autocast(self.device, self.precision)

    # ------------------------------------------------------------------ sampling
    @torch.no_grad()
    def sample(self, n: int | None = None, z: torch.Tensor | None = None, batch: int = 500,
               generator: torch.Generator | None = None, y: torch.Tensor | None = None) -> torch.Tensor:
        """Generate images (CPU float32 in [-1, 1]) with G in eval mode.

        Eval mode makes each image depend only on its own ``z`` (batch norm uses its
        running statistics). With ``ema_decay`` set, the moving average of G draws. Give ``z`` (N×latent or N×latent×1×1) or ``n`` (noise from
        ``generator``, default a CPU generator seeded with the trainer's seed + 2). A conditional G draws the
        classes ``y`` (default :meth:`class_cycle`).
        """
        if z is None:
            if n is None:
                raise SettingError("Give n or z.")
            g = generator or torch.Generator().manual_seed(self.seed + 2)
            z = torch.randn(positive_int(n, "n", minimum=0), self.latent_dim, 1, 1, generator=g)
        z = z[:, :, None, None] if z.ndim == 2 else z
        if self.n_classes:
            y = self.class_cycle(len(z)) if y is None else torch.as_tensor(y).long().reshape(-1)
            if len(y) != len(z):
                raise SettingError(f"Give one class per sample: {len(y)} classes for {len(z)} samples.")
        net = self.G_ema.module if self.G_ema is not None else self.G_raw
        was_training = net.training
        net.eval()
        out = []
        try:
            with temporary_backend_flags(**self._speed_flags):
                for i, chunk in enumerate(z.split(batch)):
                    args = (chunk.to(self.device),)
                    if self.n_classes:
                        args += (y[i * batch:(i + 1) * batch].to(self.device),)
                    with self.autocast():
                        out.append(net(*args).float().cpu())
        finally:
            net.train(was_training)
        return torch.cat(out) if out else torch.empty(0, *self.image_shape)

    # ------------------------------------------------------------------ training
    def _epoch_batches(self):
        """One epoch of (images, labels or None) batches: an on-device random permutation, the last partial
        batch dropped."""
        perm = torch.randperm(self.n_train, device=self.device, generator=self.gen).to(self.data.device)
        B = self.batch_size
        for i in range(self.steps_per_epoch):
            batch = batch_to(self.data, perm[i * B:(i + 1) * B], self.device)
            batch = from_uint8(batch) if self.data_dtype == "uint8" else batch
            y = None if self.labels is None else self.labels.index_select(0, perm[i * B:(i + 1) * B]).to(
                self.device, non_blocking=True)
            yield batch.contiguous(memory_format=self.memory_format), y

    def next_real(self) -> torch.Tensor:
        """A fresh batch of ``batch_size`` training images drawn at random (no repeats within the batch) with the
        trainer's generator: each extra D update of a step with ``d_steps > 1`` draws one, as in WGAN-GP's
        Algorithm 1, instead of seeing the step's batch again."""
        idx = torch.randperm(self.n_train, device=self.device, generator=self.gen)[: self.batch_size]
        batch = batch_to(self.data, idx.to(self.data.device), self.device)
        batch = from_uint8(batch) if self.data_dtype == "uint8" else batch
        return batch.contiguous(memory_format=self.memory_format)

    def _run_step(self, real: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if self._cudagraphs:
            torch.compiler.cudagraph_mark_step_begin()
        z = torch.randn(real.shape[0], self.latent_dim, 1, 1, device=self.device, generator=self.gen)
        out = self.step_fn(self, real, z) if y is None else self.step_fn(self, real, z, y)
        if self.G_ema is not None:
            self.G_ema.update_parameters(self.G_raw)
        return torch.stack([out[k].detach().float().reshape(()) if k in out else self._nan for k in METRIC_KEYS])

    def run_steps(self, n: int) -> None:
        """Run ``n`` training steps without bookkeeping (benchmarks); epochs roll over as needed."""
        n, done = positive_int(n, "steps", minimum=0), 0
        with temporary_backend_flags(**self._speed_flags):
            while done < n:
                for real, y in self._epoch_batches():
                    self._run_step(real, y)
                    done += 1
                    if done >= n:
                        return

    def fit(self, epochs: int, max_seconds: float | None = None) -> dict:
        """Train until ``epochs`` epochs are done in total (a resumed run continues the count).

        ``max_seconds`` stops after the epoch during which the training time exceeds it.
        Returns a summary (epochs, steps, seconds, img/s, diverged, last checkpoint, precision).
        """
        epochs = positive_int(epochs, "epochs", minimum=0)
        if self._fresh_start_pending:
            for p in self.checkpoints():
                p.unlink(missing_ok=True)
            print(f"resume=False: removed old checkpoints of {self.name!r} in {self.checkpoint_dir}.")
            self._fresh_start_pending = False
        remaining = max(0, epochs - self.epoch) * self.steps_per_epoch
        bar = None
        if self.progress and remaining:
            from tqdm.auto import tqdm

            bar = tqdm(total=remaining, desc=f"epoch {self.epoch + 1}/{epochs}", unit="step", leave=True)
        start_time = self.train_seconds
        try:
            with temporary_backend_flags(**self._speed_flags):
                while self.epoch < epochs and not self.diverged:
                    self._train_epoch(epochs, bar)
                    if (max_seconds is not None and self.train_seconds - start_time >= max_seconds
                            and self.epoch < epochs):
                        print(f"Time budget of {max_seconds:.0f} s reached after epoch {self.epoch}.")
                        break
        finally:
            if bar is not None:
                bar.close()
        return self.summary()

    def summary(self) -> dict:
        steps = sum(e["steps"] for e in self.epoch_log)
        secs = sum(e["seconds"] for e in self.epoch_log)
        return {"epoch": self.epoch, "global_step": self.global_step, "train_seconds": round(secs, 3),
                "img_per_s": round(steps * self.batch_size / secs, 1) if secs else None,
                "diverged": self.diverged, "precision": self.precision, "device": str(self.device),
                "deterministic": not self._speed_flags,  # False: cuDNN autotuning and TF32 were on while training
                "checkpoint": str(self.latest_checkpoint()) if self.checkpoint_dir else None}

    def _train_epoch(self, epochs: int, bar) -> None:
        t0 = time.perf_counter()
        buf = torch.empty(self.steps_per_epoch, len(METRIC_KEYS), device=self.device)
        if bar is not None:
            bar.set_description(f"epoch {self.epoch + 1}/{epochs}")
        for i, (real, y) in enumerate(self._epoch_batches()):
            buf[i] = self._run_step(real, y)
            if bar is not None:
                bar.update(1)
            if (i + 1) % self.config.log_every == 0 and i + 1 < self.steps_per_epoch:
                means = buf[: i + 1].mean(0).tolist()  # the only host sync inside an epoch
                if not self._check_finite(means, i + 1):
                    return
                if bar is not None:
                    bar.set_postfix(_postfix(means))
        vals = buf.cpu()  # one sync per epoch
        seconds = time.perf_counter() - t0
        means = vals.mean(0).tolist()
        if not self._check_finite(means, self.steps_per_epoch, per_step=vals):
            return
        if not self._params_finite():
            self._diverge("a weight became NaN/inf", self.steps_per_epoch)
            return
        self._log_epoch(vals, means, seconds)
        if bar is not None:
            bar.set_postfix(_postfix(means))
        if self.checkpoint_dir is not None and (self.epoch % self.config.checkpoint_every == 0 or self.epoch == epochs):
            self.save()

    def _log_epoch(self, vals: torch.Tensor, means: list, seconds: float) -> None:
        for j, row in enumerate(vals.tolist()):
            self.history["step"].append(self.global_step + j + 1)
            for k, v in zip(METRIC_KEYS, row):
                self.history[k].append(v)
        self.global_step += self.steps_per_epoch
        self.epoch += 1
        self.train_seconds += seconds
        self.epoch_log.append({"epoch": self.epoch, "steps": self.steps_per_epoch, "seconds": seconds,
                               "img_per_s": self.steps_per_epoch * self.batch_size / seconds,
                               **{k: v for k, v in zip(METRIC_KEYS, means)}})
        self.snapshots.append(to_uint8(self.sample(z=self.fixed_noise)).cpu())
        self.snapshot_epochs.append(self.epoch)
        limit = self.config.max_snapshots
        if len(self.snapshots) > limit:  # thin evenly, keep first and last
            keep = sorted(set(torch.linspace(0, len(self.snapshots) - 1, limit // 2 + 1).round().long().tolist()))
            self.snapshots = [self.snapshots[i] for i in keep]
            self.snapshot_epochs = [self.snapshot_epochs[i] for i in keep]

    def _params_finite(self) -> bool:
        flags = [torch.isfinite(p).all() for m in (self.G_raw, self.D_raw) for p in m.parameters()]
        return bool(torch.stack(flags).all().item())

    def _check_finite(self, means, step_in_epoch: int, per_step: torch.Tensor | None = None) -> bool:
        """False (after :meth:`_diverge`) if a loss is NaN/inf."""
        bad = [k for k, v in zip(METRIC_KEYS, means) if k.startswith("loss") and not math.isfinite(v)]
        if per_step is not None and not bad:
            finite = torch.isfinite(per_step[:, :2]).all(0)
            bad = [k for k, ok in zip(METRIC_KEYS[:2], finite.tolist()) if not ok]
        if bad:
            self._diverge(f"{' and '.join(bad)} became NaN/inf", step_in_epoch)
            return False
        return True

    def _diverge(self, what: str, step_in_epoch: int) -> None:
        ckpt = self.latest_checkpoint() if self.checkpoint_dir is not None else None
        where = f"epoch {self.epoch + 1}, step {step_in_epoch} of {self.steps_per_epoch}"
        if ckpt is not None:
            restore_trainer(self, ckpt)
            kept = (f"The last good checkpoint {ckpt} (epoch {self.epoch}) was kept and reloaded; "
                    "resume from it with a smaller learning rate.")
        else:
            kept = "No checkpoint was written before this point; restart with a smaller learning rate."
        msg = (f"Training diverged at {where}: {what} (lr_G={self.lr_G:g}, lr_D={self.lr_D:g}, "
               f"precision={self.precision}). Nothing was saved from the diverged state. {kept}")
        self.diverged = msg
        if self.on_diverge == "raise":
            raise TrainingDiverged(msg, epoch=self.epoch, step=step_in_epoch, checkpoint=str(ckpt) if ckpt else None)
        warnings.warn(msg, RuntimeWarning, stacklevel=3)

    # ------------------------------------------------------------------ checkpoints
    def checkpoints(self) -> list[Path]:
        """This trainer's checkpoint files, oldest first."""
        if self.checkpoint_dir is None or not self.checkpoint_dir.is_dir():
            return []
        pat = re.compile(rf"^{re.escape(self.name)}_epoch(\d+)\.pt$")
        found = [(int(m.group(1)), p) for p in self.checkpoint_dir.iterdir() if (m := pat.match(p.name))]
        return [p for _, p in sorted(found)]

    def latest_checkpoint(self) -> Path | None:
        found = self.checkpoints()
        return found[-1] if found else None

    def resume_config(self) -> dict:
        """The settings a checkpoint must agree with to be resumed."""
        return {"image_shape": self.image_shape, "latent_dim": self.latent_dim, "batch_size": self.batch_size,
                "n_train": self.n_train, "precision": self.precision, "lr_G": self.lr_G, "lr_D": self.lr_D,
                "seed": self.seed, "step_fn": getattr(self.step_fn, "__name__", "custom"),
                "n_classes": self.n_classes}

    def state_dict(self) -> dict:
        return trainer_state(self)

    def save(self) -> Path:
        """Write a checkpoint atomically and delete all but the newest ``keep_checkpoints``."""
        path = self.checkpoint_dir / f"{self.name}_epoch{self.epoch:04d}.pt"
        save_checkpoint(path, self.state_dict())
        for old in self.checkpoints()[: -self.config.keep_checkpoints]:
            old.unlink(missing_ok=True)
        return path

    def load(self, path) -> None:
        """Restore the trainer from a checkpoint file."""
        restore_trainer(self, Path(path))

    def _load_latest(self) -> Path:
        errors = []
        for path in reversed(self.checkpoints()):
            try:
                restore_trainer(self, path)
                return path
            except CheckpointError as err:  # unreadable or incompatible: try an older one
                errors.append(str(err))
                warnings.warn(f"Skipping checkpoint {path}: {err}", RuntimeWarning, stacklevel=2)
        raise CheckpointError(f"No usable checkpoint in {self.checkpoint_dir}: " + " | ".join(errors)
                              + " Fix: use another checkpoint_dir, or delete these files if they are not needed "
                                "(resume=False deletes them when training starts).")


def _postfix(means) -> dict:
    return {k: f"{v:.3f}" for k, v in zip(METRIC_KEYS, means)}
