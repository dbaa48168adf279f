"""One run, config to record: prepare data, pre-train (cached), probe, fine-tune, evaluate.

Everything a user can get wrong (unknown names, missing data, missing weights) is checked
before the run starts and raises ``UserError`` with no record written. A run that fails after
it started writes ``status: failed`` with the error line. A preempted run writes nothing; its
checkpoints let the requeued job finish it.
"""
from __future__ import annotations

import os
import shutil
import time
from contextlib import nullcontext
from pathlib import Path

import torch

from benchmarks import compute, provenance
from benchmarks.backbone import create_backbone
from benchmarks.backbone_weights import apply_init
from benchmarks.config import to_container
from benchmarks.data.prepare import Data
from benchmarks.engine import Engine, Preempted
from benchmarks.errors import UserError, one_line
from benchmarks.flops import image_flops
from benchmarks.locks import file_lock
from benchmarks.record import Compute, Record, reusable, write_record
from benchmarks.run import Run
from benchmarks.units import flops_text
from eval import finetune as ft_phase
from eval import pretrain as pre_phase
from eval import predictions


class RunFailed(RuntimeError):
    """The run started and failed; its record says why."""


def pretrain_cache_dir(results: Path) -> Path:
    return Path(results) / ".pretrain"


def header(run: Run, plan: compute.RunPlan) -> str:
    """The run's start header: what runs, under which seeds, and its plan."""
    how = "measured" if plan.measured else "estimated"
    if not run.pretrains:
        start = "init only" if run.init is None else f"weights from {run.init.file or 'timm'}"
        pre = f"no pre-training ({start})"
    elif plan.cached:
        pre = f"pre-training cached ({run.pretrain_key[:8]}: {plan.pretrain_steps:,} steps)"
    else:
        steps = "timed" if plan.pretrain_steps != plan.pretrain_steps else f"{plan.pretrain_steps:,}"
        pre = (f"pre-train {steps} steps, {flops_text(plan.pretrain_flops, trim=True)} "
               f"(cache miss {run.pretrain_key[:8]})")
    extra = plan.finetune_steps - plan.recipe_steps
    fine = (f"fine-tune {plan.finetune_steps:,} steps"
            + (f" (recipe {plan.recipe_steps:,} + {extra:,} of the unspent budget)" if extra else ""))
    budget = f"budget {run.cfg.budget} match={run.cfg.match}"
    return (f"run {run.run_id} ({run.row}, {run.seeds})\n"
            f"  plan ({how}): {budget}; {pre}; {fine}")


def execute(run: Run, results: Path, force: bool = False, console=None,
            log=print) -> dict:
    """Run ``run`` and return its record (an existing ok record unless ``force``).

    Everything the run needs is set up and its plan made (and printed) before either phase
    trains; a ``UserError`` until then leaves nothing behind."""
    results, cfg, rid = Path(results), run.cfg, run.run_id
    if (rec := reusable(results, rid, force, log)) is not None:
        return rec
    check_devices(cfg)
    check_places(results, rid)
    # Two identical runs at once fine-tune once: the second waits here, then finds the record.
    lead = all(int(os.environ.get(v, 0)) == 0 for v in ("RANK", "LOCAL_RANK", "SLURM_PROCID"))
    lock = results / LOCKS / f"{rid}.lock"
    try:
        waiting = lambda: log(f"{rid}: another process is running this run; waiting for it "   # noqa: E731
                              f"(its lock: {lock})")
        with file_lock(lock, on_wait=waiting) if lead else nullcontext():      # DDP: rank 0 only
            if not force and (rec := reusable(results, rid, False, log)) is not None:
                return rec
            return _execute(run, results, force, console, log)
    except UserError:
        if lead:                 # a refusal leaves nothing behind, not even its lock
            lock.unlink(missing_ok=True)
            try:
                lock.parent.rmdir()
            except OSError:
                pass
        raise


LOCKS = ".locks"      # <results>/.locks/<run_id>.lock: one process runs a run at a time


def check_devices(cfg) -> None:
    """What the engine would refuse after the start, refused before it: a CUDA run on a
    machine without CUDA, more devices than it has."""
    acc, n = cfg.engine.accelerator, cfg.engine.devices
    if acc == "cuda" or (acc == "auto" and n > 1 and torch.cuda.is_available()):
        have = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if have == 0:
            raise UserError("engine.accelerator=cuda: no CUDA device on this machine; use "
                            "engine.accelerator=auto (or cpu), or run it where there is a GPU "
                            "(--launcher slurm)")
        if n > have:
            raise UserError(f"engine.devices={n}: this machine has {have} CUDA device(s)")


def check_places(results: Path, rid: str) -> None:
    """The folders and files a run writes are free to be written: refused before it starts."""
    for path, want in ((pretrain_cache_dir(results), "folder"), (results / rid, "folder"),
                       (results / rid / "result.json", "file"), (results / LOCKS, "folder")):
        if path.exists() and (path.is_dir() != (want == "folder")):
            found = "a folder" if path.is_dir() else "a file"
            raise UserError(f"{path} is {found} where the run writes its {want}: move it away")


def _ok_record(results: Path, rid: str) -> dict | None:
    return reusable(results, rid, False, log=lambda *_: None)


def _execute(run: Run, results: Path, force: bool, console, log) -> dict:
    cfg, rid = run.cfg, run.run_id
    kept = _ok_record(results, rid) if force else None     # --force: kept until a new one is complete
    started = provenance.now()
    provenance.git_state()          # the code this process runs, pinned before it trains
    t0 = time.perf_counter()
    data = Data(cfg, finetune_seed=run.finetune_seed)   # generates or validates: UserError on bad data
    torch.manual_seed(cfg.seed)
    backbone = create_backbone(cfg.backbone)
    apply_init(run.init, backbone, say=log)             # UserError when weights are missing
    record = Record.start(run)
    engine = None
    try:
        engine = Engine(cfg.engine, console=console, log_dir=results / rid / "logs",
                        hparams={"run_id": rid, **to_container(cfg)})
        backbone = backbone.to(engine.device)
        img = image_flops(backbone, cfg.pretrain.res, engine.device)
        pre_prep = (pre_phase.prepare(run, backbone, data, engine, pretrain_cache_dir(results), log)
                    if run.pretrains else None)
        train, test = data.labelled()
        ft_prep = ft_phase.prepare(cfg, backbone, train, engine, run.finetune_seed)
        measuring = pre_prep is not None and pre_prep.cached is None
        costs = compute.Costs(
            n_pretrain=data.pretrain_size(), n_labelled=len(train), image_flops=img,
            pretrain_step_flops=pre_prep.step_flops if measuring else 0.0,
            finetune_step_flops=ft_prep.step_flops, recipe_steps=ft_prep.recipe, measured=True,
            step_seconds=pre_prep.step_seconds if measuring else None)
        plan = compute.plan_run(cfg, costs, cached=pre_prep.cached["meta"] if pre_prep and
                                pre_prep.cached else None)
        if engine.fabric.is_global_zero:
            log(header(run, plan))
        pre = None
        if pre_prep is not None:
            pre = pre_phase.pretrain(pre_prep, backbone, int(plan.pretrain_steps),
                                     plan.budget_flops, log)
        probes = {}
        if cfg.eval.probes:
            from eval.probes import run_probes
            tr, te = data.triplets()
            probes = run_probes(backbone, tr, te, seed=cfg.seed, epochs=cfg.eval.probe_epochs)
        spent = pre.flops if pre else 0.0
        steps = plan.finetune_steps
        if pre is not None and pre.flops != plan.pretrain_flops:     # cached by another process
            steps = plan.budget.finetune_steps(ft_prep.recipe, ft_prep.step_flops, spent)
        ft = ft_phase.finetune(ft_prep, steps, test, engine, results / rid / "ckpt",
                               val=data.validation())
        record.status = "ok"
        record.metrics, record.baselines, record.probes = ft.metrics, ft.baselines, probes
        record.labelled, record.validation = data.labelled_counts(), ft.validation
        record.compute = Compute(
            budget_flops=plan.budget_flops, budget_unfair=plan.budget.unfair,
            pretrain_flops=spent, finetune_flops=ft.flops,
            pretrain_steps=pre.steps if pre else 0, finetune_steps=ft.steps,
            pretrain_images=pre.images if pre else 0, finetune_images=ft.images,
            pretrain_step_flops=pre.step_flops if pre else 0.0,
            finetune_step_flops=ft.step_flops, image_flops=plan.budget.image_flops,
            pretrain_cache_hit=bool(pre.cache_hit) if pre else False,
            pretrain_key=pre.key if pre else None,
            pretrain_wall_s=pre.wall_s if pre else 0.0, finetune_wall_s=ft.wall_s,
            external_pretrain=run.method.external(cfg.method),
            wall_s=time.perf_counter() - t0, device=engine.describe())
        record.pretraining = pre.heldout if pre else None
        record.transfer = ft_phase.transfer(ft_prep, data.others, engine)
        board = ft_phase.leaderboard(ft_prep, data.leaderboard, data.leaderboard_set, engine)
        record.curves = {"train": (pre.curve or []) if pre else [], "eval": ft.evals,
                         "finetune": ft.curve}
    except (Preempted, KeyboardInterrupt):
        raise
    except UserError:
        raise
    except Exception as err:  # noqa: BLE001 - any failure after the start becomes a record
        failed = Record.start(run).failed(one_line(f"{type(err).__name__}: {err}"),
                                          provenance.collect(started))
        if kept is not None:
            raise RunFailed(f"{failed.error} (--force: the ok record {rid}/result.json is kept "
                            f"unchanged)") from err
        if engine is None or engine.fabric.is_global_zero:
            write_record(results, failed)
        raise RunFailed(failed.error) from err
    record.provenance = provenance.collect(started)
    if engine.fabric.is_global_zero:            # under DDP one record, from rank 0
        # the predictions first: an ok record always has them beside it
        predictions.write(results / rid, ft.predictions["ids"], ft.predictions["xyz"],
                          cfg.data.name, predictions.scored_split(cfg.data.name))
        if board is not None:                   # the label-free split, for the leaderboard
            predictions.write(results / rid, board["ids"], board["xyz"], cfg.data.name,
                              "evaluation", name=predictions.LEADERBOARD, lines=board["lines"])
        write_record(results, record)
        shutil.rmtree(results / rid / "ckpt", ignore_errors=True)   # an ok record needs none
    return record.to_json()
