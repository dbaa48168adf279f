"""``<results>/<run_id>/job.json``: which job runs a run, where, and how far it got.

The record (``result.json``) says how a run ended; this small file says what is happening
before that: the submitter writes it when a job goes out, the job updates it when it starts
a run and when it is requeued. Both sides read, merge and write it under a file lock, each
write atomic. A new job id starts a fresh file (a resubmission starts a fresh requeue count);
the submitter never moves a state back (a fast job may have started before the submitter
wrote its own line).

Fields:
    job_id        SLURM ``"123"`` or array task ``"123_4"``; local: the controller's pid;
                  inprocess: None
    launcher      "inprocess" | "local" | "slurm"
    state         "submitted" (queued, or waiting in a lane) | "running" | "requeued"
    requeues      how many times the job was requeued for this run after the stop signal
    submitted_at  unix time (s) of the submission; started_at, requeued_at likewise
    host, pid     where the run's process is (inprocess and local: probed for liveness)
    log           the job's output file (stdout and stderr)
"""
from __future__ import annotations

import json
from pathlib import Path

from benchmarks.locks import file_lock
from benchmarks.store import write_json_atomic

JOB_FILE = "job.json"
STATES = ("submitted", "running", "requeued")


def job_path(results: Path, rid: str) -> Path:
    return Path(results) / rid / JOB_FILE


def read_job(results: Path, rid: str) -> dict | None:
    """The job file of run ``rid``, or None when there is none (or it is unreadable)."""
    try:
        return json.loads(job_path(results, rid).read_text())
    except (OSError, ValueError):
        return None


def update_job(results: Path, rid: str, job_id: str | None, submitter: bool = False,
               **fields) -> dict:
    """Merge ``fields`` into the job file of ``rid`` for job ``job_id``; returns the new content.

    ``submitter=True``: the submission's own line; it never overwrites a ``state`` that the
    job (same id) already wrote.
    """
    path = job_path(results, rid)
    with file_lock(path.with_name(f".{JOB_FILE}.lock")):
        current = read_job(results, rid)
        if current is None or current.get("job_id") != job_id:
            current = {"job_id": job_id, "state": "submitted", "requeues": 0}
        elif submitter:
            fields.pop("state", None)
        current.update(fields)
        write_json_atomic(path, current)
        return current


def record_submission(results: Path, rid: str, job_id: str | None, launcher: str,
                      submitted_at: float, log: Path | None = None, pid: int | None = None,
                      host: str | None = None) -> dict:
    """The submitter's line: job ``job_id`` runs ``rid``.

    ``submitted_at``: taken before the job was handed over, so that any record the job
    writes is newer than it.
    """
    return update_job(results, rid, job_id, submitter=True, launcher=launcher,
                      submitted_at=submitted_at, log=str(log) if log else None, pid=pid,
                      host=host)


def count_requeue(results: Path, rid: str, job_id: str | None, at: float) -> int:
    """Add one requeue to the job file of ``rid`` (state "requeued"); returns the new count."""
    path = job_path(results, rid)
    with file_lock(path.with_name(f".{JOB_FILE}.lock")):
        current = read_job(results, rid)
        if current is None or current.get("job_id") != job_id:
            current = {"job_id": job_id, "requeues": 0}
        current.update(state="requeued", requeues=int(current.get("requeues", 0)) + 1,
                       requeued_at=at)
        write_json_atomic(path, current)
        return current["requeues"]


def forget(results: Path, rid: str) -> None:
    """Remove the job file of ``rid`` (a run that never started), and its folder if now empty."""
    path = job_path(results, rid)
    path.unlink(missing_ok=True)
    path.with_name(f".{JOB_FILE}.lock").unlink(missing_ok=True)
    try:
        path.parent.rmdir()
    except OSError:
        pass
