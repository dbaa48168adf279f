"""The one training loop, shared by pre-training and fine-tuning (on Lightning Fabric).

Read top to bottom: build the optimiser and the schedule from the planned steps, restore the
latest checkpoint if there is one, then for each step fetch the batch of that step, compute
the loss with the step's own random generator, guard against NaN, update, log, checkpoint,
evaluate when due (a phase's ``after_step`` runs after each update: the momentum
teachers of BYOL, MoCo v3 and DINO follow their students there). Resuming from a checkpoint repeats the uninterrupted run exactly on CPU:
the batch and every random number of step k depend on (seed, k) only.
"""
from __future__ import annotations

import os
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import torch
from torch import nn

from benchmarks.budget import warmup_cosine
from benchmarks.config import OPTIMIZERS, EngineConfig
from benchmarks.errors import one_line

CKPT = "last.ckpt"
NO_STEP = -1                    # first_bad's value while every loss so far was finite
PREV = "prev.ckpt"              # the last good checkpoint before CKPT, kept until CKPT is verified


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

    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
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
    after_step: Callable[[int], None] | None = None   # after each optimizer step (steps done):
                                                      # momentum (EMA) target updates


@dataclass
class PhaseResult:
    steps: int
    wall_s: float
    curve: list[dict] = field(default_factory=list)   # {"phase", "step", "loss", ...}
    evals: list[dict] = field(default_factory=list)   # {"step", **metrics}
    resumed_from: int = 0


class Engine:
    def __init__(self, cfg: EngineConfig, console=None, log_dir: Path | None = None,
                 hparams: dict | None = None):
        self.cfg = cfg
        self.fabric = make_fabric(cfg)
        self.console = console
        self.log_dir = log_dir          # engine.logger's curves go under it, one folder per phase
        self.hparams = hparams          # the run's config, logged with each phase's curves

    @property
    def device(self) -> torch.device:
        return self.fabric.device

    def describe(self) -> str:
        d = self.device
        if d.type == "cuda":
            return f"cuda:{torch.cuda.get_device_name(d)}"
        return f"cpu:{os.cpu_count()}cores"

    def prepare(self, module: nn.Module) -> nn.Module:
        """``module`` in channels_last memory format where the config asks for it on this device
        (``engine.channels_last`` on a GPU, ``engine.channels_last_on_cpu`` on the CPU)."""
        wanted = self.cfg.channels_last if self.device.type == "cuda" else getattr(self.cfg, "channels_last_on_cpu", False)
        if wanted:
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
        if self._restore(ph.name, Path(ph.ckpt_dir), state):
            start = int(state["step"])
            result.curve, result.evals = state["curve"], state["evals"]
            result.resumed_from = start
        wall0 = time.perf_counter() - float(state["wall_s"])

        def save(k: int) -> None:
            state.update(step=k, curve=result.curve, evals=result.evals,
                         wall_s=time.perf_counter() - wall0)
            tmp = ckpt.with_name(f".{CKPT}.{os.getpid()}.tmp")
            ckpt.parent.mkdir(parents=True, exist_ok=True)
            try:
                fabric.save(tmp, state)
                if fabric.is_global_zero:
                    _verify(tmp)                 # a full disk fails here, not on the next resume
            except BaseException:
                tmp.unlink(missing_ok=True)      # a failed save never keeps a full disk full
                raise
            if fabric.is_global_zero:
                if ckpt.exists():
                    os.replace(ckpt, ckpt.with_name(PREV))
                os.replace(tmp, ckpt)
            fabric.barrier()

        logger = self._logger(ph.name)
        eval_steps = set(ph.eval_steps)
        progress = _Progress(ph, self.cfg.progress and fabric.is_global_zero, start, self.console,
                             self.cfg.progress_every_s)
        data_s = step_s = 0.0
        t_fetch = time.perf_counter()
        module.train()
        # No host synchronisation between logging steps: finiteness is accumulated on the
        # device (the first bad step kept there) and read at logging, checkpoint and stop steps.
        first_bad = torch.full((), NO_STEP, dtype=torch.long, device=self.device)
        checked = start

        def check_finite(done: int) -> None:
            nonlocal checked
            bad = int(first_bad)                                  # the one read, when due
            if bad != NO_STEP:
                raise TrainingError(f"{ph.name}: non-finite loss at step {bad} of {ph.steps} (found "
                                    f"checking steps {checked + 1}-{done}); lower the learning rate "
                                    f"or check the data")
            checked = done

        with progress:
            for k, batch in enumerate(ph.batches(start), start=start):
                batch = fabric.to_device(self._shard(batch))
                t_step = time.perf_counter()
                data_s += t_step - t_fetch
                g = step_generator(ph.seed, ph.name, k, self.device)
                torch.manual_seed(step_seed(ph.seed, ph.name, k) + 1)   # dropout & co. too
                with fabric.autocast():
                    loss, logs = step_fn(module, batch, g)
                first_bad = torch.where(torch.isfinite(loss.detach()) | (first_bad != NO_STEP),
                                        first_bad, k + 1)
                opt.zero_grad(set_to_none=True)
                fabric.backward(loss)
                opt.step()
                sched.step()
                if ph.after_step is not None:
                    ph.after_step(k + 1)
                step_s += time.perf_counter() - t_step
                done = k + 1
                logging = done % self.cfg.log_every == 0 or done == ph.steps
                if logging:
                    check_finite(done)
                    value = float(loss.detach())
                    n = self.cfg.log_every if done % self.cfg.log_every == 0 else done % self.cfg.log_every
                    result.curve.append({"phase": ph.name, "step": done, "loss": value,
                                         "lr": sched.get_last_lr()[0],
                                         "data_s": data_s / n, "step_s": step_s / n,
                                         **{k2: float(v) for k2, v in logs.items()}})
                    data_s = step_s = 0.0
                    if logger is not None:
                        logger.log_metrics({k2: v for k2, v in result.curve[-1].items()
                                            if k2 not in ("phase", "step")}, step=done)
                    progress.update(done, value)
                if ph.evaluate is not None and done in eval_steps:
                    check_finite(done)
                    module.eval()
                    result.evals.append({"step": done, "images": done * ph.images_per_step,
                                         **ph.evaluate(module, done)})
                    if logger is not None:
                        logger.log_metrics({f"eval/{k2}": v for k2, v in result.evals[-1].items()
                                            if k2 != "step" and isinstance(v, (int, float))}, step=done)
                    module.train()
                if done == ph.steps:
                    break
                if (fabric.world_size == 1 or logging) and self._stop_requested():
                    check_finite(done)
                    save(done)
                    raise Preempted(f"{ph.name} stopped at step {done}; checkpoint saved")
                if done % self.cfg.checkpoint_every == 0:
                    check_finite(done)                   # a checkpoint never holds a diverged model
                    save(done)
                t_fetch = time.perf_counter()
        if logger is not None:
            logger.finalize("success")
        if start < ph.steps:
            save(ph.steps)
        result.wall_s = float(state["wall_s"]) if start >= ph.steps else time.perf_counter() - wall0
        return result


    def _logger(self, phase: str):
        """Lightning Fabric's CSV or TensorBoard logger for ``phase`` (``engine.logger``), or None."""
        if self.cfg.logger == "none" or self.log_dir is None or not self.fabric.is_global_zero:
            return None
        from lightning_fabric.loggers import CSVLogger, TensorBoardLogger

        kind = {"csv": CSVLogger, "tensorboard": TensorBoardLogger}[self.cfg.logger]
        logger = kind(root_dir=str(self.log_dir), name=phase, version=0)
        if self.hparams:
            if isinstance(logger, CSVLogger):        # Fabric's CSVLogger logs no hyper-parameters
                import yaml

                logger.experiment                    # creates its folder (and checks it) first
                folder = Path(logger.log_dir)
                folder.mkdir(parents=True, exist_ok=True)
                (folder / "hparams.yaml").write_text(yaml.safe_dump(_flat(self.hparams), sort_keys=False))
            else:
                logger.log_hyperparams(_flat(self.hparams))
        return logger

    def _restore(self, phase: str, folder: Path, state: dict) -> bool:
        """Load the newest readable checkpoint of ``folder`` into ``state``: ``last.ckpt``, or
        ``prev.ckpt`` when the last one cannot be read (killed mid-write, a full disk), with a
        line naming both; False (start the phase over, with a line) when neither is good."""
        last, prev = folder / CKPT, folder / PREV
        for path in (last, prev):
            if not path.exists():
                continue
            try:
                self.fabric.load(path, state, weights_only=True)
            except Exception as err:  # noqa: BLE001 - any unreadable file is skipped, loudly
                self._say(f"{phase}: checkpoint {path} cannot be read ({one_line(err)[:120]})")
                continue
            if path == prev:
                self._say(f"{phase}: resuming from the previous checkpoint {prev} (step {state['step']})")
            return True
        if last.exists() or prev.exists():
            self._say(f"{phase}: no readable checkpoint in {folder}; starting the phase over")
        return False

    def _say(self, line: str) -> None:
        if self.fabric.is_global_zero:
            print(line, file=sys.stderr, flush=True)

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


def _flat(d: dict, prefix: str = "") -> dict:
    """A nested config as flat ``a.b.c`` keys (what the loggers' hparams tables show)."""
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v if isinstance(v, (int, float, str, bool)) or v is None else str(v)
    return out


def _verify(path: Path) -> None:
    """Read a freshly written checkpoint back; raises if it is not a complete file."""
    torch.load(path, map_location="cpu", weights_only=True, mmap=True)


class _Progress:
    """Where a run can be watched. On a terminal, a rich progress bar with loss, images/s and
    ETA; otherwise (piped, redirected, a SLURM or local job's log) a plain line every
    ``every_s`` seconds and at the last step. Silent when disabled."""

    def __init__(self, ph: Phase, enabled: bool, start: int, console=None, every_s: float = 30.0):
        self.enabled, self.ph, self.start = enabled, ph, start
        self.console, self.every_s = console, every_s
        self.bar = None
        self.plain = False

    def __enter__(self):
        if not self.enabled:
            return self
        from rich.console import Console

        self.console = self.console or Console()
        self.t0 = time.perf_counter()
        if not self.console.is_terminal:
            self.plain, self.next_line = True, self.t0
            return self
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
        return self

    def update(self, done: int, loss: float) -> None:
        if self.bar is None and not self.plain:
            return
        now = time.perf_counter()
        ips = (done - self.start) * self.ph.images_per_step / max(1e-9, now - self.t0)
        if self.bar is not None:
            self.bar.update(self.task, completed=done, loss=loss, ips=ips)
        elif now >= self.next_line or done == self.ph.steps:
            self.next_line = now + self.every_s
            eta = (self.ph.steps - done) / max(1e-9, done - self.start) * (now - self.t0)
            self.console.print(f"{self.ph.name} step {done}/{self.ph.steps} loss {loss:.4f} "
                               f"{ips:.0f} img/s elapsed {_clock(now - self.t0)} ETA {_clock(eta)}",
                               markup=False, highlight=False, soft_wrap=True)
            self.console.file.flush()

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.__exit__(*exc)


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
