"""Backbones come from timm, without classifier, behind one input convention.

Every consumer (methods, pose model, probes) feeds images as float tensors in [0, 1];
``Backbone`` applies the ImageNet normalisation itself, so an ImageNet-initialised and a
randomly initialised network see exactly the same inputs.
"""
from __future__ import annotations

import torch
from torch import nn

from benchmarks.config import BACKBONES
from benchmarks.errors import UserError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Backbone(nn.Module):
    """A timm model (``num_classes=0``) with input normalisation.

    ``forward(x)`` -> pooled features (B, feat_dim); ``forward_features(x)`` -> the last
    feature map (B, C, h, w); ``pyramid(x)`` -> the last three maps (channels
    ``pyramid_channels``); ``net`` is the timm model whose state dict is what the
    pre-training cache stores and ``init_backbone`` loads.
    """

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net
        self.feat_dim = int(net.num_features)
        self.levels = len(net.feature_info)
        self.pyramid_channels = [int(f["num_chs"]) for f in net.feature_info[-3:]]
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.forward_features(self.normalise(x))

    def pyramid(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The last three feature maps, finest first (strides 8, 16, 32 for a ResNet)."""
        n = self.levels
        return self.net.forward_intermediates(self.normalise(x), indices=[n - 3, n - 2, n - 1],
                                              intermediates_only=True)

    def pool(self, fmap: torch.Tensor) -> torch.Tensor:
        return self.net.forward_head(fmap)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.forward_features(x))


def create_backbone(name: str) -> Backbone:
    """A randomly initialised backbone; init-only methods set weights afterwards."""
    import timm

    if name not in BACKBONES:
        raise UserError(f"unknown backbone {name!r}; choose one of: {', '.join(BACKBONES)}")
    return Backbone(timm.create_model(name, pretrained=False, num_classes=0))
