"""``bench status``: each run's state from its record, its job file and the scheduler."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time

import pytest

from orchestration import jobstate, status
from orchestration.cli import main as bench
from benchmarks.record import write_record
from example_records import example_record, failed_record

RUN = {"method": "simclr", "backbone": "resnet18", "budget": "1ep", "label_fraction": 0.5,
       "seed": 0}


def _record(rid: str, ok: bool = True) -> dict:
    """A complete record (the contract ``benchmarks.record`` checks), ok or failed."""
    rec = (example_record("simclr", 0, 12.5, budget="1ep", label_fraction=0.5) if ok else
           failed_record("simclr", 0, "TrainingError: pretrain: non-finite loss (nan) at step 3 of 9",
                         budget="1ep", label_fraction=0.5))
    rec.update(run_id=rid, provenance={"slurm_job_id": None})
    return rec


def _submit(results, rid, job_id, launcher, pid=None, at=None, state=None):
    jobstate.record_submission(results, rid, job_id, launcher, at or time.time(),
                               log=results / "log.out", pid=pid, host=socket.gethostname())
    if state:
        jobstate.update_job(results, rid, job_id, state=state)


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_records_give_ok_and_failed_with_the_error_line(tmp_path):
    write_record(tmp_path, _record("a"))
    write_record(tmp_path, _record("b", ok=False))
    states = {s.run_id: s for s in status.collect(tmp_path)}
    assert states["a"].state == "ok" and states["a"].error is None
    assert states["b"].state == "failed"
    assert states["b"].error == "TrainingError: pretrain: non-finite loss (nan) at step 3 of 9"


def test_live_local_job_is_pending_until_it_starts_the_run(tmp_path):
    _submit(tmp_path, "a", str(os.getpid()), "local", pid=os.getpid())
    assert status.run_state(tmp_path, "a", None).state == "pending"
    jobstate.update_job(tmp_path, "a", str(os.getpid()), state="running")
    assert status.run_state(tmp_path, "a", None).state == "running"


def test_job_that_ended_without_a_record_is_failed_and_names_its_log(tmp_path):
    pid = _dead_pid()
    _submit(tmp_path, "a", str(pid), "local", pid=pid, state="running")
    st = status.run_state(tmp_path, "a", None)
    assert st.state == "failed"
    log = tmp_path / "log.out"
    assert st.error == f"local job {pid} ended without writing a record; log: {log}"


@pytest.mark.parametrize("word, state", [("PENDING", "pending"), ("REQUEUED", "pending"),
                                         ("RUNNING", "running"), ("COMPLETING", "running"),
                                         ("CANCELLED", "failed"), (None, "failed")])
def test_slurm_job_state_comes_from_the_queue(tmp_path, word, state):
    _submit(tmp_path, "a", "41_2", "slurm")
    queue = {"41_1": "RUNNING", **({"41_2": word} if word else {})}
    st = status.run_state(tmp_path, "a", queue)
    assert (st.state, st.job_id) == (state, "41_2")
    if state == "failed":
        assert st.error.startswith("slurm job 41_2 ended" + (f" ({word})" if word else ""))


def test_without_squeue_the_job_file_state_is_shown(tmp_path):
    _submit(tmp_path, "a", "41", "slurm", state="running")
    _submit(tmp_path, "b", "42", "slurm")
    assert status.run_state(tmp_path, "a", None).state == "running"
    assert status.run_state(tmp_path, "b", None).state == "pending"


def test_newer_submission_wins_over_an_older_record_and_not_the_reverse(tmp_path):
    write_record(tmp_path, _record("a", ok=False))
    time.sleep(0.01)
    _submit(tmp_path, "a", "50", "slurm")                   # resubmitted after the failure
    assert status.run_state(tmp_path, "a", {"50": "PENDING"}).state == "pending"
    write_record(tmp_path, _record("a"))                     # the job wrote its record
    assert status.run_state(tmp_path, "a", {}).state == "ok"


def test_submitter_never_moves_the_job_state_back(tmp_path):
    jobstate.update_job(tmp_path, "a", "7", state="running")     # the job started first
    _submit(tmp_path, "a", "7", "slurm")
    job = jobstate.read_job(tmp_path, "a")
    assert job["state"] == "running" and job["launcher"] == "slurm"
    assert jobstate.count_requeue(tmp_path, "a", "7", time.time()) == 1
    assert jobstate.count_requeue(tmp_path, "a", "7", time.time()) == 2
    _submit(tmp_path, "a", "8", "slurm")                          # a new job: fresh count
    assert jobstate.read_job(tmp_path, "a")["requeues"] == 0


def test_wait_for_returns_when_the_record_appears(tmp_path):
    _submit(tmp_path, "a", str(os.getpid()), "local", pid=os.getpid(), state="running")
    writer = threading.Timer(0.3, write_record, args=(tmp_path, _record("a")))
    writer.start()
    lines = []
    [rec] = status.wait_for(tmp_path, ["a"], poll_s=0.05, log=lines.append)
    writer.join()
    assert rec["status"] == "ok"
    assert lines == [f"a: running (job {os.getpid()})", f"a: ok (job {os.getpid()})"]


def test_bench_status_prints_one_table_with_states_job_ids_and_errors(tmp_path, capsys):
    write_record(tmp_path, _record("run-ok"))
    write_record(tmp_path, _record("run-failed", ok=False))
    _submit(tmp_path, "run-pending", str(os.getpid()), "local", pid=os.getpid())
    (tmp_path / ".pretrain" / "key").mkdir(parents=True)           # not a run
    assert bench(["status", "--results", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for word in ("run-ok", "run-failed", "run-pending", "non-finite loss", str(os.getpid()),
                 "PA-EPE 12.50 mm"):
        assert word in out
    assert ".pretrain" not in out
    assert out.strip().splitlines()[-1] == "1 pending  1 failed  1 ok"


def test_a_job_that_finishes_while_being_looked_at_is_not_called_failed(tmp_path, monkeypatch):
    _submit(tmp_path, "a", "9", "slurm", state="running")
    live_state = status._live_state

    def job_writes_its_record_and_leaves(job, queue):       # between the two reads
        write_record(tmp_path, _record("a"))
        return live_state(job, queue)

    monkeypatch.setattr(status, "_live_state", job_writes_its_record_and_leaves)
    assert status.run_state(tmp_path, "a", {}).state == "ok"


def test_status_of_a_results_folder_that_does_not_exist_is_refused(tmp_path, capsys):
    missing = tmp_path / "no-such-results"
    assert bench(["status", "--results", str(missing)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [f"bench status: error: --results {str(missing)!r}: no such folder"]
    assert not missing.exists()
    (tmp_path / "empty").mkdir()
    assert bench(["status", "--results", str(tmp_path / "empty")]) == 0   # an empty study: no runs
    assert "no runs under" in capsys.readouterr().out
