"""The single fine-tune-and-evaluate harness: every method is judged by exactly this code.

Protocol (the schema's defaults follow the published fine-tuning recipe of Spurr et al., ICCV
2021; ``finetune.head``, ``finetune.root`` and ``finetune.optimizer`` name the alternatives):
a 2.5D pose model (``benchmarks.pose_model.PoseNet``) on the pre-trained backbone; L1 on 2D plus
``depth_weight`` x L1 on scale-normalised relative depth; Adam, weight decay on weights only,
warm-up and cosine decay over the planned steps; label-consistent augmentation with its own
ranges (``finetune.augment``) through the shared batched augmenter (the image moves, the
intrinsics K move with it, the 3D labels stay: ``K' = A K`` keeps every camera ray, so the 2.5D
targets are exact). Periodic evaluations on the evaluation split feed the convergence curve;
the reported metrics are those of the last step (no model selection on the evaluation split).
With ``data.val_fraction > 0`` the same scores on the held-out training ids are recorded as
``validation``: recipes are chosen on those, never on the evaluation split.

Every evaluation also scores the no-image floors (``eval.floors``) on the same samples, the 2D
keypoints (``eval.metrics.keypoint_2d_metrics``) and the two depth terms of the 2.5D output
(``zrel_l1``: mean |zrel error| over the non-root joints, ``z_root_l1``: mean |root depth
error|, both in bone lengths), so that a model's progress is visible term by term.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from omegaconf import DictConfig

from benchmarks import batches as B
from benchmarks.compute import recipe_steps
from eval.convergence import convergence
from benchmarks.engine import Engine, Phase, step_generator
from benchmarks.flops import count_step_flops
from eval.floors import floor_predictions, score_floors
from eval.metrics import freihand_metrics, keypoint_2d_metrics
from benchmarks.pose_model import ROOT, PoseNet, root_depths, targets
from benchmarks.pose_task import PoseTask

EVAL_BATCH = 256
PERIODIC = ("epe_mm", "pa_epe_mm", "auc", "pa_auc", "epe_2d_px", "zrel_l1", "z_root_l1")


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
    baselines: dict
    validation: dict | None
    predictions: dict | None = None     # ids, xyz of the evaluation split (``kept``)


@torch.no_grad()
def predict(model: PoseNet, source, device: torch.device, num_workers: int = 0
            ) -> dict[str, np.ndarray]:
    """Predictions and ground truth of every sample of ``source``, float64 numpy arrays:
    ``xyz`` / ``xyz_gt`` (N, 21, 3) metres (the scale-normalised output times the sample's
    scale, as FreiHAND's evaluation provides it), ``uv`` / ``uv_gt`` (N, 21, 2) pixels of the
    network input, ``zrel`` / ``zrel_gt`` (N, 21) and ``z_root`` / ``z_root_gt`` (N,) in bone
    lengths; where the source gives them, ``ids`` (N,) its samples' ids (``image_id``),
    ``flipped`` (N,) 1.0 for a hand the loader mirrored and ``valid`` (N, 21) 1.0 for a joint
    with ground truth (``joint_valid``)."""
    was_training = model.training
    model.eval()
    out: dict[str, list] = {}
    for b in B.in_order(source, EVAL_BATCH, num_workers):
        K = b["K"].to(device).float()
        pred = model(b["image"].to(device).float().div_(255), K)
        truth = targets(b["xyz"].to(device).float(), K)
        rows = {"xyz": pred["xyz_norm"] * b["scale"].to(device).view(-1, 1, 1),
                "xyz_gt": b["xyz"], "uv": pred["uv_px"], "uv_gt": truth["uv_px"],
                "zrel": pred["zrel"], "zrel_gt": truth["zrel"],
                "z_root": pred["z_root"], "z_root_gt": truth["z_root"]}
        for key, name in (("image_id", "ids"), ("flipped", "flipped"), ("joint_valid", "valid")):
            if key in b:
                rows[name] = b[key]
        for k, v in rows.items():
            out.setdefault(k, []).append(v.float().cpu())
    model.train(was_training)
    return {k: torch.cat(v).numpy().astype(np.float64) for k, v in out.items()}


def kept(p: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The predictions a run keeps (``eval.predictions``): ids and xyz in metres, a mirrored
    hand mirrored back (x -> -x) into the frame it was filmed in."""
    n = len(p["xyz"])
    xyz = p["xyz"].copy()
    if "flipped" in p:
        xyz[p["flipped"] > 0.5, :, 0] *= -1
    ids = p["ids"].astype(np.int64) if "ids" in p else np.arange(n, dtype=np.int64)
    return {"ids": ids, "xyz": xyz}


def score(p: dict[str, np.ndarray], side: int) -> dict:
    """Every metric of one evaluation (see the module docstring) from ``predict``'s arrays,
    over the valid joints where the source marks them."""
    valid = p["valid"] > 0.5 if "valid" in p else None
    zrel_err = np.delete(np.abs(p["zrel"] - p["zrel_gt"]), ROOT, axis=1)
    zrel_l1 = zrel_err.mean() if valid is None else zrel_err[np.delete(valid, ROOT, axis=1)].mean()
    return {**freihand_metrics(p["xyz"], p["xyz_gt"], valid),
            **keypoint_2d_metrics(p["uv"], p["uv_gt"], side, valid),
            "zrel_l1": float(zrel_l1),
            "z_root_l1": float(np.abs(p["z_root"] - p["z_root_gt"]).mean())}


def evaluate(model: PoseNet, source, device: torch.device, side: int, num_workers: int = 0) -> dict:
    """Every metric of ``model`` on ``source``, whose images are ``side`` pixels square."""
    return score(predict(model, source, device, num_workers), side)


def poses(source) -> np.ndarray:
    """Camera-frame 3D labels (N, 21, 3) metres of every item, without decoding images."""
    if isinstance(source, B.TensorSource):
        return source.tensors["xyz"].double().numpy()
    return source.poses()


def joint_valid(source) -> np.ndarray | None:
    """(N, 21) booleans of the joints with ground truth, or None where the set has no such
    flags (every joint valid)."""
    if isinstance(source, B.TensorSource):
        flags = source.tensors.get("joint_valid")
        return None if flags is None else flags.bool().numpy()
    return source.joints_valid() if hasattr(source, "joints_valid") else None


@dataclass
class Finetuning:
    """A fine-tuning set up before the run's plan: the pose model on the backbone, its task,
    its batch order and the measured cost of one step (``recipe`` steps by the recipe)."""
    cfg: DictConfig
    model: PoseNet
    task: PoseTask
    train: object
    order: object
    seed: int
    step_flops: float
    recipe: int
    train_poses: np.ndarray
    train_valid: np.ndarray | None = None


def prepare(cfg: DictConfig, backbone, train, engine: Engine, seed: int) -> Finetuning:
    """Build the pose model on ``backbone`` (which pre-training may still change in place),
    and measure one step on a copy; ``seed`` is the run's fine-tune seed."""
    device = engine.device
    ft = cfg.finetune
    torch.manual_seed(seed + 2)
    train_poses = poses(train)
    model = PoseNet(backbone, backbone.feat_dim, head=ft.head, root=ft.root)
    model.refiner.set_prior(root_depths(torch.from_numpy(train_poses)))
    model = model.to(device)
    task = PoseTask.for_finetuning(cfg)
    order = B.StepIndices(len(train), ft.batch_size, seed)
    first = {k: v.to(device) for k, v in B.take(train, order(0)).items()}
    step_flops = count_step_flops(model, task, first, step_generator(seed, "probe", 0, device))
    return Finetuning(cfg, model, task, train, order, seed, step_flops,
                      recipe_steps(cfg, len(train)), train_poses, joint_valid(train))


def finetune(prep: Finetuning, steps: int, test, engine: Engine, ckpt_dir, val=None
             ) -> FinetuneResult:
    """Fine-tune the prepared pose model for ``steps`` (the run's plan) and evaluate it on
    ``test`` (and ``val``, the held-out training ids, when given)."""
    cfg, model, task, train, order, seed = (prep.cfg, prep.model, prep.task, prep.train,
                                            prep.order, prep.seed)
    device = engine.device
    ft = cfg.finetune
    res = cfg.data.res
    if ft.freeze_backbone:
        model.backbone.requires_grad_(False)
    points = min(ft.eval_points, steps)
    eval_steps = tuple(sorted({max(1, round(steps * (i + 1) / points)) for i in range(points)}))

    def periodic(m, k):
        full = evaluate(m, test, device, res, cfg.engine.num_workers)
        point = {key: full[key] for key in PERIODIC}
        if val is not None:                  # the curve recipes and steps are chosen on
            point["val_pa_epe_mm"] = evaluate(m, val, device, res, cfg.engine.num_workers)["pa_epe_mm"]
        return point

    ph = Phase(name="finetune", module=model, loss_fn=task,
               batches=lambda start: B.iterate(train, order, start, steps, cfg.engine.num_workers),
               steps=steps, lr=ft.lr, weight_decay=ft.weight_decay,
               warmup_frac=ft.warmup_frac, images_per_step=ft.batch_size,
               seed=seed, ckpt_dir=ckpt_dir, evaluate=periodic, eval_steps=eval_steps,
               optimizer=ft.optimizer)
    out = engine.fit(ph)
    final = predict(model, test, device, cfg.engine.num_workers)
    metrics = score(final, res)
    floors = floor_predictions(prep.train_poses, prep.train_valid)
    baselines = score_floors(floors, poses(test), joint_valid(test))
    validation = None
    if val is not None:
        validation = evaluate(model, val, device, res, cfg.engine.num_workers)
        validation["baselines"] = score_floors(floors, poses(val), joint_valid(val))
        validation["convergence"] = convergence(out.evals, steps)
    return FinetuneResult(metrics=metrics, steps=steps, flops=steps * prep.step_flops,
                          step_flops=prep.step_flops, images=steps * ft.batch_size,
                          wall_s=out.wall_s, curve=out.curve, evals=out.evals,
                          baselines=baselines, validation=validation, predictions=kept(final))


TRANSFER_KEYS = ("pa_epe_mm", "pa_auc", "epe_mm", "auc", "n")


def transfer(prep: Finetuning, others: dict, engine: Engine) -> dict | None:
    """Cross-dataset evaluation (``eval.also``): the fine-tuned model scored on each other
    set's scored split, beside the no-image floors of the fine-tuning labels on the same
    samples; None when there is none."""
    if not others:
        return None
    cfg = prep.cfg
    floors = floor_predictions(prep.train_poses, prep.train_valid)
    out = {}
    for name, source in others.items():
        m = evaluate(prep.model, source, engine.device, cfg.data.res, cfg.engine.num_workers)
        out[name] = {**{k: m[k] for k in TRANSFER_KEYS},
                     "baselines": score_floors(floors, poses(source), joint_valid(source))}
    return out


def leaderboard(prep: Finetuning, source, reader, engine: Engine) -> dict | None:
    """Predictions of the fine-tuned model on the set's label-free leaderboard split (HO-3D's
    evaluation split): each frame's line in its list (``toolkit_ids``), xyz in metres, and the
    list's length; None where the set has none."""
    if source is None:
        return None
    p = kept(predict(prep.model, source, engine.device, prep.cfg.engine.num_workers))
    return {"ids": reader.toolkit_ids[p["ids"]], "xyz": p["xyz"],
            "lines": int(reader.n_unique + reader.n_skipped)}
