"""Data-parallel DCGAN training on PyTorch's own engine: ``DistributedDataParallel`` under ``torchrun``.

:class:`DistributedDCGANTrainer` is :class:`~medgan_utils.gan.trainer.DCGANTrainer` with G and D wrapped in
``DistributedDataParallel`` (NCCL on CUDA, gloo on the CPU) and the same step function (by default the package's
one :data:`~medgan_utils.gan.steps.dcgan_step`). ``batch_size`` is the **global** batch: every rank draws the
same global permutation and the same global noise from the trainer's seeded generator and takes its own
``batch_size / world_size`` slice (an on-device equivalent of ``DistributedSampler``), and DDP averages the
gradients. With ``sync_bn=True`` batch norm uses the statistics of the global batch, so training matches a
single process with the same global batch and seed up to float rounding; without it each rank normalises its
own slice (faster, and the usual choice once the per-rank batch is large). Rank 0 alone writes checkpoints;
every rank resumes from the same file.
"""
from __future__ import annotations

import os
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP

from ..core.device import batch_to
from ..core.errors import SettingError
from ..data.imageset import from_uint8
from .trainer import METRIC_KEYS, DCGANTrainer

__all__ = ["DistributedDCGANTrainer", "GlobalBatchNorm", "sync_batch_norm", "init_distributed", "close_distributed",
           "is_main_process", "ddp_without_forward_buffer_sync", "broadcast_buffers"]


def init_distributed(device: str | None = None, timeout_s: float = 300.0,
                     share_gpus: bool = False) -> tuple[int, int, torch.device]:
    """Join the process group that ``torchrun`` set up; returns (rank, world size, this rank's device).

    The backend is NCCL when this rank gets a CUDA device (``LOCAL_RANK`` picks it), else gloo. With
    ``share_gpus`` more ranks than GPUs may run (ranks take the GPUs round-robin, over gloo, since NCCL refuses
    two ranks on one GPU): a check of the DDP path on a one-GPU machine, not a way to train faster.
    """
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        raise SettingError("No torchrun environment (RANK, WORLD_SIZE). Fix: launch with "
                           "`torchrun --nproc_per_node N -m medgan_utils.tools.train_ddp ...`.")
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    want = device or ("cuda" if torch.cuda.is_available() else "cpu")
    backend = "gloo"
    if want.startswith("cuda"):
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count <= local_rank and not (share_gpus and count):
            raise SettingError(f"Rank with LOCAL_RANK={local_rank} has no GPU of its own "
                               f"({count} visible). Fix: --nproc_per_node at most the GPU count.")
        dev = torch.device("cuda", local_rank % count)
        torch.cuda.set_device(dev)
        shared = int(os.environ.get("LOCAL_WORLD_SIZE", local_rank + 1)) > count
        backend = "gloo" if shared else "nccl"
    else:
        dev = torch.device("cpu")
    if not dist.is_initialized():
        dist.init_process_group(backend, timeout=timedelta(seconds=timeout_s),
                                device_id=dev if backend == "nccl" else None)
    return dist.get_rank(), dist.get_world_size(), dev


def close_distributed() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def is_main_process() -> bool:
    return not dist.is_initialized() or dist.get_rank() == 0


class GlobalBatchNorm(nn.BatchNorm2d):
    """Batch norm over the global batch for process groups without ``SyncBatchNorm`` (gloo on the CPU).

    The per-channel sums are added across ranks with the autograd-aware ``all_reduce`` of
    ``torch.distributed.nn``, so the backward pass couples the ranks exactly as ``SyncBatchNorm`` does on GPUs.
    In eval mode, or without a process group, it is plain ``BatchNorm2d``.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_initialized()):
            return super().forward(x)
        from torch.distributed.nn.functional import all_reduce

        C, dims = x.shape[1], [0, *range(2, x.ndim)]
        count = torch.full((1,), x.numel() // C, dtype=torch.float32, device=x.device)
        xf = x.float()
        total = all_reduce(torch.cat([xf.sum(dims), (xf * xf).sum(dims), count]))
        n = total[-1]
        mean = total[:C] / n
        var = (total[C:2 * C] / n - mean * mean).clamp_min(0)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
                self.running_var.mul_(1 - m).add_(var.detach() * n / (n - 1), alpha=m)
        shape = (1, C) + (1,) * (x.ndim - 2)
        y = (xf - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y.to(x.dtype)


def sync_batch_norm(module: nn.Module, device: torch.device) -> nn.Module:
    """Batch norm over the global batch: PyTorch's ``SyncBatchNorm`` on CUDA, :class:`GlobalBatchNorm` elsewhere.

    The layers keep their parameter objects, so an optimiser built on them stays valid."""
    if torch.device(device).type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    for name, child in list(module.named_children()):
        if isinstance(child, nn.BatchNorm2d) and not isinstance(child, GlobalBatchNorm):
            new = GlobalBatchNorm(child.num_features, child.eps, child.momentum, child.affine,
                                  child.track_running_stats)
            if child.affine:
                new.weight, new.bias = child.weight, child.bias
            if child.track_running_stats:
                new.running_mean, new.running_var = child.running_mean, child.running_var
                new.num_batches_tracked = child.num_batches_tracked
            setattr(module, name, new.to(child.weight.device if child.affine else "cpu"))
        else:
            sync_batch_norm(child, device)
    return module


def ddp_without_forward_buffer_sync(module: nn.Module, device_ids=None) -> DDP:
    """``DistributedDataParallel`` that does not broadcast buffers before every forward pass.

    A GAN step calls D two or three times before one ``backward()``. With DDP's default
    (``broadcast_buffers=True``) each call first overwrites the batch-norm running statistics in place, which
    autograd saved in the earlier call: "modified by an inplace operation" (pytorch#22095, and #175024 for
    torch 2.6 and later on CUDA). The trainer broadcasts the buffers itself once per step instead
    (:func:`broadcast_buffers`), when no graph holds them.
    """
    import inspect

    params = inspect.signature(DDP.__init__).parameters
    flag = "forward_sync_buffers" if "forward_sync_buffers" in params else "broadcast_buffers"  # newer torch: renamed
    return DDP(module, device_ids=device_ids, **{flag: False})


@torch.no_grad()
def broadcast_buffers(*modules: nn.Module, src: int = 0) -> None:
    """Copy rank ``src``'s buffers (batch-norm running statistics) to every rank, outside any autograd graph."""
    for module in modules:
        for buf in module.buffers():
            dist.broadcast(buf, src)


class DistributedDCGANTrainer(DCGANTrainer):
    """:class:`DCGANTrainer` on every rank of an initialised process group; ``batch_size`` is the global batch."""

    def __init__(self, G: nn.Module, D: nn.Module, data, *, sync_bn: bool = False, **kw):
        if not dist.is_initialized():
            raise SettingError("The process group is not initialised. Fix: call init_distributed() under torchrun.")
        self.rank, self.world_size = dist.get_rank(), dist.get_world_size()
        if kw.get("compile"):
            raise SettingError("compile=True is not supported with DistributedDataParallel here. Fix: leave it off.")
        if sync_bn:
            dev = torch.device(kw.get("device") or next(G.parameters()).device)
            G, D = sync_batch_norm(G, dev), sync_batch_norm(D, dev)
        self.sync_bn = bool(sync_bn)
        kw["progress"] = bool(kw.get("progress", True)) and self.rank == 0
        super().__init__(G, D, data, **kw)
        if self.batch_size % self.world_size:
            raise SettingError(f"batch_size={self.batch_size} (the global batch) must be a multiple of the "
                               f"{self.world_size} processes. Fix: pass a batch size divisible by --nproc_per_node.")
        self.local_batch = self.batch_size // self.world_size
        ids = [self.device.index] if self.device.type == "cuda" else None
        self.G = ddp_without_forward_buffer_sync(self.G_raw, ids)
        self.D = ddp_without_forward_buffer_sync(self.D_raw, ids)
        if self.rank != 0:
            self._fresh_start_pending = False  # rank 0 alone deletes old checkpoints
        dist.barrier()

    def _epoch_batches(self):
        """The global batch's rows for this rank: the same seeded permutation on every rank, sliced by rank."""
        perm = torch.randperm(self.n_train, device=self.device, generator=self.gen).to(self.data.device)
        B, b, r = self.batch_size, self.local_batch, self.rank
        for i in range(self.steps_per_epoch):
            rows = perm[i * B:(i + 1) * B][r * b:(r + 1) * b]
            batch = batch_to(self.data, rows, self.device)
            batch = from_uint8(batch) if self.data_dtype == "uint8" else batch
            y = None if self.labels is None else self.labels.index_select(0, rows).to(self.device, non_blocking=True)
            yield batch.contiguous(memory_format=self.memory_format), y

    def next_real(self) -> torch.Tensor:
        """This rank's rows of a fresh global batch: the same seeded draw on every rank, sliced by rank (each extra
        D update of ``d_steps > 1`` sees ``batch_size`` new images in all, as one process would)."""
        idx = torch.randperm(self.n_train, device=self.device, generator=self.gen)[: self.batch_size]
        rows = idx[self.rank * self.local_batch:(self.rank + 1) * self.local_batch].to(self.data.device)
        batch = batch_to(self.data, rows, self.device)
        batch = from_uint8(batch) if self.data_dtype == "uint8" else batch
        return batch.contiguous(memory_format=self.memory_format)

    def _run_step(self, real: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        z = torch.randn(self.batch_size, self.latent_dim, 1, 1, device=self.device, generator=self.gen)
        z = z[self.rank * self.local_batch:(self.rank + 1) * self.local_batch]
        out = self.step_fn(self, real, z) if y is None else self.step_fn(self, real, z, y)
        broadcast_buffers(self.G_raw, self.D_raw)  # rank 0's running statistics, now that no graph holds them
        if self.G_ema is not None:
            self.G_ema.update_parameters(self.G_raw)
        vec = torch.stack([out[k].detach().float().reshape(()) if k in out else self._nan for k in METRIC_KEYS])
        dist.all_reduce(vec)  # the logged losses are those of the global batch, identical on every rank
        return vec / self.world_size

    def save(self):
        """Rank 0 writes the checkpoint; the others wait for it."""
        path = super().save() if self.rank == 0 else None
        dist.barrier()
        return path

    def fit(self, epochs: int, max_seconds: float | None = None) -> dict:
        if max_seconds is not None:  # each rank's clock would stop it at a different epoch
            raise SettingError("max_seconds is not supported under DDP. Fix: give the number of epochs.")
        out = super().fit(epochs)
        dist.barrier()
        return {**out, "world_size": self.world_size, "global_batch": self.batch_size, "sync_bn": self.sync_bn}
