"""Cross-dataset evaluation (``eval.also``): a fine-tuned model is scored on other sets
without training on them, beside their floors, and the report tabulates it."""
from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks.data.dexycb import DexYCB
from data_trees import freihand_tree
from dexycb_fixture import write_tree
from orchestration.cli import main

SMOKE = ["--method", "random", "--profile", "smoke", "--budget", "1ep"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, data_cache):
    tmp = tmp_path_factory.mktemp("transfer")
    write_tree(tmp / "dex", subjects=(0, 1, 2), n_seq=6, n_frames=2)
    freihand_tree(tmp / "fh", n=40, versions=1, frame=64, n_eval=7)
    results = tmp / "r"
    also = f"eval.also=[{{name: dexycb, root: {tmp / 'dex'}}}, {{name: freihand, root: {tmp / 'fh'}}}]"
    assert main(["run", *SMOKE, also, "--results", str(results)]) == 0
    return tmp, results


def test_the_record_scores_every_other_set_in_full_beside_its_floor(runs):
    tmp, results = runs
    (path,) = results.glob("*/result.json")
    record = json.loads(path.read_text())
    assert record["status"] == "ok" and record["data"] == "synthetic"
    transfer = record["transfer"]
    assert set(transfer) == {"dexycb", "freihand"}
    assert transfer["dexycb"]["n"] == len(DexYCB(tmp / "dex", "test", 32)) and transfer["freihand"]["n"] == 7
    for block in transfer.values():
        assert np.isfinite(block["pa_epe_mm"]) and block["pa_epe_mm"] > 0
        assert np.isfinite(block["baselines"]["canonical_hand"]["pa_epe_mm"])
    # the run's own metrics are those of its own evaluation split, untouched
    assert record["metrics"]["n"] == record["config"]["data"]["n_eval"]


def test_the_report_has_a_generalisation_table(runs, tmp_path):
    _, results = runs
    out = tmp_path / "report"
    assert main(["report", "--results", str(results), "--out", str(out)]) == 0
    table = (out / "tables" / "table7_transfer.md").read_text()
    assert "fine-tuned on" in table and "dexycb PA-EPE mm" in table and "freihand floor" in table
    assert "| synthetic |" in table


@pytest.mark.parametrize("word,message", [
    ("eval.also=[{name: synthetic}]", "choose a real data set"),
    ("eval.also=[{name: dexycb}]", "eval.also.0.root (dexycb) is not set"),
    ("eval.also=[{name: dexycb, root: /nonexistent}]", "no such directory"),
])
def test_bad_entries_are_one_line_before_any_training(word, message, tmp_path, capsys):
    rc = main(["run", *SMOKE, word, "--results", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and err.count("\n") == 1, err
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").iterdir())


def test_without_eval_also_run_ids_are_unchanged():
    from benchmarks.config import semantic
    from orchestration import compose

    cfg = compose.load(["method=random", "profile=smoke"])
    assert "also" not in semantic(cfg)["eval"]
