"""What a network costs to train: parameters, FLOPs per image, peak memory and time per epoch (notebook 07).

:func:`training_cost` takes the networks and a ``step(batch)`` callable that runs one complete training update
(forward, backward, optimiser step) on a batch, so it measures any model of the course without knowing how
it is trained. FLOPs come from ``torch.utils.flop_counter`` (a multiply-add counts as two). Memory: on CUDA
the allocator's peak during one step; elsewhere the weights, their gradients and two Adam moments (16 bytes
per parameter in fp32) plus the tensors autograd saves for the backward pass, counted with
``saved_tensors_hooks``. Time per epoch is the median time of a few timed steps (after warm-up steps)
times the number of steps in one epoch.
"""
from __future__ import annotations

import statistics
import time
from typing import Callable

import torch
from torch import nn

__all__ = ["training_cost", "conv2d_flops", "count_flops", "format_cost_table"]


def conv2d_flops(c_in: int, c_out: int, k: int, h_out: int, w_out: int, batch: int = 1) -> int:
    """Closed form of a Conv2d forward pass without bias: 2 · N · C_out · H_out · W_out · C_in · k²."""
    return 2 * batch * c_out * h_out * w_out * c_in * k * k


def count_flops(fn: Callable, *args, **kwargs) -> int:
    """The FLOPs ``fn(*args, **kwargs)`` runs, counted by ``torch.utils.flop_counter.FlopCounterMode`` (matrix
    products and convolutions, forward and backward, a multiply-add as two; element-wise work and the
    optimiser's update are not counted). Count one training step and multiply by the steps taken, or one
    network call and multiply by the calls a sampler makes."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn(*args, **kwargs)
    return int(counter.get_total_flops())


def _saved_bytes(step: Callable, batch) -> int:
    total = [0]

    def pack(t):
        total[0] += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        step(batch)
    return total[0]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def training_cost(name: str, nets: list[nn.Module], step: Callable, batch, *, n_train: int, batch_size: int,
                  timed_steps: int = 3, warmup_steps: int = 1, device=None) -> dict:
    """One row of the cost table for a training ``step(batch)`` on ``batch_size`` images.

    Returns ``name``, ``params``, ``gflop_per_image`` (one training update, forward and backward of every
    network it touches, per image of the batch), ``peak_mem_mb``, ``memory_method``, ``s_per_step`` and
    ``s_per_epoch`` (``n_train // batch_size`` steps), ``device``.
    """
    device = torch.device(device or next(nets[0].parameters()).device)
    params = sum(p.numel() for net in nets for p in net.parameters())
    for _ in range(warmup_steps):
        step(batch)
    flops = count_flops(step, batch)
    if device.type == "cuda":
        _sync(device)
        torch.cuda.reset_peak_memory_stats(device)
        step(batch)
        _sync(device)
        peak, method = torch.cuda.max_memory_allocated(device), "CUDA allocator peak"
    else:
        peak = 16 * params + _saved_bytes(step, batch)
        method = "16 B/param (weights, grads, Adam) + saved activations"
    times = []
    for _ in range(max(1, int(timed_steps))):
        _sync(device)
        t0 = time.perf_counter()
        step(batch)
        _sync(device)
        times.append(time.perf_counter() - t0)
    s_step = statistics.median(times)
    return {"name": name, "params": params, "gflop_per_image": flops / batch_size / 1e9,
            "peak_mem_mb": peak / 2**20, "memory_method": method, "s_per_step": s_step,
            "s_per_epoch": s_step * max(1, n_train // batch_size), "batch_size": batch_size, "device": str(device)}


def format_cost_table(rows: list[dict]) -> str:
    """The cost table as aligned text."""
    head = f"{'network':<28} {'params':>11} {'GFLOP/img':>10} {'memory MB':>10} {'s/step':>8} {'s/epoch':>8}"
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['name']:<28} {r['params']:>11,} {r['gflop_per_image']:>10.3f} {r['peak_mem_mb']:>10.1f} "
                     f"{r['s_per_step']:>8.3f} {r['s_per_epoch']:>8.2f}")
    return "\n".join(lines)
