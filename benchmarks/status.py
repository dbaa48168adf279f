"""``bench status``: one table of the runs under ``--results``: state, job id, errors.

A run's state comes from its record (``result.json``), its job file (``job.json``, see
``benchmarks.jobstate``) and the scheduler (asked once per table, and only when a run has a
SLURM job):

``pending``   a live job that has not started the run yet (SLURM: pending, requeued,
              waiting for its dependency; local: a lane busy with earlier runs)
``running``   a live job running it
``ok``        the record says ok (and no newer submission is live)
``failed``    the record says failed, with its error line; or the job that was to write the
              record ended without one (cancelled, killed, out of memory), and the error
              line says so and names the job's log
``unreadable`` the record file is not a JSON object (truncated, a list, not JSON)
``invalid``   the record breaks the record contract (another schema, a metric that is
              missing, a string or NaN): ``bench report`` leaves it out with the same reason
              (both read records through ``benchmarks.record.check``)

A job is live when SLURM still lists it (``squeue``), or, for local and in-process runs on
this host, while its process exists. Where neither can be asked (another host, no
``squeue``), the job file's own state is shown.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks import jobstate
from benchmarks.record import RECORD, Checked, check, stand_in

STATES = ("running", "pending", "failed", "unreadable", "invalid", "ok")
SLURM_PENDING = {"PENDING", "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD", "RESV_DEL_HOLD",
                 "SUSPENDED", "CONFIGURING", "RESIZING"}
SLURM_RUNNING = {"RUNNING", "COMPLETING", "STAGE_OUT", "SIGNALING"}


@dataclass
class RunState:
    run_id: str
    state: str                          # one of STATES
    job_id: str | None = None
    launcher: str | None = None
    error: str | None = None            # failed, unreadable, invalid: one line
    record: dict | None = None
    job: dict = field(default_factory=dict)


def slurm_queue() -> dict[str, str] | None:
    """SLURM state of each of this user's jobs SLURM still knows (array tasks as ``123_4``).

    None when SLURM cannot be asked (no ``squeue``, or it fails).
    """
    if shutil.which("squeue") is None:
        return None
    try:
        out = subprocess.run(["squeue", "--me", "--array", "--states=all", "--noheader",
                              "--format=%i|%T"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    queue = {}
    for line in out.stdout.splitlines():
        job_id, _, state = line.strip().partition("|")
        if job_id:
            queue[job_id] = state.strip()
    return queue


def process_alive(pid: int) -> bool:
    """True while process ``pid`` exists on this host and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _live_state(job: dict, queue: dict[str, str] | None) -> tuple[str | None, str | None]:
    """(pending | running | ended | None when unknown, the scheduler's own word)."""
    launcher = job.get("launcher")
    if launcher == "slurm":
        if queue is None:
            return None, None
        word = queue.get(str(job.get("job_id")))
        if word is None:
            return "ended", None
        if word in SLURM_PENDING:
            return "pending", word
        if word in SLURM_RUNNING:
            return "running", word
        return "ended", word
    if job.get("pid") is None or job.get("host") != socket.gethostname():
        return None, None
    if not process_alive(int(job["pid"])):
        return "ended", None
    return ("running" if job.get("state") == "running" else "pending"), None


def queue_for(results: Path, rids: list[str]) -> dict[str, str] | None:
    """``slurm_queue()`` when one of the runs ``rids`` has a SLURM job, else None (unasked)."""
    if any((jobstate.read_job(results, rid) or {}).get("launcher") == "slurm" for rid in rids):
        return slurm_queue()
    return None


def _current_record(folder: Path, job: dict | None) -> Checked | None:
    """The checked record, unless there is none or the job file shows a submission newer than it."""
    path = folder / RECORD
    if not path.exists():
        return None
    if job is not None:
        stamp = job.get("submitted_at") or job.get("started_at") or 0.0
        try:
            if path.stat().st_mtime < stamp:
                return None
        except OSError:
            return None
    return check(path)


def run_state(results: Path, rid: str, queue: dict[str, str] | None) -> RunState | None:
    """The state of run ``rid`` (None for a folder with neither record nor job file).

    ``queue``: ``slurm_queue()`` (or None when SLURM cannot be asked). A job that has left
    the queue without a record newer than its submission ended without one; the record is
    read again after that verdict, so a job that finished in between is not mistaken for it.
    """
    folder = Path(results) / rid
    job = jobstate.read_job(results, rid)
    checked = _current_record(folder, job)
    if checked is None and job is None:
        return None
    if checked is None:
        state = _job_state(rid, job, queue)
        if state.state != "failed" or (checked := _current_record(folder, job)) is None:
            return state
    record = checked.record or {}
    return RunState(rid, checked.kind, job_id=_job_id(record, job),
                    launcher=(job or {}).get("launcher"), error=checked.reason,
                    record=checked.record, job=job or {})


def _job_id(record: dict, job: dict | None) -> str | None:
    return (record.get("provenance") or {}).get("slurm_job_id") or (job or {}).get("job_id")


def _job_state(rid: str, job: dict, queue: dict[str, str] | None) -> RunState:
    live, word = _live_state(job, queue)
    common = dict(job_id=job.get("job_id"), launcher=job.get("launcher"), job=job)
    if live in ("pending", "running"):
        return RunState(rid, live, **common)
    if live is None:
        return RunState(rid, "running" if job.get("state") == "running" else "pending", **common)
    who = f"{job.get('launcher')} job {job.get('job_id')}" if job.get("job_id") else "its process"
    how = f" ({word})" if word else ""
    log = f"; log: {job['log']}" if job.get("log") else ""
    return RunState(rid, "failed", error=f"{who} ended{how} without writing a record{log}",
                    **common)


def run_ids(results: Path) -> list[str]:
    """Every run folder under ``results`` (hidden folders, e.g. the pre-training cache, skipped)."""
    root = Path(results)
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def collect(results: Path) -> list[RunState]:
    rids = run_ids(results)
    queue = queue_for(results, rids)
    states = (run_state(results, rid, queue) for rid in rids)
    return [s for s in states if s is not None]


def wait_for(results: Path, rids: list[str], poll_s: float = 5.0, log=print) -> list[dict]:
    """Block until every run in ``rids`` has ended; their records, in order.

    A run whose job ended without a record gets a stand-in (``benchmarks.record.stand_in``).
    Prints each run's changes of state.
    """
    seen: dict[str, str] = {}
    while True:
        queue = queue_for(results, rids)
        states = {rid: run_state(results, rid, queue) for rid in rids}
        for rid, st in states.items():
            word = st.state if st else "pending"
            if seen.get(rid) != word:
                seen[rid] = word
                log(f"{rid}: {word}" + (f" (job {st.job_id})" if st and st.job_id else ""))
        if all(st is not None and st.state not in ("pending", "running") for st in states.values()):
            return [st.record if st.state in ("ok", "failed")
                    else stand_in(rid, f"{st.state} record: {st.error}"
                                  if st.state in ("unreadable", "invalid") else st.error)
                    for rid, st in states.items()]
        time.sleep(poll_s)


def _note(st: RunState) -> str:
    if st.state in ("failed", "unreadable", "invalid"):
        return st.error or ""
    if st.state == "ok":
        m = st.record.get("metrics") or {}
        return (f"PA-EPE {m.get('pa_epe_mm', float('nan')):.2f} mm  "
                f"PA-AUC {m.get('pa_auc', float('nan')):.3f}")
    requeues = st.job.get("requeues") or 0
    return f"requeued {requeues}x" if requeues else ""


def table(states: list[RunState], title: str):
    """A rich table: run id (method, backbone, budget, match, label fraction, seed, hash),
    state, job id, and the result (ok), the error line (failed) or the requeues so far."""
    from rich.table import Table

    colours = {"ok": "green", "failed": "red", "unreadable": "magenta", "invalid": "magenta",
               "running": "cyan", "pending": "yellow"}
    t = Table(title=title)
    t.add_column("run", no_wrap=True)
    t.add_column("state")
    t.add_column("job")
    t.add_column("result / error", overflow="fold")
    for st in states:
        t.add_row(st.run_id, f"[{colours[st.state]}]{st.state}[/]", st.job_id or "-", _note(st))
    return t


def main(results: Path) -> int:
    """Print the table and a count per state; exit status 0."""
    from rich.console import Console

    states = collect(results)
    console = Console(width=max(120, shutil.get_terminal_size().columns))
    if not states:
        console.print(f"no runs under {results}")
        return 0
    counts = {s: sum(st.state == s for st in states) for s in STATES}
    console.print(table(states, f"runs under {results}"))
    console.print("  ".join(f"{n} {s}" for s, n in counts.items() if n))
    return 0
