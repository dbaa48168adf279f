"""VICReg: variance-invariance-covariance regularisation of two augmented views.

Bardes, Ponce and LeCun, ICLR 2022, with lightly's ``VICRegLoss`` (invariance weight 25,
variance weight 25, covariance weight 1, the paper's values) and ``VICRegProjectionHead``
(three linear layers, BN + ReLU after the first two). The paper's expander has 8192 units per
layer on ResNet-50's 2048-d features, four times the representation; our default keeps that
ratio for ResNet-18's 512-d features: 2048-2048-2048 (``proj_hidden``, ``proj_dim``).
It is also the semantic loss under trajectory regularization (``methods/trajreg.py``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from benchmarks.config import MethodConfig
from benchmarks.errors import UserError
from methods.base import Method, learned_by

if TYPE_CHECKING:
    import torch
    from torch import Tensor, nn


@dataclass
class VICRegConfig(MethodConfig):
    name: str = "vicreg"
    proj_hidden: int = 2048
    proj_dim: int = 2048
    proj_layers: int = 3
    invariance_weight: float = 25.0     # lambda in the paper
    variance_weight: float = 25.0       # mu
    covariance_weight: float = 1.0      # nu


def vicreg_terms(z_a: Tensor, z_b: Tensor, eps: float = 1e-4) -> dict[str, Tensor]:
    """The unweighted invariance and variance terms of two (B, D) embeddings (logged).

    invariance: mean squared difference; variance: mean over dimensions of relu(1 - std),
    averaged over both branches (lightly's definitions, as in the paper). The covariance
    term, quadratic in D, is left to the loss itself.
    """
    from lightly.loss.vicreg_loss import invariance_loss, variance_loss

    return {"invariance": invariance_loss(z_a, z_b),
            "variance": 0.5 * (variance_loss(z_a, eps) + variance_loss(z_b, eps))}


class VICReg(Method):
    summary = "VICReg on two augmented views (invariance, variance, covariance terms)"
    citation = "Bardes et al., ICLR 2022"
    inputs = ("images",)
    passes_per_sample = 2
    Config = VICRegConfig

    SPREAD_VARIANCE = 0.5    # the variance term (mean relu(1 - std)) must end at or below it

    @classmethod
    def learned(cls, cfg: VICRegConfig, block: dict) -> tuple[str, bool]:
        """The default rule on the loss, and the embeddings not collapsing: the unweighted
        variance term ends at ``SPREAD_VARIANCE`` or below (a mean per-dimension std of 0.5 or
        more). A loss that falls on its invariance term alone, variance near 1, has not
        learned VICReg's task."""
        variance = float(block["end"]["variance"])
        return learned_by(cls.objective, block, ((
            f"variance term ends at {cls.SPREAD_VARIANCE} or below (embeddings spread)",
            variance <= cls.SPREAD_VARIANCE),))

    @classmethod
    def settle(cls, cfg: VICRegConfig, run=None) -> None:
        for key in ("proj_hidden", "proj_dim", "proj_layers"):
            if not getattr(cfg, key) > 0:
                raise UserError(f"method.{key} must be > 0 (got {getattr(cfg, key)})")
        for key in ("invariance_weight", "variance_weight", "covariance_weight"):
            if not getattr(cfg, key) >= 0:
                raise UserError(f"method.{key} must be >= 0 (got {getattr(cfg, key)})")

    def __init__(self, cfg: VICRegConfig, backbone: nn.Module, feat_dim: int, augmenter=None):
        from lightly.loss import VICRegLoss
        from lightly.models.modules.heads import VICRegProjectionHead

        super().__init__(cfg, backbone, feat_dim, augmenter)
        self.settle(cfg)
        self.projector = VICRegProjectionHead(feat_dim, cfg.proj_hidden, cfg.proj_dim,
                                              cfg.proj_layers)
        self.criterion = VICRegLoss(lambda_param=cfg.invariance_weight,
                                    mu_param=cfg.variance_weight,
                                    nu_param=cfg.covariance_weight, gather_distributed=True)

    def vicreg_loss(self, images: Tensor, generator: torch.Generator
                    ) -> tuple[Tensor, dict[str, float]]:
        """VICReg on two augmented views of ``images``: the loss and its logged terms."""
        import torch

        b = len(images)
        views = torch.cat([self.augmenter(images, generator).images for _ in range(2)])
        z = self.projector(self.backbone(views)).float()
        z_a, z_b = z[:b], z[b:]
        with torch.autocast(z.device.type, enabled=False):     # covariance in float32
            loss = self.criterion(z_a, z_b)
        with torch.no_grad():
            logs = {name: float(v) for name, v in vicreg_terms(z_a, z_b).items()}
        return loss, {"vicreg": float(loss.detach()), **logs}

    def loss(self, batch: dict[str, Tensor], generator: torch.Generator
             ) -> tuple[Tensor, dict[str, float]]:
        loss, logs = self.vicreg_loss(batch["image"], generator)
        return loss, {"loss": logs.pop("vicreg"), **logs}


METHOD = VICReg
