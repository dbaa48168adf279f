"""What a finished run leaves behind and what a user sees while it runs: no checkpoints once
the record is ok, progress lines in a redirected log, `bench clean`, the printed config,
plans without data, and reports that are never lost."""
from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
import time

import pytest

from orchestration import clean
from orchestration.cli import main
from benchmarks.record import RECORD
from benchmarks.store import replace_dir, write_json_atomic

MB = 1e6


def _du(path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def test_a_finished_smoke_run_is_small_and_its_redirected_log_shows_progress(tmp_path):
    """One smoke run with its output in a file, as a SLURM or local job's log is."""
    results, log = tmp_path / "r", tmp_path / "run.log"
    with open(log, "w") as f:
        proc = subprocess.run([sys.executable, "-m", "orchestration.cli", "run", "--method", "simclr",
                               "--profile", "smoke", "--results", str(results),
                               "engine.progress=true", "engine.progress_every_s=0", "engine.logger=csv"],
                              stdout=f, stderr=subprocess.STDOUT, timeout=600,
                              env={**os.environ, "HF_HUB_OFFLINE": "1"})
    text = log.read_text()
    assert proc.returncode == 0, text[-2000:]
    for phase in ("pretrain", "finetune"):
        assert re.search(rf"^{phase} step \d+/\d+ loss [\d.]+ \d+ img/s elapsed ", text, re.M), text[-2000:]
    assert "\x1b[" not in text                                  # no terminal escapes in a file
    assert _du(results) < 60 * MB, sorted((p, p.stat().st_size) for p in results.rglob("*") if p.is_file())
    assert not list(results.rglob("*.ckpt"))
    (rid,) = [p for p in results.iterdir() if not p.name.startswith(".")]
    assert (rid / "logs" / "pretrain" / "version_0" / "metrics.csv").exists()
    assert (rid / "logs" / "finetune" / "version_0" / "metrics.csv").exists()
    from benchmarks.store import _umask

    for written in (rid / RECORD, *results.glob(".pretrain/*/meta.json"), *results.glob(".pretrain/*/curve.json")):
        assert stat.S_IMODE(written.stat().st_mode) == 0o666 & ~_umask(), written   # as umask says


def _results(tmp_path, states: dict[str, str]):
    """A results folder with one run per entry: a record of that status, or a live/killed job."""
    results = tmp_path / "r"
    for rid, state in states.items():
        folder = results / rid
        (folder / "ckpt").mkdir(parents=True)
        (folder / "ckpt" / "last.ckpt").write_bytes(b"x" * 1000)
        if state in ("ok", "failed"):
            from example_records import example_record
            rec = example_record("simclr", 0, 10.0)
            rec.update(run_id=rid, status=state)
            if state == "failed":
                rec.update(error="RuntimeError: boom")
            write_json_atomic(folder / RECORD, rec)
        else:                                            # "running": this live process; "killed": a dead one
            pid = os.getpid() if state == "running" else 2 ** 22 + 7
            write_json_atomic(folder / "job.json", {"job_id": None, "launcher": "inprocess",
                                                    "state": "running", "host": os.uname().nodename,
                                                    "pid": pid, "submitted_at": time.time()})
    cache = results / ".pretrain"
    for key, cached in (("done", True), ("half", False)):
        (cache / key / "ckpt").mkdir(parents=True)
        (cache / key / "ckpt" / "last.ckpt").write_bytes(b"x" * 1000)
        (cache / f"{key}.lock").touch()
        if cached:
            (cache / key / "backbone.pt").write_bytes(b"w")
    (results / "ok1").mkdir(parents=True, exist_ok=True)
    old_tmp, new_tmp = results / "ok1" / ".result.json.123.tmp", results / "ok1" / ".x.tmp"
    old_tmp.write_text("{"), new_tmp.write_text("{")
    os.utime(old_tmp, (time.time() - 7200, time.time() - 7200))
    return results


def test_clean_removes_what_no_record_needs_and_keeps_what_resumes(tmp_path, capsys):
    results = _results(tmp_path, {"ok1": "ok", "failed1": "failed", "live1": "running", "killed1": "killed"})
    before = sorted(p for p in results.rglob("*"))
    assert main(["clean", "--dry-run", "--results", str(results)]) == 0
    out = capsys.readouterr().out
    assert sorted(p for p in results.rglob("*")) == before             # a dry run removes nothing
    assert "would remove" in out
    assert main(["clean", "--results", str(results)]) == 0
    gone = {p.relative_to(results).as_posix() for p in before if not p.exists()}
    assert {"ok1/ckpt", "failed1/ckpt", ".pretrain/done/ckpt", ".pretrain/done.lock",
            "ok1/.result.json.123.tmp"} <= gone
    for kept in ("live1/ckpt", "killed1/ckpt", ".pretrain/half/ckpt", ".pretrain/done/backbone.pt",
                 "ok1/result.json", "failed1/result.json", "ok1/.x.tmp"):
        assert (results / kept).exists(), kept
    assert "killed1/ckpt" in capsys.readouterr().out               # said why it stayed
    assert main(["clean", "--interrupted", "--results", str(results)]) == 0
    assert not (results / "killed1" / "ckpt").exists() and not (results / ".pretrain/half/ckpt").exists()
    assert (results / "live1" / "ckpt").exists()                     # a running job is never touched


def test_clean_leaves_a_pretraining_alone_while_its_lock_is_held(tmp_path):
    from benchmarks.locks import file_lock

    results = _results(tmp_path, {})
    with file_lock(results / ".pretrain" / "done.lock"):
        remove, _ = clean.plan(results, interrupted=True)
    assert not any(".pretrain/done" in r.path.as_posix() for r in remove)


def test_clean_removes_temp_files_only_where_the_results_layout_writes_them(tmp_path):
    results = _results(tmp_path, {"ok1": "ok"})
    old = time.time() - 7200
    places = {"top": results / ".a.tmp", "run": results / "ok1" / ".b.tmp",
              "run_ckpt": results / "ok1" / "ckpt" / ".c.tmp",
              "cache": results / ".pretrain" / "half" / ".d.tmp",
              "cache_ckpt": results / ".pretrain" / "half" / "ckpt" / ".e.tmp"}
    deep = {"data_set": results / "ok1" / "data" / "images" / ".f.tmp",
            "deep_ckpt": results / "ok1" / "ckpt" / "sub" / ".g.tmp",
            "deep_cache": results / ".pretrain" / "half" / "ckpt" / "x" / ".h.tmp"}
    for path in (*places.values(), *deep.values()):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("{")
        os.utime(path, (old, old))
    remove, _ = clean.plan(results)
    gone = {r.path for r in remove}
    for name, path in places.items():
        assert path in gone, name
    for name, path in deep.items():
        assert path not in gone, name


def test_clean_removes_set_aside_cache_entries_and_unheld_run_locks(tmp_path, capsys):
    from benchmarks.locks import file_lock

    results = _results(tmp_path, {"ok1": "ok", "live1": "running"})
    bad = results / ".pretrain" / "done.bad-20240101-000000"
    bad.mkdir()
    (bad / "backbone.pt").write_bytes(b"broken")
    locks = results / ".locks"
    locks.mkdir()
    for rid in ("ok1", "gone1", "held1", "live1"):
        (locks / f"{rid}.lock").touch()
    with file_lock(locks / "held1.lock"):
        remove, _ = clean.plan(results)
    gone = {r.path for r in remove}
    assert bad in gone and locks / "ok1.lock" in gone and locks / "gone1.lock" in gone
    assert locks / "held1.lock" not in gone                          # a process holds it
    assert locks / "live1.lock" not in gone                          # its job still runs
    assert main(["clean", "--results", str(results)]) == 0
    assert "unreadable pre-training cache entry" in capsys.readouterr().out
    assert not bad.exists() and not (locks / "ok1.lock").exists()
    assert (locks / "live1.lock").exists() and (results / ".pretrain" / "done" / "backbone.pt").exists()


def test_cfg_prints_the_resolved_config_and_runs_nothing(tmp_path, capsys):
    code = main(["run", "--profile", "smoke", "--threads", "1", "--cfg", "--results", str(tmp_path / "r")])
    out = capsys.readouterr().out
    assert code == 0 and "threads: 1" in out and "profile: smoke" in out and "finetune:" in out
    assert not (tmp_path / "r").exists()


def test_threads_must_not_be_negative(tmp_path, capsys):
    code = main(["run", "--profile", "smoke", "--threads", "-1", "--results", str(tmp_path)])
    assert code == 2 and "engine.threads must be >= 0" in capsys.readouterr().err


def test_a_paper_plan_needs_no_data(tmp_path, capsys):
    """The README's paper command, planned on a machine without FreiHAND or YouTube3DHands."""
    words = ["profile=paper", "data=freihand", f"data.root={tmp_path}/FreiHAND",
             f"pretrain.sources.1.root={tmp_path}/yt3d"]
    code = main(["run", "--method", "peclr", "--budget", "100ep", "--dry-run", "--results",
                 str(tmp_path / "r"), *words])
    out = capsys.readouterr().out
    assert code == 0
    assert "published size of each set that is missing" in out and "PFLOP" in out
    assert f"data.root={tmp_path}/FreiHAND (freihand)" in " ".join(out.split())
    # 100 epochs over 130,240 + 47,125 images at the paper's batch: the budget is exact
    code = main(["run", "--method", "peclr", "--budget", "100ep", "--results", str(tmp_path / "r"), *words])
    assert code == 2 and "no such directory" in capsys.readouterr().err     # running does need it


@pytest.mark.parametrize("fail_at", range(1, 6))
def test_a_report_swap_killed_anywhere_leaves_the_old_or_the_new(tmp_path, monkeypatch, fail_at):
    """Every filesystem step of the swap is interrupted in turn; the report folder always holds
    a whole report, and the next call cleans up."""
    import shutil as sh

    from benchmarks import store

    target, new = tmp_path / "report", tmp_path / ".report.building"
    target.mkdir(), (target / "index.md").write_text("old")
    new.mkdir(), (new / "index.md").write_text("new")
    calls = {"n": 0}

    def faulty(real):
        def wrapped(*a, **kw):
            calls["n"] += 1
            if calls["n"] == fail_at:
                raise KeyboardInterrupt
            return real(*a, **kw)
        return wrapped

    for use_exchange in (True, False):
        calls["n"] = 0
        if not use_exchange:
            monkeypatch.setattr(store, "_exchange", lambda a, b: False)
        monkeypatch.setattr(store.Path, "rename", faulty(store.Path.rename))
        monkeypatch.setattr(store.shutil, "rmtree", faulty(sh.rmtree))
        try:
            replace_dir(new, target)
        except KeyboardInterrupt:
            pass
        monkeypatch.undo()
        store.recover_dir(target)                       # what the next bench report does first
        assert (target / "index.md").read_text() in ("old", "new")
        sh.rmtree(new, ignore_errors=True)
        new.mkdir(), (new / "index.md").write_text("new")
    replace_dir(new, target)
    assert (target / "index.md").read_text() == "new" and not new.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["report"]
