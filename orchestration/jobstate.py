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
    pid_start     when that process started (Linux: field 22 of ``/proc/<pid>/stat``, clock
                  ticks since boot), so that a pid reused by a later process is not taken
                  for the run's; absent in older files and where it cannot be read
    pretrain_key  optional: the run's pre-training cache key (where its pre-training
                  checkpoints are, ``<results>/.pretrain/<key>/ckpt``)
    log           the job's output file (stdout and stderr)

Every reader goes through :func:`load_job`, which checks these types: a file that is not a
JSON object of them raises :class:`BadJobFile` with a one-line reason (``bench status``
lists the run with it, ``bench clean`` leaves the run alone). :func:`read_job` is the
lenient form for writers: such a file reads as none, and the next write replaces it.
"""
from __future__ import annotations

import json
import math
import socket
from pathlib import Path

from benchmarks.locks import file_lock
from benchmarks.store import write_json_atomic

JOB_FILE = "job.json"
STATES = ("submitted", "running", "requeued")
LAUNCHERS = ("inprocess", "local", "slurm")
FROM_PROC = object()        # record_submission's default: read the pid's start time from /proc


class BadJobFile(ValueError):
    """A job file that exists but cannot be read as one; ``str(err)`` is the one-line reason."""


def job_path(results: Path, rid: str) -> Path:
    return Path(results) / rid / JOB_FILE


def _show(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_time(value) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


# field -> (test of a present, non-null value, what it must be)
_FIELDS = {
    "job_id": (lambda v: isinstance(v, str), "a string"),
    "launcher": (lambda v: v in LAUNCHERS, f"one of {', '.join(LAUNCHERS)}"),
    "requeues": (lambda v: _is_int(v) and v >= 0, "a count (an integer >= 0)"),
    "submitted_at": (_is_time, "a time in seconds"),
    "started_at": (_is_time, "a time in seconds"),
    "requeued_at": (_is_time, "a time in seconds"),
    "host": (lambda v: isinstance(v, str), "a string"),
    "pid": (lambda v: _is_int(v) and v > 0, "a process id (an integer > 0)"),
    "pid_start": (lambda v: _is_int(v) and v >= 0, "an integer (clock ticks since boot)"),
    "pretrain_key": (lambda v: isinstance(v, str) and v != "", "a string"),
    "log": (lambda v: isinstance(v, str), "a string"),
}


def check_job(obj) -> dict:
    """``obj`` (a job file's JSON) if it is a job file's content; else ``BadJobFile``."""
    if not isinstance(obj, dict):
        kind = {list: "list", str: "string", type(None): "null",
                bool: "boolean"}.get(type(obj), "number")
        raise BadJobFile(f"a JSON {kind}, not an object")
    if obj.get("state") not in STATES:
        raise BadJobFile(f"state {_show(obj.get('state'))} is not one of {', '.join(STATES)}")
    for key, (ok, want) in _FIELDS.items():
        value = obj.get(key)
        if value is not None and not ok(value):
            raise BadJobFile(f"{key} {_show(value)} is not {want}")
    return obj


def load_job(results: Path, rid: str) -> dict | None:
    """The job file of run ``rid``, checked (:func:`check_job`); None when there is none.

    ``BadJobFile`` (one line) when the file exists but is not readable, not JSON (e.g.
    truncated), not an object, or holds a field of the wrong type (a ``pid`` that is not an
    integer, ...)."""
    path = job_path(results, rid)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as err:
        raise BadJobFile(f"cannot be read ({err.strerror or type(err).__name__})") from None
    if not data.strip():
        raise BadJobFile("empty file")
    try:
        obj = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as err:
        raise BadJobFile(f"not UTF-8 text (byte {err.start})") from None
    except ValueError as err:
        raise BadJobFile(f"not JSON ({' '.join(str(err).split())})") from None
    return check_job(obj)


def read_job(results: Path, rid: str) -> dict | None:
    """The job file of run ``rid``, or None when there is none or it is not a job file
    (:func:`load_job` says why); writers then start a fresh one."""
    try:
        return load_job(results, rid)
    except BadJobFile:
        return None


def process_start(pid: int) -> int | None:
    """When process ``pid`` started (Linux: field 22 of ``/proc/<pid>/stat``, clock ticks since
    boot); None where that cannot be read (no such process, no ``/proc``)."""
    try:
        stat = Path(f"/proc/{int(pid)}/stat").read_text()
        return int(stat.rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
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
                      host: str | None = None, pid_start=FROM_PROC,
                      pretrain_key: str | None = None) -> dict:
    """The submitter's line: job ``job_id`` runs ``rid``.

    ``submitted_at``: taken before the job was handed over, so that any record the job
    writes is newer than it. ``pid_start``: when process ``pid`` started; by default read
    from ``/proc`` here (when ``host`` is this machine), None where it cannot be. A
    ``pretrain_key``, when given, is kept too.
    """
    if pid_start is FROM_PROC:
        here = host is None or host == socket.gethostname()
        pid_start = process_start(pid) if pid is not None and here else None
    extra = {"pretrain_key": pretrain_key} if pretrain_key else {}
    return update_job(results, rid, job_id, submitter=True, launcher=launcher,
                      submitted_at=submitted_at, log=str(log) if log else None, pid=pid,
                      pid_start=pid_start, host=host, **extra)


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
