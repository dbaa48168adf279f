"""What a submitted job runs: one or more runs in order, checkpointed on the stop signal.

``RunJob`` is the callable that ``orchestration.launch`` and ``orchestration.sweep`` hand to
submitit (SLURM, or a local subprocess). It is checkpointable; the protocol on SLURM's signal
(USR2, ``launcher.signal_delay_s`` before the time limit, on preemption, or by hand with
``scancel --signal=USR2 JOBID``):

1. The job's own USR2 handler only asks the training loop to stop
   (``benchmarks.engine.request_stop``); nothing is saved from inside the handler.
2. The loop finishes its step, saves a checkpoint and raises ``Preempted``.
3. The job counts the requeue in the run's ``job.json``. Within ``launcher.max_requeues`` it
   hands over to submitit's own handler, which pickles the job again (``checkpoint()``),
   requeues it (SLURM: ``scontrol requeue``; local: the controller starts it again) and exits.
4. The requeued job runs the same list again: finished runs find their records, the
   interrupted one resumes from its latest checkpoint (``<results>/.pretrain/<key>/ckpt`` or
   ``<results>/<run_id>/ckpt``), so it ends with exactly the metrics of an uninterrupted run
   (on CPU; the engine draws every random number from (seed, step)).

Past ``max_requeues`` the run gets a failed record saying so; running it again resumes it from
its checkpoint. The job runs from a snapshot of the code taken at submission (see
``orchestration.launch.snapshot_code``); it moves back to the submission's working directory
first, so relative paths in the config mean what they meant there.
"""
from __future__ import annotations

import importlib
import os
import signal
import socket
import sys
import time
from pathlib import Path

import submitit
from benchmarks import engine, provenance
from benchmarks.errors import UserError, one_line
from benchmarks.record import Record, write_record
from benchmarks.run import Run
from orchestration import jobstate

PACKAGES = ("benchmarks", "methods", "eval", "orchestration")


def _stop_on_signal(signum, frame) -> None:
    engine.request_stop()


class RunJob(submitit.helpers.Checkpointable):
    """Run ``runs`` one after another into ``results``; returns their records.

    A run that fails is recorded as failed and the job goes on with the next one; at the end
    the job raises ``RunFailed`` naming the failures, so that SLURM marks it failed (and jobs
    that depend on it with ``afterok`` do not start).
    """

    def __init__(self, runs: list[Run], results: Path, cwd: Path, force: bool = False,
                 max_requeues: int = 3):
        self.runs = list(runs)
        self.results = Path(results).resolve()
        self.cwd = Path(cwd).resolve()
        self.force = force
        self.max_requeues = max_requeues

    def __call__(self) -> list[dict]:
        from orchestration.runner import RunFailed, execute

        for name in PACKAGES:               # bind the snapshot's packages before leaving its folder
            importlib.import_module(name)
        os.chdir(self.cwd)
        env = submitit.JobEnvironment()
        lead = env.global_rank == 0
        stop_signal = signal.Signals[f"SIG{env.USR_SIG}"]       # USR2, as in sbatch --signal
        requeue = signal.getsignal(stop_signal)     # submitit's checkpoint-and-requeue handler
        engine.clear_stop()
        signal.signal(stop_signal, _stop_on_signal)
        records, failures = [], []
        for run in self.runs:
            rid = run.run_id
            started = provenance.now()
            if lead:
                jobstate.update_job(self.results, rid, env.job_id, state="running",
                                    started_at=time.time(), host=socket.gethostname())
            try:
                records.append(execute(run, self.results, force=self.force))
            except engine.Preempted as stop:
                print(f"{rid}: {stop}", flush=True)
                if lead:
                    self._requeue_or_fail(run, env.job_id, started)
                requeue(stop_signal, None)
                sys.exit(1)                 # not rank 0: submitit's handler left the exit to us
            except RunFailed as err:
                failures.append(f"{rid}: {one_line(err)}")
            except UserError as err:        # e.g. data missing on the compute node
                if lead:
                    write_record(self.results, failed_record(run, one_line(err), started))
                failures.append(f"{rid}: {one_line(err)}")
        if failures:
            raise RunFailed(f"{len(failures)} of {len(self.runs)} runs failed: "
                            + "; ".join(failures))
        return records

    def _requeue_or_fail(self, run: Run, job_id: str, started: str) -> None:
        from orchestration.runner import RunFailed

        rid = run.run_id
        n = jobstate.count_requeue(self.results, rid, job_id, time.time())
        if n > self.max_requeues:
            error = (f"stopped by the signal {n}x, more than launcher.max_requeues="
                     f"{self.max_requeues}; run it again to resume from its checkpoint")
            write_record(self.results, failed_record(run, error, started))
            raise RunFailed(f"{rid}: {error}")
        print(f"{rid}: requeue {n} of at most {self.max_requeues}", flush=True)


def failed_record(run: Run, error: str, started: str) -> Record:
    """A ``status: failed`` record for a run that ended before ``runner.execute`` wrote one."""
    return Record.start(run).failed(error, provenance.collect(started))
