"""The compute plan: steps spend the budget to within one step, match=total gives the unspent
budget to fine-tuning, hours budgets are timed, and the dry-run estimate agrees with the plan."""
from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks import compute
from orchestration import compose
from benchmarks.budget import parse_budget

SMOKE = ["profile=smoke", "method=simclr"]


def cfg(*overrides):
    return compose.load([*SMOKE, *overrides], need_data=False)


@settings(max_examples=40, deadline=None)
@given(budget=st.floats(1e9, 1e15), step=st.floats(1e6, 1e12))
def test_pretraining_spends_the_budget_to_within_one_step(budget, step):
    plan = compute.Plan(parse_budget(f"{budget / 1e12:.6f}tflop"), "pretrain", 1e9, budget)
    steps = plan.pretrain_steps(step, step_seconds=lambda: pytest.fail("a compute budget is not timed"))
    assert steps >= 1 and (steps == 1 or abs(steps * step - budget) <= step / 2 + 1e-9 * budget)


def test_hours_are_timed_and_only_hours():
    plan = compute.plan(cfg("budget=0.5h"), image_flops=1e9, n_pretrain=100)
    assert plan.flops is None and plan.unfair
    assert plan.pretrain_steps(1e12, step_seconds=lambda: 2.0) == 900          # 1,800 s / 2 s
    assert plan.finetune_extra(0.0) == 0.0


def test_match_total_gives_the_unspent_budget_to_fine_tuning():
    total = compute.plan(cfg("match=total", "budget=2tflop"), 1e9, 100)
    assert total.finetune_extra(0.0) == 2e12 and total.finetune_extra(2e12) == 0.0
    assert total.finetune_steps(10, step_flops=1e11, pretrain_spent=0.0) == 30   # 10 + 2e12 / 1e11
    same = compute.plan(cfg("match=pretrain", "budget=2tflop"), 1e9, 100)
    assert same.finetune_steps(10, step_flops=1e11, pretrain_spent=0.0) == 10


def test_the_recipe_is_epochs_over_the_labelled_ids():
    c = cfg("finetune.epochs=3", "finetune.batch_size=8")
    assert compute.recipe_steps(c, 20) == math.ceil(3 * 20 / 8)
    assert compute.recipe_steps(c, 1) == 1


@settings(max_examples=25, deadline=None)
@given(steps=st.integers(1, 5000), fractions=st.lists(st.floats(0.05, 1.0), min_size=2, max_size=4))
def test_fixed_fine_tuning_steps_give_every_label_fraction_the_same_optimisation(steps, fractions):
    """finetune.steps fixes the recipe whatever the labelled set's size, in the plan and the
    dry-run estimate alike; epochs scale with it."""
    for fraction in fractions:
        c = cfg(f"finetune.steps={steps}", f"finetune.label_fraction={fraction}")
        labelled = max(8, round(fraction * 400))
        assert compute.recipe_steps(c, labelled) == steps
        e = compute.estimate(c, passes_per_sample=2, n_pretrain=320, n_labelled=labelled,
                             image_flops_pretrain=1e9, image_flops_finetune=2e9)
        assert e.finetune_steps == steps
    epochs = cfg("finetune.epochs=2")
    assert compute.recipe_steps(epochs, 40) < compute.recipe_steps(epochs, 400)


def test_fixed_steps_are_checked_named_in_the_run_id_and_leave_old_ids_alone():
    """A committed record, written before finetune.steps existed, keeps its run id and its
    pre-training cache key; a set value changes the run id but not the cache key."""
    import json
    from pathlib import Path

    from benchmarks.config import run_id
    from benchmarks.errors import UserError
    from benchmarks.run import pretrain_key

    with pytest.raises(UserError, match=r"finetune.steps must be >= 1 or null \(got 0\)"):
        cfg("finetune.steps=0")
    assert len({run_id(cfg("finetune.steps=100")), run_id(cfg("finetune.steps=200")), run_id(cfg())}) == 3
    record = json.loads(next(Path(__file__).parents[1].glob("results/cpu-study/records/simclr-*/result.json"))
                        .read_text())
    old = record["config"]
    assert "steps" not in old["finetune"]
    new = json.loads(json.dumps(old))
    new["finetune"]["steps"] = None
    assert run_id(new) == run_id(old) == record["run_id"] and pretrain_key(new) == pretrain_key(old)
    new["finetune"]["steps"] = 500
    assert run_id(new) != record["run_id"] and pretrain_key(new) == pretrain_key(old)


def test_the_estimate_is_the_plan_with_estimated_step_costs():
    c = cfg("budget=1ep", "pretrain.batch_size=16")
    e = compute.estimate(c, passes_per_sample=2, n_pretrain=320, n_labelled=64,
                         image_flops_pretrain=1e9, image_flops_finetune=2e9)
    assert e.budget_flops == 320 * 2 * 1e9 and e.pretrain_flops == e.budget_flops
    assert e.pretrain_steps == 20                                   # 320 samples / 16 per step
    assert e.finetune_steps == compute.recipe_steps(c, 64)
    init = compute.estimate(cfg("method=random", "match=total", "budget=1ep", "pretrain.batch_size=16"),
                            passes_per_sample=0, n_pretrain=320, n_labelled=64,
                            image_flops_pretrain=1e9, image_flops_finetune=2e9)
    assert init.pretrain_steps == 0 and init.pretrain_flops == 0.0
    assert init.finetune_flops == pytest.approx(e.finetune_flops + e.budget_flops)


def test_an_hours_budget_cannot_be_matched_in_total(tmp_path, capsys):
    """Refused when the config is composed: one line, exit 2, no record."""
    from orchestration.cli import main
    from benchmarks.errors import UserError

    with pytest.raises(UserError, match="match=total needs a compute budget .* not hours"):
        cfg("method=random", "match=total", "budget=2h")
    assert main(["run", "--method", "random", "--profile", "smoke", "--budget", "2h", "match=total",
                 "--results", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not hours" in err
    assert not (tmp_path / "r").exists()
