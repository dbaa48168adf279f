"""The single fine-tune-and-evaluate harness: every method is judged by exactly this code.

Protocol (defaults follow the published fine-tuning recipe of Spurr et al., ICCV 2021):
a 2.5D pose model (``eval.pose_model.PoseNet``) on the pre-trained backbone; L1 on 2D plus
``depth_weight`` x L1 on scale-normalised relative depth; Adam, weight decay on weights only,
warm-up and cosine decay over the planned steps; label-consistent augmentation through the
shared batched augmenter (the image moves, the intrinsics K move with it, the 3D labels stay:
``K' = A K`` keeps every camera ray, so the 2.5D targets are exact). Periodic evaluations on
the evaluation split feed the convergence curve; the reported metrics are those of the last
step (no model selection on the evaluation split).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from omegaconf import DictConfig

from benchmarks import batches as B
from benchmarks.augment import Augmenter
from benchmarks.budget import plan_steps
from benchmarks.engine import Engine, Phase, step_generator
from benchmarks.flops import count_step_flops
from eval.metrics import freihand_metrics
from eval.pose_model import PoseNet, pose_loss, targets

EVAL_BATCH = 256


@dataclass
class FinetuneResult:
    metrics: dict
    steps: int
    flops: float
    step_flops: float
    images: int
    wall_s: float
    curve: list
    evals: list


class PoseTask:
    """The fine-tuning step: augment, predict 2.5D, compare with the exact 2.5D targets."""

    def __init__(self, cfg: DictConfig, res: int):
        self.cfg, self.res = cfg, res
        self.augmenter = Augmenter(cfg.pretrain.augment) if cfg.finetune.augment else None

    def __call__(self, model: PoseNet, batch: dict, g: torch.Generator):
        images = batch["image"].float().div_(255)
        K = batch["K"].float()
        if self.augmenter is not None:
            views = self.augmenter(images, g)
            images = views.images
            K = self.augmenter.affine(views.params, self.res).to(K) @ K
        if self.cfg.finetune.freeze_backbone:
            model.backbone.eval()
        pred = model(images, K)
        return pose_loss(pred, targets(batch["xyz"].float(), K), self.res,
                         self.cfg.finetune.depth_weight)


@torch.no_grad()
def predict(model: PoseNet, source, device: torch.device, num_workers: int = 0
            ) -> tuple[np.ndarray, np.ndarray]:
    """(predictions, ground truth), both (N, 21, 3) in metres; the prediction is the
    scale-normalised output times the sample's scale, as FreiHAND's evaluation provides it."""
    was_training = model.training
    model.eval()
    preds, gts = [], []
    for b in B.in_order(source, EVAL_BATCH, num_workers):
        pred = model(b["image"].to(device).float().div_(255), b["K"].to(device).float())
        preds.append((pred["xyz_norm"] * b["scale"].to(device).view(-1, 1, 1)).float().cpu())
        gts.append(b["xyz"].float())
    model.train(was_training)
    return (torch.cat(preds).numpy().astype(np.float64), torch.cat(gts).numpy().astype(np.float64))


def evaluate(model: PoseNet, source, device: torch.device, num_workers: int = 0) -> dict:
    return freihand_metrics(*predict(model, source, device, num_workers))


def reference_steps(cfg: DictConfig, n_train: int) -> int:
    """Fine-tuning steps of the recipe: ``finetune.epochs`` passes over the labelled subset."""
    return max(1, math.ceil(cfg.finetune.epochs * n_train / cfg.finetune.batch_size))


def finetune(cfg: DictConfig, backbone, train, test,
             engine: Engine, ckpt_dir, extra_flops: float = 0.0) -> FinetuneResult:
    """Fine-tune a pose model on ``backbone`` and evaluate it.

    ``extra_flops``: compute to add to the recipe's fine-tuning (``match=total``: the budget a
    method did not spend on pre-training is spent here), planned with the measured step cost.
    """
    device = engine.device
    seed = cfg.finetune.seed if cfg.finetune.seed is not None else cfg.seed
    res = cfg.data.res
    torch.manual_seed(seed + 2)
    model = PoseNet(backbone, backbone.feat_dim).to(device)
    if cfg.finetune.freeze_backbone:
        backbone.requires_grad_(False)
    task = PoseTask(cfg, res)
    order = B.StepIndices(len(train), cfg.finetune.batch_size, seed)
    first = {k: v.to(device) for k, v in B.take(train, order(0)).items()}
    step_flops = count_step_flops(model, task, first, step_generator(seed, "probe", 0, device))
    steps = reference_steps(cfg, len(train))
    if extra_flops > 0:
        steps = plan_steps(steps * step_flops + extra_flops, step_flops)
    points = min(cfg.finetune.eval_points, steps)
    eval_steps = tuple(sorted({max(1, round(steps * (i + 1) / points)) for i in range(points)}))

    def periodic(m, k):
        full = evaluate(m, test, device, cfg.engine.num_workers)
        return {key: full[key] for key in ("epe_mm", "pa_epe_mm", "auc", "pa_auc")}

    ph = Phase(name="finetune", module=model, loss_fn=task,
               batches=lambda start: B.iterate(train, order, start, steps, cfg.engine.num_workers),
               steps=steps, lr=cfg.finetune.lr, weight_decay=cfg.finetune.weight_decay,
               warmup_frac=cfg.finetune.warmup_frac, images_per_step=cfg.finetune.batch_size,
               seed=seed, ckpt_dir=ckpt_dir, evaluate=periodic, eval_steps=eval_steps)
    out = engine.fit(ph)
    metrics = evaluate(model, test, device, cfg.engine.num_workers)
    return FinetuneResult(metrics=metrics, steps=steps, flops=steps * step_flops,
                          step_flops=step_flops, images=steps * cfg.finetune.batch_size,
                          wall_s=out.wall_s, curve=out.curve, evals=out.evals)
