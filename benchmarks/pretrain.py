"""Pre-training with a method's objective, planned from the budget, cached by config hash.

The cache key hashes exactly the settings that change the pre-trained weights (method and its
config, backbone, budget, seed, the pre-training data and sizes, numeric precision), so every
fine-tune that differs only in fine-tuning settings (label fraction, fine-tune seed, probes,
match protocol) reuses one pre-training. Two processes asking for the same pre-training: the
first takes the lock and trains, the other waits and then loads. The weights file is written
to a temporary name and renamed, so a killed writer never leaves a file that loads as valid;
its engine checkpoints let the next attempt resume where it stopped.
"""
from __future__ import annotations

import json
import shutil
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import DictConfig

from benchmarks import batches as B
from benchmarks.augment import Augmenter
from benchmarks.synth.products import VERSION as SYNTH_VERSION
from benchmarks.compute import Plan
from benchmarks.config import stable_hash, to_container
from benchmarks.engine import Engine, Phase, TrainingError, step_generator
from benchmarks.flops import count_step_flops
from benchmarks.locks import file_lock
from benchmarks.store import write_json_atomic

WEIGHTS = "backbone.pt"
META = "meta.json"
CURVE = "curve.json"


@dataclass
class PretrainResult:
    flops: float = 0.0
    steps: int = 0
    images: int = 0
    step_flops: float = 0.0
    budget_flops: float | None = None
    wall_s: float = 0.0
    cache_hit: bool = False
    key: str | None = None
    curve: list | None = None


def cache_key(cfg: DictConfig) -> str:
    """What changes the pre-trained weights: method, backbone, budget, seed, pre-training
    settings, the data (the synthetic world and its generator's version included), precision."""
    d = to_container(cfg)
    keep = {"method": d["method"], "backbone": d["backbone"], "budget": d["budget"],
            "seed": d["seed"], "pretrain": d["pretrain"],
            "data": {k: d["data"][k] for k in ("name", "world_seed", "world", "n_triplets", "root")},
            "synth_version": SYNTH_VERSION,
            "precision": d["engine"]["precision"], "accelerator": d["engine"]["accelerator"]}
    return stable_hash(keep, 16)


def as_float_images(batch: dict) -> dict:
    """Images travel as uint8 (a quarter of the bytes); methods see floats in [0, 1]."""
    return {k: v.float().div_(255) if v.dtype == torch.uint8 else v for k, v in batch.items()}


def method_loss(method, batch: dict, g: torch.Generator):
    return method.loss(as_float_images(batch), g)


def measure(cfg: DictConfig, method, source, order, device) -> float:
    """FLOPs of one pre-training step of this method, on the run's first batch."""
    first = {k: v.to(device) for k, v in next(B.iterate(source, order, 0, 1)).items()}
    return count_step_flops(method, method_loss, first, step_generator(cfg.seed, "probe", 0, device))


def seconds_per_step(method, source, order, device) -> float:
    """Wall time of one pre-training step (forward and backward) on a copy of the method."""
    import copy
    probe = copy.deepcopy(method).train()
    batch = {k: v.to(device) for k, v in next(B.iterate(source, order, 0, 1)).items()}
    times = []
    for i in range(3):
        t = time.perf_counter()
        loss, _ = method_loss(probe, batch, step_generator(0, "probe", i, device))
        loss.backward()
        times.append(time.perf_counter() - t)
    return min(times[1:])


def pretrain(cfg: DictConfig, method_cls, backbone, data, engine: Engine, cache_root: Path,
             plan: Plan) -> PretrainResult:
    """Pre-train ``backbone`` in place (or load it from the cache), for the steps ``plan``
    gives at the method's measured cost per step."""
    key = cache_key(cfg)
    folder = Path(cache_root) / key
    fabric = engine.fabric
    # Under DDP the ranks of one job train together: only rank 0 takes the inter-process lock
    # (other jobs wait on it), and every rank follows rank 0's view of the cache.
    lock = file_lock(Path(cache_root) / f"{key}.lock") if fabric.is_global_zero else nullcontext()
    with lock:
        hit = (folder / WEIGHTS).exists() and (folder / META).exists()
        if hit and fabric.is_global_zero and non_finite(torch.load(folder / WEIGHTS, map_location="cpu")):
            for name in (WEIGHTS, META, CURVE):         # written by a version that cached them
                (folder / name).unlink(missing_ok=True)
            hit = False
        if fabric.world_size > 1:
            hit = fabric.broadcast(hit, src=0)
        if hit:
            backbone.net.load_state_dict(torch.load(folder / WEIGHTS, map_location="cpu"))
            meta = json.loads((folder / META).read_text())
            curve = json.loads((folder / CURVE).read_text()) if (folder / CURVE).exists() else []
            return PretrainResult(**{**meta, "cache_hit": True, "key": key, "curve": curve})
        result = _train(cfg, method_cls, backbone, data, engine, folder, plan)
        result.key = key
        if bad := non_finite(backbone.net.state_dict()):
            shutil.rmtree(folder / "ckpt", ignore_errors=True)   # a retry starts over
            raise TrainingError(
                f"pre-training {cfg.method.name} (pretrain.lr={cfg.pretrain.lr:g}, "
                f"{result.steps} steps) diverged: {len(bad)} backbone tensors hold inf or NaN "
                f"(e.g. {bad[0]}); nothing was cached; lower pretrain.lr")
        if fabric.is_global_zero:
            tmp = folder / f".{WEIGHTS}.tmp"
            torch.save(backbone.net.state_dict(), tmp)
            meta = {k: v for k, v in result.__dict__.items() if k not in ("cache_hit", "key", "curve")}
            write_json_atomic(folder / CURVE, result.curve)
            write_json_atomic(folder / META, meta)
            tmp.replace(folder / WEIGHTS)
            shutil.rmtree(folder / "ckpt", ignore_errors=True)   # the cached backbone replaces it
        fabric.barrier()
        return result


def non_finite(state: dict[str, torch.Tensor]) -> list[str]:
    """Names of the floating-point tensors of ``state`` that hold inf or NaN."""
    return [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]


def _train(cfg, method_cls, backbone, data, engine: Engine, folder: Path, plan: Plan
           ) -> PretrainResult:
    device = engine.device
    augmenter = Augmenter(cfg.pretrain.augment)
    torch.manual_seed(cfg.seed + 1)
    method = method_cls(cfg.method, backbone, backbone.feat_dim, augmenter).to(device)
    source = data.pretrain_source(method_cls.inputs)
    order = B.StepIndices(len(source), cfg.pretrain.batch_size, cfg.seed)
    step_flops = measure(cfg, method, source, order, device)
    steps = plan.pretrain_steps(step_flops, lambda: seconds_per_step(method, source, order, device))
    ph = Phase(name="pretrain", module=method, loss_fn=method_loss,
               batches=lambda start: B.iterate(source, order, start, steps, cfg.engine.num_workers),
               steps=steps, lr=cfg.pretrain.lr, weight_decay=cfg.pretrain.weight_decay,
               warmup_frac=cfg.pretrain.warmup_frac,
               images_per_step=cfg.pretrain.batch_size * method_cls.passes_per_sample,
               seed=cfg.seed, ckpt_dir=folder / "ckpt")
    out = engine.fit(ph)
    return PretrainResult(flops=steps * step_flops, steps=steps,
                          images=steps * cfg.pretrain.batch_size * method_cls.passes_per_sample,
                          step_flops=step_flops, budget_flops=plan.flops, wall_s=out.wall_s,
                          cache_hit=False, curve=out.curve)
