"""Pre-training with a method's objective, for the steps of the run's plan, cached by config hash.

``prepare`` looks the entry up or builds the method and measures its step (before the run's
plan exists); ``pretrain`` then trains for the planned steps, or loads. The cache key
(``benchmarks.run.pretrain_key``) hashes exactly the settings that change the pre-trained
weights (method and its config, backbone, budget, seed, the pre-training data and sizes,
numeric precision, devices), so every
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
from benchmarks.engine import Engine, Phase, TrainingError, step_generator
from benchmarks.errors import one_line
from benchmarks.flops import count_step_flops
from benchmarks.locks import file_lock
from benchmarks.run import Run
from benchmarks.store import write_json_atomic
from eval import heldout

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
    heldout: dict | None = None     # the objective on held-out frames at the start and the end


def as_float_images(batch: dict) -> dict:
    """Images travel as uint8 (a quarter of the bytes); methods see floats in [0, 1]."""
    return {k: v.float().div_(255) if v.dtype == torch.uint8 else v for k, v in batch.items()}


def method_loss(method, batch: dict, g: torch.Generator):
    return method.loss(as_float_images(batch), g)


def method_baseline(method, batch: dict, g: torch.Generator):
    return method.baseline(as_float_images(batch), g)


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


def read_cache(folder: Path, say=print) -> dict | None:
    """The cached entry in ``folder`` (``state``, ``meta``, ``curve``), or None for a miss.

    An entry that cannot be read (a truncated ``backbone.pt``, a ``meta.json`` that is not the
    meta of a pre-training, weights holding inf or NaN) is a miss too: it is named in one line
    and moved aside (``<folder>.bad-<time>``), so the run trains it again instead of failing
    on it for good."""
    weights, meta = folder / WEIGHTS, folder / META
    if not (weights.exists() and meta.exists()):    # the weights are renamed into place last
        return None
    try:
        m = json.loads(meta.read_text())
        if not isinstance(m, dict) or not {"flops", "steps", "images", "step_flops"} <= set(m):
            raise ValueError(f"{META} is not the meta of a pre-training")
        state = torch.load(weights, map_location="cpu", weights_only=True)
        if not isinstance(state, dict) or not state:
            raise ValueError(f"{WEIGHTS} holds no state dict")
        if bad := non_finite(state):
            raise ValueError(f"{len(bad)} tensors hold inf or NaN (e.g. {bad[0]})")
        curve = json.loads((folder / CURVE).read_text()) if (folder / CURVE).exists() else []
    except Exception as err:     # any unreadable part: json, zip, pickle or os errors alike
        aside = folder.with_name(f"{folder.name}.bad-{time.strftime('%Y%m%d-%H%M%S')}")
        try:
            folder.rename(aside)
        except OSError:          # another process moved it aside first
            pass
        say(f"pre-training cache {folder}: unreadable ({one_line(err)[:160]}); moved to "
            f"{aside.name} and training it again")
        return None
    return {"state": state, "meta": m, "curve": curve}


@dataclass
class Pretraining:
    """A pre-training set up before the run's plan: the method built and its step measured,
    or the cache entry found (``cached``)."""
    run: Run
    folder: Path
    engine: Engine
    cached: dict | None = None
    method: object = None
    source: object = None
    heldout: object = None          # held-out frames of the pre-training source, or None
    order: object = None
    step_flops: float = 0.0

    def step_seconds(self) -> float:
        return seconds_per_step(self.method, self.source, self.order, self.engine.device)


def prepare(run: Run, backbone, data, engine: Engine, cache_root: Path, say=print) -> Pretraining:
    """Look the pre-training up in the cache; on a miss build the method and measure one step
    (what the run's plan needs). The backbone is not changed yet."""
    folder = Path(cache_root) / run.pretrain_key
    fabric = engine.fabric
    cached = read_cache(folder, say) if fabric.is_global_zero else None
    if fabric.world_size > 1:
        cached = fabric.broadcast(cached, src=0)
    prep = Pretraining(run, folder, engine, cached)
    if cached is None:
        cfg, device = run.cfg, engine.device
        torch.manual_seed(cfg.seed + 1)
        prep.method = run.method(cfg.method, backbone, backbone.feat_dim,
                                 Augmenter(cfg.pretrain.augment)).to(device)
        prep.source = data.pretrain_source(run.method.inputs)
        prep.heldout = data.heldout_source(run.method.inputs)
        prep.order = B.StepIndices(len(prep.source), cfg.pretrain.batch_size, cfg.seed)
        prep.step_flops = measure(cfg, prep.method, prep.source, prep.order, device)
    return prep


def pretrain(prep: Pretraining, backbone, steps: int, budget_flops: float | None,
             say=print) -> PretrainResult:
    """Pre-train ``backbone`` in place for ``steps`` (the run's plan), or load it from the cache.

    Two processes asking for the same pre-training: the first takes the lock and trains, the
    other waits and then loads."""
    run, folder, engine = prep.run, prep.folder, prep.engine
    key, fabric = run.pretrain_key, engine.fabric
    # Under DDP the ranks of one job train together: only rank 0 takes the inter-process lock
    # (other jobs wait on it), and every rank follows rank 0's view of the cache.
    lock = file_lock(folder.with_name(f"{key}.lock")) if fabric.is_global_zero else nullcontext()
    with lock:
        cached = prep.cached
        if cached is None and fabric.is_global_zero:
            cached = read_cache(folder, say)        # trained by another process meanwhile
        if fabric.world_size > 1:
            cached = fabric.broadcast(cached, src=0)
        if cached is not None:
            backbone.net.load_state_dict(cached["state"])
            meta = cached["meta"]
            if meta.get("heldout"):             # an entry cached before verdicts were recorded
                meta = {**meta, "heldout": heldout.judge(run.method, run.cfg.method, meta["heldout"])}
            return PretrainResult(**{**meta, "cache_hit": True, "key": key, "curve": cached["curve"]})
        result = _train(prep, steps, budget_flops)
        result.key = key
        if bad := non_finite(backbone.net.state_dict()):
            shutil.rmtree(folder / "ckpt", ignore_errors=True)   # a retry starts over
            raise TrainingError(
                f"pre-training {run.cfg.method.name} (pretrain.lr={run.cfg.pretrain.lr:g}, "
                f"{result.steps} steps) diverged: {len(bad)} backbone tensors hold inf or NaN "
                f"(e.g. {bad[0]}); nothing was cached; lower pretrain.lr")
        if fabric.is_global_zero:
            tmp = folder / f".{WEIGHTS}.tmp"
            try:
                torch.save(backbone.net.state_dict(), tmp)
            except BaseException:
                tmp.unlink(missing_ok=True)          # never leave a partial file behind
                raise
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


def _train(prep: Pretraining, steps: int, budget_flops: float | None) -> PretrainResult:
    run, cfg = prep.run, prep.run.cfg
    method, source, order = prep.method, prep.source, prep.order
    passes = run.method.passes_per_sample
    device, bs = prep.engine.device, cfg.pretrain.batch_size
    measure_on = None
    if prep.heldout is not None:
        start = heldout.start_measure(method, method_loss, prep.heldout, bs, device,
                                      prep.folder / "ckpt")
        measure_on = lambda m, done: heldout.objective(m, method_loss, prep.heldout, bs, device)
    ph = Phase(name="pretrain", module=method, loss_fn=method_loss,
               batches=lambda start: B.iterate(source, order, start, steps, cfg.engine.num_workers),
               steps=steps, lr=cfg.pretrain.lr, weight_decay=cfg.pretrain.weight_decay,
               warmup_frac=cfg.pretrain.warmup_frac,
               images_per_step=cfg.pretrain.batch_size * passes,
               seed=cfg.seed, ckpt_dir=prep.folder / "ckpt",
               after_step=lambda done: method.after_step(done, steps),
               evaluate=measure_on, eval_steps=heldout.points(steps, cfg.eval.get("pretext_points", 1))
               if measure_on else ())
    out = prep.engine.fit(ph)
    held = None
    if measure_on is not None and out.evals:
        end = {k: v for k, v in out.evals[-1].items() if k not in ("step", "images")}
        held = {"objective": run.method.objective, "images": heldout.images(prep.heldout, bs),
                "chance": run.method.chance(cfg.method, min(bs, len(prep.heldout))),
                "start": start, "end": end}
        if len(out.evals) > 1:
            held["curve"] = [{k: v for k, v in e.items() if k != "images"} for e in out.evals]
        base = heldout.baseline(method, method_baseline, prep.heldout, bs, device)
        if base is not None:
            held["baseline"] = base
        held = heldout.judge(run.method, cfg.method, held)
    return PretrainResult(flops=steps * prep.step_flops, steps=steps,
                          images=steps * cfg.pretrain.batch_size * passes,
                          step_flops=prep.step_flops, budget_flops=budget_flops, wall_s=out.wall_s,
                          cache_hit=False, curve=out.curve, heldout=held)
