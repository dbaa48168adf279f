"""How quantities are written for people: FLOPs with an SI prefix, one formatter for the
report's tables and figures, the sweep plan and a run's summary line."""
from __future__ import annotations

import math

PREFIXES = ((1e18, "EFLOP"), (1e15, "PFLOP"), (1e12, "TFLOP"), (1e9, "GFLOP"), (1e6, "MFLOP"))


def flops_text(value: float, trim: bool = False) -> str:
    """``value`` FLOPs with an SI prefix and three significant digits: 3.2e15 -> "3.20 PFLOP",
    or "3.2 PFLOP" with ``trim`` (trailing zeros dropped, for plans and axis ticks); NaN -> "?"."""
    if math.isnan(value):
        return "?"
    scale, unit = next(((s, u) for s, u in PREFIXES if value >= s), (1.0, "FLOP"))
    scaled = value / scale
    if trim:
        return f"{scaled:.3g} {unit}"
    decimals = 0 if scaled == 0 else max(0, 2 - math.floor(math.log10(scaled)))
    return f"{scaled:.{decimals}f} {unit}"
