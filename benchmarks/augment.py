"""The shared batched augmenter: views *and* the parameters that made them.

Every method that augments uses this one module, on the batch's device, so that all
methods see the same distribution of views, and so that methods which need the sampled
parameters (PeCLR inverts them in latent space, the relation objective regresses their
differences, jointcon and 2D pre-training move keypoints with them) read them from the
same place that applied them.

Conventions
-----------
Images are float tensors (B, 3, H, W) in [0, 1]. Points are continuous pixel
coordinates ``(x, y)``, x to the right and y down; pixel (row i, col j) covers
``[j, j+1) x [i, i+1)``, so its centre is ``(j + 0.5, i + 0.5)`` and the image centre is
``c = (W/2, H/2)``. This is ``grid_sample``'s ``align_corners=False`` convention.

Geometry (one similarity transform per sample, about the image centre)::

    p' = c + scale * R(angle) (p - c) + translate * (W, H)
    R(a) = [[cos a, -sin a],
            [sin a,  cos a]]

``R`` acts on screen coordinates (y down), so a positive angle turns the content
clockwise as seen on screen (from +x towards +y). ``scale > 1`` enlarges the content,
``translate = (0.1, 0)`` moves it right by a tenth of the width. Pixels that come from
outside the source are zero (black).

Photometric (after the warp, in this fixed order, each clamped to [0, 1]): brightness,
contrast, saturation (the factor definitions of ``torchvision.transforms.functional``:
contrast blends with the mean grey level of the image, saturation with the per-pixel
grey level), a hue shift in HSV (a fraction of a full turn, positive turns red towards
green), then a Gaussian blur (reflect padding, kernel radius ``ceil(3 sigma)``).

Sampling, per sample, every number from the caller's generator (one draw of a (B, 10)
uniform tensor, so the same generator state gives the same views on the same device):
angle ~ U(-rotate_deg, rotate_deg), translate ~ U(-t, t) per axis, scale log-uniform in
[scale_min, scale_max], colour factors ~ U(1-x, 1+x), hue ~ U(-hue, hue), and with
probability blur_p a blur of sigma ~ U(0.1, blur_sigma_max) * min(H, W) / 64 pixels.
A disabled group (``geometric=False`` / ``photometric=False``) keeps its draws but
reports and applies the identity, so switching one group off never changes the other's
parameters.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from benchmarks.blur import blur
from benchmarks.config import AugmentConfig, check_augment
from benchmarks.errors import UserError

# Grey level weights (ITU-R 601-2 luma) exactly as torchvision's rgb_to_grayscale uses them.
_LUMA = (0.2989, 0.587, 0.114)


@dataclass
class Views:
    """One augmented view of a batch.

    ``images`` (B, 3, H, W) in [0, 1]; ``keypoints`` (B, K, 2) pixels mapped by the same
    geometry (NaN stays NaN; points may fall outside the image), or None when none were
    given; ``params`` the per-sample parameters, on the images' device:

    - ``angle`` (B,) radians, ``translate`` (B, 2) fraction of (W, H), ``scale`` (B,) zoom
    - ``color`` (B, 4) brightness, contrast, saturation factors and hue shift (turns)
    - ``blur`` (B,) Gaussian sigma in pixels, 0 for none
    - ``size`` (B, 2) the image extent (W, H) in pixels, so that ``map_points`` and
      ``affine`` need nothing else
    """

    images: Tensor
    keypoints: Optional[Tensor]
    params: dict[str, Tensor]


class Augmenter:
    """Batched random views with their parameters (see the module docstring)."""

    def __init__(self, cfg: AugmentConfig, geometric: bool = True, photometric: bool = True,
                 key: str = "pretrain.augment"):
        check_augment(cfg, key)
        self.cfg = cfg
        self.geometric = geometric
        self.photometric = photometric

    def sample(self, batch: int, size: tuple[int, int], generator: torch.Generator,
               device: torch.device | str) -> dict[str, Tensor]:
        """Per-sample parameters for ``batch`` images of ``size`` (H, W)."""
        c = self.cfg
        u = torch.rand(batch, 10, generator=generator, device=device)
        sym = 2 * u - 1                                            # U(-1, 1)
        height, width = size
        params = {
            "angle": sym[:, 0] * math.radians(c.rotate_deg),
            "translate": sym[:, 1:3] * c.translate,
            "scale": torch.exp(math.log(c.scale_min)
                               + u[:, 3] * (math.log(c.scale_max) - math.log(c.scale_min))),
            "color": torch.stack([1 + sym[:, 4] * c.brightness, 1 + sym[:, 5] * c.contrast,
                                  1 + sym[:, 6] * c.saturation, sym[:, 7] * c.hue], dim=1),
            "blur": torch.where(u[:, 8] < c.blur_p,
                                (0.1 + u[:, 9] * (c.blur_sigma_max - 0.1)) * min(size) / 64,
                                torch.zeros_like(u[:, 9])),
            "size": torch.tensor([float(width), float(height)], device=device).repeat(batch, 1),
        }
        if not self.geometric:
            params["angle"] = torch.zeros_like(params["angle"])
            params["translate"] = torch.zeros_like(params["translate"])
            params["scale"] = torch.ones_like(params["scale"])
        if not self.photometric:
            params["color"] = torch.tensor([1.0, 1.0, 1.0, 0.0], device=device).repeat(batch, 1)
            params["blur"] = torch.zeros_like(params["blur"])
        return params

    def __call__(self, images: Tensor, generator: torch.Generator,
                 keypoints: Optional[Tensor] = None) -> Views:
        """One random view of every image; ``keypoints`` (B, K, 2) pixels are mapped too."""
        params = self.sample(images.shape[0], tuple(images.shape[-2:]), generator, images.device)
        out = images
        if self.geometric:
            out = warp(out, self.affine(params))
        if self.photometric:
            out = gaussian_blur(color_jitter(out, params["color"]), params["blur"])
        mapped = None if keypoints is None else self.map_points(keypoints, params)
        return Views(images=out, keypoints=mapped, params=params)

    @staticmethod
    def affine(params: dict[str, Tensor], size: int | tuple[int, int] | None = None) -> Tensor:
        """(B, 3, 3) pixel-space matrices A with ``p' = A p`` (homogeneous ``(x, y, 1)``).

        ``size`` (H, W), or one int for a square, defaults to the size the parameters were
        drawn for; another size gives the same transform for a resampled copy of the image
        (e.g. a feature map), since the centre and the translation are relative to the
        image extent.
        """
        angle, scale = params["angle"], params["scale"]
        if size is None:
            extent = params["size"].to(angle.dtype)
        else:
            height, width = (size, size) if isinstance(size, int) else size
            extent = torch.tensor([float(width), float(height)], device=angle.device,
                                  dtype=angle.dtype).expand_as(params["translate"])
        centre = extent / 2
        lin = rotation_matrix(angle) * scale[:, None, None]
        shift = centre + params["translate"] * extent - (lin @ centre.unsqueeze(-1)).squeeze(-1)
        a = torch.zeros(angle.shape[0], 3, 3, device=angle.device, dtype=angle.dtype)
        a[:, :2, :2] = lin
        a[:, :2, 2] = shift
        a[:, 2, 2] = 1
        return a

    @classmethod
    def map_points(cls, points: Tensor, params: dict[str, Tensor]) -> Tensor:
        """Points (B, K, 2) in pixels of the source image -> pixels of the view."""
        a = cls.affine(params).to(points.dtype)
        return points @ a[:, :2, :2].transpose(1, 2) + a[:, None, :2, 2]


def rotation_matrix(angle: Tensor) -> Tensor:
    """(B, 2, 2) ``R(a) = [[cos a, -sin a], [sin a, cos a]]`` acting on column vectors (x, y)."""
    cos, sin = torch.cos(angle), torch.sin(angle)
    return torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)


def warp(images: Tensor, affine: Tensor) -> Tensor:
    """Resample ``images`` so that source pixel p lands at ``affine @ p`` (zero padding).

    ``affine`` (B, 3, 3) is in pixel coordinates of ``images``; it is converted to the
    normalised coordinates of ``affine_grid`` (``x_n = 2 x / W - 1``) and inverted, since
    the grid asks, for each output pixel, where to read in the source.
    """
    b, _, h, w = images.shape
    norm = torch.tensor([[2 / w, 0, -1], [0, 2 / h, -1], [0, 0, 1]],
                        device=affine.device, dtype=affine.dtype)
    theta = norm @ torch.linalg.inv(affine) @ torch.linalg.inv(norm)
    grid = F.affine_grid(theta[:, :2], [b, 3, h, w], align_corners=False)
    return F.grid_sample(images, grid.to(images.dtype), mode="bilinear", padding_mode="zeros",
                         align_corners=False)


def _grey(images: Tensor) -> Tensor:
    r, g, b = images.unbind(1)
    return (_LUMA[0] * r + _LUMA[1] * g + _LUMA[2] * b).unsqueeze(1)


def color_jitter(images: Tensor, color: Tensor) -> Tensor:
    """Per-sample brightness, contrast, saturation factors and hue shift, ``color`` (B, 4).

    Matches ``torchvision.transforms.functional.adjust_{brightness,contrast,saturation,hue}``
    applied in that order, one image at a time, with each image's own factors.
    """
    f = color.to(images.dtype)[:, :, None, None, None]             # (B, 4, 1, 1, 1)
    out = (images * f[:, 0]).clamp(0, 1)
    mean = _grey(out).mean(dim=(1, 2, 3), keepdim=True)
    out = (f[:, 1] * out + (1 - f[:, 1]) * mean).clamp(0, 1)
    out = (f[:, 2] * out + (1 - f[:, 2]) * _grey(out)).clamp(0, 1)
    return _shift_hue(out, color[:, 3].to(images.dtype))


def _shift_hue(images: Tensor, shift: Tensor) -> Tensor:
    """Rotate the HSV hue of each image by ``shift`` (B,) turns."""
    r, g, b = images.unbind(1)
    maxc, _ = images.max(dim=1)
    minc, _ = images.min(dim=1)
    chroma = maxc - minc
    flat = chroma == 0
    sat = chroma / torch.where(flat, torch.ones_like(maxc), maxc)
    div = torch.where(flat, torch.ones_like(chroma), chroma)
    rc, gc, bc = (maxc - r) / div, (maxc - g) / div, (maxc - b) / div
    hue = torch.where(maxc == r, bc - gc,
                      torch.where(maxc == g, 2.0 + rc - bc, 4.0 + gc - rc))
    hue = torch.remainder(hue / 6.0 + shift[:, None, None], 1.0)
    # HSV -> RGB: each channel is v - v s clamp(min(k, 4 - k), 0, 1), k = (n + 6 h) mod 6
    n = torch.tensor([5.0, 3.0, 1.0], device=images.device, dtype=images.dtype)[None, :, None, None]
    k = torch.remainder(n + 6 * hue.unsqueeze(1), 6.0)
    ramp = torch.minimum(k, 4 - k).clamp(0, 1)
    v, s = maxc.unsqueeze(1), sat.unsqueeze(1)
    return v - v * s * ramp


def gaussian_blur(images: Tensor, sigma: Tensor) -> Tensor:
    """Per-sample separable Gaussian blur, ``sigma`` (B,) pixels (0 leaves an image as is).

    One kernel size for the batch, radius ``ceil(3 max sigma)`` (capped so that reflect
    padding fits the image); samples with a smaller sigma get their own, narrower weights.
    """
    h, w = images.shape[-2:]
    radius = min(math.ceil(3 * float(sigma.max())), h - 1, w - 1)
    return blur(images, sigma, radius, "reflect") if radius > 0 else images
