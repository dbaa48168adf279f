"""``bench sweep``: sweep files, the grid, the plan (each pre-training once), the estimate."""
from __future__ import annotations

import math
import os
import socket
import time

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestration import jobstate, status, sweep, sweepfile
from orchestration.cli import main as bench
from benchmarks.errors import UserError
from eval.pretrain import META, WEIGHTS
from benchmarks.record import iter_records, write_record
from example_records import example_record, failed_record

SMOKE = {"profile": "smoke", "budget": "1ep"}


def _write(tmp_path, text: str, name: str = "s.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("text, words", [
    (None, "sweep file not found"),
    ("grid: [a, b", "not valid YAML"),
    ("- method: simclr", "expected a mapping"),
    ("grid: {method: [simclr]}\nseeds: [1]", "unknown key(s) seeds"),
    ("fixed: {budget: 1ep}", "no 'grid'"),
    ("grid: {method: simclr}", "'method' must be a non-empty list"),
    ("grid: {method: []}", "'method' must be a non-empty list"),
    ("grid: [{method: [simclr]}, 3]", "grid[1] must map config keys"),
    ("fixed: [budget]\ngrid: {seed: [0]}", "'fixed' must map config keys"),
])
def test_malformed_sweep_files_get_one_line(tmp_path, text, words):
    path = tmp_path / "missing.yaml" if text is None else _write(tmp_path, text)
    with pytest.raises(UserError) as err:
        sweepfile.load_spec(path)
    assert words in str(err.value) and str(path) in str(err.value)
    assert "\n" not in str(err.value)


def test_cli_exits_2_with_one_line_for_a_missing_sweep_file(tmp_path, capsys):
    assert bench(["sweep", str(tmp_path / "nope.yaml"), "--results", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "sweep file not found" in err


def test_a_grid_key_the_config_lacks_is_a_user_error_naming_file_and_key(tmp_path):
    path = _write(tmp_path, "grid: {finetune.lr_typo: [0.1, 0.2]}")
    with pytest.raises(UserError) as err:
        sweepfile.compose_runs(path, sweepfile.load_spec(path), [], None)
    assert str(err.value).startswith(f"{path}: ") and "finetune.lr_typo" in str(err.value)
    assert "\n" not in str(err.value)


_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**12, 10**12)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="$"),
              max_size=12),
    lambda inner: st.lists(inner, max_size=3), max_leaves=6)


@settings(max_examples=150, deadline=None)
@given(_values)
def test_override_value_is_read_back_by_hydra_as_the_same_value(value):
    parsed = OverridesParser.create().parse_override(f"k={sweepfile.override_value(value)}").value()
    assert parsed == value and type(parsed) is type(value)


def test_expand_is_the_product_with_fixed_then_grid_then_command_line(tmp_path):
    spec = sweepfile.load_spec(_write(tmp_path, """
fixed: {budget: 1ep, seed: 3, finetune.epochs: 2}
grid: [{method: [simclr, peclr], finetune.seed: [0, 1, 2]}, {method: [random], seed: [5]}]
"""))
    runs = [dict(w.split("=", 1) for w in words)
            for words in sweepfile.expand(spec, ["finetune.epochs=4"], "local")]
    assert len(runs) == 2 * 3 + 1
    assert runs[0] == {"budget": "1ep", "seed": "3", "finetune.epochs": "4", "method": "simclr",
                       "finetune.seed": "0", "launcher.name": "local"}
    assert [r["method"] for r in runs] == ["simclr"] * 3 + ["peclr"] * 3 + ["random"]
    assert runs[-1]["seed"] == "5"


GRID = "{method: [simclr, vicreg, random], finetune.seed: [0, 1]}"


@pytest.fixture(scope="module")
def grid_cfgs(tmp_path_factory) -> dict:
    """The GRID's configs (smoke, 1ep), composed once per launcher."""
    path = _write(tmp_path_factory.mktemp("sweep"), f"fixed: {SMOKE}\ngrid: {GRID}")
    spec = sweepfile.load_spec(path)
    return {launcher: sweepfile.compose_runs(path, spec, [], launcher)
            for launcher in ("inprocess", "slurm")}


def _plan(tmp_path, grid_cfgs, launcher: str = "inprocess"):
    return sweep.make_plan("t", grid_cfgs[launcher], tmp_path / "results")


def test_each_distinct_pretraining_has_one_leader_and_the_rest_follow(tmp_path, grid_cfgs):
    plan = _plan(tmp_path, grid_cfgs)
    assert [r.cfg.method.name for r in plan.leaders] == ["simclr", "vicreg"]
    assert {k: [r.cfg.finetune.seed for r in v] for k, v in plan.followers.items()} == {
        plan.leaders[0].key: [1], plan.leaders[1].key: [1]}
    assert [r.cfg.method.name for r in plan.free] == ["random", "random"]
    assert len(plan.todo) == 6 and plan.done == [] and plan.live == []
    assert plan.todo[:2] == plan.leaders


def test_rerun_skips_ok_records_and_resubmits_failed_ones(tmp_path, grid_cfgs):
    first = _plan(tmp_path, grid_cfgs)
    results = tmp_path / "results"
    ok, failed = first.free[0], first.free[1]
    write_record(results, {**example_record("random", 0, 12.0), "run_id": ok.rid})
    write_record(results, {**failed_record("random", 1, "boom"), "run_id": failed.rid})
    plan = _plan(tmp_path, grid_cfgs)
    assert [r.rid for r in plan.done] == [ok.rid]
    assert failed.rid in [r.rid for r in plan.free]
    # an "ok" record that breaks the record contract is run again, not counted as done
    write_record(results, {"run_id": ok.rid, "status": "ok", "metrics": {}})
    assert _plan(tmp_path, grid_cfgs).done == []


def test_a_cached_pretraining_frees_its_finetunes(tmp_path, grid_cfgs):
    first = _plan(tmp_path, grid_cfgs)
    cache = tmp_path / "results" / ".pretrain" / first.leaders[1].key
    cache.mkdir(parents=True)
    (cache / WEIGHTS).write_bytes(b"")
    (cache / META).write_text("{}")
    plan = _plan(tmp_path, grid_cfgs)
    assert [r.cfg.method.name for r in plan.leaders] == ["simclr"]
    assert sorted(r.cfg.method.name for r in plan.free) == ["random", "random", "vicreg", "vicreg"]


def test_followers_of_a_pretraining_under_way_wait_for_its_job(tmp_path, grid_cfgs, monkeypatch):
    first = _plan(tmp_path, grid_cfgs, "slurm")
    leader = first.leaders[0]
    jobstate.record_submission(tmp_path / "results", leader.rid, "77_0", "slurm", time.time())
    monkeypatch.setattr(status, "slurm_queue", lambda: {"77_0": "RUNNING"})
    plan = _plan(tmp_path, grid_cfgs, "slurm")
    assert [r.rid for r in plan.live] == [leader.rid]
    assert plan.waits_on == {leader.key: "77_0"}
    assert [r.cfg.method.name for r in plan.leaders] == ["vicreg"]
    assert [r.cfg.finetune.seed for r in plan.followers[leader.key]] == [1]


def test_a_live_local_job_is_left_alone(tmp_path, grid_cfgs):
    first = _plan(tmp_path, grid_cfgs)
    run = first.free[0]
    jobstate.record_submission(tmp_path / "results", run.rid, str(os.getpid()), "local",
                               time.time(), pid=os.getpid(), host=socket.gethostname())
    plan = _plan(tmp_path, grid_cfgs)
    assert [r.rid for r in plan.live] == [run.rid] and run.rid not in [r.rid for r in plan.todo]


def test_all_runs_must_share_one_launcher(tmp_path):
    path = _write(tmp_path, "grid: {launcher.partition: [a, b]}")
    with pytest.raises(UserError, match="share one launcher"):
        sweepfile.compose_runs(path, sweepfile.load_spec(path), [], None)


def test_estimate_spends_the_budget_on_pretraining_and_scales_with_labels(tmp_path):
    from orchestration import compose

    def est(**kw):
        return sweep.estimate(compose.resolve([f"{k}={v}" for k, v in {**SMOKE, **kw}.items()]))

    e = est(method="simclr", budget="3tflop")                  # the budget, to within one step
    assert abs(e.pretrain_flops - 3e12) <= 0.5 * e.pretrain_flops / e.pretrain_steps
    one, two = est(method="simclr", budget="1ep"), est(method="simclr", budget="2ep")
    assert two.pretrain_flops == pytest.approx(2 * one.pretrain_flops)
    assert two.pretrain_steps in (2 * one.pretrain_steps - 1, 2 * one.pretrain_steps, 2 * one.pretrain_steps + 1)
    half = est(method="simclr", **{"finetune.label_fraction": 0.5})
    assert half.finetune_flops == pytest.approx(one.finetune_flops / 2)
    assert abs(2 * half.finetune_steps - one.finetune_steps) <= 2         # ceil of epochs x ids / batch
    init, total = est(method="random"), est(method="random", match="total")
    assert init.pretrain_flops == 0.0 and init.pretrain_steps == 0
    assert total.finetune_flops == pytest.approx(init.finetune_flops + one.pretrain_flops)
    assert total.finetune_steps > init.finetune_steps
    hours = est(method="simclr", budget="1h")
    assert math.isnan(hours.pretrain_steps) and math.isnan(hours.pretrain_flops)


def test_dry_run_prints_the_plan_and_writes_nothing(tmp_path, capsys):
    path = _write(tmp_path, f"fixed: {SMOKE}\ngrid: {GRID}")
    results = tmp_path / "results"
    assert bench(["sweep", str(path), "--dry-run", "--results", str(results)]) == 0
    out = capsys.readouterr().out
    assert "6 runs: 0 done, 0 pending or running, 6 to run (dry run: nothing submitted)" in out
    assert "pre-trainings: 2 to run" in out
    assert "4 of them after a pre-training (2 wait for another run's)" in out
    assert "compute (estimate): pre-training" in out
    assert not results.exists()


@pytest.mark.slow
def test_inprocess_sweep_pretrains_once_and_a_rerun_skips_everything(tmp_path, data_cache,
                                                                   capsys):
    path = _write(tmp_path, f"""
fixed: {{profile: smoke, budget: 1ep, data.cache: {data_cache}}}
grid: {{method: [simclr], finetune.seed: [0, 1]}}
""")
    results = tmp_path / "results"
    assert bench(["sweep", str(path), "--results", str(results)]) == 0
    records = [r for _, r in iter_records(results)]
    assert [r["status"] for r in records] == ["ok"] * 2
    records.sort(key=lambda r: r["provenance"]["started"])
    assert [r["compute"]["pretrain_cache_hit"] for r in records] == [False, True]
    assert len(list((results / ".pretrain").glob("*/backbone.pt"))) == 1
    capsys.readouterr()
    assert bench(["sweep", str(path), "--results", str(results)]) == 0
    out = capsys.readouterr().out
    assert "2 runs: 2 done, 0 pending or running, 0 to run" in out and "nothing to submit" in out
