"""Supervised ImageNet-1k initialisation, the baseline every SSL method is measured against.

The weights are either a local file (``method.weights=PATH``: a timm or torchvision
ResNet state dict, optionally wrapped as ``{"state_dict": ...}``; the classifier ``fc.*``
is ignored, everything else must fit exactly) or timm's pretrained weights for the
backbone (``timm.create_model(name, pretrained=True)``, from the Hugging Face hub or its
local cache; ``method.tag`` picks another weight set, e.g. ``tv_in1k`` for the
torchvision weights the PeCLR authors started from). Offline with no cached copy and no
file, the run stops with one line saying how to provide them.

Nothing is trained within the suite: the pre-training is external and is declared as
such (``external_pretrain``), so a record never passes it off as part of the budget.
"""
from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Optional
from urllib.parse import urlparse

import torch
from torch import nn

from benchmarks.backbone_weights import load_backbone_state, read_state_dict
from benchmarks.config import MethodConfig
from benchmarks.errors import UserError, one_line
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
    def init_backbone(cls, cfg: MethodConfig, backbone: nn.Module) -> None:
        """Load ImageNet weights into ``backbone.net`` (in place); UserError when there are none."""
        net = backbone.net
        arch = net.pretrained_cfg["architecture"]
        if cfg.weights:
            path = Path(cfg.weights).expanduser()
            state, source = read_state_dict(path), f"method.weights {path}"
        else:
            state, source = timm_weights(arch, cfg.tag), f"timm weights for {arch}"
        load_backbone_state(net, state, source)


def timm_weights(arch: str, tag: Optional[str] = None) -> dict[str, torch.Tensor]:
    """timm's pretrained ImageNet weights for ``arch``, from the hub's local cache or the hub.

    Neither cached nor reachable (offline, or the hub's host does not answer within
    ``HUB_TIMEOUT_S``): one line at once, instead of the hub client's minute of retries.
    """
    import timm
    from huggingface_hub import constants as hub

    name = f"{arch}.{tag}" if tag else arch
    cached = _cached_file(name)
    if cached is None and (hub.HF_HUB_OFFLINE or not hub_reachable()):
        reason = "offline" if hub.HF_HUB_OFFLINE else f"{hub.ENDPOINT} is not reachable"
        raise UserError(f"no ImageNet weights for {arch}: {reason} and no cached copy; pass "
                        f"method.weights=PATH (a timm or torchvision {arch} state dict)")
    try:
        if cached is not None:
            model = timm.create_model(name, pretrained=True, num_classes=0,
                                      pretrained_cfg_overlay={"file": cached})
        else:
            model = timm.create_model(name, pretrained=True, num_classes=0)
    except Exception as err:   # download failures come as OSError, hub and HTTP errors alike
        raise UserError(f"no ImageNet weights for {arch}: timm could not fetch {name} "
                        f"({type(err).__name__}: {one_line(err)[:120]}); pass method.weights=PATH "
                        f"(a timm or torchvision {arch} state dict)") from None
    return model.state_dict()


HUB_TIMEOUT_S = 3.0
HUB_FILES = ("model.safetensors", "pytorch_model.bin")


def _cached_file(name: str) -> Optional[str]:
    """The hub cache's copy of timm's weights for ``name``, or None."""
    import timm
    from huggingface_hub import try_to_load_from_cache

    cfg = timm.models.get_pretrained_cfg(name)
    repo = getattr(cfg, "hf_hub_id", None) if cfg is not None else None
    for filename in HUB_FILES if repo else ():
        path = try_to_load_from_cache(repo, filename)
        if isinstance(path, str):
            return path
    return None


def hub_reachable(timeout: float = HUB_TIMEOUT_S) -> bool:
    """Whether the hub's host accepts a connection (assumed yes behind a proxy)."""
    from huggingface_hub import constants as hub

    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return True
    url = urlparse(hub.ENDPOINT)
    try:
        socket.create_connection((url.hostname, url.port or 443), timeout=timeout).close()
    except OSError:
        return False
    return True


METHOD = ImageNet
