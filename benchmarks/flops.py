"""Measured cost: FLOPs of one training step, counted by ``torch.utils.flop_counter``.

The counter sees the matrix products and convolutions of the forward and backward passes
(2 FLOPs per multiply-add), which is where a ResNet spends its compute, and a ViT's
attention (``scaled_dot_product_attention``): torch counts its CUDA kernels; the CPU kernel
it leaves out is counted with torch's own attention formulas (``CPU_ATTENTION``).
Measurements run on a copy of the module, so the run's own weights and BatchNorm statistics
are untouched.
"""
from __future__ import annotations

import copy

import torch
from torch import nn
from torch.utils import flop_counter
from torch.utils.flop_counter import FlopCounterMode


def _attention(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    return flop_counter.sdpa_flop_count(query_shape, key_shape, value_shape)


def _attention_backward(grad_out_shape, query_shape, key_shape, value_shape, *args,
                        out_shape=None, **kwargs) -> int:
    return flop_counter.sdpa_backward_flop_count(grad_out_shape, query_shape, key_shape,
                                                 value_shape)


# The CPU attention kernel, which torch's counter does not know: the same products as the
# CUDA kernels, by torch's formulas for them (query, key, value first; the backward's
# grad_out before them).
CPU_ATTENTION = {
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _attention,
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward: _attention_backward,
}


def counter() -> FlopCounterMode:
    """A silent FLOP counter that also counts attention on the CPU."""
    return FlopCounterMode(display=False, custom_mapping=CPU_ATTENTION)


def count_step_flops(module: nn.Module, loss_fn, batch: dict, generator: torch.Generator) -> float:
    """FLOPs of forward + backward of ``loss_fn(module, batch, generator)``."""
    probe = copy.deepcopy(module)
    probe.train()
    with counter() as counted:
        loss, _ = loss_fn(probe, batch, generator)
        loss.backward()
    return float(counted.get_total_flops())


def image_flops(backbone: nn.Module, res: int, device: torch.device | str = "cpu") -> float:
    """Forward + backward FLOPs of one image through ``backbone`` at ``res`` x ``res``."""
    probe = copy.deepcopy(backbone).to(device).train()
    x = torch.rand(2, 3, res, res, device=device)
    with counter() as counted:
        probe(x).sum().backward()
    return float(counted.get_total_flops()) / 2
