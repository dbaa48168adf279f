"""``bench status``: one table of the runs under ``--results``: state, job id, errors.

A run's state comes from its record (``result.json``), its job file (``job.json``, see
``orchestration.jobstate``) and the scheduler (asked once per table, and only when a run has a
SLURM job):

``pending``   a live job that has not started the run yet (SLURM: pending, requeued,
              waiting for its dependency; local: a lane busy with earlier runs)
``running``   a live job running it
``ok``        the record says ok (and no newer submission is live)
``interrupted`` no record, the job is gone (Ctrl-C, killed, cancelled), but it left
              checkpoints a rerun resumes from: its fine-tuning checkpoint
              (``<run>/ckpt/last.ckpt``), or its pre-training's
              (``.pretrain/<key>/ckpt/last.ckpt``); the line says from which step
``failed``    the record says failed, with its error line; or the job that was to write the
              record ended without one (cancelled, killed, out of memory) and left nothing
              to resume from, and the error line says so and names the job's log
``unreadable`` the record file is not a JSON object (truncated, a list, not JSON), or,
              with no record, the job file is not a job file ("unreadable job file: ...")
``invalid``   the record breaks the record contract (another schema, a metric that is
              missing, a string or NaN): ``bench report`` leaves it out with the same reason
              (both read records through ``benchmarks.record.check``)

A job is live when SLURM still lists it (``squeue``), or, for local and in-process runs on
this host, while its process exists: the pid is alive and, where the job file has it, was
started when the recorded process was (a pid reused by a later process is not the run's).
Where neither can be asked (another host, no ``squeue``), the job file's own state is shown.

Job files are read through ``orchestration.jobstate.load_job``; one that is broken (not
JSON, a list, a ``pid`` that is not an integer) is listed with its reason, never dropped.
Which pre-training a run without a record belongs to is the job file's ``pretrain_key``
where recorded; otherwise the one pre-training checkpoint under ``.pretrain`` (not yet
cached) written since the run started. The step is read from the checkpoint's pickle
without importing torch (nothing in it is executed), and only for such runs.
"""
from __future__ import annotations

import os
import pickle
import shutil
import socket
import subprocess
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from orchestration import jobstate
from benchmarks.record import RECORD, Checked, Record, check, stand_in

STATES = ("running", "pending", "interrupted", "failed", "unreadable", "invalid", "ok")
PRETRAIN_CACHE = ".pretrain"        # orchestration.runner.pretrain_cache_dir
CKPT = "last.ckpt"                  # benchmarks.engine.CKPT
WEIGHTS = "backbone.pt"             # eval.pretrain.WEIGHTS: a cached pre-training
MAX_PICKLE = 64 * 2 ** 20           # a checkpoint's data.pkl larger than this is not read
SLURM_PENDING = {"PENDING", "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD", "RESV_DEL_HOLD",
                 "SUSPENDED", "CONFIGURING", "RESIZING"}
SLURM_RUNNING = {"RUNNING", "COMPLETING", "STAGE_OUT", "SIGNALING"}


@dataclass
class RunState:
    run_id: str
    state: str                          # one of STATES
    job_id: str | None = None
    launcher: str | None = None
    error: str | None = None            # interrupted, failed, unreadable, invalid: one line
    record: dict | None = None          # the record's JSON (what wait_for hands on)
    job: dict = field(default_factory=dict)
    job_error: str | None = None        # "unreadable job file: <reason>" (the job file is broken)
    typed: Record | None = None         # the record as its type (ok and failed records)


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


def process_alive(pid: int, start: int | None = None) -> bool:
    """True while process ``pid`` exists on this host and is not a zombie; with ``start``
    (``jobstate.process_start`` when the job file was written), only while it is that same
    process (a pid reused by a later process started at another time)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        pass
    else:
        if fields[0] == "Z":
            return False
        try:
            return start is None or int(fields[19]) == start    # field 22: its start time
        except (IndexError, ValueError):
            return True
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
    if not process_alive(job["pid"], job.get("pid_start")):
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
    try:
        job, job_error = jobstate.load_job(results, rid), None
    except jobstate.BadJobFile as err:
        job, job_error = None, f"unreadable job file: {err}"
    checked = _current_record(folder, job)
    if checked is None and job is None:
        if job_error is not None:
            return RunState(rid, "unreadable", error=job_error, job_error=job_error)
        resume = resume_point(results, rid, {})         # checkpoints, but no job file
        return RunState(rid, "interrupted", error=resume) if resume else None
    if checked is None:
        state = _job_state(results, rid, job, queue)
        if (state.state not in ("failed", "interrupted")
                or (checked := _current_record(folder, job)) is None):
            return state
    return RunState(rid, checked.kind, job_id=_job_id(checked.typed, job),
                    launcher=(job or {}).get("launcher"), error=checked.reason,
                    record=checked.record, job=job or {}, job_error=job_error, typed=checked.typed)


def _job_id(record: Record | None, job: dict | None) -> str | None:
    slurm = ((record.provenance if record is not None else None) or {}).get("slurm_job_id")
    return slurm or (job or {}).get("job_id")


def _job_state(results: Path, rid: str, job: dict, queue: dict[str, str] | None) -> RunState:
    live, word = _live_state(job, queue)
    common = dict(job_id=job.get("job_id"), launcher=job.get("launcher"), job=job)
    if live in ("pending", "running"):
        return RunState(rid, live, **common)
    if live is None:
        return RunState(rid, "running" if job.get("state") == "running" else "pending", **common)
    resume = resume_point(results, rid, job)
    if resume is not None:
        return RunState(rid, "interrupted", error=resume, **common)
    who = f"{job.get('launcher')} job {job.get('job_id')}" if job.get("job_id") else "its process"
    how = f" ({word})" if word else ""
    log = f"; log: {job['log']}" if job.get("log") else ""
    return RunState(rid, "failed", error=f"{who} ended{how} without writing a record{log}",
                    **common)


def resume_point(results: Path, rid: str, job: dict) -> str | None:
    """What a rerun of ``rid`` (no record, its job gone) resumes from, as the status line
    ("interrupted; a rerun resumes from step N ..."); None when it would start over.

    Its own fine-tuning checkpoint first; else its pre-training's checkpoint: the job file's
    ``pretrain_key``, or else the one pre-training checkpoint (not yet cached) written since
    the run started (``started_at``)."""
    own = Path(results) / rid / "ckpt" / CKPT
    if own.is_file():
        return _resumes(own, "fine-tuning")
    cache = Path(results) / PRETRAIN_CACHE
    if job.get("pretrain_key"):
        keys = [job["pretrain_key"]]
    elif job.get("started_at") is not None and cache.is_dir():
        keys = [p.name for p in sorted(cache.iterdir())
                if _newer(p / "ckpt" / CKPT, job["started_at"])]
    else:
        keys = []
    keys = [k for k in keys
            if (cache / k / "ckpt" / CKPT).is_file() and not (cache / k / WEIGHTS).exists()]
    if len(keys) == 1:
        return _resumes(cache / keys[0] / "ckpt" / CKPT, f"pre-training {keys[0][:8]}")
    if keys:
        return (f"interrupted; a rerun resumes from its pre-training checkpoint (one of "
                f"{len(keys)} written since it started, under {cache})")
    return None


def _newer(path: Path, since: float) -> bool:
    try:
        return path.stat().st_mtime >= since - 1.0
    except OSError:
        return False


def _resumes(ckpt: Path, phase: str) -> str:
    step = checkpoint_step(ckpt)
    if step is None:
        return f"interrupted; a rerun resumes from its checkpoint ({phase}: {ckpt})"
    return f"interrupted; a rerun resumes from step {step} ({phase})"


class _Stub:
    """Whatever a checkpoint's pickle names (tensors, storages, torch types): never built."""

    def __new__(cls, *args, **kwargs):
        return object.__new__(cls)

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        pass

    def __setitem__(self, key, value):
        pass

    def append(self, value):
        pass

    def extend(self, values):
        pass


class _Dict(dict):
    """A state dict's ``OrderedDict`` (its ``_metadata`` attribute dropped)."""

    def __setstate__(self, state):
        pass


class _StepUnpickler(pickle.Unpickler):
    """Reads the plain containers and numbers of a ``torch.save`` pickle; every global it
    names becomes :class:`_Stub` and every tensor's storage None, so nothing in the file is
    imported or run (and torch is not needed)."""

    def find_class(self, module, name):
        if (module, name) == ("collections", "OrderedDict"):
            return _Dict
        return type(name, (_Stub,), {})

    def persistent_load(self, pid):
        return None


def checkpoint_step(path: Path) -> int | None:
    """The ``step`` saved in the checkpoint at ``path`` (``benchmarks.engine``: a
    ``torch.save`` zip whose top-level dict has it), read without torch; None when it cannot
    be read that way."""
    try:
        with zipfile.ZipFile(path) as z:
            [info] = [i for i in z.infolist() if i.filename.endswith("/data.pkl")
                      and i.filename.count("/") == 1]
            if info.file_size > MAX_PICKLE:
                return None
            state = _StepUnpickler(z.open(info)).load()
    except Exception:  # noqa: BLE001 - any unreadable file: not zip, no data.pkl, a bad pickle
        return None
    step = state.get("step") if isinstance(state, dict) else None
    return step if isinstance(step, int) and not isinstance(step, bool) and step >= 0 else None


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
            return [st.record if st.record is not None and st.state in ("ok", "failed")
                    else stand_in(rid, _stand_in_error(st)) for rid, st in states.items()]
        time.sleep(poll_s)


def _stand_in_error(st: RunState) -> str:
    if st.state in ("unreadable", "invalid") and st.error != st.job_error:
        return f"{st.state} record: {st.error}"
    return st.error or f"{st.state} without a record"


def _note(st: RunState) -> str:
    if st.state in ("interrupted", "failed", "unreadable", "invalid"):
        note = st.error or ""
    elif st.state == "ok":
        m = st.typed.metrics                # an ok record has them (benchmarks.record.check)
        note = f"PA-EPE {m['pa_epe_mm']:.2f} mm  PA-AUC {m['pa_auc']:.3f}"
    else:
        requeues = st.job.get("requeues") or 0
        note = f"requeued {requeues}x" if requeues else ""
    if st.job_error and st.job_error != st.error:
        note = f"{note}; {st.job_error}" if note else st.job_error
    return note


def finetune_seed(st: RunState) -> int | None:
    """The run's fine-tuning seed from its record (``config.finetune.seed``; null: the run
    seed); None without a record that says."""
    if st.typed is None:
        return None
    ft = st.typed.config.get("finetune")
    seed = ft.get("seed") if isinstance(ft, dict) else None
    seed = st.typed.seed if seed is None else seed
    return seed if isinstance(seed, int) and not isinstance(seed, bool) else None


def table(states: list[RunState], title: str):
    """A rich table: run id (method, backbone, budget, match, label fraction, seed, hash),
    fine-tuning seed, state, job id, and the result (ok), the error line (failed,
    interrupted: where a rerun resumes) or the requeues so far."""
    from rich.table import Table

    colours = {"ok": "green", "failed": "red", "unreadable": "magenta", "invalid": "magenta",
               "running": "cyan", "pending": "yellow", "interrupted": "dark_orange"}
    t = Table(title=title)
    t.add_column("run", no_wrap=True)
    t.add_column("ft seed", justify="right")
    t.add_column("state")
    t.add_column("job")
    t.add_column("result / error", overflow="fold")
    for st in states:
        seed = finetune_seed(st)
        t.add_row(st.run_id, "-" if seed is None else str(seed),
                  f"[{colours[st.state]}]{st.state}[/]", st.job_id or "-", _note(st))
    return t


def main(results: Path) -> int:
    """Print the table and a count per state; exit status 0."""
    from rich.console import Console

    from benchmarks.errors import UserError

    if not Path(results).is_dir():
        raise UserError(f"--results {str(results)!r}: no such folder")
    states = collect(results)
    console = Console(width=max(120, shutil.get_terminal_size().columns))
    if not states:
        console.print(f"no runs under {results}")
        return 0
    counts = {s: sum(st.state == s for st in states) for s in STATES}
    console.print(table(states, f"runs under {results}"))
    console.print("  ".join(f"{n} {s}" for s, n in counts.items() if n))
    return 0
