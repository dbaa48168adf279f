"""Whether a fine-tuning converged, read on its validation curve (torch-free: the report reads
``CONVERGED`` too)."""
from __future__ import annotations

CONVERGED = 0.01        # validation PA-EPE changing less than this (relative) over the last quarter


def convergence(evals: list[dict], steps: int) -> dict | None:
    """Whether fine-tuning had converged: the relative change of validation PA-EPE from the
    last periodic evaluation at or before three quarters of ``steps`` to the end
    (``change``, negative while it still falls), and ``converged`` where it is under
    ``CONVERGED`` in size; None without such an evaluation (``finetune.eval_points`` < 2)."""
    points = [e for e in evals if "val_pa_epe_mm" in e]
    before = [e for e in points if e["step"] <= 0.75 * steps and e["step"] < steps]
    if not before or points[-1]["step"] != steps:
        return None
    start, end = before[-1]["val_pa_epe_mm"], points[-1]["val_pa_epe_mm"]
    change = (end - start) / start
    return {"from_step": int(before[-1]["step"]), "change": float(change),
            "criterion": f"validation PA-EPE changes by less than {CONVERGED:.0%} over the last quarter",
            "converged": bool(abs(change) < CONVERGED)}
