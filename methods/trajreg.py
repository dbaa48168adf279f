"""Trajectory regularization: VICReg plus a geodesic constraint on viewpoint triplets.

Wang, Chen and Yu, "Pose-Aware Self-Supervised Learning with Viewpoint Trajectory
Regularization", ECCV 2024. Each sample is a triplet of images (left, centre, right) of one
hand from three adjacent viewpoints of a smooth trajectory. The loss is

    L = L_VICReg(z_T1, z_T2) + lambda * L_traj(z_L, z_C, z_R)

- L_VICReg on two augmented views of the *centre* image, through the VICReg projector
  (``methods/vicreg.py``); the triplets themselves are not augmented, so that their
  geometry is kept.
- L_traj on the *pooled backbone features* of the three un-augmented images (not the
  projector output): each is normalised onto the unit sphere; the steps v1 = z_C - z_L and
  v2 = z_R - z_C are projected onto the tangent plane at z_C, u = v - (v . z_C) z_C, and
  L_traj = -cos(u1, u2), averaged over the batch. It is -1 when the three points lie on a
  great circle in order (a locally geodesic trajectory) and +1 for a step that turns back.
- lambda (``traj_weight``): the paper's value was not in the sources we could read; the
  paper reports results robust to lambda (about 1 % change). Default 1.0: the trajectory
  term is bounded in [-1, 1] and enters unscaled, next to VICReg's weighted terms.

Backbone passes per sample: 5 (two views of the centre image + the three triplet images).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from benchmarks.errors import UserError
from methods.vicreg import VICReg, VICRegConfig

if TYPE_CHECKING:
    import torch
    from torch import Tensor


@dataclass
class TrajRegConfig(VICRegConfig):
    name: str = "trajreg"
    traj_weight: float = 1.0


def trajectory_loss(z_left: Tensor, z_centre: Tensor, z_right: Tensor) -> Tensor:
    """-cos of the two steps of a triplet in the tangent plane at the centre, batch mean.

    Inputs (B, D), any scale (each row is normalised onto the unit sphere first). A
    degenerate step (zero tangent component) gives a cosine of 0. Computed in float32.
    """
    import torch.nn.functional as F

    zl, zc, zr = (F.normalize(z.float(), dim=1) for z in (z_left, z_centre, z_right))

    def tangent(v: Tensor) -> Tensor:
        return v - (v * zc).sum(1, keepdim=True) * zc

    return -F.cosine_similarity(tangent(zc - zl), tangent(zr - zc), dim=1).mean()


class TrajReg(VICReg):
    summary = "VICReg on the centre view + trajectory (geodesic) regularization of triplets"
    citation = "Wang et al., ECCV 2024"
    inputs = ("triplets",)
    passes_per_sample = 5
    Config = TrajRegConfig

    @classmethod
    def settle(cls, cfg: TrajRegConfig, run=None) -> None:
        super().settle(cfg, run)
        if not cfg.traj_weight >= 0:
            raise UserError(f"method.traj_weight must be >= 0 (got {cfg.traj_weight})")

    def loss(self, batch: dict[str, Tensor], generator: torch.Generator
             ) -> tuple[Tensor, dict[str, float]]:
        triplet = batch["triplet"]                                     # (B, 3, 3, H, W)
        b = len(triplet)
        semantic, logs = self.vicreg_loss(triplet[:, 1], generator)
        z = self.backbone(triplet.flatten(0, 1)).view(b, 3, -1)
        traj = trajectory_loss(z[:, 0], z[:, 1], z[:, 2])
        loss = semantic + self.cfg.traj_weight * traj
        return loss, {"loss": float(loss.detach()), **logs, "traj": float(traj.detach())}


METHOD = TrajReg
