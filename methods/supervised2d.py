"""2D-annotation pre-training: regress the 2D joints of the wild set's hand crops.

The alternative to SSL studied by Choi et al., ICLR 2023: where SSL fell behind ImageNet
classification pre-training, "the 2D annotation-based pre-training improves accuracy on all
benchmarks and shows faster convergence during fine-tuning". Their pre-training head was not in
the sources we read; we choose direct regression from the pooled features, the same form as the
2D part of the fine-tuning pose head, so that the pre-trained backbone learns what fine-tuning
reads and needs no second output path:

- One view per sample from the shared augmenter (geometric and photometric), the keypoints
  mapped by the same transform.
- Targets: uv normalised to [-1, 1] over the crop (``2 u / W - 1``, ``2 v / H - 1``; the
  ``grid_sample`` convention, so the image centre is 0). Joints the augmentation moves
  outside the view are kept (a regressor can point outside the crop); NaN joints (not
  labelled) are masked.
- Head: MLP on the pooled features, Linear -> ReLU -> Linear to 21 x 2 (``head_hidden`` 0:
  one linear layer). Loss: L1 averaged over the labelled coordinates.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from benchmarks.config import MethodConfig
from benchmarks.errors import UserError
from methods.base import Method

if TYPE_CHECKING:
    import torch
    from torch import Tensor, nn

N_JOINTS = 21


@dataclass
class Supervised2DConfig(MethodConfig):
    name: str = "supervised2d"
    head_hidden: int = 512


def normalise_uv(uv: Tensor, size: tuple[int, int]) -> Tensor:
    """Pixels (x right, y down) of an image of ``size`` (W, H) -> [-1, 1] on each axis."""
    width, height = size
    return uv * uv.new_tensor([2.0 / width, 2.0 / height]) - 1.0


def keypoint_l1(pred: Tensor, target: Tensor) -> Tensor:
    """Mean absolute error over the finite entries of ``target`` (both (B, K, 2))."""
    import torch

    labelled = target.isfinite()
    if not labelled.any():
        return pred.sum() * 0.0
    return (pred.float() - torch.nan_to_num(target.float())).abs()[labelled].mean()


class Supervised2D(Method):
    summary = "2D keypoint regression (L1) on the wild set's labels, augmented views"
    citation = "Choi et al., ICLR 2023 (2D-annotation pre-training)"
    inputs = ("images", "keypoints2d")
    passes_per_sample = 1
    Config = Supervised2DConfig

    @classmethod
    def settle(cls, cfg: Supervised2DConfig, run=None) -> None:
        if cfg.head_hidden < 0:
            raise UserError(f"method.head_hidden must be >= 0, 0 for a linear head "
                            f"(got {cfg.head_hidden})")

    def __init__(self, cfg: Supervised2DConfig, backbone: nn.Module, feat_dim: int,
                 augmenter=None):
        from torch import nn

        super().__init__(cfg, backbone, feat_dim, augmenter)
        out = N_JOINTS * 2
        self.head = (nn.Sequential(nn.Linear(feat_dim, cfg.head_hidden), nn.ReLU(),
                                   nn.Linear(cfg.head_hidden, out))
                     if cfg.head_hidden > 0 else nn.Linear(feat_dim, out))

    def predict(self, images: Tensor) -> Tensor:
        """Normalised uv (B, 21, 2) predicted for ``images``."""
        return self.head(self.backbone(images)).view(len(images), N_JOINTS, 2)

    def _targets(self, batch: dict[str, Tensor], generator: torch.Generator):
        images = batch["image"]
        view = self.augmenter(images, generator, keypoints=batch["uv"])
        return view, normalise_uv(view.keypoints, (images.shape[-1], images.shape[-2]))

    def loss(self, batch: dict[str, Tensor], generator: torch.Generator
             ) -> tuple[Tensor, dict[str, float]]:
        view, target = self._targets(batch, generator)
        loss = keypoint_l1(self.predict(view.images), target)
        return loss, {"loss": float(loss.detach())}

    def baseline(self, batch: dict[str, Tensor], generator: torch.Generator) -> dict[str, float]:
        """One 2D pose for every image: each coordinate's median over the batch's views (the
        constant that minimises their L1, fitted on the very frames it is scored on)."""
        import torch

        _, target = self._targets(batch, generator)
        constant = torch.nanmedian(target.flatten(1), dim=0).values.view(1, N_JOINTS, 2)
        return {"loss": float(keypoint_l1(constant.expand_as(target), target))}


METHOD = Supervised2D
