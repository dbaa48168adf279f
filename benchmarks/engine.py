"""The one training loop, shared by pre-training and fine-tuning (on Lightning Fabric).

Read top to bottom: build the optimiser and the schedule from the planned steps, restore the
latest checkpoint if there is one, then for each step fetch the batch of that step, compute
the loss with the step's own random generator, guard against NaN, update, log, checkpoint,
evaluate when due. Resuming from a checkpoint repeats the uninterrupted run exactly on CPU:
the batch and every random number of step k depend on (seed, k) only.
"""
from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import torch
from torch import nn

from benchmarks.budget import warmup_cosine
from benchmarks.config import EngineConfig

CKPT = "last.ckpt"
OPTIMIZERS = ("adam", "adamw")   # adam: L2 weight decay in the gradient; adamw: decoupled


class TrainingError(RuntimeError):
    """A run that started and cannot go on (NaN loss, ...): the record says failed."""


class Preempted(Exception):
    """Raised after a checkpoint was saved because a stop was requested (SLURM signal)."""


_STOP = threading.Event()


def request_stop() -> None:
    """Ask the running loop to checkpoint at the next step boundary and raise ``Preempted``."""
    _STOP.set()


def clear_stop() -> None:
    _STOP.clear()


def make_fabric(cfg: EngineConfig):
    import warnings

    from lightning_fabric import Fabric

    # Lightning warns whenever srun exists but the process was not started by it; runs here are
    # started by bench (in-process, or by submitit inside the job), so the hint never applies.
    warnings.filterwarnings("ignore", message="The `srun` command is available")

    accelerator = cfg.accelerator
    if accelerator == "auto":
        accelerator = "cuda" if torch.cuda.is_available() else "cpu"
    precision = cfg.precision
    if precision == "auto":
        precision = "bf16-mixed" if accelerator == "cuda" else "32-true"
    strategy = "ddp" if cfg.devices > 1 else "auto"
    fabric = Fabric(accelerator=accelerator, devices=cfg.devices, precision=precision,
                    strategy=strategy)
    if cfg.devices > 1:
        fabric.launch()
    return fabric


def param_groups(module: nn.Module, weight_decay: float) -> list[dict]:
    """Weight decay on weights only: not on biases and normalisation parameters (ndim <= 1)."""
    decay, no_decay = [], []
    for p in module.parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]


def step_seed(seed: int, phase: str, step: int) -> int:
    salt = {"pretrain": 1, "finetune": 2}.get(phase, 3)
    return ((seed * 1_000_003 + salt) * 10_000_019 + step) % (2 ** 63)


def step_generator(seed: int, phase: str, step: int, device: torch.device) -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed(step_seed(seed, phase, step))
    return g


@dataclass
class Phase:
    """One training phase: what to train, on which batches, for how many planned steps."""
    name: str                                         # "pretrain" | "finetune"
    module: nn.Module                                 # everything that trains
    loss_fn: Callable[[nn.Module, dict, torch.Generator], tuple[torch.Tensor, dict]]
    batches: Callable[[int], Iterator[dict]]          # start step -> iterator of CPU batches
    steps: int
    lr: float
    weight_decay: float
    warmup_frac: float
    images_per_step: int
    seed: int
    ckpt_dir: Path
    evaluate: Callable[[nn.Module, int], dict] | None = None
    eval_steps: tuple[int, ...] = ()                  # after these many steps (1-based)
    optimizer: str = "adam"                           # one of OPTIMIZERS


@dataclass
class PhaseResult:
    steps: int
    wall_s: float
    curve: list[dict] = field(default_factory=list)   # {"phase", "step", "loss", ...}
    evals: list[dict] = field(default_factory=list)   # {"step", **metrics}
    resumed_from: int = 0


class Engine:
    def __init__(self, cfg: EngineConfig, console=None):
        self.cfg = cfg
        self.fabric = make_fabric(cfg)
        self.console = console

    @property
    def device(self) -> torch.device:
        return self.fabric.device

    def describe(self) -> str:
        d = self.device
        if d.type == "cuda":
            return f"cuda:{torch.cuda.get_device_name(d)}"
        return f"cpu:{os.cpu_count()}cores"

    def prepare(self, module: nn.Module) -> nn.Module:
        if self.device.type == "cuda" and self.cfg.channels_last:
            module = module.to(memory_format=torch.channels_last)
        return module

    def fit(self, ph: Phase) -> PhaseResult:
        fabric = self.fabric
        module = self.prepare(ph.module)
        opt_cls = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[ph.optimizer]
        opt = opt_cls(param_groups(module, ph.weight_decay), lr=ph.lr)
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda k: warmup_cosine(k, ph.steps, ph.warmup_frac))
        module, opt = fabric.setup(module, opt)
        if callable(getattr(ph.module, "loss", None)):   # methods are driven through .loss()
            module.mark_forward_method("loss")
        step_fn = torch.compile(ph.loss_fn) if self.cfg.compile else ph.loss_fn

        result = PhaseResult(steps=ph.steps, wall_s=0.0)
        state = {"module": module, "optimizer": opt, "scheduler": sched, "step": 0,
                 "curve": result.curve, "evals": result.evals, "wall_s": 0.0}
        ckpt = Path(ph.ckpt_dir) / CKPT
        start = 0
        if ckpt.exists():
            fabric.load(ckpt, state)
            start = int(state["step"])
            result.curve, result.evals = state["curve"], state["evals"]
            result.resumed_from = start
        wall0 = time.perf_counter() - float(state["wall_s"])

        def save(k: int) -> None:
            state.update(step=k, curve=result.curve, evals=result.evals,
                         wall_s=time.perf_counter() - wall0)
            tmp = ckpt.with_name(f".{CKPT}.{os.getpid()}.tmp")
            ckpt.parent.mkdir(parents=True, exist_ok=True)
            fabric.save(tmp, state)
            if fabric.is_global_zero:
                os.replace(tmp, ckpt)
            fabric.barrier()

        eval_steps = set(ph.eval_steps)
        progress = _Progress(ph, self.cfg.progress and fabric.is_global_zero, start, self.console)
        data_s = step_s = 0.0
        t_fetch = time.perf_counter()
        module.train()
        with progress:
            for k, batch in enumerate(ph.batches(start), start=start):
                batch = fabric.to_device(self._shard(batch))
                t_step = time.perf_counter()
                data_s += t_step - t_fetch
                g = step_generator(ph.seed, ph.name, k, self.device)
                torch.manual_seed(step_seed(ph.seed, ph.name, k) + 1)   # dropout & co. too
                with fabric.autocast():
                    loss, logs = step_fn(module, batch, g)
                if not torch.isfinite(loss.detach()):
                    raise TrainingError(f"{ph.name}: non-finite loss ({loss.item()}) at step {k + 1} "
                                        f"of {ph.steps}; lower the learning rate or check the data")
                opt.zero_grad(set_to_none=True)
                fabric.backward(loss)
                opt.step()
                sched.step()
                step_s += time.perf_counter() - t_step
                done = k + 1
                value = float(loss.detach())
                if done % self.cfg.log_every == 0 or done == ph.steps:
                    n = self.cfg.log_every if done % self.cfg.log_every == 0 else done % self.cfg.log_every
                    result.curve.append({"phase": ph.name, "step": done, "loss": value,
                                         "lr": sched.get_last_lr()[0],
                                         "data_s": data_s / n, "step_s": step_s / n,
                                         **{k2: float(v) for k2, v in logs.items()}})
                    data_s = step_s = 0.0
                progress.update(done, value)
                if ph.evaluate is not None and done in eval_steps:
                    module.eval()
                    result.evals.append({"step": done, "images": done * ph.images_per_step,
                                         **ph.evaluate(module, done)})
                    module.train()
                if done == ph.steps:
                    break
                if self._stop_requested():
                    save(done)
                    raise Preempted(f"{ph.name} stopped at step {done}; checkpoint saved")
                if done % self.cfg.checkpoint_every == 0:
                    save(done)
                t_fetch = time.perf_counter()
        if start < ph.steps:
            save(ph.steps)
        result.wall_s = float(state["wall_s"]) if start >= ph.steps else time.perf_counter() - wall0
        return result


    def _shard(self, batch: dict) -> dict:
        """Under DDP each rank trains on its share of the step's global batch."""
        world = self.fabric.world_size
        if world == 1:
            return batch
        return {k: v[self.fabric.global_rank::world] for k, v in batch.items()}

    def _stop_requested(self) -> bool:
        """The stop flag, agreed across ranks so that every rank stops at the same step."""
        if self.fabric.world_size == 1:
            return _STOP.is_set()
        flag = torch.tensor(float(_STOP.is_set()), device=self.device)
        return bool(self.fabric.all_reduce(flag, reduce_op="max") > 0)


class _Progress:
    """A rich progress bar with loss, images/s and ETA; silent when disabled."""

    def __init__(self, ph: Phase, enabled: bool, start: int, console=None):
        self.enabled, self.ph, self.start = enabled, ph, start
        self.console = console
        self.bar = None

    def __enter__(self):
        if self.enabled:
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                       TimeElapsedColumn, TimeRemainingColumn)
            self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TextColumn("loss {task.fields[loss]:.4f}"),
                                TextColumn("{task.fields[ips]:.0f} img/s"),
                                TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                                console=self.console, transient=False)
            self.bar.__enter__()
            self.task = self.bar.add_task(self.ph.name, total=self.ph.steps, completed=self.start,
                                          loss=float("nan"), ips=0.0)
            self.t0 = time.perf_counter()
        return self

    def update(self, done: int, loss: float) -> None:
        if self.bar is not None:
            ips = (done - self.start) * self.ph.images_per_step / max(1e-9, time.perf_counter() - self.t0)
            self.bar.update(self.task, completed=done, loss=loss, ips=ips)

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.__exit__(*exc)
