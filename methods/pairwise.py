"""The relation ("pairwise") objective: regress how two views of one image are related.

Dahiya, Spurr and Hilliges, "Exploring self-supervised learning techniques for hand pose
estimation", NeurIPS 2020 Pre-registration Workshop (PMLR 148). Where contrastive losses
make features invariant to the augmentation, this objective asks the features to keep it
(equivariance): two views go through the shared backbone, their pooled encodings are
concatenated, ``[h1, h2]``, and one head per transformation predicts the relation
``view 2 -> view 1``:

=============  ====  ==========================================================
head           size  target
=============  ====  ==========================================================
rotation       2     (sin, cos) of ``angle1 - angle2``
translation    2     where view 2's centre lands in view 1, minus the centre,
                     as a fraction of (W, H): ``t1 - (s1/s2) R(angle1 - angle2) t2``
scale          1     ``log(scale1 / scale2)``
color          4     differences of brightness, contrast, saturation factors and
                     hue shift (turns), view 1 minus view 2
=============  ====  ==========================================================

Each head is ``Linear(2F, 1024) -> BatchNorm1d -> ReLU -> Linear(1024, k, no bias)``,
as in the authors' code; each is trained with L1, and the heads are combined by learned
homoscedastic-uncertainty weights (Kendall et al., CVPR 2018), one ``s_k`` per head,
starting at 0:  ``L = sum_k L_k exp(-s_k) + s_k``.

Deliberate differences from the authors' code: the rotation target is (sin, cos) of the
angle difference instead of ``(angle1 - angle2) mod 360`` in degrees, which jumps from
360 to 0 across zero; the translation target is the exact relative translation of the
two similarity transforms (it reduces to the authors' ``t1 - t2`` when neither view is
rotated or zoomed); the zoom is an explicit log-ratio rather than a ratio of crop
margins. The blur relation has no head, as in the original. ``method.heads`` selects
a subset for ablations.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from benchmarks.config import MethodConfig
from benchmarks.errors import UserError
from methods.base import Method, learned_by
from methods.simclr import projection_head

if TYPE_CHECKING:
    import torch
    from torch import Tensor, nn

HEADS: dict[str, int] = {"rotation": 2, "translation": 2, "scale": 1, "color": 4}


@dataclass
class PairwiseConfig(MethodConfig):
    name: str = "pairwise"
    hidden_dim: int = 1024          # head hidden width (authors: 1024)
    heads: list[str] = field(default_factory=lambda: list(HEADS))


def relative_targets(params1: dict[str, Tensor], params2: dict[str, Tensor]) -> dict[str, Tensor]:
    """The relation view 2 -> view 1 of two augmenter draws, per head, each (B, k)."""
    import torch

    from benchmarks.augment import Augmenter

    d_angle = params1["angle"] - params2["angle"]
    rel = Augmenter.affine(params1) @ torch.linalg.inv(Augmenter.affine(params2))
    size = params1["size"].to(rel.dtype)
    centre = size / 2
    moved = (rel[:, :2, :2] @ centre.unsqueeze(-1)).squeeze(-1) + rel[:, :2, 2]
    return {
        "rotation": torch.stack([torch.sin(d_angle), torch.cos(d_angle)], dim=1),
        "translation": (moved - centre) / size,
        "scale": (torch.log(params1["scale"]) - torch.log(params2["scale"])).unsqueeze(1),
        "color": params1["color"] - params2["color"],
    }


def relation_loss(pred: dict[str, Tensor], target: dict[str, Tensor], log_vars: Tensor
                  ) -> tuple[Tensor, dict[str, Tensor]]:
    """``sum_k L1_k exp(-s_k) + s_k`` over the heads in ``pred`` (``log_vars[k]`` = s_k).

    Returns the total and the unweighted mean L1 of each head.
    """
    import torch

    per_head = {k: (pred[k] - target[k]).abs().mean() for k in pred}
    total = sum(l1 * torch.exp(-s) + s for l1, s in zip(per_head.values(), log_vars))
    return total, per_head


class Pairwise(Method):
    summary = ("regress the relative rotation, shift, zoom and colour of two views "
                              "(equivariance)")
    citation = "Dahiya et al., NeurIPS 2020 Pre-registration Workshop (PMLR 148)"
    inputs = ("images",)
    passes_per_sample = 2
    Config = PairwiseConfig

    @classmethod
    def learned(cls, cfg: PairwiseConfig, block: dict) -> tuple[str, bool]:
        """The default rule on the heads' unweighted L1 errors, summed (``l1``): the loss itself
        also falls as the learned log-variances go negative, which is not learning the task.
        A fresh head predicts about 0, the image-blind guess for differences of two views'
        symmetric draws, so the start is the reference."""
        keys = [f"l1_{h}" for h in cfg.heads]
        summed = {end: {"l1": sum(float(block[end][k]) for k in keys)} for end in ("start", "end")}
        return learned_by("l1", summed)

    @classmethod
    def settle(cls, cfg: PairwiseConfig, run=None) -> None:
        heads = list(cfg.heads)
        unknown = [h for h in heads if h not in HEADS]
        if unknown or not heads or len(set(heads)) != len(heads):
            raise UserError(f"method.heads must be distinct names from: {', '.join(HEADS)} "
                            f"(got {heads})")
        if cfg.hidden_dim <= 0:
            raise UserError(f"method.hidden_dim must be > 0 (got {cfg.hidden_dim})")

    def __init__(self, cfg: PairwiseConfig, backbone: nn.Module, feat_dim: int, augmenter=None):
        import torch
        from torch import nn

        super().__init__(cfg, backbone, feat_dim, augmenter)
        if augmenter is None:
            raise ValueError("pairwise needs the shared augmenter")
        self.settle(cfg)
        heads = list(cfg.heads)
        self.heads = nn.ModuleDict({h: projection_head(2 * feat_dim, cfg.hidden_dim, HEADS[h])
                                    for h in heads})
        self.log_vars = nn.Parameter(torch.zeros(len(heads)))

    def loss(self, batch: dict[str, Tensor], generator: torch.Generator
             ) -> tuple[Tensor, dict[str, float]]:
        import torch

        images = batch["image"]
        view1 = self.augmenter(images, generator)
        view2 = self.augmenter(images, generator)
        h1, h2 = self.backbone(torch.cat([view1.images, view2.images])).chunk(2)
        pair = torch.cat([h1, h2], dim=1)
        pred = {k: head(pair) for k, head in self.heads.items()}
        target = relative_targets(view1.params, view2.params)
        loss, per_head = relation_loss(pred, target, self.log_vars)
        logs = {f"l1_{k}": float(v.detach()) for k, v in per_head.items()}
        logs.update({f"s_{k}": float(s.detach()) for k, s in zip(self.heads, self.log_vars)})
        return loss, logs


METHOD = Pairwise
