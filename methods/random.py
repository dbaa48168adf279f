"""Random initialisation: the no-pre-training baseline.

The backbone keeps timm's own initialisation, as ``timm.create_model(name,
pretrained=False)`` sets it for ResNets: He-normal convolutions (fan-out), BatchNorm
weight 1 and bias 0, except the last BatchNorm of every residual branch, which starts at
zero so that each block starts as the identity. It is drawn under the run's seed by
whoever builds the backbone. Nothing is trained here, so the
method costs no pre-training compute; under ``match=total`` its share of the budget goes
to fine-tuning.
"""
from __future__ import annotations

from dataclasses import dataclass

from benchmarks.config import MethodConfig
from methods.base import Method



@dataclass
class RandomConfig(MethodConfig):
    name: str = "random"


class Random(Method):
    summary = "random initialisation, no pre-training (timm's default init)"
    citation = "He et al., ICCV 2015 (He init) / timm"
    inputs = ()
    passes_per_sample = 0
    Config = RandomConfig


METHOD = Random
