"""Measured cost: FLOPs of one training step, counted by ``torch.utils.flop_counter``.

The counter sees the matrix products and convolutions of the forward and backward passes
(2 FLOPs per multiply-add), which is where a ResNet spends its compute. Measurements run on
a copy of the module, so the run's own weights and BatchNorm statistics are untouched.
"""
from __future__ import annotations

import copy

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def count_step_flops(module: nn.Module, loss_fn, batch: dict, generator: torch.Generator) -> float:
    """FLOPs of forward + backward of ``loss_fn(module, batch, generator)``."""
    probe = copy.deepcopy(module)
    probe.train()
    with FlopCounterMode(display=False) as counter:
        loss, _ = loss_fn(probe, batch, generator)
        loss.backward()
    return float(counter.get_total_flops())


def image_flops(backbone: nn.Module, res: int, device: torch.device | str = "cpu") -> float:
    """Forward + backward FLOPs of one image through ``backbone`` at ``res`` x ``res``."""
    probe = copy.deepcopy(backbone).to(device).train()
    x = torch.rand(2, 3, res, res, device=device)
    with FlopCounterMode(display=False) as counter:
        probe(x).sum().backward()
    return float(counter.get_total_flops()) / 2
