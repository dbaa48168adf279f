"""engine.channels_last_on_cpu puts the trained module in channels_last on the CPU; by default
the CPU keeps contiguous tensors (every earlier run's arithmetic), and the key stays out of
the run id at its default."""
from __future__ import annotations

import torch

from benchmarks.config import EngineConfig, run_id
from benchmarks.engine import Engine
from orchestration import compose


def conv_weight_layout(cfg: EngineConfig) -> bool:
    module = Engine(cfg).prepare(torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3)))
    return module[0].weight.is_contiguous(memory_format=torch.channels_last) and \
        not module[0].weight.is_contiguous()


def test_channels_last_on_the_cpu_only_when_asked():
    assert conv_weight_layout(EngineConfig(accelerator="cpu", progress=False, channels_last_on_cpu=True))
    assert not conv_weight_layout(EngineConfig(accelerator="cpu", progress=False))
    assert not conv_weight_layout(EngineConfig(accelerator="cpu", progress=False, channels_last=True))


def test_the_default_keeps_run_ids_and_a_set_value_changes_them():
    words = ["method=random", "profile=smoke"]
    base = compose.load(words, need_data=False)
    assert run_id(compose.load([*words, "engine.channels_last_on_cpu=false"], need_data=False)) == run_id(base)
    assert run_id(compose.load([*words, "engine.channels_last_on_cpu=true"], need_data=False)) != run_id(base)
