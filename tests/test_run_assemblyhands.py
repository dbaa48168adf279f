"""``data=assemblyhands``: a run fine-tunes on the train split, validates on the official val
split and scores every valid hand of the test split over its valid joints, from a copy in
the toolkit's layout; a dry run counts and refuses what the run would; ``bench data check``
reports the official counts."""
from __future__ import annotations

import json

import numpy as np
import pytest

from assemblyhands_fixture import write_tree
from benchmarks.data.assemblyhands import AssemblyHands
from eval import predictions
from eval.metrics import freihand_metrics
from orchestration.cli import main

SMOKE = ["--method", "random", "--profile", "smoke", "--budget", "1ep", "data=assemblyhands",
         "finetune.batch_size=4"]


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    path = tmp_path_factory.mktemp("assemblyhands")
    write_tree(path)
    return path


@pytest.fixture(scope="module")
def run(root, tmp_path_factory, data_cache):
    results = tmp_path_factory.mktemp("runs")
    assert main(["run", *SMOKE, f"data.root={root}", "data.val_fraction=0.1",
                 "--results", str(results)]) == 0
    (path,) = results.glob("*/result.json")
    return path.parent


def test_a_run_scores_every_hand_of_the_test_split(root, run, tmp_path, capsys):
    record = json.loads((run / "result.json").read_text())
    test = AssemblyHands(root, "test", 32)
    counts = test.counts()
    assert record["status"] == "ok" and record["data"] == "assemblyhands"
    assert record["metrics"]["n"] == counts["test"] == len(test)
    assert record["labelled"]["images"] == counts["train"]
    assert record["labelled"]["validation_images"] == counts["val"]      # the official val split
    for floor in record["baselines"].values():
        assert np.isfinite(floor["pa_epe_mm"])
    assert main(["submit", str(run), "--out", str(tmp_path / "s.zip")]) == 2
    assert "no leaderboard file is defined for data=assemblyhands" in capsys.readouterr().err


def test_the_record_scores_the_kept_predictions_over_valid_joints(root, run):
    """Rescoring predictions.npz against the set's own labels (filmed frame, invalid joints
    left out) gives the record's numbers; some test hand has invalid joints."""
    record = json.loads((run / "result.json").read_text())
    kept = predictions.read(run)
    test = AssemblyHands(root, "test", 32)
    order = np.searchsorted(test.label_ids, kept["ids"])
    gt = test.frame_xyz[test.label_ids][order].astype(np.float64)
    valid = test.joints_valid()[order]
    assert not valid.all()
    m = freihand_metrics(kept["xyz"], gt, valid)
    assert m["pa_epe_mm"] == pytest.approx(record["metrics"]["pa_epe_mm"], abs=1e-3)
    assert m["epe_mm"] == pytest.approx(record["metrics"]["epe_mm"], abs=1e-3)


def test_a_dry_run_refuses_what_the_run_refuses(root, tmp_path, capsys):
    assert main(["run", *SMOKE, f"data.root={root}", "--dry-run", "--results", str(tmp_path)]) == 0
    capsys.readouterr()
    lines = []
    for dry in (["--dry-run"], []):
        rc = main(["run", *SMOKE, f"data.root={root}", "finetune.label_fraction=0.1", *dry,
                   "--results", str(tmp_path / "r")])
        err = capsys.readouterr().err
        assert rc == 2 and err.count("\n") == 1
        lines.append(err)
    for line in lines:      # the dry run words its estimate of the threshold as "about"
        assert "finetune.label_fraction=0.1 leaves 1 labelled" in line
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").glob("*/result.json"))


def test_a_test_split_with_a_joint_never_valid_is_refused_before_training(root, tmp_path, capsys,
                                                                         tmp_path_factory):
    copy = tmp_path_factory.mktemp("ah-nowrist")
    write_tree(copy)
    path = copy / "annotations" / "test" / "assemblyhands_test_ego_data_v1-1.json"
    db = json.loads(path.read_text())
    for ann in db["annotations"]:
        flat = np.array(ann["joint_valid"]).reshape(42)
        if flat[:21].sum() > 10:              # the wrist (official 20 and 41) never valid
            flat[20] = 0
        if flat[21:].sum() > 10:
            flat[41] = 0
        flat[[20, 41]] = 0
        ann["joint_valid"] = flat.tolist()
    path.write_text(json.dumps(db))
    results = tmp_path / "r"
    rc = main(["run", *SMOKE, f"data.root={copy}", "--results", str(results)])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1
    assert "wrist" in err and "valid in none" in err
    assert not any(results.glob("*/result.json"))


def test_data_check_reports_the_official_counts(root, tmp_path, capsys):
    rc = main(["data", "check", "data=assemblyhands", f"data.root={root}",
               "--sheet", str(tmp_path / "s.png")])
    out = capsys.readouterr()
    assert rc == 0, out.err
    counts = AssemblyHands(root, "train", 32).counts()
    for split in ("train", "val", "test"):
        assert f"assemblyhands {split}: {counts[split]} samples" in out.out
    assert (tmp_path / "s.png").is_file()
