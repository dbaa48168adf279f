"""Broken inputs of the orchestration: sweep files that are binary, unreadable or name a key
twice; an ablation table over a results folder that is not there; job files that are not job
files; pids reused by other processes; runs interrupted with checkpoints to resume from; and
runs that differ only in their fine-tuning seed. Each is one line (or one table row), and
nothing on disk changes."""
from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orchestration import clean, jobstate, status
from orchestration.cli import main as bench
from benchmarks.record import write_record
from example_records import example_record

SWEEP = "name: tiny\nfixed:\n  profile: smoke\ngrid:\n  method: [simclr]\n"


def _snapshot(root: Path) -> dict[str, bytes | None]:
    """Every path under ``root`` with its bytes (None for a folder)."""
    root = Path(root)
    if not root.exists():
        return {}
    return {p.relative_to(root).as_posix(): (p.read_bytes() if p.is_file() else None)
            for p in sorted(root.rglob("*"))}


def _one_error_line(capsys, command: str) -> str:
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith(f"bench {command}: error: "), lines[0]
    return lines[0][len(f"bench {command}: error: "):]


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# -- sweep files ---------------------------------------------------------------------------

def test_a_binary_sweep_file_is_one_line_for_sweep_and_ablation(tmp_path, capsys):
    sweep = tmp_path / "grid.yaml"
    sweep.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)))
    results = tmp_path / "r"
    results.mkdir()
    before = _snapshot(tmp_path)
    expected = f"{sweep}: not a text file (not UTF-8 at byte 0); a sweep file is YAML text"
    assert bench(["sweep", str(sweep), "--dry-run", "--results", str(results)]) == 2
    assert _one_error_line(capsys, "sweep") == expected
    assert bench(["report", "--ablation", str(sweep), "--results", str(results),
                  "--out", str(tmp_path / "table.md")]) == 2
    assert _one_error_line(capsys, "report") == expected
    assert _snapshot(tmp_path) == before


@pytest.mark.parametrize("text, key, lines", [
    ("grid:\n  method: [simclr, peclr]\n  finetune.seed: [0, 1]\n  method: [random]\n",
     "method", (4, 2)),
    ("grid:\n  method: [simclr]\nfixed:\n  profile: smoke\ngrid:\n  method: [peclr]\n",
     "grid", (5, 1)),
    ("fixed: {profile: smoke, budget: 1ep, profile: cpu}\ngrid:\n  method: [simclr]\n",
     "profile", (1, 1)),
])
def test_a_key_named_twice_is_refused_in_one_line_naming_it(tmp_path, capsys, text, key, lines):
    sweep = tmp_path / "grid.yaml"
    sweep.write_text(text)
    before = _snapshot(tmp_path)
    assert bench(["sweep", str(sweep), "--dry-run", "--results", str(tmp_path / "r")]) == 2
    again, first = lines
    assert _one_error_line(capsys, "sweep") == (
        f"{sweep}: duplicate key {key!r} (line {again}; first on line {first}); "
        f"each key may appear once in a mapping")
    assert _snapshot(tmp_path) == before


def test_yaml_merge_keys_still_override(tmp_path):
    from orchestration.sweepfile import load_spec

    sweep = tmp_path / "grid.yaml"
    sweep.write_text("grid:\n  - &one {method: [simclr], budget: [1ep]}\n"
                     "  - {<<: *one, budget: [2ep]}\n")
    spec = load_spec(sweep)
    assert spec.grids == [{"method": ["simclr"], "budget": ["1ep"]},
                          {"method": ["simclr"], "budget": ["2ep"]}]


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_an_unreadable_sweep_file_says_not_readable(tmp_path, capsys):
    sweep = tmp_path / "grid.yaml"
    sweep.write_text(SWEEP)
    sweep.chmod(0)
    try:
        assert bench(["sweep", str(sweep), "--dry-run", "--results", str(tmp_path / "r")]) == 2
        assert _one_error_line(capsys, "sweep") == (
            f"{sweep}: sweep file not readable (Permission denied)")
    finally:
        sweep.chmod(0o644)
    assert sweep.read_text() == SWEEP and not (tmp_path / "r").exists()


def test_an_ablation_over_a_results_folder_that_does_not_exist_is_refused(tmp_path, capsys):
    sweep = tmp_path / "grid.yaml"
    sweep.write_text(SWEEP)
    missing, out = tmp_path / "no-such-results", tmp_path / "table.md"
    before = _snapshot(tmp_path)
    assert bench(["report", "--ablation", str(sweep), "--results", str(missing),
                  "--out", str(out)]) == 2
    assert _one_error_line(capsys, "report") == (
        f"--results {str(missing)!r}: no such folder; give the folder that holds the records "
        f"of the sweep's runs")
    assert capsys.readouterr().out == ""
    assert _snapshot(tmp_path) == before


# -- job files -----------------------------------------------------------------------------

def _job(**fields) -> dict:
    return {"job_id": None, "launcher": "inprocess", "state": "running",
            "host": socket.gethostname(), "pid": os.getpid(), "submitted_at": time.time(),
            **fields}


TRUNCATED = json.dumps(_job())[:25]

BROKEN = {
    "list": (json.dumps([_job()]), "a JSON list, not an object"),
    "truncated": (TRUNCATED, None),             # json's own words, computed below
    "pid-text": (json.dumps(_job(pid="abc")), "pid 'abc' is not a process id (an integer > 0)"),
    "empty": ("", "empty file"),
    "state": (json.dumps(_job(state="done")),
              "state 'done' is not one of submitted, running, requeued"),
}


def _reason(case: str) -> str:
    text, reason = BROKEN[case]
    if reason is None:
        try:
            json.loads(text)
        except ValueError as err:
            reason = f"not JSON ({' '.join(str(err).split())})"
    return reason


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_broken_job_file_is_reported_by_status_and_left_alone_by_clean(
        tmp_path, capsys, monkeypatch, case):
    monkeypatch.setenv("COLUMNS", "400")                 # one table row per line
    results = tmp_path / "r"
    (results / "broken" / "ckpt").mkdir(parents=True)
    (results / "broken" / "ckpt" / "last.ckpt").write_bytes(b"x" * 100)
    (results / "broken" / "job.json").write_text(BROKEN[case][0])
    write_record(results, {**example_record("simclr", 0, 12.5), "run_id": "done"})
    line = f"unreadable job file: {_reason(case)}"
    before = _snapshot(results)

    with pytest.raises(jobstate.BadJobFile, match="^" + re.escape(_reason(case)) + "$"):
        jobstate.load_job(results, "broken")
    assert jobstate.read_job(results, "broken") is None        # writers start a fresh file
    st = status.run_state(results, "broken", None)
    assert (st.state, st.error, st.job_error) == ("unreadable", line, line)

    assert bench(["status", "--results", str(results)]) == 0
    out = capsys.readouterr().out
    [row] = [r for r in out.splitlines() if r.startswith("│ broken ")]
    assert "unreadable" in row and line in row
    assert out.strip().splitlines()[-1] == "1 unreadable  1 ok"

    for flags in ([], ["--interrupted"]):
        assert bench(["clean", "--results", str(results), *flags]) == 0
        out = capsys.readouterr().out
        assert f"kept {results / 'broken' / 'ckpt'} (100 B): {line}; left alone" in out
    assert _snapshot(results) == before
    remove, keep = clean.plan(results, interrupted=True)
    assert not any("broken" in r.path.as_posix() for r in remove)


def test_a_broken_job_file_beside_a_record_is_shown_with_it_and_stops_clean(tmp_path, monkeypatch,
                                                                            capsys):
    monkeypatch.setenv("COLUMNS", "400")
    results = tmp_path / "r"
    write_record(results, {**example_record("simclr", 0, 12.5), "run_id": "a"})
    (results / "a" / "ckpt").mkdir()
    (results / "a" / "ckpt" / "last.ckpt").write_bytes(b"x")
    (results / "a" / "job.json").write_text("[]")
    st = status.run_state(results, "a", None)
    assert st.state == "ok" and st.job_error == "unreadable job file: a JSON list, not an object"
    assert status._note(st).startswith("PA-EPE 12.50 mm")
    assert status._note(st).endswith("; unreadable job file: a JSON list, not an object")
    before = _snapshot(results)
    assert bench(["clean", "--results", str(results)]) == 0
    assert _snapshot(results) == before                 # a newer job may be running it


def test_a_resubmission_replaces_a_broken_job_file(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "job.json").write_text('{"pid": "abc"')
    jobstate.record_submission(tmp_path, "a", "7", "slurm", time.time())
    assert jobstate.load_job(tmp_path, "a")["job_id"] == "7"


# -- reused pids ---------------------------------------------------------------------------

def test_the_job_file_records_when_its_process_started(tmp_path):
    jobstate.record_submission(tmp_path, "a", None, "inprocess", time.time(), pid=os.getpid(),
                               host=socket.gethostname())
    job = jobstate.load_job(tmp_path, "a")
    assert job["pid_start"] == jobstate.process_start(os.getpid())
    if sys.platform.startswith("linux"):
        assert isinstance(job["pid_start"], int)
    jobstate.record_submission(tmp_path, "b", "9", "slurm", time.time())
    assert jobstate.load_job(tmp_path, "b")["pid_start"] is None        # no pid, nothing to read
    jobstate.record_submission(tmp_path, "c", None, "inprocess", time.time(), pid=os.getpid(),
                               host="elsewhere")
    assert jobstate.load_job(tmp_path, "c")["pid_start"] is None        # not this machine's pid


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_a_pid_reused_by_another_process_is_not_running(tmp_path):
    start = jobstate.process_start(os.getpid())
    for rid, pid_start, state in (("same", start, "running"), ("reused", start + 1, "failed"),
                                  ("old-file", None, "running")):
        folder = tmp_path / rid
        folder.mkdir()
        job = _job(pid_start=pid_start)
        if pid_start is None:
            del job["pid_start"]
        (folder / "job.json").write_text(json.dumps(job))
        st = status.run_state(tmp_path, rid, None)
        assert st.state == state, rid
    assert status.run_state(tmp_path, "reused", None).error == \
        "its process ended without writing a record"


# -- interrupted runs ----------------------------------------------------------------------

def _checkpoint(path: Path, step: int) -> None:
    """A checkpoint as ``benchmarks.engine`` saves one (Fabric's ``torch.save`` of the state)."""
    import torch

    module = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    opt = torch.optim.AdamW(module.parameters())
    module(torch.randn(4, 3)).sum().backward()
    opt.step()
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: 1.0)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"module": module.state_dict(), "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict(), "step": step,
                "curve": [{"phase": "finetune", "step": step, "loss": 0.5}], "evals": [],
                "wall_s": 3.0}, path)


def _killed(results: Path, rid: str, started_at: float | None = None, **fields) -> None:
    pid = _dead_pid()
    jobstate.record_submission(results, rid, None, "inprocess", time.time() - 60, pid=pid,
                               host=socket.gethostname(), **fields)
    jobstate.update_job(results, rid, None, state="running",
                        started_at=started_at if started_at is not None else time.time() - 30)


def test_an_interrupted_finetune_resumes_from_its_step(tmp_path):
    _killed(tmp_path, "a")
    _checkpoint(tmp_path / "a" / "ckpt" / "last.ckpt", 40)
    assert status.checkpoint_step(tmp_path / "a" / "ckpt" / "last.ckpt") == 40
    st = status.run_state(tmp_path, "a", None)
    assert (st.state, st.error) == ("interrupted",
                                    "interrupted; a rerun resumes from step 40 (fine-tuning)")
    [rec] = status.wait_for(tmp_path, ["a"], poll_s=0.01, log=lambda line: None)
    assert rec["status"] == "failed" and rec["error"] == st.error


def test_an_interrupted_pretraining_resumes_from_its_step(tmp_path):
    cache = tmp_path / ".pretrain"
    _checkpoint(cache / "cafe0001aaaa" / "ckpt" / "last.ckpt", 120)
    _checkpoint(cache / "done0002bbbb" / "ckpt" / "last.ckpt", 7)          # cached: not a resume
    (cache / "done0002bbbb" / "backbone.pt").write_bytes(b"w")
    _killed(tmp_path, "a", started_at=time.time() - 30)
    assert status.run_state(tmp_path, "a", None).error == \
        "interrupted; a rerun resumes from step 120 (pre-training cafe0001)"
    _killed(tmp_path, "late", started_at=time.time() + 60)                 # started after it
    assert status.run_state(tmp_path, "late", None).state == "failed"
    _killed(tmp_path, "keyed", started_at=time.time() + 60, pretrain_key="cafe0001aaaa")
    assert status.run_state(tmp_path, "keyed", None).error == \
        "interrupted; a rerun resumes from step 120 (pre-training cafe0001)"


def test_a_checkpoint_whose_step_cannot_be_read_still_says_interrupted(tmp_path):
    _killed(tmp_path, "a")
    ckpt = tmp_path / "a" / "ckpt" / "last.ckpt"
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b"not a zip")
    st = status.run_state(tmp_path, "a", None)
    assert (st.state, st.error) == (
        "interrupted", f"interrupted; a rerun resumes from its checkpoint (fine-tuning: {ckpt})")


def test_bench_status_lists_interrupted_runs_without_importing_torch(tmp_path):
    _killed(tmp_path, "a")
    _checkpoint(tmp_path / "a" / "ckpt" / "last.ckpt", 40)
    write_record(tmp_path, {**example_record("simclr", 0, 12.5), "run_id": "done"})
    before = _snapshot(tmp_path)
    code = ("import sys\nfrom orchestration.cli import main\n"
            f"assert main(['status', '--results', {str(tmp_path)!r}]) == 0\n"
            "assert 'torch' not in sys.modules, 'torch imported'\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "COLUMNS": "400"}, cwd=Path(__file__).parents[1])
    assert proc.returncode == 0, proc.stderr
    [row] = [r for r in proc.stdout.splitlines() if r.lstrip("│ ").startswith("a ")]
    assert "interrupted" in row and "a rerun resumes from step 40 (fine-tuning)" in row
    assert proc.stdout.strip().splitlines()[-1] == "1 interrupted  1 ok"
    assert _snapshot(tmp_path) == before


# -- fine-tuning seeds ---------------------------------------------------------------------

def test_status_shows_the_finetune_seed_of_each_run(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "400")
    for rid, ft_seed in (("run-ft3", 3), ("run-ftnull", None)):
        rec = example_record("simclr", 0, 12.5)
        rec["config"] = {**rec["config"], "finetune": {"seed": ft_seed}}
        write_record(tmp_path, {**rec, "run_id": rid})
    seeds = {st.run_id: status.finetune_seed(st) for st in status.collect(tmp_path)}
    assert seeds == {"run-ft3": 3, "run-ftnull": 0}                 # null: the run seed
    assert bench(["status", "--results", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = next(line for line in lines if "run" in line and "state" in line)
    assert "ft seed" in header
    cells = {r.split("│")[1].strip(): r.split("│")[2].strip() for r in lines
             if r.count("│") > 3 and r.split("│")[1].strip().startswith("run-")}
    assert cells == {"run-ft3": "3", "run-ftnull": "0"}


@pytest.mark.parametrize("text, message", [
    ("fixed:\n  method: simclr\ngrid:\n  method: [peclr]\n  seed: [0]\n",
     "'method' is set both under 'fixed' and in the grid, so its fixed value is never used; "
     "set it in one place"),
    ("fixed:\n  seed: 0\ngrid:\n  - {method: [simclr], seed: [1]}\n  - {method: [peclr], seed: [2]}\n",
     "'seed' is set both under 'fixed' and in every grid, so its fixed value is never used; "
     "set it in one place"),
    ("grid:\n  method: [random, random]\n",
     "grid: 'method' lists the value 'random' twice; each value may appear once"),
    ("grid:\n  - {method: [simclr]}\n  - {seed: [0, 1, 0]}\n",
     "grid[1]: 'seed' lists the value 0 twice; each value may appear once"),
])
def test_a_key_fixed_and_gridded_or_a_value_listed_twice_is_refused(tmp_path, capsys, text, message):
    sweep = tmp_path / "grid.yaml"
    sweep.write_text(text)
    assert bench(["sweep", str(sweep), "--dry-run", "--results", str(tmp_path / "r")]) == 2
    assert _one_error_line(capsys, "sweep") == f"{sweep}: {message}"


def test_a_grid_block_may_override_a_fixed_default_others_keep(tmp_path):
    from orchestration.sweepfile import load_spec

    sweep = tmp_path / "grid.yaml"
    sweep.write_text("fixed:\n  eval.probes: false\ngrid:\n  - {method: [simclr], eval.probes: [true]}\n"
                     "  - {method: [peclr]}\n  - {seed: [1, 1.0, true]}\n")
    spec = load_spec(sweep)                   # 1, 1.0 and true are three values to hydra
    assert spec.fixed == {"eval.probes": False} and len(spec.grids) == 3
