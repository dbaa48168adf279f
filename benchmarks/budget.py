"""Compute budgets: one string, ``<number><unit>``, that every schedule derives from.

Units (``k`` / ``M`` / ``G`` multipliers allowed before the unit, e.g. ``500kimg``):

``ep``     epochs of the pre-training set at the reference cost: one epoch is
           ``N_pretrain x 2 x C_img`` FLOPs, where ``C_img`` is the measured forward+backward
           cost of one image through the backbone at ``pretrain.res`` (two views per sample,
           as SimCLR and PeCLR spend it).
``step``   reference steps: ``n x pretrain.batch_size x 2 x C_img``.
``img``    backbone image passes: ``n x C_img``.
``tflop``, ``pflop``   FLOPs directly (1e12, 1e15).
``h``      wall-clock hours. Not compute-matched (a faster method gets more compute); allowed
           only as an explicitly unfair protocol and flagged ``unfair`` in the record.

Every method's steps are planned as ``round(budget_flops / step_flops)`` with its own measured
FLOPs per training step, so methods given the same budget spend the same compute (within one
step). Learning-rate schedules are functions of the planned steps only.
"""
from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass

from benchmarks.errors import UserError

UNITS = ("ep", "step", "img", "tflop", "pflop", "h")
_MULT = {"": 1.0, "k": 1e3, "M": 1e6, "G": 1e9}
_RE = re.compile(r"^(\d+(?:\.\d+)?(?:e[+-]?\d+)?)([kMG]?)(ep|step|img|tflop|pflop|h)$")


@dataclass(frozen=True)
class Budget:
    value: float          # in the unit, multiplier applied
    unit: str
    text: str

    @property
    def unfair(self) -> bool:
        return self.unit == "h"


@functools.lru_cache(maxsize=1024)
def parse_budget(text: str) -> Budget:
    """``text`` as a Budget, or a one-line UserError. Cached: config validation, the compute
    plan and the report all parse the same few strings (a Budget is immutable)."""
    m = _RE.match(str(text))
    if not m:
        raise UserError(f"malformed budget {text!r}: expected <number><unit> with unit one of "
                        f"{', '.join(UNITS)} and no spaces (e.g. 100ep, 2000step, 500kimg, 3pflop, 2h)")
    value = float(m.group(1)) * _MULT[m.group(2)]
    if m.group(2) and m.group(3) in ("tflop", "pflop", "h"):
        raise UserError(f"malformed budget {text!r}: k/M/G multipliers go with ep, step and img only")
    if math.isinf(value):
        raise UserError(f"malformed budget {text!r}: the number is too large for a float")
    if not value > 0 or not math.isfinite(value):
        raise UserError(f"malformed budget {text!r}: the number must be positive")
    return Budget(value, m.group(3), str(text))


def budget_flops(b: Budget, img_flops: float, n_pretrain: int, batch_size: int) -> float | None:
    """The budget in FLOPs (None for wall-clock budgets)."""
    if b.unit == "ep":
        return b.value * n_pretrain * 2 * img_flops
    if b.unit == "step":
        return b.value * batch_size * 2 * img_flops
    if b.unit == "img":
        return b.value * img_flops
    if b.unit == "tflop":
        return b.value * 1e12
    if b.unit == "pflop":
        return b.value * 1e15
    return None


def plan_steps(flops: float, step_flops: float) -> int:
    """Steps whose total cost is closest to ``flops`` (at least one)."""
    if step_flops <= 0:
        raise ValueError("step_flops must be positive")
    return max(1, int(round(flops / step_flops)))


def warmup_cosine(step: int, total: int, warmup_frac: float) -> float:
    """LR multiplier: linear warm-up over ``warmup_frac`` of the planned steps, cosine to 0.

    Depends only on ``total`` (the planned steps), so a longer budget stretches the whole
    schedule instead of truncating it.
    """
    warm = int(round(warmup_frac * total))
    if step < warm:
        return (step + 1) / warm
    span = max(1, total - warm)
    progress = min(1.0, (step - warm) / span)
    return 0.5 * (1.0 + math.cos(math.pi * progress))
