"""``data=dexycb``: a run fine-tunes on the setup's train split and scores every hand of its
test split, from a copy in the toolkit's layout."""
from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks.data.dexycb import DexYCB
from dexycb_fixture import write_tree
from eval import predictions
from orchestration.cli import main

SMOKE = ["--method", "random", "--profile", "smoke", "--budget", "1ep", "data=dexycb",
         "finetune.batch_size=8"]


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    path = tmp_path_factory.mktemp("dexycb")
    write_tree(path, subjects=(0, 1, 2, 3), n_seq=6, n_frames=3)
    return path


def test_a_run_scores_every_hand_of_the_official_test_split(root, tmp_path, capsys, data_cache):
    results = tmp_path / "r"
    rc = main(["run", *SMOKE, f"data.root={root}", "data.val_fraction=0.1",
               "--results", str(results)])
    assert rc == 0, capsys.readouterr().err
    (path,) = results.glob("*/result.json")
    record = json.loads(path.read_text())
    test = DexYCB(root, "test", 32)
    assert record["status"] == "ok" and record["data"] == "dexycb"
    assert record["metrics"]["n"] == test.counts()["test"] == len(test)
    # validation is the setup's official val split, never carved from train
    assert record["labelled"]["validation_images"] == test.counts()["val"]
    assert record["labelled"]["images"] == test.counts()["train"]
    for floor in record["baselines"].values():       # beside its floors, on the same samples
        assert np.isfinite(floor["pa_epe_mm"])
    kept = predictions.read(path.parent)
    assert kept["data"] == "dexycb" and len(kept["ids"]) == len(test)
    # no leaderboard takes DexYCB: submit says so in one line
    assert main(["submit", str(path.parent), "--out", str(tmp_path / "s.zip")]) == 2
    assert "no leaderboard file is defined for data=dexycb" in capsys.readouterr().err


def test_a_dry_run_counts_the_train_split_from_meta_files(root, tmp_path, capsys):
    rc = main(["run", *SMOKE, f"data.root={root}", "--dry-run", "--results", str(tmp_path)])
    assert rc == 0, capsys.readouterr().err


@pytest.mark.parametrize("words,message", [
    (["data.split=s7"], "data.split must be one of: s0, s1, s2, s3 for data=dexycb"),
])
def test_bad_split_is_one_line(words, message, root, tmp_path, capsys):
    rc = main(["run", *SMOKE, f"data.root={root}", *words, "--dry-run", "--results", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and err.count("\n") == 1


def test_split_is_refused_on_a_set_with_one_split(tmp_path, capsys):
    rc = main(["run", "--method", "random", "--profile", "smoke", "data.split=s1", "--dry-run",
               "--results", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 2 and "data=synthetic has one official split" in err
