"""``bench sweep FILE``: a grid of runs in which each distinct pre-training runs once.

The sweep file (its format, reading and expansion) is ``orchestration.sweepfile``.

Plan. Runs with an ok record are skipped; runs whose job is still pending or running are
left alone; the rest (never run, or failed) are submitted. Runs that differ only in
fine-tuning share one pre-training (``benchmarks.run.pretrain_key``): the first of them
(the *leader*) pre-trains, the others (*followers*) wait for it. Runs of init-only methods and
runs whose pre-training is already cached start at once.

- in-process: one after another, leaders first.
- local: ``launcher.array_parallelism`` lanes, each one job that runs its runs in order;
  leaders go first, and a follower that reaches the pre-training while its leader is still
  training waits on the cache's file lock and then loads the result.
- SLURM: leaders and independent runs go out as one job array, the followers of each
  pre-training as an array that depends on their leader's array task (``afterok``); arrays
  run at most ``launcher.array_parallelism`` tasks at once.

Submission returns at once unless ``--wait``. The code is snapshotted at submission.
"""
from __future__ import annotations

import functools
import itertools
import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import DictConfig
from rich.console import Console
from rich.table import Table

from benchmarks import compute
from benchmarks.backbone import create_backbone
from benchmarks.data import open_source
from benchmarks.data.freihand import split_sizes
from benchmarks.data.sources import PUBLISHED_SIZES
from benchmarks.errors import UserError
from benchmarks.flops import image_flops
from benchmarks.run import Run
from benchmarks.units import flops_text
from eval.pretrain import META, WEIGHTS
from orchestration import launch, status
from orchestration.runner import RunFailed, pretrain_cache_dir
from orchestration.sweepfile import compose_runs, load_spec


@dataclass
class PlannedRun:
    run: Run
    state: status.RunState | None       # before submission

    @property
    def cfg(self) -> DictConfig:
        return self.run.cfg

    @property
    def rid(self) -> str:
        return self.run.run_id

    @property
    def key(self) -> str | None:
        """The pre-training cache key; None: an init-only method."""
        return self.run.pretrain_key


@dataclass
class Plan:
    name: str
    launcher: str
    runs: list[PlannedRun]
    done: list[PlannedRun] = field(default_factory=list)       # ok record: skipped
    live: list[PlannedRun] = field(default_factory=list)       # pending or running: left alone
    leaders: list[PlannedRun] = field(default_factory=list)    # pre-train, then fine-tune
    free: list[PlannedRun] = field(default_factory=list)       # start at once
    followers: dict[str, list[PlannedRun]] = field(default_factory=dict)   # key -> runs
    waits_on: dict[str, str] = field(default_factory=dict)     # key -> live job id

    @property
    def todo(self) -> list[PlannedRun]:
        """Runs to submit, in submission order: leaders, independent runs, followers."""
        return self.leaders + self.free + [r for runs in self.followers.values() for r in runs]


def cache_exists(results: Path, key: str) -> bool:

    folder = pretrain_cache_dir(results) / key
    return (folder / WEIGHTS).exists() and (folder / META).exists()


def make_plan(name: str, planned: list[Run], results: Path) -> Plan:
    """Which of ``planned`` are done, under way, to pre-train, to start at once or to wait."""
    queue = status.queue_for(results, [r.run_id for r in planned])
    runs = [PlannedRun(r, status.run_state(results, r.run_id, queue)) for r in planned]
    plan = Plan(name=name, launcher=planned[0].cfg.launcher.name, runs=runs)
    leading: set[str] = set()
    for r in runs:
        if r.state is not None and r.state.state == "ok":
            plan.done.append(r)
        elif r.state is not None and r.state.state in ("pending", "running"):
            plan.live.append(r)
            if r.key is not None and r.state.job_id and r.state.launcher == plan.launcher:
                plan.waits_on.setdefault(r.key, r.state.job_id)
    for r in runs:
        if r.state is not None and r.state.state in ("ok", "pending", "running"):
            continue
        if r.key is None or cache_exists(results, r.key):
            plan.free.append(r)
        elif r.key in leading or r.key in plan.waits_on:
            plan.followers.setdefault(r.key, []).append(r)
        else:
            leading.add(r.key)
            plan.leaders.append(r)
    return plan


@functools.lru_cache(maxsize=None)
def _image_flops(backbone: str, res: int) -> float:
    return image_flops(create_backbone(backbone), res)


def _here(root: str | None) -> Path | None:
    """``root`` as a folder that exists on this machine, else None."""
    path = Path(root).expanduser() if root else None
    return path if path is not None and path.is_dir() else None


def _pretrain_size(cfg: DictConfig) -> int:
    """Pre-training images of the mixture: counted where the data are here, else as published."""
    n = 0
    for src in cfg.pretrain.sources:
        if src.name.startswith("synthetic"):
            n += int(src.n)
        elif (root := _here(src.root)) is None:
            if src.name not in PUBLISHED_SIZES:
                raise UserError(f"pretrain.sources ({src.name}): a plan counts this source on "
                                f"this machine (no published size is kept); set its root")
            n += PUBLISHED_SIZES[src.name]
        else:
            n += _source_size(src.name, root, cfg.pretrain.res, src.get("scale"))
    return n


@functools.lru_cache(maxsize=None)
def _source_size(name: str, root: Path, res: int, scale: str | None = None) -> int:
    """Images of a real pre-training source on this machine (counted once per plan, not per run)."""
    return len(open_source(name, root, res, scale=scale))


@functools.lru_cache(maxsize=None)
def _training_images(root: Path) -> int:
    """FreiHAND training images on this machine (counted once per plan, not per run)."""
    return sum(1 for p in (root / "training" / "rgb").iterdir() if p.suffix == ".jpg")


def _labelled_size(cfg: DictConfig) -> int:
    """Labelled fine-tuning images: the training split's, less validation, times the fraction."""
    if cfg.data.name == "synthetic":
        n = int(cfg.data.n_train)
    elif (root := _here(cfg.data.root)) is None:
        if cfg.data.name not in PUBLISHED_SIZES:
            raise UserError(f"data={cfg.data.name}: a plan counts its training split on this "
                            f"machine (no published size is kept); set data.root to its folder")
        n = PUBLISHED_SIZES[cfg.data.name]
    else:
        from benchmarks.data.sets import official_validation, training_count

        n = training_count(cfg, root)
        if n is not None:             # its validation is an official split, not carved
            carved = 0.0 if official_validation(cfg.data.name) else cfg.data.val_fraction
            return split_sizes(n, carved, cfg.finetune.label_fraction)[0]
        n = _training_images(root)
    return split_sizes(n, cfg.data.val_fraction, cfg.finetune.label_fraction)[0]


def data_missing(cfg: DictConfig) -> list[str]:
    """The real data folders of ``cfg`` that are not on this machine (a plan then uses the
    published sizes)."""
    roots = [] if cfg.data.name == "synthetic" else [("data.root", cfg.data.name, cfg.data.root)]
    roots += [(f"pretrain.sources.{i}.root", src.name, src.root)
              for i, src in enumerate(cfg.pretrain.sources) if not src.name.startswith("synthetic")]
    return [f"{key} ({name}) not set" if not root else f"{key}={root} ({name})"
            for key, name, root in roots if _here(root) is None]


def estimate(run: Run) -> compute.Estimate:
    """The compute plan of one run before it runs (``benchmarks.compute.estimate``): the data
    sizes counted where the data are here, else the published ones, and the backbone's measured
    cost per image at both resolutions."""
    cfg = run.cfg
    return compute.estimate(cfg, run.method.passes_per_sample,
                            _pretrain_size(cfg), _labelled_size(cfg),
                            _image_flops(cfg.backbone, cfg.pretrain.res),
                            _image_flops(cfg.backbone, cfg.data.res))


def _flops(x: float) -> str:
    return "? (wall-clock budget)" if math.isnan(x) else flops_text(x, trim=True)


def describe(plan: Plan, title: str, dry_run: bool) -> None:
    """Print the plan: each run and what happens to it, the counts, the compute estimate.
    ``title`` names where the plan came from (a sweep file, or "bench run")."""
    action = {}
    for r in plan.done:
        action[r.rid] = "skip (ok)"
    for r in plan.live:
        action[r.rid] = f"leave ({r.state.state}, job {r.state.job_id})"
    for r in plan.leaders:
        action[r.rid] = f"pre-train {r.key[:8]} + fine-tune"
    for r in plan.free:
        action[r.rid] = "fine-tune" + (f" ({r.key[:8]} cached)" if r.key else "")
    for key, runs in plan.followers.items():
        live = f" (job {plan.waits_on[key]})" if key in plan.waits_on else ""
        for r in runs:
            action[r.rid] = f"fine-tune after {key[:8]}{live}"
    table = Table(title=f"{title}, launcher {plan.launcher}")
    table.add_column("run", no_wrap=True)
    table.add_column("ft seed")
    table.add_column("action")
    table.add_column("steps (est.)", justify="right")
    estimates = {r.rid: estimate(r.run) for r in plan.runs}
    for r in plan.runs:
        seed = r.cfg.finetune.seed
        e = estimates[r.rid]
        pre = "?" if math.isnan(e.pretrain_steps) else f"{e.pretrain_steps:,}"
        table.add_row(r.rid, str(r.cfg.seed if seed is None else seed), action[r.rid],
                      f"{pre} + {e.finetune_steps:,}")
    console = Console(width=max(120, shutil.get_terminal_size().columns))
    console.print(table)
    pre = sum(estimates[r.rid].pretrain_flops for r in plan.leaders)
    fine = sum(estimates[r.rid].finetune_flops for r in plan.todo)
    waiting = sum(len(v) for v in plan.followers.values())
    console.print(f"{len(plan.runs)} runs: {len(plan.done)} done, {len(plan.live)} pending or "
                  f"running, {len(plan.todo)} to run"
                  + (" (dry run: nothing submitted)" if dry_run else ""))
    console.print(f"pre-trainings: {len(plan.leaders)} to run"
                  + (f", {len(plan.waits_on)} under way" if plan.waits_on else ""))
    after = sum(1 for r in plan.todo if r.key is not None)
    console.print(f"fine-tunes: {len(plan.todo)} to run, {after} of them after a pre-training"
                  + (f" ({waiting} wait for another run's)" if waiting else ""))
    console.print(f"compute (estimate): pre-training {_flops(pre)} + fine-tuning {_flops(fine)}"
                  f" = {_flops(pre + fine)}")
    missing = sorted({root for r in plan.runs for root in data_missing(r.cfg)})
    if missing:
        console.print(f"data not on this machine: {'; '.join(missing)}; the estimate uses the "
                      f"published size of each set that is missing (FreiHAND 130,240, "
                      f"YouTube3DHands 47,125 training images) and counts the others",
                      soft_wrap=True)


def submit(plan: Plan, results: Path, wait: bool) -> int:
    """Run or submit the plan's runs; returns the exit status (1 when a run failed)."""
    todo = plan.todo
    if not todo:
        print("nothing to submit")
        return _wait(plan, results) if wait and plan.live else 0
    if plan.launcher == "inprocess":
        return _run_here(todo, results)
    cfg = todo[0].cfg
    name = f"bench-{plan.name}"
    if plan.launcher == "local":
        lanes = min(cfg.launcher.array_parallelism, len(todo))
        groups = [[r.run for r in todo[i::lanes]] for i in range(lanes)]
        jobs = launch.submit_jobs(cfg, groups, results, force=False, name=name)
        print(f"submitted {len(todo)} runs in {lanes} local job(s): "
              f"{', '.join(j.job_id for j in jobs)}")
    else:
        first = plan.leaders + plan.free
        leader_job = {}
        if first:
            jobs = launch.submit_jobs(cfg, [[r.run] for r in first], results, force=False,
                                      name=name)
            leader_job = {r.key: job.job_id for r, job in zip(first, jobs) if r in plan.leaders}
            print(f"submitted {len(first)} runs ({len(plan.leaders)} pre-training): "
                  f"{_array(jobs)}")
        for key, runs in plan.followers.items():
            after = leader_job.get(key) or plan.waits_on[key]
            jobs = launch.submit_jobs(cfg, [[r.run] for r in runs], results, force=False,
                                      name=name, dependency=f"afterok:{after}")
            print(f"submitted {len(runs)} fine-tunes after job {after}: {_array(jobs)}")
    if not wait:
        print(f"follow them with: bench status --results {results}")
        return 0
    return _wait(plan, results)


def _array(jobs) -> str:
    ids = [j.job_id for j in jobs]
    return ids[0] if len(ids) == 1 else f"{ids[0].split('_')[0]} (array of {len(ids)})"


def _wait(plan: Plan, results: Path) -> int:
    records = status.wait_for(results, [r.rid for r in plan.todo + plan.live])
    for record in records:
        print(launch.summary_line(record))
    return 0 if all(r["status"] == "ok" for r in records) else 1


def _run_here(todo: list[PlannedRun], results: Path) -> int:
    failed = 0
    for r in todo:
        try:
            record = launch.run_here(r.run, results)
        except RunFailed as err:
            print(f"{r.rid}: failed: {err}")
            failed += 1
            continue
        print(launch.summary_line(record))
    print(f"{len(todo) - failed} of {len(todo)} runs ok")
    return 1 if failed else 0


def main(file: Path, results: Path, launcher: str | None = None, dry_run: bool = False,
         wait: bool = False, overrides: list[str] | None = None) -> int:
    path = Path(file)
    spec = load_spec(path)
    runs = compose_runs(path, spec, list(overrides or []), launcher, need_data=not dry_run)
    return _plan_and_submit(spec.name, f"sweep {spec.name} ({path})", runs, Path(results),
                            dry_run, wait)


def multirun(words: list[str], results: Path, dry_run: bool = False, wait: bool = False) -> int:
    """``bench run -m key=a,b ...``: hydra's basic sweep. Every sweep word (``a,b``, ``range(3)``,
    ``choice(...)``, as hydra parses them) is an axis of the grid, the other words fixed; the
    grid then runs as a sweep file would (planned, each pre-training once, resumable)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    from orchestration import compose

    parser = OverridesParser.create()
    fixed, axes = [], []
    for word in words:
        try:
            override = parser.parse_override(word)
        except HydraException as err:
            raise UserError(f"-m: cannot parse {word!r} ({str(err).splitlines()[0]})") from None
        if override.is_sweep_override():
            key = override.get_key_element()
            axes.append([f"{key}={v}" for v in override.sweep_string_iterator()])
        else:
            fixed.append(word)
    if not axes:
        raise UserError("-m needs at least one swept key, e.g. seed=0,1,2 (or use bench run without -m)")
    runs, seen = [], set()
    for point in itertools.product(*axes):
        run = compose.resolve([*fixed, *point], need_data=not dry_run)
        if run.run_id not in seen:
            seen.add(run.run_id)
            runs.append(run)
    label = "bench run -m " + " ".join(words)
    return _plan_and_submit("multirun", label, runs, Path(results), dry_run, wait)


def _plan_and_submit(name: str, label: str, runs: list[Run], results: Path, dry_run: bool,
                     wait: bool) -> int:
    launch.check_launcher(runs[0].cfg, submitting=not dry_run)
    plan = make_plan(name, runs, results)
    describe(plan, label, dry_run)
    if dry_run:
        return 0
    return submit(plan, results, wait)
