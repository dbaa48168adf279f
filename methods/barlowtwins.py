"""Barlow Twins: redundancy reduction between two views (Zbontar et al., ICML 2021).

Official code: facebookresearch/barlowtwins (``main.py``). Built from lightly's
``BarlowTwinsProjectionHead`` (three linear layers, BN + ReLU after the first two) and
``BarlowTwinsLoss``: the cross-correlation matrix C of the two views' embeddings, each
dimension standardised over the batch, and

    L = sum_i (1 - C_ii)^2 + lambda sum_{i != j} C_ij^2,     lambda = 0.0051 (the paper's)

so identical, perfectly correlated views with decorrelated dimensions give 0, and the
logged ``on_diag`` / ``off_diag`` terms show which part a run has not learned.

Deviations: the paper's projector is 8192-8192-8192 on ResNet-50's 2048-d features, four
times the representation; the default here keeps that ratio for ResNet-18's 512-d features,
2048-2048-2048 (``method.proj_hidden``, ``method.proj_dim``), as ``methods/vicreg.py`` does
(both papers' ablations gain from wider projectors, so this is a named option, not the
paper's size). The paper trains with LARS at batch 2048; the suite's engine pre-trains every
method with Adam (``pretrain.lr``, ``pretrain.weight_decay``) on its warm-up cosine
learning rate.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from benchmarks.config import MethodConfig
from benchmarks.errors import UserError
from methods.base import Method, embedding_std

if TYPE_CHECKING:
    import torch
    from torch import Tensor, nn


@dataclass
class BarlowTwinsConfig(MethodConfig):
    name: str = "barlowtwins"
    proj_hidden: int = 2048
    proj_dim: int = 2048
    redundancy_weight: float = 0.0051    # lambda (paper: 0.0051)


def correlation_terms(z_a: Tensor, z_b: Tensor) -> dict[str, Tensor]:
    """The on- and off-diagonal sums of Barlow Twins' cross-correlation of (B, D) embeddings,
    unweighted; each dimension standardised over the batch as lightly's loss does (a batch
    norm without affine parameters), so ``loss = on_diag + lambda * off_diag``."""
    import torch
    import torch.nn.functional as F

    a, b = (F.batch_norm(z, None, None, training=True) for z in (z_a, z_b))
    c = a.T @ b / len(a)
    on = (torch.diagonal(c) - 1).pow(2).sum()
    off = c.pow(2).sum() - torch.diagonal(c).pow(2).sum()
    return {"on_diag": on, "off_diag": off}


class BarlowTwins(Method):
    summary = "cross-correlation of two views driven to the identity (redundancy reduction)"
    citation = "Zbontar et al., ICML 2021"
    inputs = ("images",)
    passes_per_sample = 2
    Config = BarlowTwinsConfig

    @classmethod
    def settle(cls, cfg: BarlowTwinsConfig, run=None) -> None:
        for key in ("proj_hidden", "proj_dim"):
            if not getattr(cfg, key) > 0:
                raise UserError(f"method.{key} must be > 0 (got {getattr(cfg, key)})")
        if not cfg.redundancy_weight >= 0:
            raise UserError(f"method.redundancy_weight must be >= 0 (got {cfg.redundancy_weight})")

    def __init__(self, cfg: BarlowTwinsConfig, backbone: nn.Module, feat_dim: int,
                 augmenter=None):
        from lightly.loss import BarlowTwinsLoss
        from lightly.models.modules.heads import BarlowTwinsProjectionHead

        super().__init__(cfg, backbone, feat_dim, augmenter)
        if augmenter is None:
            raise ValueError(f"{self.name} needs the shared augmenter")
        self.settle(cfg)
        self.projector = BarlowTwinsProjectionHead(feat_dim, cfg.proj_hidden, cfg.proj_dim)
        self.criterion = BarlowTwinsLoss(lambda_param=cfg.redundancy_weight,
                                         gather_distributed=True)

    def loss(self, batch: dict[str, Tensor], generator: torch.Generator
             ) -> tuple[Tensor, dict[str, float]]:
        import torch

        images = batch["image"]
        views = torch.cat([self.augmenter(images, generator).images for _ in range(2)])
        z_a, z_b = self.projector(self.backbone(views)).float().chunk(2)
        with torch.autocast(z_a.device.type, enabled=False):     # correlations in float32
            loss = self.criterion(z_a, z_b)
            with torch.no_grad():
                logs = {k: float(v) for k, v in correlation_terms(z_a, z_b).items()}
        return loss, {"barlow": float(loss.detach()), **logs,
                      "embedding_std": embedding_std(torch.cat([z_a, z_b]))}


METHOD = BarlowTwins
