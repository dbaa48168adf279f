"""Released weights: start from any file of backbone weights, under a name the user gives.

For backbones others released (PeCLR's ResNet-50/152, a lab's own checkpoint): ``method=weights
method.weights=FILE method.label=NAME``. The file is a torchvision or timm state dict, wrapped
as ``{"state_dict": ...}`` or not, with training-wrapper prefixes (``module.``, ``encoder.``,
``backbone.``, ``model.``) stripped and a line saying so; the classifier is ignored and every
other tensor must fit, else one line names the missing and unexpected keys.

``method.label`` names the row in every table and the run id; it may not be the name of a
registered method, so released weights never pose as ``imagenet`` or as a method trained
here. The file's sha256 is part of the config (``method.sha256``, filled in when the config
is composed), hence of the run id and the record: the same bytes under another path are the
same run, other bytes under the same path are another. The pre-training is external and is
declared as such, so the record never counts it in the budget.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from benchmarks.backbone_weights import InitWeights
from benchmarks.config import MethodConfig
from benchmarks.errors import UserError
from methods.base import Method

LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,63}")


@dataclass
class WeightsConfig(MethodConfig):
    name: str = "weights"
    weights: Optional[str] = None   # the file of backbone weights
    label: Optional[str] = None     # the row's name, e.g. peclr-released
    sha256: Optional[str] = None    # of the file; filled in when the config is composed


class Weights(Method):
    summary = "released backbone weights from a file, under a label you give"
    citation = "e.g. Spurr et al., ICCV 2021 (PeCLR's released ResNets)"
    inputs = ()
    passes_per_sample = 0
    Config = WeightsConfig

    @classmethod
    def settle(cls, cfg: WeightsConfig, run=None) -> None:
        import methods

        if not cfg.weights:
            raise UserError("method=weights needs method.weights=FILE (backbone weights) and "
                            "method.label=NAME (the row's name in every table)")
        if not cfg.label:
            raise UserError("method=weights needs method.label=NAME, the row's name in every "
                            "table (e.g. method.label=peclr-released)")
        if not LABEL.fullmatch(cfg.label):
            raise UserError(f"method.label {cfg.label!r}: use letters, digits and . _ + - "
                            f"(at most 64, starting with a letter or digit)")
        if cfg.label in methods.names():
            raise UserError(f"method.label {cfg.label!r} is a registered method; released weights "
                            f"need a name of their own (e.g. {cfg.label}-released)")
        # the file's sha256 (method.sha256) is filled in by composition (``InitWeights.pin``)

    @classmethod
    def row_name(cls, cfg: WeightsConfig) -> str:
        return cfg.label or cls.name

    @classmethod
    def external(cls, cfg: WeightsConfig) -> str:
        return f"released weights {cfg.label} ({Path(cfg.weights).name}, sha256 {(cfg.sha256 or '')[:12]})"

    @classmethod
    def init_weights(cls, cfg: WeightsConfig) -> InitWeights:
        """The file, training-wrapper prefixes stripped, pinned by its sha256."""
        return InitWeights(file=cfg.weights, strip_prefixes=True, pin=True)


METHOD = Weights
