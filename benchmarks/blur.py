"""The one separable Gaussian blur, with a sigma per image.

Its two users set the kernel radius and the edge rule: the augmenter (``augment.gaussian_blur``:
radius ``ceil(3 sigma)``, reflected edges) and the synthetic world's defocus
(``synth.effects.gaussian_blur``: radius ``ceil(2.5 sigma)``, replicated edges). Those rules
are part of what each produces, so they stay with them.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def blur(images: Tensor, sigma: Tensor, radius: int, padding: str) -> Tensor:
    """Blur each image (B, C, H, W) with its own Gaussian ``sigma`` (B,) in pixels, truncated at
    ``radius`` pixels and padded at the edges by ``padding`` (``"reflect"`` or ``"replicate"``).
    A sigma of 0 leaves its image as is; kernels are normalised to sum to one."""
    b, ch, h, w = images.shape
    x = torch.arange(-radius, radius + 1, device=images.device, dtype=images.dtype)
    s = sigma.to(device=images.device, dtype=images.dtype)[:, None]
    gauss = torch.exp(-0.5 * (x / s.clamp_min(1e-6)) ** 2)
    kernel = torch.where(s > 0, gauss, (x == 0).to(images.dtype).expand_as(gauss))
    kernel = (kernel / kernel.sum(dim=1, keepdim=True)).repeat_interleave(ch, dim=0)
    flat = images.reshape(1, b * ch, h, w)
    flat = F.conv2d(F.pad(flat, (radius, radius, 0, 0), mode=padding),
                    kernel[:, None, None, :], groups=b * ch)
    flat = F.conv2d(F.pad(flat, (0, 0, radius, radius), mode=padding),
                    kernel[:, None, :, None], groups=b * ch)
    return flat.reshape(b, ch, h, w)
