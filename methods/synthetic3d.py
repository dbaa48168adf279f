"""Synthetic-data pre-training: the whole 2.5D pose model trained on the synthetic world's 3D labels.

The third alternative to SSL in Choi et al., ICLR 2023, beside ImageNet classification and
2D-annotation pre-training (``supervised2d``): they pre-trained on SURREAL-like synthetic
renderings with full 3D labels and fine-tuned on real data. Here the pose model the harness
fine-tunes (``benchmarks.pose_model.PoseNet``, with the run's ``finetune.head``) is trained on the
synthetic wild set's 3D labels with the harness's own loss (``benchmarks.pose_task.PoseTask``: L1
on 2D, ``finetune.depth_weight`` x L1 on relative depth, the root refiner's L1, and the
heatmap prior when the head has one), through the pre-training augmenter with the
intrinsics moved along (``K' = A K``, so the 2.5D targets stay exact). Only the backbone is
handed on; the head and the root refiner are dropped, as every method's heads are.

The source is a domain gap away from the fine-tuning data, as SURREAL was from the real
benchmarks: the wild set's rendering style (cluttered backgrounds, distractors, blur, hands
anywhere and at any viewpoint) and another world seed than the lab set that is fine-tuned
and evaluated on; with FreiHAND targets it is simply the synthetic world. It is the same
wild set the SSL methods pre-train on when the profile uses one, so the three kinds of
supervision (none, 2D, 3D) see the same images. The root refiner's inputs are detached
(``PoseNet.lift``), so how it starts cannot change the backbone: it starts in closed form.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

from benchmarks.config import POSE_HEADS, FinetuneConfig, MethodConfig
from benchmarks.errors import UserError
from methods.base import Method

if TYPE_CHECKING:
    import torch
    from torch import Tensor, nn


@dataclass
class Synthetic3DConfig(MethodConfig):
    name: str = "synthetic3d"
    # None: the run's fine-tuning value (filled in when the config is composed), so that the
    # pre-training optimises what fine-tuning does
    head: Optional[str] = None
    depth_weight: Optional[float] = None
    heatmap_weight: Optional[float] = None
    heatmap_sigma: Optional[float] = None


SHARED = ("head", "depth_weight", "heatmap_weight", "heatmap_sigma")

class Synthetic3D(Method):
    # relative depth is what it must learn: the part of the task a 2D method cannot do, and the
    # part the pilot's pre-training never learned while its loss fell on root depth; the
    # held-out measure reads it against predicting 0 (``baseline``)
    objective = "zrel"
    summary = "the 2.5D pose model trained on the synthetic wild set's 3D labels (harness loss)"
    citation = "Choi et al., ICLR 2023 (synthetic-data pre-training)"
    inputs = ("images", "pose3d")
    passes_per_sample = 1
    Config = Synthetic3DConfig

    @classmethod
    def settle(cls, cfg: Synthetic3DConfig, run=None) -> None:
        for key in SHARED:
            if cfg[key] is None and run is not None:
                cfg[key] = run.finetune[key]
        if cfg.head is not None and cfg.head not in POSE_HEADS:
            raise UserError(f"method.head must be one of: {', '.join(POSE_HEADS)} (got {cfg.head!r})")
        for key, rule, ok in (("depth_weight", ">= 0", lambda v: v >= 0),
                              ("heatmap_weight", ">= 0", lambda v: v >= 0),
                              ("heatmap_sigma", "> 0", lambda v: v > 0)):
            if cfg[key] is not None and not ok(cfg[key]):
                raise UserError(f"method.{key} must be {rule} (got {cfg[key]})")

    def __init__(self, cfg: Synthetic3DConfig, backbone: nn.Module, feat_dim: int,
                 augmenter=None):
        from benchmarks.pose_model import PoseNet
        from benchmarks.pose_task import PoseTask

        super().__init__(cfg, backbone, feat_dim, augmenter)
        schema = FinetuneConfig()
        value = {k: getattr(cfg, k) if getattr(cfg, k) is not None else getattr(schema, k)
                 for k in SHARED}
        self.pose = PoseNet(backbone, feat_dim, head=value["head"], root="closed_form")
        self.task = PoseTask(float(value["depth_weight"]), float(value["heatmap_weight"]),
                             float(value["heatmap_sigma"]), augmenter)

    def loss(self, batch: dict[str, Tensor], generator: torch.Generator
             ) -> tuple[Tensor, dict[str, float]]:
        loss, logs = self.task(self.pose, batch, generator)
        return loss, {k: float(v) for k, v in logs.items()}

    def baseline(self, batch: dict[str, Tensor], generator: torch.Generator) -> dict[str, float]:
        """Relative depth predicted as 0 for every joint: the L1 of the targets themselves
        (relative depth does not move with the 2D augmentation, so the views need not be drawn)."""
        from benchmarks.pose_model import targets

        zrel = targets(batch["xyz"].float(), batch["K"].float())["zrel"]
        return {"zrel": float(zrel.abs().mean())}



METHOD = Synthetic3D
