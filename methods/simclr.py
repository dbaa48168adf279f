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

``method.weighting=linear`` is the paper's SimCLR_w of SiMHand (Lin, Ohkawa et al., ICLR
2025): NT-Xent with SiMHand's parameter-free adaptive weights of positives and negatives,
from the 2D keypoints mapped into each view (``methods/similarity_weights.py``). The
pre-training items carry ``uv`` already (``benchmarks/data/sources.py``), so no other input
is needed; a source without keypoints (YouTube3DHands) is refused when the config is
composed. The default ``none`` is the plain NT-Xent above.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from benchmarks.config import MethodConfig
from benchmarks.errors import UserError
from methods.base import Method
from benchmarks.config import require_sources
from methods.similarity_weights import check_weighting

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
    weighting: str = "none"         # "linear": SiMHand's adaptive pair weights (SimCLR_w)


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
    def chance(cls, cfg: SimCLRConfig, batch_size: int) -> float:
        """Every similarity equal: log(2B - 1), weighted or not (the weights scale similarities
        that are then all zero)."""
        import math

        return math.log(2 * batch_size - 1)

    @classmethod
    def settle(cls, cfg: SimCLRConfig, run=None) -> None:
        for key in ("hidden_dim", "out_dim", "temperature"):
            if not getattr(cfg, key) > 0:
                raise UserError(f"method.{key} must be > 0 (got {getattr(cfg, key)})")
        check_weighting(cfg)
        if cfg.weighting != "none" and run is not None:
            require_sources(cls.name, "keypoints2d", run.pretrain.sources,
                            f" for method.weighting={cfg.weighting}")

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
        images = batch["image"]
        return self.two_views(images, images, batch.get("uv"), batch.get("uv"), generator)

    def two_views(self, first: Tensor, second: Tensor, uv1: Tensor | None, uv2: Tensor | None,
                  generator: torch.Generator) -> tuple[Tensor, dict[str, float]]:
        """Contrast a view of each ``first`` image with a view of its ``second`` (the same
        images for SimCLR and PeCLR; the mined partners for SiMHand). ``uv1``/``uv2`` (B, 21, 2)
        are read only with weighting, mapped into the views for the weights."""
        import torch

        from methods.similarity_weights import WeightedNTXent

        weighted = self.cfg.weighting != "none"
        if weighted and (uv1 is None or uv2 is None):
            raise ValueError(f"{self.name} with method.weighting={self.cfg.weighting} needs the "
                             f"batch's 2D keypoints (uv)")
        view1 = self.augmenter(first, generator, keypoints=uv1 if weighted else None)
        view2 = self.augmenter(second, generator, keypoints=uv2 if weighted else None)
        z1, z2 = self.head(self.backbone(torch.cat([view1.images, view2.images]))).chunk(2)
        if not weighted:
            loss = self.contrast(z1, z2, view1.params, view2.params)
            return loss, {"ntxent": float(loss.detach())}
        criterion = WeightedNTXent(view1.keypoints, view2.keypoints, self.cfg.temperature)
        loss = self.contrast(z1, z2, view1.params, view2.params, criterion)
        return loss, {"ntxent": float(loss.detach()),
                      "pos_weight": float(criterion.pos_weights.mean())}

    def contrast(self, z1: Tensor, z2: Tensor, params1: dict[str, Tensor],
                 params2: dict[str, Tensor], criterion=None) -> Tensor:
        """The contrastive loss of two views' projections (B, out_dim) by ``criterion``
        (default: NT-Xent); SimCLR ignores params."""
        return (self.criterion if criterion is None else criterion)(z1, z2)


METHOD = SimCLR
