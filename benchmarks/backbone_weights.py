"""Backbone weights from files: reading a state dict, fitting it to the backbone, naming it.

Init-only methods that start from weights (``imagenet``, ``weights``) declare them as an
``InitWeights``; composition checks and pins the file (``pin_file``) and the harness loads it
(``apply_init``), so no method touches a file. The
layouts handbench reads are torchvision's and timm's ResNet state dicts (the same keys),
optionally wrapped as ``{"state_dict": ...}`` (Lightning and most research code) and with
a prefix from training wrappers (``module.`` from DDP, ``encoder.``, ``backbone.``,
``model.``). The classifier is ignored; every other tensor must fit exactly.
"""
from __future__ import annotations

import hashlib
import re
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from benchmarks.errors import UserError, one_line

if TYPE_CHECKING:
    import torch
    from torch import nn

PREFIXES = ("module.", "encoder.", "backbone.", "model.")


@dataclass(frozen=True)
class InitWeights:
    """Where an init-only method's backbone weights come from."""

    file: Optional[str] = None      # a state dict file (``method.weights``)
    timm: bool = False              # timm's pretrained weights for the backbone (hub or its cache)
    tag: Optional[str] = None       # timm weight set, e.g. tv_in1k
    strip_prefixes: bool = False    # drop training-wrapper prefixes (module., encoder., ...)
    pin: bool = False               # the file's sha256 is the config's method.sha256 (run id by bytes)


def pin_file(spec: InitWeights, method_cfg: Any) -> None:
    """At composition: the declared file exists, and a pinned one's sha256 is filled in (or,
    when the config names one, must match)."""
    if not spec.file:
        return
    path = Path(spec.file).expanduser()
    if not path.is_file():
        raise UserError(f"method.weights: no such file: {path}")
    if not spec.pin:
        return
    sha = file_sha256(path)
    if method_cfg.sha256 and method_cfg.sha256 != sha:
        raise UserError(f"method.weights: {path} has sha256 {sha[:16]}..., not the "
                        f"method.sha256 {method_cfg.sha256[:16]}... the config names")
    method_cfg.sha256 = sha


def apply_init(spec: Optional[InitWeights], backbone: nn.Module,
               say: Callable[[str], None] = print) -> None:
    """Load the declared weights into ``backbone.net`` (in place); None keeps its own."""
    if spec is None:
        return
    net = backbone.net
    if spec.file:
        path = Path(spec.file).expanduser()
        state = read_state_dict(path)
        if spec.strip_prefixes:
            state, said = strip_prefixes(state, net.state_dict())
            if said:
                say(f"method.weights {path.name}: {'; '.join(said)}")
        load_backbone_state(net, state, f"method.weights {path}")
    elif spec.timm:
        from benchmarks.hub_weights import timm_weights

        arch = net.pretrained_cfg["architecture"]
        load_backbone_state(net, timm_weights(arch, spec.tag), f"timm weights for {arch}")


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from ``path`` (tensors only; ``{"state_dict": ...}`` is unwrapped)."""
    import torch

    if not path.is_file():
        raise UserError(f"method.weights: no such file: {path}")
    try:
        with warnings.catch_warnings():          # torch warns about plain pickles; we say it once
            warnings.simplefilter("ignore")
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:   # torch.load reports a bad file as pickle, zip or runtime errors
        text = re.sub(r"\x1b\[[0-9;]*m", "", str(err))          # torch colours its message
        asked = re.search(r"GLOBAL ([\w.]+)", text)
        if asked:
            raise UserError(f"method.weights: {path} is not a plain state dict: loading it would "
                            f"call {asked.group(1)}; refused, nothing was run (pass a file of "
                            f"tensors only)") from None
        raise UserError(f"method.weights: {path} is not a torch state dict "
                        f"({one_line(text)[:160]})") from None
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        obj = obj["state_dict"]
    if not (isinstance(obj, Mapping) and obj and all(torch.is_tensor(v) for v in obj.values())):
        raise UserError(f"method.weights: {path} holds no state dict of tensors")
    bad = [k for k, v in obj.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise UserError(f"method.weights: {path} holds inf or NaN in {len(bad)} tensors "
                        f"(e.g. {bad[0]}); these weights cannot start a run")
    return dict(obj)


def strip_prefixes(state: Mapping[str, torch.Tensor], own: Mapping[str, torch.Tensor]
                   ) -> tuple[dict[str, torch.Tensor], list[str]]:
    """``state`` with wrapper prefixes (chains of up to three of ``PREFIXES``, such as
    ``module.encoder.``) removed, and what was done, in words.

    The longest chain is stripped that every key has, or whose keys, stripped, cover every
    key of ``own`` (the backbone's state dict); the other keys (a projection head, the
    wrapper's classifier) are then dropped.
    """
    needed = {k for k in own if not k.endswith("num_batches_tracked")}
    chains = [""] + [a + b + c for a in PREFIXES for b in ("", *PREFIXES) for c in ("", *PREFIXES)
                     if b or not c]
    best, kept = "", dict(state)
    for chain in sorted(set(chains), key=len, reverse=True):
        inner = {k[len(chain):]: v for k, v in state.items() if k.startswith(chain)}
        if chain and inner and (len(inner) == len(state) or needed <= set(inner)):
            best, kept = chain, inner
            break
    if not best:
        return kept, []
    dropped = len(state) - len(kept)
    return kept, [f"stripped {best!r}" + (f", dropped {dropped} other keys" if dropped else "")]


def load_backbone_state(net: nn.Module, state: Mapping[str, torch.Tensor], source: str) -> None:
    """Load ``state`` into the classifier-free timm ``net``: strict apart from the classifier.

    ``num_batches_tracked`` counters may be absent (older torchvision files); torch's
    BatchNorm fills them in.
    """
    classifier = net.pretrained_cfg.get("classifier", "fc")
    state = {k: v for k, v in state.items() if not k.startswith(f"{classifier}.")}
    own = net.state_dict()
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in own]
    arch = net.pretrained_cfg["architecture"]
    if missing or unexpected:
        raise UserError(f"{source} does not fit {arch}: {len(missing)} missing keys "
                        f"{missing[:3]}, {len(unexpected)} unexpected {unexpected[:3]}")
    wrong = [k for k, v in state.items() if v.shape != own[k].shape]
    if wrong:
        k = wrong[0]
        raise UserError(f"{source} does not fit {arch}: {len(wrong)} tensors of the wrong shape, "
                        f"e.g. {k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}")
    net.load_state_dict(state, strict=True)


def file_sha256(path: str | Path) -> str:
    """The hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
