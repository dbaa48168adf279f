"""The one separable blur against a direct 2D convolution with the outer-product kernel."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from benchmarks.blur import blur


@pytest.mark.parametrize("padding", ["reflect", "replicate"])
def test_blur_is_the_2d_gaussian_per_image_and_keeps_constants(padding):
    g = torch.Generator().manual_seed(3)
    images = torch.rand(4, 3, 20, 17, generator=g, dtype=torch.float64)
    sigma = torch.tensor([0.0, 0.4, 1.1, 2.3], dtype=torch.float64)
    r = 5
    out = blur(images, sigma, r, padding)
    x = torch.arange(-r, r + 1, dtype=torch.float64)
    for i, s in enumerate(sigma.tolist()):
        k1 = (x == 0).double() if s == 0 else torch.exp(-0.5 * (x / s) ** 2)
        k2 = torch.outer(k1, k1) / k1.sum() ** 2
        padded = F.pad(images[i:i + 1], (r, r, r, r), mode=padding)
        ref = F.conv2d(padded, k2.expand(3, 1, -1, -1).contiguous(), groups=3)
        torch.testing.assert_close(out[i:i + 1], ref, rtol=0, atol=1e-12)
    assert torch.equal(out[0], images[0])                    # sigma 0 is the identity
    flat = torch.full((2, 3, 9, 9), 0.37, dtype=torch.float64)
    torch.testing.assert_close(blur(flat, torch.tensor([0.7, 3.0]), 4, padding), flat)
