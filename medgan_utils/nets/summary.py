"""Layer tables and parameter counts, shown next to every architecture in the notebooks."""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["count_parameters", "layer_table", "format_layer_table"]


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def layer_table(model: nn.Module, input_shape, device=None) -> list[dict]:
    """Run one dummy batch and list every leaf layer: name, type, output shape, parameter count.

    Args:
        model: any module (e.g. :class:`Generator` or :class:`Discriminator`).
        input_shape: shape of one input *including* the batch dimension, e.g. ``(2, 100)`` or ``(2, 1, 64, 64)``;
            or a tuple of example input tensors for a model of several inputs, e.g. ``(z, y)``.
    Returns a list of dicts ``{"layer", "type", "output_shape", "params"}``; the first row is the input.
    The model's mode and batch-norm running statistics are left unchanged.
    """
    device = device or next(model.parameters()).device
    if isinstance(input_shape, (tuple, list)) and input_shape and torch.is_tensor(input_shape[0]):
        inputs = [t.to(device) for t in input_shape]
    else:
        inputs = [torch.zeros(*input_shape, device=device)]
    rows = [{"layer": "input", "type": "", "output_shape": tuple(inputs[0].shape[1:]), "params": 0}]
    hooks = []

    def hook(name):
        def fn(mod, inp, out):
            rows.append({"layer": name, "type": type(mod).__name__, "output_shape": tuple(out.shape[1:]),
                         "params": sum(p.numel() for p in mod.parameters(recurse=hasattr(mod, "parametrizations")))})
        return fn

    for name, mod in model.named_modules():  # leaves; a spectrally normalised layer counts as one leaf
        if "parametrizations" in name.split("."):
            continue
        if all(child == "parametrizations" for child, _ in mod.named_children()):
            hooks.append(mod.register_forward_hook(hook(name)))
    was_training = model.training
    model.eval()  # eval: the dummy batch must not touch batch-norm running statistics
    try:
        with torch.no_grad():
            model(*inputs)
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return rows


def format_layer_table(rows: list[dict], title: str | None = None) -> str:
    """A fixed-width text table of :func:`layer_table` rows, with the parameter total."""
    lines = [title] if title else []
    lines.append(f"{'layer':<8} {'type':<18} {'output shape':<16} {'params':>10}")
    lines.append("-" * 55)
    for r in rows:
        shape = "×".join(map(str, r["output_shape"]))
        lines.append(f"{r['layer']:<8} {r['type']:<18} {shape:<16} {r['params']:>10,}")
    lines.append("-" * 55)
    lines.append(f"{'total':<8} {'':<18} {'':<16} {sum(r['params'] for r in rows):>10,}")
    return "\n".join(lines)
