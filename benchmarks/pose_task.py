"""The pose model's training step: augment, predict 2.5D, compare with the exact 2.5D targets
(over the joints a batch's ``joint_valid`` marks, where the set gives it).

Fine-tuning (``eval.finetune``) and ``synthetic3d``'s pre-training share it, so that
pre-training on synthetic 3D labels optimises exactly what fine-tuning does.
"""
from __future__ import annotations

import torch
from omegaconf import DictConfig

from benchmarks.augment import Augmenter
from benchmarks.pose_model import PoseNet, pose_loss, targets


class PoseTask:
    """The fine-tuning step: augment, predict 2.5D, compare with the exact 2.5D targets.

    The same step is ``synthetic3d``'s pre-training loss (with that method's augmenter), so
    that pre-training on synthetic 3D labels optimises exactly what fine-tuning does.
    """

    def __init__(self, depth_weight: float, heatmap_weight: float, heatmap_sigma: float,
                 augmenter: Augmenter | None = None, freeze_backbone: bool = False):
        self.depth_weight, self.heatmap_weight = depth_weight, heatmap_weight
        self.heatmap_sigma, self.freeze_backbone = heatmap_sigma, freeze_backbone
        self.augmenter = augmenter

    @classmethod
    def for_finetuning(cls, cfg: DictConfig) -> "PoseTask":
        ft = cfg.finetune
        aug = Augmenter(ft.augment, key="finetune.augment") if ft.augment.enabled else None
        return cls(ft.depth_weight, ft.heatmap_weight, ft.heatmap_sigma, aug, ft.freeze_backbone)

    def __call__(self, model: PoseNet, batch: dict, g: torch.Generator):
        images = batch["image"]
        images = images.float().div_(255) if images.dtype == torch.uint8 else images.float()
        res = images.shape[-1]
        K = batch["K"].float()
        views = self.augmenter(images, g) if self.augmenter is not None else None
        with torch.autocast(K.device.type, enabled=False):         # exact targets under bf16
            if views is not None:
                images = views.images
                K = self.augmenter.affine(views.params, res).float() @ K
            truth = targets(batch["xyz"].float(), K)
        if self.freeze_backbone:
            model.backbone.eval()
        pred = model(images, K)
        return pose_loss(pred, truth, res, self.depth_weight, self.heatmap_weight, self.heatmap_sigma,
                         batch.get("joint_valid"))
