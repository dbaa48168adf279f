"""Where a run executes: here (in-process), a local subprocess, or a SLURM job.

``launcher.name`` picks it (``--launcher`` on the command line, or a preset from
``benchmarks/conf/launcher``: ``launcher=slurm_gpu``):

- ``inprocess`` runs here and prints the result line.
- ``local`` hands the run to submitit's ``LocalExecutor``: a subprocess on this machine that
  outlives the shell; ``slurm`` submits a job through submitit's ``AutoExecutor`` with the
  launcher's resources. Both print the job id and return at once; ``--wait`` waits and prints
  the result line. The job runs ``orchestration.job.RunJob``: checkpointed on SLURM's stop signal
  and requeued (at most ``launcher.max_requeues`` times).

Submitted jobs run a snapshot of the code taken at submission (``snapshot_code``), so a job
that waits in the queue never runs later edits. submitit's files (pickles, logs) go to
``launcher.folder``, default ``<results>/.submitit``; on a cluster it must be on a file system
the compute nodes share (so must ``--results``).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import submitit
from omegaconf import DictConfig

from benchmarks import provenance
from benchmarks.errors import UserError
from benchmarks.record import Compute, Record, reusable
from benchmarks.run import Run
from benchmarks.units import flops_text
from orchestration import jobstate
from orchestration.job import PACKAGES, RunJob
from orchestration.runner import RunFailed, execute
from orchestration.status import wait_for

LAUNCHERS = ("inprocess", "local", "slurm")
SNAPSHOT_META = provenance.SNAPSHOT_META


def summary_line(record: dict | Record) -> str:
    """One line for a finished run: its scores and what it spent, or its error."""
    if isinstance(record, dict):
        if record.get("status") != "ok" and set(record) <= {"schema", "run_id", "status", "error"}:
            return f"{record.get('run_id')}: {record.get('status')}  {record.get('error')}"   # a stand-in
        record = Record.from_json(record)
    if record.status != "ok":
        return f"{record.run_id}: {record.status}  {record.error}"
    m, c = record.metrics, record.compute or Compute()
    return (f"{record.run_id}: {record.status}  PA-EPE {m['pa_epe_mm']:.2f} mm"
            f"  PA-AUC {m['pa_auc']:.3f}  EPE {m['epe_mm']:.2f} mm"
            f"  pretrain {flops_text(c.pretrain_flops or 0, trim=True)}"
            f"{' (cached)' if c.pretrain_cache_hit else ''}"
            f"  finetune {flops_text(c.finetune_flops or 0, trim=True)}  {c.wall_s or 0:.0f} s")


def check_launcher(cfg: DictConfig, submitting: bool = True) -> str:
    """``launcher.name`` after the checks that need no cluster; UserError on bad settings.
    ``submitting`` False (a dry run): a plan needs no ``sbatch`` on this machine."""
    launcher = cfg.launcher
    if launcher.name not in LAUNCHERS:
        raise UserError(f"unknown launcher {launcher.name!r}; "
                        f"choose one of: {', '.join(LAUNCHERS)}")
    if launcher.name == "inprocess":
        return launcher.name
    if launcher.nodes != 1:
        raise UserError(f"launcher.nodes must be 1 (got {launcher.nodes}): a run uses one node, "
                        f"with DDP over engine.devices GPUs on it")
    if launcher.name == "local" and cfg.engine.devices > 1:
        raise UserError(f"--launcher local runs one process; engine.devices={cfg.engine.devices} "
                        f"needs --launcher slurm (one task per device) or inprocess")
    if launcher.gpus_per_node and launcher.gpus_per_node != cfg.engine.devices:
        raise UserError(f"launcher.gpus_per_node={launcher.gpus_per_node} but engine.devices="
                        f"{cfg.engine.devices}: a job runs one task per device; set them equal")
    for key in ("time_min", "cpus_per_task", "array_parallelism"):
        if launcher[key] < 1:
            raise UserError(f"launcher.{key} must be >= 1 (got {launcher[key]})")
    if launcher.max_requeues < 0:
        raise UserError(f"launcher.max_requeues must be >= 0 (got {launcher.max_requeues})")
    if submitting and launcher.name == "slurm" and shutil.which("sbatch") is None:
        raise UserError("--launcher slurm: sbatch not found, SLURM is not available on this "
                        "machine (use --launcher local to run in a subprocess here)")
    return launcher.name


def submitit_folder(cfg: DictConfig, results: Path) -> Path:
    """Where submitit keeps pickles and logs (absolute: jobs start in the snapshot)."""
    folder = Path(cfg.launcher.folder) if cfg.launcher.folder else Path(results) / ".submitit"
    return folder.expanduser().resolve()


def make_executor(cfg: DictConfig, folder: Path, name: str,
                  dependency: str | None = None) -> submitit.Executor:
    """A submitit executor with the launcher's resources.

    SLURM: one task per ``engine.devices`` (Lightning Fabric reads its DDP ranks from SLURM).
    Local: one process (``check_launcher`` refuses ``engine.devices > 1`` there).
    ``dependency``: a SLURM dependency (``afterok:123_0``); jobs it names must succeed first,
    and a job whose dependency can no longer be met is cancelled, not left pending.
    """
    launcher = cfg.launcher
    jobs = Path(folder) / "%j"
    tasks = int(cfg.engine.devices)
    if launcher.name == "local":
        executor = submitit.LocalExecutor(folder=jobs, max_num_timeout=launcher.max_requeues)
        executor.update_parameters(name=name, timeout_min=launcher.time_min, nodes=1,
                                   tasks_per_node=1, gpus_per_node=launcher.gpus_per_node,
                                   signal_delay_s=launcher.signal_delay_s, stderr_to_stdout=True,
                                   setup=list(launcher.setup))
        return executor
    executor = submitit.AutoExecutor(folder=jobs, cluster="slurm",
                                     slurm_max_num_timeout=launcher.max_requeues)
    extra = {"requeue": True, **dict(launcher.additional_parameters)}
    if dependency:
        extra.setdefault("kill-on-invalid-dep", "yes")
    executor.update_parameters(
        name=name, timeout_min=launcher.time_min, nodes=launcher.nodes, tasks_per_node=tasks,
        cpus_per_task=launcher.cpus_per_task, stderr_to_stdout=True,
        gpus_per_node=launcher.gpus_per_node or None, mem_gb=launcher.mem_gb or None,
        slurm_partition=launcher.partition, slurm_account=launcher.account,
        slurm_qos=launcher.qos, slurm_constraint=launcher.constraint,
        slurm_signal_delay_s=launcher.signal_delay_s,
        slurm_array_parallelism=launcher.array_parallelism, slurm_additional_parameters=extra,
        slurm_setup=list(launcher.setup), slurm_dependency=dependency)
    return executor


def _source_files(root: Path) -> list[Path]:
    files = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                files.append(path)
    return files


def _digest(root: Path, files: list[Path]) -> str:
    """The snapshot name of ``files`` under ``root``: a hash of their paths and contents."""
    digest = hashlib.sha256()
    for path in files:
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def snapshot_code(folder: Path, root: Path = provenance.ROOT) -> Path:
    """Copy the import packages (``benchmarks``, ``methods``, ``eval``) of the source tree
    ``root`` into ``folder/code/<hash>`` and return that folder.

    The name is a hash of the files' paths and contents, so submitting unchanged code twice
    reuses one snapshot, after hashing the snapshot again: a copy edited or damaged since is
    replaced, never run. ``snapshot.json`` beside the packages keeps the git state of the
    source at submission (the copy itself is not a git checkout).
    """
    files = _source_files(root)
    name = _digest(root, files)
    target = Path(folder) / "code" / name
    if (target / SNAPSHOT_META).exists():
        if _digest(target, _source_files(target)) == name:    # re-hashed: never reuse an edited copy
            return target
        stale = target.with_name(f".{target.name}.{os.getpid()}.stale")
        target.rename(stale)
        shutil.rmtree(stale, ignore_errors=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    for path in files:
        dest = tmp / path.relative_to(root)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, dest)
    git = provenance.collect(provenance.now())
    (tmp / SNAPSHOT_META).write_text(json.dumps(
        {"source": str(root), "git_sha": git["git_sha"], "git_dirty": git["git_dirty"],
         "created": provenance.now()}, indent=1))
    try:
        tmp.rename(target)
    except OSError:                 # another submission made the same snapshot meanwhile
        shutil.rmtree(tmp, ignore_errors=True)
    return target


@contextmanager
def inside(folder: Path):
    """Work in ``folder`` for the duration: jobs started here import the code found here."""
    before = Path.cwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(before)


def submit_jobs(cfg: DictConfig, groups: list[list[Run]], results: Path, force: bool,
                name: str, dependency: str | None = None) -> list[submitit.Job]:
    """Submit one job per group of runs (in order within a job); one array on SLURM.
    ``cfg``: the config whose launcher settings the jobs share.

    Every run gets its ``job.json``; returns the jobs in the order of ``groups``.
    """
    results = Path(results).resolve()
    folder = submitit_folder(cfg, results)
    code = snapshot_code(folder)
    executor = make_executor(cfg, folder, name, dependency)
    cwd = Path.cwd()
    calls = [RunJob(group, results, cwd, force=force, max_requeues=cfg.launcher.max_requeues)
             for group in groups]
    submitted_at = time.time()
    with inside(code):
        try:
            if cfg.launcher.name == "slurm" and len(calls) > 1:
                with executor.batch():
                    jobs = [executor.submit(call) for call in calls]
            else:
                jobs = [executor.submit(call) for call in calls]
        except submitit.core.utils.FailedJobError as err:     # sbatch refused: no controller, bad partition
            lines = [line.strip() for line in str(err).splitlines() if line.strip()]
            said = next((line for line in lines if "error" in line.lower()), lines[-1] if lines else "")
            raise UserError(f"--launcher {cfg.launcher.name}: the scheduler refused the job "
                            f"({said[:200]}); check launcher.partition/account and that SLURM answers "
                            f"(sinfo)") from None
    host = socket.gethostname()
    for job, group in zip(jobs, groups):
        pid = int(job.job_id) if cfg.launcher.name == "local" else None
        for run in group:
            jobstate.record_submission(results, run.run_id, job.job_id, cfg.launcher.name,
                                       submitted_at, log=job.paths.stdout, pid=pid, host=host,
                                       pretrain_key=run.pretrain_key)
    return jobs


def _global_zero() -> bool:
    """Whether this process is DDP rank 0 (Fabric records its rank here when it launches)."""
    from lightning_fabric.utilities.rank_zero import rank_zero_only

    return getattr(rank_zero_only, "rank", 0) == 0


def submit_run(run: Run, results: Path, force: bool = False, wait: bool = False) -> int:
    """Run ``run`` where its ``launcher.name`` says; returns the process exit status."""
    cfg = run.cfg
    launcher = check_launcher(cfg)
    results = Path(results)
    if launcher == "inprocess":
        try:
            record = run_here(run, results, force)
        except RunFailed as err:
            print(f"run failed: {err}", file=sys.stderr)
            return 1
        if _global_zero():                          # under DDP every rank returns here
            print(summary_line(record))
        return 0
    rid = run.run_id
    if (record := reusable(results, rid, force)) is not None:
        print(summary_line(record))
        return 0
    job = submit_jobs(cfg, [[run]], results, force, name=f"bench-{rid}")[0]
    print(f"{rid}: submitted {launcher} job {job.job_id} (log: {job.paths.stdout})")
    if not wait:
        print(f"follow it with: bench status --results {results}")
        return 0
    [record] = wait_for(results, [rid])
    print(summary_line(record))
    return 0 if record["status"] == "ok" else 1


def run_here(run: Run, results: Path, force: bool = False) -> dict:
    """Run in this process and return the record (``RunFailed`` after a failed record).

    While it runs, ``job.json`` holds this process's pid, so ``bench status`` shows it
    running; a ``UserError`` (nothing started) takes the file away again.
    """
    rid = run.run_id
    if (record := reusable(results, rid, force)) is not None:
        return record
    jobstate.record_submission(results, rid, None, "inprocess", time.time(), pid=os.getpid(),
                               host=socket.gethostname(), pretrain_key=run.pretrain_key)
    jobstate.update_job(results, rid, None, state="running", started_at=time.time())
    try:
        return execute(run, results, force=force)
    except (UserError, OSError):             # nothing started: no job file is left behind
        jobstate.forget(results, rid)
        raise
    except RunFailed:
        if reusable(results, rid, False, log=lambda *_: None) is not None:
            jobstate.forget(results, rid)    # a failed --force: the kept ok record stands
        raise
