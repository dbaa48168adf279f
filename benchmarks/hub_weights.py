"""timm's pretrained ImageNet weights, from the Hugging Face hub's local cache or the hub.

The one place that talks to the hub (``imagenet`` declares what it wants, the harness loads
it). Neither cached nor reachable (offline, or the hub's host does not answer within
``HUB_TIMEOUT_S``): one line at once, instead of the hub client's minute of retries.
"""
from __future__ import annotations

import os
import socket
from typing import Optional
from urllib.parse import urlparse

import torch

from benchmarks.errors import UserError, one_line


def timm_weights(arch: str, tag: Optional[str] = None) -> dict[str, torch.Tensor]:
    """timm's pretrained ImageNet weights for ``arch`` (weight set ``tag``), cached or fetched."""
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
