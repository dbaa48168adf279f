"""SimCLR: NT-Xent between two augmented views of each image (Chen et al., ICML 2020).

Configured as the contrastive baseline of PeCLR (Spurr et al., ICCV 2021), so that SimCLR
and PeCLR differ in one switch only, the latent inverse transform:

- two views per image from the shared augmenter, each with its own parameters;
- one backbone pass over both views together (BatchNorm sees the 2B images at once);
- projection head ``Linear(feat, 512) -> BatchNorm1d -> ReLU -> Linear(512, 128, no bias)``
  (PeCLR's hybrid2 configuration; sizes are ``method.hidden_dim`` / ``method.out_dim``);
- lightly's ``NTXentLoss`` at temperature 0.5: for each of the 2B embeddings, cross-entropy
  of its positive against the other 2B - 1 (positive included, itself excluded), on
  L2-normalised projections; gathered across ranks under DDP.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from benchmarks.config import MethodConfig
from benchmarks.errors import UserError
from methods.base import Method

if TYPE_CHECKING:
    import torch
    from lightly.models.modules.heads import ProjectionHead
    from torch import Tensor, nn


@dataclass
class SimCLRConfig(MethodConfig):
    name: str = "simclr"
    hidden_dim: int = 512           # projection head hidden width (PeCLR: 512)
    out_dim: int = 128              # projection size (PeCLR: 128)
    temperature: float = 0.5        # NT-Xent temperature (SimCLR / PeCLR: 0.5)


def projection_head(in_dim: int, hidden_dim: int, out_dim: int) -> ProjectionHead:
    """``Linear(in, hidden, bias) -> BN -> ReLU -> Linear(hidden, out, bias=False)``.

    The head of the PeCLR and relation-model code; lightly's ``SimCLRProjectionHead``
    differs (no bias before BN, a BN after the output layer), hence the generic head.
    """
    from lightly.models.modules.heads import ProjectionHead
    from torch import nn

    return ProjectionHead([
        (in_dim, hidden_dim, nn.BatchNorm1d(hidden_dim), nn.ReLU(), True),
        (hidden_dim, out_dim, None, None, False),
    ])


class SimCLR(Method):
    summary = "NT-Xent between two augmented views (invariance)"
    citation = "Chen et al., ICML 2020"
    inputs = ("images",)
    passes_per_sample = 2
    Config = SimCLRConfig

    @classmethod
    def settle(cls, cfg: SimCLRConfig, run=None) -> None:
        for key in ("hidden_dim", "out_dim", "temperature"):
            if not getattr(cfg, key) > 0:
                raise UserError(f"method.{key} must be > 0 (got {getattr(cfg, key)})")

    def __init__(self, cfg: SimCLRConfig, backbone: nn.Module, feat_dim: int, augmenter=None):
        from lightly.loss import NTXentLoss

        super().__init__(cfg, backbone, feat_dim, augmenter)
        if augmenter is None:
            raise ValueError(f"{self.name} needs the shared augmenter")
        self.settle(cfg)
        self.head = projection_head(feat_dim, cfg.hidden_dim, cfg.out_dim)
        self.criterion = NTXentLoss(temperature=cfg.temperature, gather_distributed=True)

    def loss(self, batch: dict[str, Tensor], generator: torch.Generator
             ) -> tuple[Tensor, dict[str, float]]:
        import torch

        images = batch["image"]
        view1 = self.augmenter(images, generator)
        view2 = self.augmenter(images, generator)
        z1, z2 = self.head(self.backbone(torch.cat([view1.images, view2.images]))).chunk(2)
        loss = self.contrast(z1, z2, view1.params, view2.params)
        return loss, {"ntxent": float(loss.detach())}

    def contrast(self, z1: Tensor, z2: Tensor, params1: dict[str, Tensor],
                 params2: dict[str, Tensor]) -> Tensor:
        """The contrastive loss of two views' projections (B, out_dim); SimCLR ignores params."""
        return self.criterion(z1, z2)


METHOD = SimCLR
