"""One run, resolved once: what every later stage of the run reads instead of deriving it again.

``orchestration.compose.resolve`` composes and validates the config, settles the method's
settings, and builds the ``Run``: the run id, the method class and its row name, the parsed
budget, the fine-tune seed, the pre-training cache key and the declared initial weights. The
runner, the jobs, the sweep planner, the status table and the record take it from here.

The config is read-only once a ``Run`` holds it: nothing downstream may change what the run
id was computed from.
"""
from __future__ import annotations

import json

from dataclasses import dataclass
from typing import Any, Optional

from omegaconf import DictConfig, OmegaConf

from benchmarks.backbone_weights import InitWeights
from benchmarks.budget import Budget, parse_budget
from benchmarks.config import SYNTH_VERSION, drop_defaults, run_id, stable_hash, to_container


def finetune_seed(cfg: DictConfig | dict) -> int:
    """``finetune.seed``, or the run seed where it is unset."""
    d = to_container(cfg)
    seed = d["finetune"].get("seed")
    return int(d["seed"] if seed is None else seed)


def pretrain_key(cfg: DictConfig | dict) -> str:
    """The pre-training cache key: everything that changes the pre-trained weights (method and
    its config, backbone, budget, seed, pre-training settings, the data with the synthetic
    generator's version, precision, accelerator and the number of devices, since DDP changes
    the batch statistics and the gathered contrast set), nothing that only fine-tuning reads."""
    d = to_container(cfg)
    trimmed = drop_defaults(json.loads(json.dumps({"method": d["method"], "pretrain": d["pretrain"]})))
    keep = {"method": trimmed["method"], "backbone": d["backbone"], "budget": d["budget"],   # as in the run id
            "seed": d["seed"], "pretrain": trimmed["pretrain"],
            "data": {k: d["data"][k] for k in ("name", "world_seed", "world", "n_triplets", "root")},
            "synth_version": SYNTH_VERSION,
            "precision": d["engine"]["precision"], "accelerator": d["engine"]["accelerator"]}
    if d["engine"]["devices"] != 1:      # one device: the key the existing caches were made under
        keep["devices"] = d["engine"]["devices"]
    return stable_hash(keep, 16)


@dataclass(frozen=True)
class Run:
    """A composed, validated run. ``method`` is the registered method class."""

    cfg: DictConfig
    run_id: str
    method: Any
    row: str                       # the row's name: the method, or released weights' label
    budget: Budget
    finetune_seed: int
    pretrain_key: Optional[str]    # None: an init-only method, nothing to pre-train or cache
    init: Optional[InitWeights]    # init-only methods: the weights the backbone starts from

    @classmethod
    def of(cls, cfg: DictConfig, method: Any) -> "Run":
        """The run of a validated, settled ``cfg`` (made read-only here)."""
        OmegaConf.set_readonly(cfg, True)
        return cls(cfg=cfg, run_id=run_id(cfg), method=method, row=method.row_name(cfg.method),
                   budget=parse_budget(cfg.budget), finetune_seed=finetune_seed(cfg),
                   pretrain_key=pretrain_key(cfg) if method.pretrains else None,
                   init=None if method.pretrains else method.init_weights(cfg.method))

    @property
    def pretrains(self) -> bool:
        return bool(self.method.pretrains)

    @property
    def seeds(self) -> str:
        """``seed 0`` or ``seed 0, ft seed 3``: how runs that differ in seeds are told apart."""
        s = f"seed {self.cfg.seed}"
        return s if self.finetune_seed == self.cfg.seed else f"{s}, ft seed {self.finetune_seed}"
