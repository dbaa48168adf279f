"""The timed variants of the suite's own code and of the bare model.

Harness variants run the real ``Engine.fit`` on a ``Phase`` built exactly as a run builds it
(``eval.pretrain`` for pre-training, ``eval.finetune`` for fine-tuning), so a timed step is
everything a run does per step: fetch the step's batch from the in-memory ``TensorSource``,
move it to the device, uint8 -> float, the batched augmentation on the batch's device, the
method's loss under the engine's autocast, the NaN guard, backward, Adam, the schedule and the
per-step loss read-out. The clock reads are taken by the phase's ``evaluate`` hook after steps
``warmup`` and ``warmup + steps``, so the timed span is exactly those ``steps`` steps (the hook
itself only reads the clock; the end-of-phase checkpoint falls outside).

The bare variant is the timm backbone alone on a ready float tensor already on the device:
forward, a mean of the features as the loss, backward, an Adam step, with the same precision
and memory format the engine uses on that device.
"""
from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from omegaconf import DictConfig

import methods
from benchmarks import batches as B
from benchmarks.augment import Augmenter
from benchmarks.backbone import create_backbone
from benchmarks.engine import Engine, Phase
from perf.timing import Variant, rate, sync
from eval.pretrain import method_loss
from eval.finetune import EVAL_BATCH, PoseTask, predict
from benchmarks.pose_model import PoseNet

PhaseFactory = Callable[[int, Path, Callable, tuple[int, ...]], Phase]


def fit_rate(engine: Engine, make_phase: PhaseFactory, warmup: int, steps: int) -> float:
    """Images per second of steps ``warmup + 1 .. warmup + steps`` of ``engine.fit``."""
    if warmup < 1:
        raise ValueError("the first clock read follows a step: warmup must be >= 1")
    marks: dict[int, float] = {}

    def mark(module, done: int) -> dict:
        sync(engine.device)
        marks[done] = time.perf_counter()
        return {}

    with tempfile.TemporaryDirectory(prefix="handbench-perf-") as tmp:
        ph = make_phase(warmup + steps, Path(tmp), mark, (warmup, warmup + steps))
        engine.fit(ph)
    return steps * ph.images_per_step / (marks[warmup + steps] - marks[warmup])


def pretrain_variant(cfg: DictConfig, source: B.TensorSource, engine: Engine, warmup: int,
                     steps: int) -> Variant:
    """Pre-training steps of ``cfg.method`` through the engine (as ``eval.pretrain``)."""
    method_cls = methods.get(cfg.method.name)
    backbone = create_backbone(cfg.backbone)
    method = method_cls(cfg.method, backbone, backbone.feat_dim,
                        Augmenter(cfg.pretrain.augment)).to(engine.device)
    order = B.StepIndices(len(source), cfg.pretrain.batch_size, cfg.seed)

    def make(n: int, ckpt: Path, evaluate: Callable, eval_steps: tuple[int, ...]) -> Phase:
        return Phase(name="pretrain", module=method, loss_fn=method_loss,
                     batches=lambda start: B.iterate(source, order, start, n,
                                                     cfg.engine.num_workers),
                     steps=n, lr=cfg.pretrain.lr, weight_decay=cfg.pretrain.weight_decay,
                     warmup_frac=cfg.pretrain.warmup_frac,
                     images_per_step=cfg.pretrain.batch_size * method_cls.passes_per_sample,
                     seed=cfg.seed, ckpt_dir=ckpt, evaluate=evaluate, eval_steps=eval_steps)

    return lambda: fit_rate(engine, make, warmup, steps)


def finetune_variant(cfg: DictConfig, train: B.TensorSource, engine: Engine, warmup: int,
                     steps: int) -> Variant:
    """Fine-tuning steps (``benchmarks.pose_task.PoseTask``) through the engine (as ``finetune``)."""
    backbone = create_backbone(cfg.backbone)
    model = PoseNet(backbone, backbone.feat_dim).to(engine.device)
    task = PoseTask.for_finetuning(cfg)
    order = B.StepIndices(len(train), cfg.finetune.batch_size, cfg.seed)

    def make(n: int, ckpt: Path, evaluate: Callable, eval_steps: tuple[int, ...]) -> Phase:
        return Phase(name="finetune", module=model, loss_fn=task,
                     batches=lambda start: B.iterate(train, order, start, n),
                     steps=n, lr=cfg.finetune.lr, weight_decay=cfg.finetune.weight_decay,
                     warmup_frac=cfg.finetune.warmup_frac,
                     images_per_step=cfg.finetune.batch_size, seed=cfg.seed, ckpt_dir=ckpt,
                     evaluate=evaluate, eval_steps=eval_steps)

    return lambda: fit_rate(engine, make, warmup, steps)


def predict_variant(cfg: DictConfig, test: B.TensorSource, engine: Engine) -> Variant:
    """``eval.finetune.predict`` over the evaluation split, after one untimed batch."""
    backbone = create_backbone(cfg.backbone)
    model = engine.prepare(PoseNet(backbone, backbone.feat_dim).to(engine.device))
    first = B.TensorSource(test.take(torch.arange(min(len(test), EVAL_BATCH))))

    def run() -> float:
        predict(model, first, engine.device)
        t0 = time.perf_counter()
        predict(model, test, engine.device)          # returns on the host: synchronised
        return len(test) / (time.perf_counter() - t0)

    return run


def bare_variant(backbone: str, images: int, res: int, device: torch.device, bf16: bool,
                 channels_last: bool, compile: bool, warmup: int, steps: int) -> Variant:
    """The timm backbone alone: forward + backward + Adam on a ready (images, 3, res, res)."""
    net = create_backbone(backbone).net.to(device)
    x = torch.rand(images, 3, res, res, device=device)
    if channels_last:
        net, x = net.to(memory_format=torch.channels_last), x.contiguous(
            memory_format=torch.channels_last)
    forward = torch.compile(net) if compile else net
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)

    def step() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = forward(x).float().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return lambda: rate(step, images, warmup, steps, device)
