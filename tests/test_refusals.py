"""Refused at planning time, in one line, with nothing written; and what a refusal or a failure
must never destroy: an ok record (``--force``), a pre-training cache (it heals), a code snapshot.

A dry run refuses exactly what the run would refuse, so every case runs both ways.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from orchestration import compose
from orchestration.cli import main

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ["--profile", "smoke", "engine.progress=false", "finetune.epochs=1", "finetune.eval_points=1"]

CASES = [
    (["--seed", "-1"], "seed must be in [0, 2147483647] (got -1)"),
    (["seed=99999999999999999999"], "seed must be in [0, 2147483647]"),
    (["finetune.seed=-3"], "finetune.seed must be in [0, 2147483647] (got -3)"),
    (["engine.checkpoint_every=0"], "engine.checkpoint_every must be >= 1 (got 0)"),
    (["engine.log_every=0"], "engine.log_every must be >= 1 (got 0)"),
    (["engine.progress_every_s=-1"], "engine.progress_every_s must be >= 0"),
    (["engine.accelerator=tpu"], "engine.accelerator must be one of: auto, cpu, cuda (got 'tpu')"),
    (["engine.precision=bogus"], "engine.precision must be one of"),
    (["pretrain.sources.0.name=bogus"], "unknown pre-training source pretrain.sources.0.name='bogus'"),
    (["data.root=/tmp"], "add data=freihand"),
    (["--method", "simclr", "method=peclr"], "--method simclr conflicts with method=peclr; keep one"),
    (["seed=1", "seed=2"], "seed is set twice (seed=1 and seed=2); keep one"),
    (["method=simclr", "method.temperature=-1"], "method.temperature must be > 0 (got -1.0)"),
    (["method=peclr", "method.out_dim=127"], "method.out_dim must be even"),
    (["method=pairwise", "method.heads=[rotation,bogus]"], "method.heads must be distinct names"),
    (["method=jointcon", "method.feature_strides=[3]"], "method.feature_strides=[3]"),
    (["method=simclr", "--budget", "1e-30ep"], "less than one"),
    (["method=simclr", "--budget", "1e15ep"], "pre-training steps, more than 1e+08: budget=1e15ep: check its unit"),
    (["method=simclr", "--budget", "1 ep"], "no spaces"),
    (["method=simclr", "--budget", "1e400ep"], "too large for a float"),
    (["pretrain.res=100000"], "pretrain.res must be <= 1024"),
    (["--threads", "100000"], "engine.threads must be <= 1024"),
    (["method.label=héllo", "method=weights"], "characters outside ASCII"),
    (["--budget=-1ep"], "malformed budget '-1ep'"),
    (["--seed", "abc"], "invalid int value: 'abc'"),
    (["finetune.label_fraction=0.1"], "finetune.label_fraction=0.1 leaves 10 labelled"),
]


@pytest.mark.parametrize("dry", [True, False], ids=["dry-run", "run"])
@pytest.mark.parametrize("words,message", CASES, ids=[" ".join(w) for w, _ in CASES])
def test_a_bad_setting_is_one_line_exit_2_and_nothing_written(words, message, dry, tmp_path,
                                                               data_cache, capsys):
    results = tmp_path / "r"
    rc = main(["run", *SMOKE, *words, "--results", str(results), *(["--dry-run"] if dry else [])])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.count("\n") == 1 and message in err, err
    leftovers = [p.name for p in results.iterdir() if not p.name.startswith(".")] if results.exists() else []
    assert leftovers == []                      # no run folder, no record, no job file


def test_cuda_on_a_machine_without_it_is_refused_before_the_run_starts(tmp_path, data_cache, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    rc = main(["run", *SMOKE, "engine.accelerator=cuda", "--results", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 2 and "no CUDA device on this machine" in err and err.count("\n") == 1
    assert not [p for p in tmp_path.iterdir() if not p.name.startswith(".")]


@pytest.mark.parametrize("value", ["", " "])
def test_an_empty_results_folder_is_refused(value, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["status", "--results", value]) == 2
    assert "is empty" in capsys.readouterr().err
    monkeypatch.setenv("BENCH_RESULTS", value)
    assert main(["run", *SMOKE]) == 2
    assert "is empty" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_an_unset_environment_variable_in_a_sweep_file_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("BENCH_IMAGENET_WEIGHTS", raising=False)
    assert main(["sweep", str(ROOT / "sweeps" / "smoke.yaml"), "--dry-run", "--results", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "environment variable BENCH_IMAGENET_WEIGHTS is not set" in err and err.count("\n") == 1


def _ok_run(results: Path, *words: str) -> tuple[dict, bytes]:
    from orchestration.runner import execute

    rec = execute(compose.resolve([*SMOKE[2:], "profile=smoke", *words]), results, log=lambda *_: None)
    assert rec["status"] == "ok"
    path = results / rec["run_id"] / "result.json"
    return rec, path.read_bytes()


def test_a_refused_force_rerun_leaves_the_ok_record_byte_identical(tmp_path, data_cache, capsys):
    rec, before = _ok_run(tmp_path, "method=random")
    path = tmp_path / rec["run_id"] / "result.json"
    for bad in ("engine.checkpoint_every=0", "engine.log_every=0"):
        # a refused setting changes the config, so it is another run id: nothing of it is written
        assert main(["run", *SMOKE, "method=random", bad, "--force", "--results", str(tmp_path)]) == 2
    assert path.read_bytes() == before


def test_a_failing_force_rerun_keeps_the_ok_record_and_says_so(tmp_path, data_cache, monkeypatch):
    from eval import finetune as ft_phase
    from orchestration.runner import RunFailed, execute

    rec, before = _ok_run(tmp_path, "method=random")
    path = tmp_path / rec["run_id"] / "result.json"

    def boom(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(ft_phase, "finetune", boom)
    run = compose.resolve([*SMOKE[2:], "profile=smoke", "method=random"])
    with pytest.raises(RunFailed, match=r"disk on fire .*the ok record .* is kept unchanged"):
        execute(run, tmp_path, force=True, log=lambda *_: None)
    assert path.read_bytes() == before
    # without an ok record to keep, the failure is recorded as before
    other = compose.resolve([*SMOKE[2:], "profile=smoke", "method=random", "seed=1"])
    with pytest.raises(RunFailed):
        execute(other, tmp_path, log=lambda *_: None)
    assert json.loads((tmp_path / other.run_id / "result.json").read_text())["status"] == "failed"


def test_a_truncated_cached_backbone_is_named_moved_aside_and_retrained(tmp_path, data_cache):
    from eval import pretrain
    from orchestration.runner import execute, pretrain_cache_dir

    first, _ = _ok_run(tmp_path, "method=simclr", "budget=3step")
    run = compose.resolve([*SMOKE[2:], "profile=smoke", "method=simclr", "budget=3step"])
    folder = pretrain_cache_dir(tmp_path) / run.pretrain_key
    weights = folder / pretrain.WEIGHTS
    weights.write_bytes(weights.read_bytes()[:1000])           # killed mid-copy, a full disk
    said = []
    rec = execute(run, tmp_path, force=True, log=said.append)
    assert rec["status"] == "ok" and rec["compute"]["pretrain_cache_hit"] is False
    assert any(str(folder) in line and "unreadable" in line and "training it again" in line
               for line in said), said
    assert len(list(folder.parent.glob(f"{folder.name}.bad-*"))) == 1
    assert pretrain.read_cache(folder) is not None               # healed: a readable entry again
    assert rec["metrics"] == first["metrics"]                    # and the same pre-training


def test_the_cache_key_includes_the_device_count():
    one = compose.resolve(["method=simclr", "profile=smoke"])
    two = compose.resolve(["method=simclr", "profile=smoke", "engine.devices=2"])
    assert one.pretrain_key != two.pretrain_key
    assert one.pretrain_key == compose.resolve(["method=simclr", "profile=smoke", "finetune.lr=0.1"]).pretrain_key


def test_an_edited_snapshot_is_rebuilt_not_reused(tmp_path):
    from orchestration import launch

    src = tmp_path / "src"
    for package in ("benchmarks", "methods", "eval", "orchestration"):
        (src / package).mkdir(parents=True)
        (src / package / "__init__.py").write_text(f"NAME = {package!r}\n")
    first = launch.snapshot_code(tmp_path / "sub", root=src)
    (first / "methods" / "__init__.py").write_text("NAME = 'tampered'\n")
    again = launch.snapshot_code(tmp_path / "sub", root=src)
    assert again == first
    assert (again / "methods" / "__init__.py").read_text() == "NAME = 'methods'\n"


def test_a_malicious_weights_pickle_is_refused_and_never_runs(tmp_path, capsys):
    marker = tmp_path / "ran"
    code = (f"import os, torch\n"
            f"class Evil:\n"
            f"    def __reduce__(self):\n"
            f"        return (os.system, ('touch {marker}',))\n"
            f"torch.save({{'conv1.weight': Evil()}}, {str(tmp_path / 'evil.pth')!r})\n")
    subprocess.run([sys.executable, "-c", code], check=True)
    rc = main(["run", *SMOKE, "method=weights", f"method.weights={tmp_path / 'evil.pth'}",
               "method.label=evil", "--results", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1
    assert "loading it would call" in err and "nothing was run" in err and "\x1b" not in err
    assert not marker.exists()


def test_a_run_shows_its_header_and_progress_when_redirected_and_logs_csv(tmp_path, data_cache):
    log = tmp_path / "log"
    env = {**os.environ, "BENCH_DATA": str(data_cache)}
    with open(log, "w") as out:
        proc = subprocess.run([str(Path(sys.executable).parent / "bench"), "run", "--method", "simclr",
                               "--profile", "smoke", "--budget", "1ep", "finetune.epochs=1",
                               "--results", str(tmp_path / "r")], stdout=out, stderr=subprocess.STDOUT,
                              env=env, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, log.read_text()
    lines = log.read_text().splitlines()
    rid = compose.resolve(["method=simclr", "profile=smoke", "budget=1ep", "finetune.epochs=1"]).run_id
    assert lines[0].startswith(f"run {rid} (simclr, seed 0)")
    assert lines[1].startswith("  plan (measured): budget 1ep match=pretrain; pre-train ")
    assert any(line.startswith("pretrain step ") for line in lines)
    assert any(line.startswith("finetune step ") for line in lines)
    run = tmp_path / "r" / rid / "logs"
    for phase in ("pretrain", "finetune"):
        assert (run / phase / "version_0" / "metrics.csv").read_text().count("\n") > 1
        assert "seed" in (run / phase / "version_0" / "hparams.yaml").read_text()


def test_cfg_job_prints_the_resolved_config(capsys):
    assert main(["run", "--method", "simclr", "--profile", "smoke", "--cfg", "job"]) == 0
    out = capsys.readouterr().out
    assert "method:\n  name: simclr\n" in out and "profile: smoke" in out
    assert main(["run", "--method", "simclr", "--profile", "smoke", "--cfg"]) == 0
    assert capsys.readouterr().out == out


def test_multirun_plans_the_grid_as_a_sweep(tmp_path, capsys):
    rc = main(["run", "--method", "simclr", "--profile", "smoke", "-m", "seed=0,1",
               "finetune.lr=0.001,0.002", "--dry-run", "--results", str(tmp_path)])
    out = capsys.readouterr().out
    assert rc == 0 and "4 runs: 0 done" in out and "pre-trainings: 2 to run" in out
    assert "4 of them after a pre-training" in out


def test_two_identical_runs_at_once_fine_tune_once(tmp_path, data_cache):
    """The second waits on the first's lock and then finds its record."""
    import threading

    from orchestration.runner import execute

    run = compose.resolve([*SMOKE[2:], "profile=smoke", "method=random"])
    said: list[list[str]] = [[], []]
    out: list[dict] = [{}, {}]

    def go(i: int) -> None:
        out[i] = execute(run, tmp_path, log=said[i].append)

    threads = [threading.Thread(target=go, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert out[0] == out[1] and out[0]["status"] == "ok"
    reused = [any("already done" in line for line in lines) for lines in said]
    assert sorted(reused) == [False, True]


def test_a_report_never_deletes_files_a_user_added_to_its_folder(tmp_path, capsys):
    records = ROOT / "results" / "cpu-study" / "records"
    out = tmp_path / "report"
    assert main(["report", "--results", str(records), "--out", str(out)]) == 0
    (out / "notes.md").write_text("my notes\n")
    (out / "tables" / "mine.md").write_text("| mine |\n")
    index = (out / "index.md").read_bytes()
    capsys.readouterr()
    assert main(["report", "--results", str(records), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "notes.md" in err and "tables/mine.md" in err
    assert (out / "notes.md").read_text() == "my notes\n" and (out / "index.md").read_bytes() == index
    assert not list(tmp_path.glob(".report.*"))               # no staging folder left behind
