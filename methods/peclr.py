"""PeCLR: pose-equivariant contrastive learning (Spurr et al., ICCV 2021).

SimCLR (``methods/simclr.py``: same views, head, and NT-Xent at temperature 0.5) with one
change: before the contrast, each view's geometric transform is undone in latent space,
so that the projection must move *with* the image (equivariance) rather than ignore it.

The latent map
--------------
The projection z (B, n) is L2-normalised and read as n/2 points in the plane,
``z.reshape(B, n/2, 2)`` (consecutive entries are (x, y)). A view made by the augmenter
with angle a, scale s and translation t (a fraction of the image size; see
``benchmarks/augment.py`` for the convention ``p' = c + s R(a)(p - c) + t * size``)
corresponds to the forward latent map

    y  = m + s R(a) (x - m)              rotate and scale about the centroid m
    x' = y + t * range(y)                shift, range = per-axis max - min of the points

with the same matrix R(a) as the image. ``range`` plays the image size: the view's own
extent, as the crop's size is the view's extent in the image. The inverse, applied to
each view with its own parameters, is exact:

    y = x' - t * range(x')               (a shift leaves the range unchanged)
    x = m + R(-a) (y - m) / s            m = centroid of y (= centroid of x)

Centroid and range are detached, as in the official code. After the inverse each view is
flattened, renormalised and contrasted with NT-Xent. Every step is positively homogeneous,
so the first normalisation changes nothing but the numerics.

Differences from the official code (``Hybrid2Model`` in dahiyaaneesh/peclr)
--------------------------------------------------------------------------
- Translation units. The official step adds ``jitter / 128 * range``, where the jitter is
  measured in pixels of the *original* image and 128 is the *resized* crop size, so the
  latent shift depends on the source image's resolution and the crop's zoom. Here the
  translation is a fraction of the view's size and multiplies the latent range of that
  same view: one unit throughout.
- Order. As in the official code, the inverse shifts first and then rotates about the
  (detached) centroid; with the forward map above this order is an exact inverse.
- Scale. The official code does not undo the crop's zoom (``random_crop``); the
  augmenter here zooms explicitly, so its inverse divides by s about the centroid.

``method.weighting=linear`` is SiMHand's PeCLR_w (Lin, Ohkawa et al., ICLR 2025): the
NT-Xent after the latent inverse takes SiMHand's adaptive weights from the views' 2D
keypoints (``methods/simclr.py``, ``methods/similarity_weights.py``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from benchmarks.errors import UserError
from methods.simclr import SimCLR, SimCLRConfig

if TYPE_CHECKING:
    from torch import Tensor, nn


@dataclass
class PeCLRConfig(SimCLRConfig):
    name: str = "peclr"


def _extent(points: Tensor) -> Tensor:
    """Per-axis range (max - min) of each cloud (B, K, 2) -> (B, 1, 2), detached."""
    return (points.amax(dim=1, keepdim=True) - points.amin(dim=1, keepdim=True)).detach()


def latent_forward(points: Tensor, params: dict[str, Tensor]) -> Tensor:
    """Move latent points (B, K, 2) as the augmenter moved the image (``params``)."""
    from benchmarks.augment import rotation_matrix

    angle, scale = params["angle"].to(points.dtype), params["scale"].to(points.dtype)
    rot = rotation_matrix(angle) * scale[:, None, None]
    m = points.mean(dim=1, keepdim=True).detach()
    y = m + (points - m) @ rot.transpose(1, 2)
    return y + params["translate"].to(points.dtype)[:, None] * _extent(y)


def latent_inverse(points: Tensor, params: dict[str, Tensor]) -> Tensor:
    """Undo ``latent_forward``: the latent points (B, K, 2) of the untransformed image."""
    from benchmarks.augment import rotation_matrix

    y = points - params["translate"].to(points.dtype)[:, None] * _extent(points)
    m = y.mean(dim=1, keepdim=True).detach()
    angle, scale = params["angle"].to(points.dtype), params["scale"].to(points.dtype)
    rot = rotation_matrix(-angle) / scale[:, None, None]
    return m + (y - m) @ rot.transpose(1, 2)


def to_points(z: Tensor) -> Tensor:
    """(B, n) projections -> (B, n/2, 2) L2-normalised planar points."""
    import torch.nn.functional as F

    return F.normalize(z, dim=1).reshape(z.shape[0], -1, 2)


def equivariant_ntxent(z1: Tensor, z2: Tensor, params1: dict[str, Tensor],
                       params2: dict[str, Tensor], criterion: nn.Module) -> Tensor:
    """PeCLR's loss: undo each view's geometry in latent space, then ``criterion`` (NT-Xent,
    or any ``(x1, x2) -> loss`` that normalises its inputs, e.g. SiMHand's weighted one)."""
    x1 = latent_inverse(to_points(z1), params1).flatten(1)
    x2 = latent_inverse(to_points(z2), params2).flatten(1)
    return criterion(x1, x2)        # lightly's NTXentLoss renormalises


class PeCLR(SimCLR):
    summary = ("NT-Xent after undoing each view's rotation, zoom and shift "
                              "in latent space (equivariance)")
    citation = "Spurr et al., ICCV 2021"
    Config = PeCLRConfig

    @classmethod
    def settle(cls, cfg: PeCLRConfig, run=None) -> None:
        super().settle(cfg, run)
        if cfg.out_dim % 2:
            raise UserError(f"method.out_dim must be even for PeCLR's 2D points "
                            f"(got {cfg.out_dim})")

    def contrast(self, z1: Tensor, z2: Tensor, params1: dict[str, Tensor],
                 params2: dict[str, Tensor], criterion=None) -> Tensor:
        criterion = self.criterion if criterion is None else criterion
        return equivariant_ntxent(z1, z2, params1, params2, criterion)


METHOD = PeCLR
