"""Launchers: settings checks, the sbatch script, and the code snapshot queued jobs run."""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from orchestration import compose, jobstate, launch, status
from benchmarks.errors import UserError


@pytest.mark.parametrize("words, message", [
    (["launcher.name=cloud"], "unknown launcher 'cloud'; choose one of: inprocess, local, slurm"),
    (["launcher.name=local", "launcher.nodes=2"], "launcher.nodes must be 1"),
    (["launcher.name=slurm", "launcher.gpus_per_node=4", "engine.devices=2"],
     "launcher.gpus_per_node=4 but engine.devices=2"),
    (["launcher.name=local", "engine.devices=2"], "--launcher local runs one process"),
    (["launcher.name=local", "launcher.max_requeues=-1"], "launcher.max_requeues must be >= 0"),
    (["launcher.name=local", "launcher.time_min=0"], "launcher.time_min must be >= 1"),
])
def test_bad_launcher_settings_are_user_errors(words, message):
    with pytest.raises(UserError) as err:
        launch.check_launcher(compose.load(words))
    assert message in str(err.value)


def test_slurm_without_sbatch_says_so(monkeypatch):
    cfg = compose.load(["launcher.name=slurm"])
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(UserError, match="sbatch not found"):
        launch.check_launcher(cfg)


def test_presets_select_launcher_settings():
    cfg = compose.load(["launcher=slurm_gpu", "launcher.partition=a100"])
    launcher = cfg.launcher
    assert (launcher.name, launcher.partition, launcher.gpus_per_node) == ("slurm", "a100", 1)
    assert cfg.launcher.max_requeues > 0
    assert compose.load([]).launcher.name == "inprocess"


@pytest.mark.skipif(shutil.which("srun") is None, reason="SLURM client (srun) not installed")
def test_sbatch_script_carries_the_launcher_resources(tmp_path):
    cfg = compose.load(["launcher=slurm_gpu", "engine.devices=2", "launcher.gpus_per_node=2",
                        "launcher.setup=[module load cuda/12.1]", "launcher.qos=high"])
    OmegaConf.update(cfg, "launcher.additional_parameters", {"mail-type": "FAIL"}, force_add=True)
    executor = launch.make_executor(cfg, tmp_path, "bench-x", dependency="afterok:12_0")
    script = executor._executor._make_submission_file_text("python -m job", "uid")
    for line in ("--partition=gpu", "--qos=high", "--gpus-per-node=2", "--ntasks-per-node=2",
                 "--cpus-per-task=10", "--mem=64GB", "--time=1440", "--signal=USR2@300",
                 "--requeue", "--dependency=afterok:12_0", "--kill-on-invalid-dep=yes",
                 "--mail-type=FAIL", "--job-name=bench-x"):
        assert f"#SBATCH {line}\n" in script
    assert "\nmodule load cuda/12.1\n" in script
    assert executor._executor.max_num_timeout == cfg.launcher.max_requeues


def _tree(root, text: str) -> None:
    for package in launch.PACKAGES:
        (root / package / "__pycache__").mkdir(parents=True)
        (root / package / "__init__.py").write_text(f"VERSION = {text!r}\n")
        (root / package / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"\0")
    (root / "benchmarks" / "conf").mkdir()
    (root / "benchmarks" / "conf" / "config.yaml").write_text("defaults: []\n")


def test_snapshot_is_content_addressed_and_unaffected_by_later_edits(tmp_path):
    src = tmp_path / "src"
    _tree(src, "one")
    first = launch.snapshot_code(tmp_path / "sub", root=src)
    assert launch.snapshot_code(tmp_path / "sub", root=src) == first
    files = sorted(str(p.relative_to(first)) for p in first.rglob("*") if p.is_file())
    assert files == ["benchmarks/__init__.py", "benchmarks/conf/config.yaml",
                     "eval/__init__.py", "methods/__init__.py", "orchestration/__init__.py",
                     launch.SNAPSHOT_META]
    assert set(json.loads((first / launch.SNAPSHOT_META).read_text())) >= {"git_sha", "git_dirty"}
    (src / "methods" / "__init__.py").write_text("VERSION = 'two'\n")       # an edit later on
    second = launch.snapshot_code(tmp_path / "sub", root=src)
    assert second != first
    assert (first / "methods" / "__init__.py").read_text() == "VERSION = 'one'\n"


def test_a_job_started_in_the_snapshot_imports_the_snapshot(tmp_path):
    code = launch.snapshot_code(tmp_path)
    probe = ("import benchmarks, methods, eval; "
             "print(benchmarks.__file__, methods.__file__, eval.__file__)")
    out = subprocess.run([sys.executable, "-c", probe], cwd=code, capture_output=True, text=True,
                         check=True).stdout.split()
    assert len(out) == 3 and all(path.startswith(str(code)) for path in out)


def _smoke(data_cache: Path, *extra: str) -> list[str]:
    """A smoke run whose pre-training (18 steps, a checkpoint every 3) can be interrupted."""
    return ["method=simclr", "profile=smoke", "budget=3ep", f"data.cache={data_cache}",
            "engine.checkpoint_every=3", *extra]


def _losses(record: dict) -> list[tuple]:
    return [(c["phase"], c["step"], c["loss"], c["lr"]) for c in record["curves"]["train"]]


def _task_pid(controller: int, timeout_s: float = 120.0) -> int:
    """The run's process: the one child of submitit's local controller."""
    children = Path(f"/proc/{controller}/task/{controller}/children")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        pids = children.read_text().split()
        if pids:
            return int(pids[0])
        time.sleep(0.1)
    raise AssertionError("the local job never started its task")


@pytest.mark.slow
def test_local_job_stopped_mid_pretraining_requeues_and_ends_like_an_uninterrupted_run(
        tmp_path, data_cache):
    reference = launch.run_here(compose.resolve(_smoke(data_cache)), tmp_path / "plain")
    run = compose.resolve(_smoke(data_cache, "launcher.name=local"))
    results = tmp_path / "results"
    [job] = launch.submit_jobs(run.cfg, [[run]], results, force=False, name="bench-test")
    task = _task_pid(int(job.job_id))
    deadline = time.monotonic() + 300
    while not list((results / ".pretrain").glob("*/ckpt/last.ckpt")):     # mid pre-training
        assert time.monotonic() < deadline and job.get_info()["jobState"] == "RUNNING"
        time.sleep(0.1)
    os.kill(task, signal.SIGUSR2)
    rid = reference["run_id"]
    [record] = status.wait_for(results, [rid], poll_s=0.5, log=lambda line: None)
    assert record["status"] == "ok", record.get("error")
    job_file = jobstate.read_job(results, rid)
    assert job_file["requeues"] == 1
    stopped = int(re.search(r"pretrain stopped at step (\d+)",
                            Path(job_file["log"]).read_text()).group(1))
    assert 0 < stopped < record["compute"]["pretrain_steps"]
    assert record["metrics"] == reference["metrics"]
    assert _losses(record) == _losses(reference)


@pytest.mark.slow
def test_requeues_past_the_bound_end_in_a_failed_record(tmp_path, data_cache):
    run = compose.resolve(_smoke(data_cache, "launcher.name=local", "launcher.max_requeues=0"))
    results = tmp_path / "results"
    [job] = launch.submit_jobs(run.cfg, [[run]], results, force=False, name="bench-test")
    task = _task_pid(int(job.job_id))
    rid = status.run_ids(results)[0]
    deadline = time.monotonic() + 300
    while jobstate.read_job(results, rid)["state"] != "running":     # its handler is in place
        assert time.monotonic() < deadline
        time.sleep(0.1)
    os.kill(task, signal.SIGUSR2)
    [record] = status.wait_for(results, [rid], poll_s=0.5, log=lambda line: None)
    assert record["status"] == "failed"
    assert record["error"].startswith("stopped by the signal 1x, more than "
                                      "launcher.max_requeues=0")
