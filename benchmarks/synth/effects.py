"""Camera effects applied to whole rendered images: defocus blur, sensor noise, quantisation."""
from __future__ import annotations

import torch
from torch import Tensor

from benchmarks.blur import blur


def gaussian_blur(images: Tensor, sigma: Tensor) -> Tensor:
    """Blur each image (B, C, H, W) with its own Gaussian ``sigma`` (B,) in pixels (0 = none);
    separable, edges replicated."""
    radius = max(1, int(torch.ceil(2.5 * sigma.max()).item()))
    return blur(images, sigma, radius, "replicate")


def add_sensor_noise(images: Tensor, sigma: Tensor, offset: Tensor, gen: torch.Generator
                     ) -> Tensor:
    """Add Gaussian noise of standard deviation ``sigma`` (B,) in place. Image i takes the
    window of one noise field, twice the image size and drawn from ``gen``, at ``offset[i]``
    ((B, 2) in [0, 1): fractions of the image height and width), so one field serves a batch."""
    B, C, H, W = images.shape
    field = torch.randn(C, 2 * H, 2 * W, generator=gen).to(images.device)
    oy = (offset[:, 0] * H).long().clamp(0, H - 1).tolist()
    ox = (offset[:, 1] * W).long().clamp(0, W - 1).tolist()
    for i in range(B):
        images[i].add_(field[:, oy[i]:oy[i] + H, ox[i]:ox[i] + W], alpha=float(sigma[i]))
    return images


def to_uint8(images: Tensor) -> Tensor:
    """[0, 1] floats -> uint8 by rounding to nearest, clipping out-of-range values."""
    return images.mul(255.0).add_(0.5).clamp_(0.0, 255.0).to(torch.uint8)
