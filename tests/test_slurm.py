"""Against a real one-node SLURM cluster that the tests start themselves (``slurm_cluster.py``).

- ``bench run --launcher slurm --wait`` ends with an ok record carrying the job's id;
- a job sent USR2 in the middle of pre-training checkpoints, requeues, resumes and ends with
  exactly the metrics (and training curve) of the uninterrupted run of the same config;
- a sweep of 2 methods x 2 fine-tune seeds completes with one pre-training per method, the
  fine-tunes that reuse it starting only after it finished.

Skipped, with the reason, where SLURM is not installed or the tests do not run as root.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orchestration import jobstate, status
from benchmarks.record import read_record, record_path
from slurm_cluster import SlurmCluster, unavailable

pytestmark = [pytest.mark.slurm, pytest.mark.skipif(unavailable() is not None,
                                                    reason=str(unavailable()))]

BENCH = [sys.executable, "-m", "orchestration.cli"]
JOB = ["launcher.cpus_per_task=1", "launcher.mem_gb=2", "launcher.time_min=20"]
TIMEOUT_S = 600


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with SlurmCluster(tmp_path_factory.mktemp("slurm")) as c, pytest.MonkeyPatch.context() as mp:
        for key, value in c.env().items():             # clients and jobs find the cluster
            mp.setenv(key, value)
        yield c


def _run(data_cache: Path, results: Path, *flags: str) -> list[str]:
    """``bench run`` of a smoke run whose pre-training (18 steps, a checkpoint every 3) can be
    interrupted, on SLURM."""
    return ["run", "--method", "simclr", "--profile", "smoke", "--budget", "3ep",
            "--launcher", "slurm", "--results", str(results), *flags,
            f"data.cache={data_cache}", "engine.checkpoint_every=3", *JOB]


def _losses(record: dict) -> list[tuple]:
    return [(c["phase"], c["step"], c["loss"], c["lr"]) for c in record["curves"]["train"]]


def _bench(*args: str, timeout: float = TIMEOUT_S) -> subprocess.CompletedProcess:
    out = subprocess.run([*BENCH, *args], capture_output=True, text=True, timeout=timeout,
                         env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert out.returncode == 0, out.stdout + out.stderr
    return out


def _job_id(stdout: str) -> str:
    return re.search(r"submitted slurm job (\S+)", stdout).group(1)


def _only_record(results: Path) -> dict:
    [rid] = status.run_ids(results)
    return read_record(record_path(results, rid))


@pytest.fixture(scope="module")
def uninterrupted(cluster, data_cache, tmp_path_factory) -> tuple[dict, str]:
    results = tmp_path_factory.mktemp("plain")
    out = _bench(*_run(data_cache, results, "--wait"))
    return _only_record(results), out.stdout


def test_run_with_wait_ends_with_an_ok_record_carrying_the_job_id(uninterrupted):
    record, stdout = uninterrupted
    assert record["status"] == "ok"
    assert record["provenance"]["slurm_job_id"] == _job_id(stdout)
    assert stdout.strip().splitlines()[-1].startswith(f"{record['run_id']}: ok  PA-EPE")


def test_usr2_mid_pretraining_requeues_and_resumes_to_identical_metrics(
        cluster, data_cache, uninterrupted, tmp_path):
    results = tmp_path / "results"
    out = _bench(*_run(data_cache, results))
    job_id = _job_id(out.stdout)
    ckpts = results / ".pretrain"
    deadline = time.monotonic() + TIMEOUT_S
    while not list(ckpts.glob("*/ckpt/last.ckpt")):          # the first checkpoint: mid-run
        assert time.monotonic() < deadline, "pre-training never checkpointed"
        time.sleep(0.2)
    subprocess.run(["scancel", "--signal=USR2", job_id], check=True)
    rid = status.run_ids(results)[0]
    [record] = status.wait_for(results, [rid], poll_s=1.0, log=lambda line: None)
    assert record["status"] == "ok", record.get("error")
    assert jobstate.read_job(results, rid)["requeues"] == 1
    log = Path(jobstate.read_job(results, rid)["log"]).read_text()
    stopped = int(re.search(r"pretrain stopped at step (\d+)", log).group(1))
    assert 0 < stopped < record["compute"]["pretrain_steps"]
    reference, _ = uninterrupted
    assert record["metrics"] == reference["metrics"]
    assert _losses(record) == _losses(reference)
    assert record["provenance"]["slurm_job_id"] == job_id


def test_sweep_of_two_methods_by_two_seeds_pretrains_once_per_method(cluster, data_cache,
                                                                     tmp_path):
    sweep_file = tmp_path / "two.yaml"
    sweep_file.write_text(json.dumps({
        "name": "two",
        "fixed": {"profile": "smoke", "budget": "1ep", "data.cache": str(data_cache)},
        "grid": {"method": ["simclr", "vicreg"], "finetune.seed": [0, 1]}}))
    results = tmp_path / "results"
    _bench("sweep", str(sweep_file), *JOB, "--launcher", "slurm", "--wait", "--results",
           str(results))
    records = [read_record(record_path(results, rid)) for rid in status.run_ids(results)]
    assert len(records) == 4 and all(r["status"] == "ok" for r in records)
    assert len(list((results / ".pretrain").glob("*/backbone.pt"))) == 2     # one per method
    for method in ("simclr", "vicreg"):
        leader, follower = sorted((r for r in records if r["method"] == method),
                                  key=lambda r: r["compute"]["pretrain_cache_hit"])
        assert (leader["compute"]["pretrain_cache_hit"],
                follower["compute"]["pretrain_cache_hit"]) == (False, True)
        assert leader["compute"]["pretrain_key"] == follower["compute"]["pretrain_key"]
        assert follower["provenance"]["started"] >= leader["provenance"]["finished"]
    assert len({r["provenance"]["slurm_job_id"] for r in records}) == 4
