"""Worker of tests/test_ddp_buffers.py, run by torchrun as 2 CPU processes (gloo). Not a test module.

A GAN step calls D two or three times before one ``backward()``. DDP with ``broadcast_buffers=True`` (its
default) overwrites the batch-norm running statistics in place before every forward pass, and autograd saved
them in the earlier pass: on CUDA this fails with "modified by an inplace operation" (pytorch#22095; #175024
for torch 2.6 and later). torch 2.14 hides the in-place write from autograd (``_unsafe_preserve_version_counter``
around the broadcast), and on the CPU gloo never showed it; this worker turns that hiding off, which gives the
CPU the behaviour of the affected releases, then tries three things and writes what happened to
``OUT/rank<R>.json``:

* ``default``: real ``nn.BatchNorm2d`` in DDP with ``broadcast_buffers=True``, two forward passes, one backward;
* ``chosen``: the same with the package's setting (:func:`ddp_without_forward_buffer_sync`);
* ``trainer``: two steps of :class:`DistributedDCGANTrainer` (plain batch norm, no ``sync_bn``), then how far
  rank 1's running statistics are from rank 0's (the trainer broadcasts them once per step).
"""
import contextlib
import json
import sys
import warnings
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP


def attempt(fn) -> str:
    try:
        fn()
        return "ok"
    except RuntimeError as err:
        return f"error: {err}"


def double_forward(ddp: nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    a, b = torch.randn(4, 1, 8, 8, generator=g), torch.randn(4, 1, 8, 8, generator=g)
    (ddp(a).sum() - ddp(b).sum()).backward()


def small_d() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(144, 1))


def main(out: Path) -> None:
    torch.set_num_threads(1)
    torch.autograd._unsafe_preserve_version_counter = lambda *a, **k: contextlib.nullcontext()
    from medgan_utils.gan.distributed import DistributedDCGANTrainer, ddp_without_forward_buffer_sync, init_distributed
    from medgan_utils.nets.dcgan import make_dcgan

    rank, world, _ = init_distributed("cpu", timeout_s=60)
    result = {"world": world}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # broadcast_buffers is deprecated in newer torch
        result["default"] = attempt(lambda: double_forward(DDP(small_d(), broadcast_buffers=True), rank))
    result["chosen"] = attempt(lambda: double_forward(ddp_without_forward_buffer_sync(small_d()), rank))
    G, D = make_dcgan(28, 1, 16, base=8, seed=0)
    images = torch.rand(16, 1, 28, 28, generator=torch.Generator().manual_seed(rank)) * 2 - 1  # differ by rank
    tr = DistributedDCGANTrainer(G, D, images, batch_size=8, precision="fp32", progress=False, seed=1, device="cpu")
    result["trainer"] = attempt(lambda: tr.run_steps(2))
    stats = torch.cat([b.float().flatten() for b in tr.D_raw.buffers()])
    gathered = [torch.empty_like(stats) for _ in range(world)]
    dist.all_gather(gathered, stats)
    result["buffer_spread"] = float((gathered[0] - gathered[-1]).abs().max())
    (out / f"rank{rank}.json").write_text(json.dumps(result))
    dist.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
