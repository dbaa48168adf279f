"""A pre-training's own objective on held-out frames, before the first step and after the last.

Whether a pre-training learned its task is read on frames it never trained on: the method's
loss and logged scalars (``Method.objective`` names the one that falls as it learns), averaged
over up to ``BATCHES`` batches of the held-out set (``Data.heldout_source``) with fixed random
draws, so that the start and the end see the same views. The measure is taken in training
mode (the loss as training computes it, batch statistics included) and leaves the method as it
found it: every buffer (BatchNorm statistics, DINO's centre, step counters) is restored, and
every random number comes from the measure's own generators, so a run that measures trains
exactly as one that does not. The record keeps both ends (``Record.pretraining``), beside
an image-blind predictor's score on the same views where the method has one
(``Method.baseline``) and the method's verdict on whether it learned (``Method.learned``).
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from benchmarks import batches as B

BATCHES = 4              # held-out batches per measure
SEED = 7_919             # the measure's own draws (views, masks), the same at both ends


def images(source, batch_size: int) -> int:
    """How many held-out items one measure reads."""
    return min(BATCHES, max(1, len(source) // batch_size)) * min(batch_size, len(source))


def objective(method, loss_fn, source, batch_size: int, device) -> dict[str, float]:
    """Mean loss (``loss``) and logs of ``loss_fn(method, batch, generator)`` over the
    held-out ``source``."""
    def scalars(m, batch, g):
        loss, logs = loss_fn(m, batch, g)
        return {"loss": float(loss), **logs}

    return _average(method, scalars, source, batch_size, device)


def baseline(method, baseline_fn, source, batch_size: int, device) -> dict[str, float] | None:
    """``baseline_fn(method, batch, generator)`` (``Method.baseline``: an image-blind
    predictor's scalars) over the same held-out batches and views as :func:`objective`; None
    where the method has no such predictor."""
    if not method.has_baseline():
        return None
    return _average(method, baseline_fn, source, batch_size, device)


def _average(method, scalars, source, batch_size: int, device) -> dict[str, float]:
    """Mean of ``scalars(method, batch, generator)`` over up to ``BATCHES`` held-out batches,
    each with its own fixed generator, leaving the method's buffers and mode as they were."""
    n = min(BATCHES, max(1, len(source) // batch_size))
    order = B.StepIndices(len(source), min(batch_size, len(source)), SEED)
    saved = {name: b.detach().clone() for name, b in method.named_buffers()}
    was_training = method.training
    method.train()
    sums: dict[str, float] = {}
    try:
        with torch.no_grad():
            for k, batch in enumerate(B.iterate(source, order, 0, n)):
                batch = {key: v.to(device) for key, v in batch.items()}
                g = torch.Generator(device=device).manual_seed(SEED + k)
                for key, v in scalars(method, batch, g).items():
                    sums[key] = sums.get(key, 0.0) + float(v)
    finally:
        buffers = dict(method.named_buffers())
        with torch.no_grad():
            for name, b in saved.items():
                buffers[name].copy_(b)
        method.train(was_training)
    return {key: v / n for key, v in sums.items()}


def start_measure(method, loss_fn, source, batch_size: int, device, folder: Path) -> dict[str, float]:
    """The measure before the first step, kept in the phase's checkpoint folder so that a
    resumed pre-training reports the start of the run, not of its last sitting."""
    path = Path(folder) / "heldout_start.json"
    if path.exists():
        return json.loads(path.read_text())
    value = objective(method, loss_fn, source, batch_size, device)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(value))
    tmp.replace(path)
    return value


def points(steps: int, count: int) -> tuple[int, ...]:
    """The steps after which the held-out measure is taken: ``count`` evenly spaced, the last
    at ``steps`` (fewer where the run has fewer steps)."""
    return tuple(sorted({max(1, round(steps * k / count)) for k in range(1, count + 1)}))


def judge(method_cls, cfg, block: dict) -> dict:
    """``block`` with the method's ``criterion`` and ``learned`` verdict added (kept where it
    already has them); with a held-out ``curve``, also ``learned_at``: the first measured step
    at which the criterion held against the start (None where it never did). What a budget
    stopping there would reach is not measured: at an intermediate point the cosine schedule
    has not yet annealed, as a shorter run's end has, so ``learned_at`` is an estimate that
    usually errs long (a guide for choosing budgets, not a verdict)."""
    if "learned" in block:
        return block
    criterion, learned = method_cls.learned(cfg, block)
    if method_cls.has_baseline() and "baseline" not in block:
        criterion += ("; judged without the image-blind baseline (a pre-training cached before "
                      "baselines were recorded)")
    judged = {**block, "criterion": criterion, "learned": bool(learned)}
    if block.get("curve"):
        judged["learned_at"] = next(
            (int(p["step"]) for p in block["curve"]
             if method_cls.learned(cfg, {**block, "end": {k: v for k, v in p.items() if k != "step"}})[1]),
            None)
    return judged
