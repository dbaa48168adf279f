"""A run interrupted mid pre-training or mid fine-tuning and resumed from its checkpoints ends
with exactly the record of an uninterrupted run (the VISSL preemption test, on CPU)."""
import pytest

from benchmarks import engine
from orchestration import compose
from eval import pretrain as pretrain_mod
from orchestration.runner import execute
from eval import finetune as finetune_mod

WORDS = ["method=simclr", "budget=1kimg", "profile=smoke", "finetune.epochs=2",
         "engine.checkpoint_every=3", "engine.progress=false"]


def _stop_after(monkeypatch, module, attr, n):
    """Request a stop (as the SLURM signal handler does) during the n-th call of ``attr``."""
    original = getattr(module, attr)
    calls = {"n": 0}

    def wrapped(*args, **kw):
        calls["n"] += 1
        if calls["n"] == n:
            engine.request_stop()
        return original(*args, **kw)

    monkeypatch.setattr(module, attr, wrapped)


def _comparable(record):
    drop = {"provenance"}
    out = {k: v for k, v in record.items() if k not in drop}
    out["compute"] = {k: v for k, v in record["compute"].items()
                      if not k.endswith("wall_s") and k != "pretrain_cache_hit"}
    strip = lambda rows: [{k: v for k, v in r.items() if k not in ("data_s", "step_s")} for r in rows]
    out["curves"] = {k: strip(v) for k, v in record["curves"].items()}
    return out


@pytest.fixture(scope="module")
def reference(tmp_path_factory, data_cache):
    return execute(compose.resolve(WORDS), tmp_path_factory.mktemp("ref"))


@pytest.mark.parametrize("where", ["pretrain", "finetune"])
def test_resume_reproduces_uninterrupted_run(where, reference, tmp_path, monkeypatch):
    cfg = compose.resolve(WORDS)
    with monkeypatch.context() as m:
        if where == "pretrain":
            _stop_after(m, pretrain_mod, "method_loss", 6)        # 1 FLOP probe + 5 steps
        else:
            _stop_after(m, finetune_mod.PoseTask, "__call__", 6)
        with pytest.raises(engine.Preempted):
            execute(cfg, tmp_path)
    engine.clear_stop()
    assert not list(tmp_path.glob("*/result.json"))               # no record for a stopped run
    resumed = execute(cfg, tmp_path)
    assert resumed["status"] == "ok"
    assert _comparable(resumed) == _comparable(reference)
