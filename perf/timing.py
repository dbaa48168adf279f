"""Side-by-side timing on a shared machine: interleaved repeats, paired ratios, medians.

Every figure is a rate in images per second of one *variant* (a callable that runs its own
warm-up, then times its steps and returns the rate). ``interleave`` runs all variants once per
repeat, rotating which goes first, so that each repeat of every variant sees the same load from
other processes; a ratio is the median over repeats of the two variants' rates *in the same
repeat*, which cancels load that changes between repeats.
"""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch

Variant = Callable[[], float]


def sync(device: torch.device) -> None:
    """Wait for the device's queued work (a no-op on the CPU, where work is synchronous)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def rate(step: Callable[[], None], images_per_step: int, warmup: int, steps: int,
         device: torch.device) -> float:
    """Images per second of ``steps`` calls of ``step`` after ``warmup`` untimed ones."""
    for _ in range(warmup):
        step()
    sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    return steps * images_per_step / (time.perf_counter() - t0)


def interleave(variants: dict[str, Variant], repeats: int,
               log: Callable[[str], None] = lambda line: None) -> dict[str, list[float]]:
    """Rates of every variant, ``repeats`` times; repeat r starts at variant r mod V."""
    names = list(variants)
    rates: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeats):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            rates[name].append(variants[name]())
            log(f"repeat {r + 1}/{repeats} {name}: {rates[name][-1]:.1f} img/s")
    return rates


def paired_ratio(numerator: list[float], denominator: list[float]) -> float:
    """Median over repeats of ``numerator[r] / denominator[r]``."""
    return statistics.median(a / b for a, b in zip(numerator, denominator, strict=True))
