"""Matched compute (the suite's central promise), checked on real smoke runs.

Methods given the same budget spend the same pre-training FLOPs (within 2%, or one step);
under match=total an init without pre-training fine-tunes on the compute the others spent on
pre-training; a second fine-tune over a cached pre-training runs no pre-training step.
"""
import pytest

from eval import pretrain
from orchestration import compose
from orchestration.runner import execute

FAST = ["profile=smoke", "finetune.epochs=1", "finetune.eval_points=1", "engine.progress=false"]
BUDGET = "budget=2kimg"


@pytest.fixture(scope="module")
def runs(tmp_path_factory, data_cache):
    results = tmp_path_factory.mktemp("runs")
    out = {}
    for name in ("simclr", "peclr", "pairwise", "jointcon", "trajreg"):
        out[name] = execute(compose.resolve([f"method={name}", BUDGET, *FAST]), results, log=lambda *_: None)
    out["random_total"] = execute(compose.resolve(["method=random", BUDGET, "match=total", *FAST]), results)
    out["simclr_total"] = execute(compose.resolve(["method=simclr", BUDGET, "match=total", *FAST]), results)
    trained = []
    with pytest.MonkeyPatch.context() as m:
        original = pretrain._train
        m.setattr(pretrain, "_train", lambda *a: trained.append(a) or original(*a))
        out["simclr_lf"] = execute(compose.resolve(["method=simclr", BUDGET, "finetune.label_fraction=0.5",
                                                 "finetune.seed=7", *FAST]), results)
    out["pretrainings_for_simclr_lf"] = len(trained)
    return results, out


def test_pretrain_flops_match_across_methods(runs):
    _, out = runs
    names = ("simclr", "peclr", "pairwise", "jointcon", "trajreg")
    budget = out["simclr"]["compute"]["budget_flops"]
    for name in names:
        c = out[name]["compute"]
        assert out[name]["status"] == "ok"
        assert c["budget_flops"] == budget                       # one budget, whatever the method
        tolerance = max(0.02 * budget, c["pretrain_step_flops"])
        assert abs(c["pretrain_flops"] - budget) <= tolerance, name
        assert c["pretrain_flops"] == c["pretrain_steps"] * c["pretrain_step_flops"]
    # methods that cost more per step take fewer steps
    assert out["trajreg"]["compute"]["pretrain_steps"] < out["simclr"]["compute"]["pretrain_steps"]


def test_match_total_moves_the_budget_into_finetuning(runs):
    _, out = runs
    rnd, ssl = out["random_total"]["compute"], out["simclr_total"]["compute"]
    assert rnd["pretrain_flops"] == 0
    ssl_total = ssl["pretrain_flops"] + ssl["finetune_flops"]
    tolerance = max(0.02 * ssl_total, rnd["finetune_step_flops"])
    assert abs(rnd["finetune_flops"] - ssl_total) <= tolerance
    assert rnd["finetune_steps"] > ssl["finetune_steps"]
    # under match=pretrain the fine-tuning is identical for every method
    assert out["simclr"]["compute"]["finetune_steps"] == out["peclr"]["compute"]["finetune_steps"]


def test_finetune_only_changes_reuse_the_pretraining(runs):
    _, out = runs
    first, again = out["simclr"]["compute"], out["simclr_lf"]["compute"]
    assert first["pretrain_cache_hit"] is False
    assert again["pretrain_cache_hit"] is True
    assert again["pretrain_key"] == first["pretrain_key"]
    assert again["pretrain_flops"] == first["pretrain_flops"]      # spent once, counted for both
    assert out["pretrainings_for_simclr_lf"] == 0                  # no pre-training step ran
    assert out["simclr_lf"]["curves"]["train"] == out["simclr"]["curves"]["train"]
    assert out["simclr_total"]["compute"]["pretrain_cache_hit"] is True   # match is not in the key
    # the record says how much labelled data the fine-tune used
    assert out["simclr"]["labelled"] == {"ids": 96, "images": 96, "validation_ids": 0,
                                         "validation_images": 0}
    assert out["simclr_lf"]["labelled"]["ids"] == 48


def test_a_repeated_run_reuses_its_record(runs):
    results, out = runs
    said = []
    again = execute(compose.resolve(["method=simclr", BUDGET, *FAST]), results, log=said.append)
    assert again == out["simclr"] and "already done" in said[0]
