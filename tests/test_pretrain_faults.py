"""Pre-training runs that must not go wrong quietly: an hours budget plans its steps from
measured step times, and a diverged pre-training is never cached for other runs to reuse."""
import json

import pytest
import torch

from eval import pretrain
from orchestration import compose
from orchestration.cli import main
from orchestration.runner import RunFailed, execute, pretrain_cache_dir

FAST = ["profile=smoke", "finetune.epochs=1", "finetune.eval_points=1", "engine.progress=false"]


def test_an_hours_budget_runs_end_to_end(tmp_path, data_cache, capsys):
    code = main(["run", "--method", "simclr", "--profile", "smoke", "--budget", "0.002h",
                 "--results", str(tmp_path), "finetune.epochs=1", "finetune.eval_points=1"])
    assert code == 0, capsys.readouterr().err
    rec = json.loads(next(tmp_path.glob("*/result.json")).read_text())
    assert rec["status"] == "ok" and rec["compute"]["budget_unfair"] is True
    assert rec["compute"]["pretrain_steps"] >= 1 and rec["compute"]["budget_flops"] is None


def test_a_diverged_pretraining_fails_naming_it_and_caches_nothing(tmp_path, data_cache):
    cfg = compose.resolve(["method=simclr", "budget=1ep", "pretrain.lr=1e8", *FAST])
    with pytest.raises(RunFailed, match=r"pre-training simclr \(pretrain.lr=1e\+08.*lower pretrain.lr"):
        execute(cfg, tmp_path)
    rec = json.loads(next(tmp_path.glob("*/result.json")).read_text())
    assert rec["status"] == "failed" and "pretrain.lr" in rec["error"]
    cache = pretrain_cache_dir(tmp_path) / cfg.pretrain_key
    assert not (cache / pretrain.WEIGHTS).exists() and not (cache / "ckpt").exists()
    # another label fraction over the same pre-training fails the same way, not on a poisoned cache
    with pytest.raises(RunFailed, match="pre-training simclr"):
        execute(compose.resolve(["method=simclr", "budget=1ep", "pretrain.lr=1e8",
                              "finetune.label_fraction=0.5", *FAST]), tmp_path)


def test_a_poisoned_cache_entry_is_retrained_not_loaded(tmp_path, data_cache):
    cfg = compose.resolve(["method=simclr", "budget=3step", *FAST])
    execute(cfg, tmp_path)
    folder = pretrain_cache_dir(tmp_path) / cfg.pretrain_key
    state = torch.load(folder / pretrain.WEIGHTS)
    first = next(k for k, v in state.items() if v.is_floating_point())
    state[first].fill_(float("inf"))
    torch.save(state, folder / pretrain.WEIGHTS)
    rec = execute(cfg, tmp_path, force=True)
    assert rec["status"] == "ok" and rec["compute"]["pretrain_cache_hit"] is False
    assert not pretrain.non_finite(torch.load(folder / pretrain.WEIGHTS))
