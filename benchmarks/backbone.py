"""Backbones come from timm, without classifier, behind one input convention.

Every consumer (methods, pose model, probes) feeds images as float tensors in [0, 1];
``Backbone`` applies the ImageNet normalisation itself, so an ImageNet-initialised and a
randomly initialised network see exactly the same inputs.

ViTs (``benchmarks.config.VITS``) keep their timm architecture exactly, patch size 16 and
the 224 px position-embedding table included, so that the backbone name in the run id and
the record is the network trained, its state dict loads across resolutions (pre-training
at 128 px and fine-tuning at 224 px in the paper profile) and timm's ImageNet weights fit.
They run at the profile's input size through timm's ``dynamic_img_size``: the position
embeddings are resampled to the input's patch grid at every forward. The input side must
be a multiple of the patch size (refused when the config is composed); the grid is then
side / 16 cells: 2 x 2 at the smoke profile's 32 px, 4 x 4 at the cpu profile's 64 px,
14 x 14 at 224 px.
"""
from __future__ import annotations

import torch
from torch import nn

from benchmarks.config import BACKBONES, VITS
from benchmarks.errors import UserError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Backbone(nn.Module):
    """A timm model (``num_classes=0``) with input normalisation.

    ``forward(x)`` -> pooled features (B, feat_dim) (a ResNet's global average, a ViT's
    class token after its final norm); ``forward_features(x)`` -> the last feature map
    (B, C, h, w): a ResNet's last stage, a ViT's patch tokens after its final norm as their
    grid (prefix tokens dropped); ``pyramid(x)`` -> three maps (B, C, h, w) for dense heads,
    finest first (channels ``pyramid_channels``, the finest at stride ``pyramid_stride``);
    ``net`` is the timm model whose state dict is what the pre-training cache stores and
    ``init_backbone`` loads.

    A ResNet's pyramid is its last three stages (strides 8, 16, 32). A ViT has one stride,
    its patch size: its pyramid is the patch-token grids after a third, two thirds and all
    of its blocks (timm's ``forward_intermediates``, each through the final norm so the
    three share one scale), so that dense heads read early and late features alike.
    """

    def __init__(self, net: nn.Module, vit: bool = False):
        super().__init__()
        self.net = net
        self.vit = vit
        self.feat_dim = int(net.num_features)
        if vit:
            depth = len(net.blocks)
            self.pyramid_indices = [depth // 3 - 1, 2 * depth // 3 - 1, depth - 1]
            self.pyramid_channels = [int(net.embed_dim)] * 3
            self.patch_size = int(net.patch_embed.patch_size[0])
            self.pyramid_stride = self.patch_size
        else:
            n = len(net.feature_info)
            self.pyramid_indices = [n - 3, n - 2, n - 1]
            self.pyramid_channels = [int(f["num_chs"]) for f in net.feature_info[-3:]]
            self.pyramid_stride = int(net.feature_info[-3]["reduction"])
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The last feature map (B, C, h, w)."""
        out = self.net.forward_features(self.normalise(x))
        if not self.vit:
            return out
        b, _, h, w = x.shape
        grid = out[:, self.net.num_prefix_tokens:]                    # (B, h*w, C), row-major
        return grid.transpose(1, 2).reshape(b, -1, h // self.patch_size, w // self.patch_size)

    def pyramid(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Three feature maps (B, C, h, w), finest first (strides 8, 16, 32 for a ResNet; a
        ViT's patch grids at a third, two thirds and the end of its blocks)."""
        extra = {"norm": True, "output_fmt": "NCHW"} if self.vit else {}
        return self.net.forward_intermediates(self.normalise(x), indices=self.pyramid_indices,
                                              intermediates_only=True, **extra)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.forward_head(self.net.forward_features(self.normalise(x)))


def create_backbone(name: str) -> Backbone:
    """A randomly initialised backbone; init-only methods set weights afterwards. ViTs take
    any input side divisible by their patch size (module docstring)."""
    import timm

    if name not in BACKBONES:
        raise UserError(f"unknown backbone {name!r}; choose one of: {', '.join(BACKBONES)}")
    if name in VITS:
        return Backbone(timm.create_model(name, pretrained=False, num_classes=0,
                                          dynamic_img_size=True), vit=True)
    return Backbone(timm.create_model(name, pretrained=False, num_classes=0))
