"""Supervised ImageNet-1k initialisation, the baseline every SSL method is measured against.

The weights are either a local file (``method.weights=PATH``: a timm or torchvision
ResNet state dict, optionally wrapped as ``{"state_dict": ...}``; the classifier ``fc.*``
is ignored, everything else must fit exactly) or timm's pretrained weights for the
backbone (``timm.create_model(name, pretrained=True)``, from the Hugging Face hub or its
local cache; ``method.tag`` picks another weight set, e.g. ``tv_in1k`` for the
torchvision weights the PeCLR authors started from). Offline with no cached copy and no
file, the run stops with one line saying how to provide them. The loading itself (file,
hub cache, hub) is the harness's: ``benchmarks.backbone_weights.apply_init``.

Nothing is trained within the suite: the pre-training is external and is declared as
such (``external_pretrain``), so a record never passes it off as part of the budget.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from benchmarks.backbone_weights import InitWeights
from benchmarks.config import MethodConfig
from methods.base import Method


@dataclass
class ImageNetConfig(MethodConfig):
    name: str = "imagenet"
    weights: Optional[str] = None   # state dict file; None: timm's pretrained weights
    tag: Optional[str] = None       # timm weight tag for the download, e.g. "tv_in1k"


class ImageNet(Method):
    summary = "supervised ImageNet-1k initialisation (timm weights or a local file)"
    citation = "He et al., CVPR 2016 / timm"
    inputs = ()
    passes_per_sample = 0
    external_pretrain = "ImageNet-1k supervised (timm weights)"
    Config = ImageNetConfig

    @classmethod
    def init_weights(cls, cfg: ImageNetConfig) -> InitWeights:
        """The file, or timm's pretrained weights for the run's backbone (``method.tag``)."""
        if cfg.weights:
            return InitWeights(file=cfg.weights)
        return InitWeights(timm=True, tag=cfg.tag)


METHOD = ImageNet
