"""One run, config to record: prepare data, pre-train (cached), probe, fine-tune, evaluate.

Everything a user can get wrong (unknown names, missing data, missing weights) is checked
before the run starts and raises ``UserError`` with no record written. A run that fails after
it started writes ``status: failed`` with the error line. A preempted run writes nothing; its
checkpoints let the requeued job finish it.
"""
from __future__ import annotations

import shutil
import time
from pathlib import Path

import torch
from omegaconf import DictConfig

import methods
from benchmarks import compute, provenance
from benchmarks.backbone import create_backbone
from benchmarks.config import run_id
from benchmarks.engine import Engine, Preempted
from benchmarks.errors import UserError, one_line
from benchmarks.flops import image_flops
from benchmarks.prepare import Data
from benchmarks.pretrain import pretrain
from benchmarks.record import Compute, Record, reusable, write_record


class RunFailed(RuntimeError):
    """The run started and failed; its record says why."""


def pretrain_cache_dir(results: Path) -> Path:
    return Path(results) / ".pretrain"


def execute(cfg: DictConfig, results: Path, force: bool = False, console=None,
            log=print) -> dict:
    """Run ``cfg`` and return its record (an existing ok record unless ``force``)."""
    results = Path(results)
    rid = run_id(cfg)
    if (rec := reusable(results, rid, force, log)) is not None:
        return rec
    method_cls = methods.get(cfg.method.name)
    started = provenance.now()
    t0 = time.perf_counter()
    data = Data(cfg)                              # generates or validates: UserError on bad data
    torch.manual_seed(cfg.seed)
    backbone = create_backbone(cfg.backbone)
    if not method_cls.pretrains:
        method_cls.init_backbone(cfg.method, backbone)   # UserError when weights are missing
    record = Record.start(cfg, rid)
    engine = None
    try:
        engine = Engine(cfg.engine, console=console, log_dir=results / rid / "logs")
        backbone = backbone.to(engine.device)
        plan = compute.plan(cfg, image_flops(backbone, cfg.pretrain.res, engine.device),
                            data.pretrain_size())
        pre = None
        if method_cls.pretrains:
            pre = pretrain(cfg, method_cls, backbone, data, engine, pretrain_cache_dir(results), plan)
        probes = {}
        if cfg.eval.probes:
            from eval.probes import run_probes
            train, test = data.triplets()
            probes = run_probes(backbone, train, test, seed=cfg.seed, epochs=cfg.eval.probe_epochs)
        spent = pre.flops if pre else 0.0
        from eval.finetune import finetune
        train, test = data.labelled()
        ft = finetune(cfg, backbone, train, test, engine, results / rid / "ckpt",
                      steps=lambda recipe, step_flops: plan.finetune_steps(recipe, step_flops, spent),
                      val=data.validation())
        record.status = "ok"
        record.metrics, record.baselines, record.probes = ft.metrics, ft.baselines, probes
        record.labelled, record.validation = data.labelled_counts(), ft.validation
        record.compute = Compute(
            budget_flops=plan.flops, budget_unfair=plan.unfair,
            pretrain_flops=spent, finetune_flops=ft.flops,
            pretrain_steps=pre.steps if pre else 0, finetune_steps=ft.steps,
            pretrain_images=pre.images if pre else 0, finetune_images=ft.images,
            pretrain_step_flops=pre.step_flops if pre else 0.0,
            finetune_step_flops=ft.step_flops, image_flops=plan.image_flops,
            pretrain_cache_hit=bool(pre.cache_hit) if pre else False,
            pretrain_key=pre.key if pre else None,
            pretrain_wall_s=pre.wall_s if pre else 0.0, finetune_wall_s=ft.wall_s,
            external_pretrain=method_cls.external(cfg.method),
            wall_s=time.perf_counter() - t0, device=engine.describe())
        record.curves = {"train": (pre.curve or []) if pre else [], "eval": ft.evals,
                         "finetune": ft.curve}
    except (Preempted, KeyboardInterrupt):
        raise
    except UserError:
        raise
    except Exception as err:  # noqa: BLE001 - any failure after the start becomes a record
        failed = Record.start(cfg, rid).failed(one_line(f"{type(err).__name__}: {err}"),
                                               provenance.collect(started))
        if engine is None or engine.fabric.is_global_zero:
            write_record(results, failed)
        raise RunFailed(failed.error) from err
    record.provenance = provenance.collect(started)
    if engine.fabric.is_global_zero:            # under DDP one record, from rank 0
        write_record(results, record)
        shutil.rmtree(results / rid / "ckpt", ignore_errors=True)   # an ok record needs none
    return record.to_json()
