"""MoCo v3: momentum contrast without a queue (Chen, Xie and He, ICCV 2021).

Official code: facebookresearch/moco-v3 (``moco/builder.py``). Built as the official
builder is, from lightly's parts (``ProjectionHead`` blocks, ``update_momentum``):

- a base encoder (backbone, projector, predictor) and a momentum encoder (backbone,
  projector), an exponential moving average of the base one (``methods/momentum.py``) with
  momentum rising from m = 0.99 to 1 on the cosine schedule (``--moco-m 0.99 --moco-m-cos``);
- MLPs as ``_build_mlp``: hidden layers ``Linear(4096, no bias) -> BN -> ReLU``, a last
  ``Linear(256, no bias)`` followed by a BatchNorm without affine parameters. The projector
  has 2 layers on a ResNet and 3 on a ViT; the predictor has 2, its last BN only on a ViT;
- the symmetrised InfoNCE of the paper, with the other images of the batch as negatives
  (keys gathered across ranks under DDP):
  ``ctr(q, k) = CE(q k^T / tau, identity) * 2 tau`` on L2-normalised vectors and
  ``L = ctr(q1, k2) + ctr(q2, k1)``. Chance (every similarity equal) is
  ``4 tau log B``;
- temperature 1.0 on a ResNet and 0.2 on a ViT (the paper's two recipes), unless
  ``method.temperature`` is set; likewise the projector's depth and the predictor's last BN
  follow the backbone family (``RECIPE``) unless set.

Deviations: the paper trains with LARS (ResNet) or AdamW (ViT) at batch 4096; the suite's
engine pre-trains every method with Adam (``pretrain.lr``, ``pretrain.weight_decay``) on its
warm-up cosine learning rate. The ViT recipe's frozen random patch projection is not
applied.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

from benchmarks.config import MethodConfig
from benchmarks.errors import UserError
from methods.base import Method
from methods.byol import check_momentum
from methods.momentum import MomentumTeacher

if TYPE_CHECKING:
    import torch
    from torch import Tensor, nn

# The paper's two recipes, by backbone family: temperature, projector layers, last BN of
# the predictor. ``settle`` fills whichever of them the config leaves unset.
RECIPE = {"resnet": {"temperature": 1.0, "projector_layers": 2, "predictor_last_bn": False},
          "vit": {"temperature": 0.2, "projector_layers": 3, "predictor_last_bn": True}}


@dataclass
class MoCoV3Config(MethodConfig):
    name: str = "mocov3"
    hidden_dim: int = 4096              # mlp_dim (paper: 4096)
    out_dim: int = 256                  # dim (paper: 256)
    temperature: Optional[float] = None   # None: the paper's recipe for the backbone (1.0 / 0.2)
    projector_layers: Optional[int] = None     # None: the recipe's (2 ResNet / 3 ViT)
    predictor_last_bn: Optional[bool] = None   # None: the recipe's (ResNet no / ViT yes)
    momentum_base: float = 0.99         # m (paper: 0.99), cosine to 1


def mlp(layers: int, in_dim: int, hidden_dim: int, out_dim: int, last_bn: bool = True):
    """The official ``_build_mlp``: BN + ReLU after each hidden layer, no biases, and an
    affine-free BN after the last layer when ``last_bn``."""
    from lightly.models.modules.heads import ProjectionHead
    from torch import nn

    blocks = []
    for i in range(layers):
        d_in = in_dim if i == 0 else hidden_dim
        if i < layers - 1:
            blocks.append((d_in, hidden_dim, nn.BatchNorm1d(hidden_dim), nn.ReLU(), False))
        else:
            bn = nn.BatchNorm1d(out_dim, affine=False) if last_bn else None
            blocks.append((d_in, out_dim, bn, None, False))
    return ProjectionHead(blocks)


def infonce(q: Tensor, k: Tensor, temperature: float) -> Tensor:
    """MoCo v3's ``contrastive_loss``: each query against every key of the (global) batch,
    its own key the positive, scaled by 2 tau."""
    import torch
    import torch.distributed as dist
    import torch.nn.functional as F

    q, k = F.normalize(q.float(), dim=1), F.normalize(k.float(), dim=1)
    offset = 0
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        from lightly.models.utils import concat_all_gather

        offset = len(q) * dist.get_rank()
        k = concat_all_gather(k.contiguous())
    logits = q @ k.T / temperature
    labels = torch.arange(len(q), device=q.device) + offset
    return F.cross_entropy(logits, labels) * (2 * temperature)


class MoCoV3(MomentumTeacher, Method):
    summary = "symmetrised InfoNCE of a predictor against a momentum encoder's keys"
    citation = "Chen et al., ICCV 2021"
    inputs = ("images",)
    passes_per_sample = 4           # base and momentum encoder, two views each (the momentum
                                    # encoder's without a backward pass; the FLOPs are measured)
    Config = MoCoV3Config

    @classmethod
    def chance(cls, cfg: MoCoV3Config, batch_size: int) -> float | None:
        """Every similarity equal: 2 tau log B per direction."""
        import math

        return None if cfg.temperature is None else 4 * cfg.temperature * math.log(batch_size)

    @classmethod
    def settle(cls, cfg: MoCoV3Config, run=None) -> None:
        from benchmarks.config import backbone_family

        for key in ("hidden_dim", "out_dim"):
            if not getattr(cfg, key) > 0:
                raise UserError(f"method.{key} must be > 0 (got {getattr(cfg, key)})")
        check_momentum(cfg.momentum_base)
        recipe = RECIPE[backbone_family(run.backbone) if run is not None else "resnet"]
        for key, value in recipe.items():
            if getattr(cfg, key) is None:
                setattr(cfg, key, value)
        if not cfg.temperature > 0:
            raise UserError(f"method.temperature must be > 0 (got {cfg.temperature})")
        if not cfg.projector_layers >= 1:
            raise UserError(f"method.projector_layers must be >= 1 (got {cfg.projector_layers})")

    def __init__(self, cfg: MoCoV3Config, backbone: nn.Module, feat_dim: int, augmenter=None):
        super().__init__(cfg, backbone, feat_dim, augmenter)
        if augmenter is None:
            raise ValueError(f"{self.name} needs the shared augmenter")
        if cfg.temperature is None or cfg.projector_layers is None or cfg.predictor_last_bn is None:
            self.settle(cfg)                   # built outside a run: the ResNet recipe
        self.temperature = cfg.temperature
        self.momentum_base = cfg.momentum_base
        self.projector = mlp(cfg.projector_layers, feat_dim, cfg.hidden_dim, cfg.out_dim)
        self.predictor = mlp(2, cfg.out_dim, cfg.hidden_dim, cfg.out_dim,
                             last_bn=cfg.predictor_last_bn)
        self.momentum_backbone, self.momentum_projector = self.init_teacher(backbone,
                                                                            self.projector)

    def loss(self, batch: dict[str, Tensor], generator: torch.Generator
             ) -> tuple[Tensor, dict[str, float]]:
        import torch

        images = batch["image"]
        views = torch.cat([self.augmenter(images, generator).images for _ in range(2)])
        q1, q2 = self.predictor(self.projector(self.backbone(views))).chunk(2)
        with torch.no_grad():
            k1, k2 = self.momentum_projector(self.momentum_backbone(views)).chunk(2)
        loss = infonce(q1, k2, self.temperature) + infonce(q2, k1, self.temperature)
        return loss, {"infonce": float(loss.detach())}


METHOD = MoCoV3
