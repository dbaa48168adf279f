"""BYOL: bootstrap your own latent (Grill et al., NeurIPS 2020).

Official code: google-deepmind/deepmind-research, ``byol/``. Built from lightly's parts
(``BYOLProjectionHead``, ``BYOLPredictionHead``, ``NegativeCosineSimilarity``,
``update_momentum``), as lightly's BYOL example is:

- an online network (backbone, projector, predictor) and a target network (backbone,
  projector), the target an exponential moving average of the online one
  (``methods/momentum.py``), with momentum rising from tau_base = 0.996 to 1 on the paper's
  cosine schedule;
- two views per image from the shared augmenter; the online prediction of each view regresses
  the target projection of the other, symmetrised:
  ``L = 1/2 [ -cos(q(v1), z'(v2)) - cos(q(v2), z'(v1)) ]`` (lightly's negative cosine; the
  paper's ``2 - 2 cos`` is the same up to a constant and a factor 2), so chance is about 0
  and a perfect prediction -1;
- projector and predictor ``Linear(4096) -> BN -> ReLU -> Linear(256)`` (the paper's sizes,
  ``method.hidden_dim`` / ``method.out_dim``).

Deviations: the paper trains with LARS at batch 4096 (lr 0.2 x batch / 256, weight decay
1.5e-6); the suite's engine pre-trains every method with Adam (``pretrain.lr``,
``pretrain.weight_decay``) on its warm-up cosine learning rate. tau_base stays the paper's 0.996, which the
paper tuned for batch 4096; at the small batches of the cpu profile a run may lower it
(``method.momentum_base``; the paper's ablation has 0.99 as close to as good).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from benchmarks.config import MethodConfig
from benchmarks.errors import UserError
from methods.base import Method, embedding_std
from methods.momentum import MomentumTeacher

if TYPE_CHECKING:
    import torch
    from torch import Tensor, nn


@dataclass
class BYOLConfig(MethodConfig):
    name: str = "byol"
    hidden_dim: int = 4096          # projector and predictor hidden width (paper: 4096)
    out_dim: int = 256              # projection size (paper: 256)
    momentum_base: float = 0.996    # tau_base (paper: 0.996), cosine to 1


def check_momentum(value: float) -> None:
    if not 0 <= value < 1:
        raise UserError(f"method.momentum_base must be in [0, 1) (got {value})")


class BYOL(MomentumTeacher, Method):
    summary = "online network predicts a momentum target's projection of the other view"
    citation = "Grill et al., NeurIPS 2020"
    inputs = ("images",)
    passes_per_sample = 4           # online and target, two views each (the target's without
                                    # a backward pass; the FLOPs are measured)
    Config = BYOLConfig

    @classmethod
    def chance(cls, cfg: BYOLConfig, batch_size: int) -> float:
        return 0.0                  # predictions orthogonal to their targets: cosine 0

    @classmethod
    def settle(cls, cfg: BYOLConfig, run=None) -> None:
        for key in ("hidden_dim", "out_dim"):
            if not getattr(cfg, key) > 0:
                raise UserError(f"method.{key} must be > 0 (got {getattr(cfg, key)})")
        check_momentum(cfg.momentum_base)

    def __init__(self, cfg: BYOLConfig, backbone: nn.Module, feat_dim: int, augmenter=None):
        from lightly.loss import NegativeCosineSimilarity
        from lightly.models.modules.heads import BYOLPredictionHead, BYOLProjectionHead

        super().__init__(cfg, backbone, feat_dim, augmenter)
        if augmenter is None:
            raise ValueError(f"{self.name} needs the shared augmenter")
        self.settle(cfg)
        self.momentum_base = cfg.momentum_base
        self.projector = BYOLProjectionHead(feat_dim, cfg.hidden_dim, cfg.out_dim)
        self.predictor = BYOLPredictionHead(cfg.out_dim, cfg.hidden_dim, cfg.out_dim)
        self.target_backbone, self.target_projector = self.init_teacher(backbone, self.projector)
        self.criterion = NegativeCosineSimilarity()

    def loss(self, batch: dict[str, Tensor], generator: torch.Generator
             ) -> tuple[Tensor, dict[str, float]]:
        import torch

        images = batch["image"]
        views = torch.cat([self.augmenter(images, generator).images for _ in range(2)])
        z = self.projector(self.backbone(views))
        p1, p2 = self.predictor(z).chunk(2)
        with torch.no_grad():
            t1, t2 = self.target_projector(self.target_backbone(views)).chunk(2)
        loss = 0.5 * (self.criterion(p1, t2) + self.criterion(p2, t1))
        return loss, {"neg_cosine": float(loss.detach()), "embedding_std": embedding_std(z)}


METHOD = BYOL
