"""A run keeps its predictions beside its record, and ``bench submit`` turns them into the
leaderboard file, which the official checks accept and which scores what the record says."""
from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

from benchmarks.data.prepare import Data
from eval import predictions
from eval.evaluate import load_ground_truth, main as evaluate
from eval.finetune import kept
from orchestration import compose
from orchestration.cli import main

SMOKE = ["--method", "random", "--profile", "smoke", "--budget", "1ep"]


@pytest.fixture(scope="module")
def run(tmp_path_factory, data_cache):
    results = tmp_path_factory.mktemp("runs")
    assert main(["run", *SMOKE, "--results", str(results)]) == 0
    (folder,) = [p.parent for p in results.glob("*/result.json")]
    cfg = compose.load(["method=random", "profile=smoke", "budget=1ep"])
    return folder, Data(cfg).lab_root


def test_an_ok_run_keeps_every_evaluated_sample_once(run):
    folder, lab = run
    record = json.loads((folder / "result.json").read_text())
    pred = predictions.read(folder)
    assert pred["data"] == "synthetic" and pred["split"] == "evaluation"
    assert sorted(pred["ids"].tolist()) == list(range(record["metrics"]["n"]))
    assert pred["xyz"].shape == (record["metrics"]["n"], 21, 3)


def test_the_submission_passes_the_official_checks_and_scores_the_record(run, tmp_path, capsys):
    folder, lab = run
    out = tmp_path / "sub.zip"
    assert main(["submit", str(folder), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "mesh scores are meaningless" in printed
    with zipfile.ZipFile(out) as zf:
        pair = json.loads(zf.read("pred.json"))
    gt = load_ground_truth(lab)
    # the official eval.py's assertions: two lists, both one entry per ground-truth sample
    assert len(pair) == 2 and len(pair[0]) == len(gt) and len(pair[1]) == len(gt)
    assert np.asarray(pair[1]).shape == (len(gt), 778, 3)
    record = json.loads((folder / "result.json").read_text())
    scored = evaluate(out, lab, console=_quiet())
    assert abs(scored["pa_epe_mm"] - record["metrics"]["pa_epe_mm"]) < 1e-3
    assert abs(scored["epe_mm"] - record["metrics"]["epe_mm"]) < 1e-3


def test_mirrored_hands_are_mirrored_back_into_the_filmed_frame():
    xyz = np.random.default_rng(0).normal(size=(3, 21, 3))
    out = kept({"xyz": xyz, "ids": np.array([5.0, 6.0, 7.0]), "flipped": np.array([0.0, 1.0, 0.0])})
    np.testing.assert_array_equal(out["xyz"][[0, 2]], xyz[[0, 2]])
    np.testing.assert_array_equal(out["xyz"][1], xyz[1] * [-1, 1, 1])
    assert out["ids"].tolist() == [5, 6, 7]


@pytest.mark.parametrize("case", ["failed", "no predictions", "not a zip", "no record", "missing ids"])
def test_what_would_make_a_wrong_file_is_one_line(case, run, tmp_path, capsys):
    folder, _ = run
    copy = tmp_path / "run"
    copy.mkdir()
    record = json.loads((folder / "result.json").read_text())
    pred = predictions.read(folder)
    out = tmp_path / "sub.zip"
    if case == "failed":
        record = {**record, "status": "failed", "error": "boom"}
    if case != "no predictions":
        keep = slice(1, None) if case == "missing ids" else slice(None)
        predictions.write(copy, pred["ids"][keep], pred["xyz"][keep], "synthetic", "evaluation")
    if case == "not a zip":
        out = tmp_path / "sub.json"
    if case != "no record":
        (copy / "result.json").write_text(json.dumps(record))
    rc = main(["submit", str(copy), "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1, err
    assert not out.exists()


def _quiet():
    import io

    from rich.console import Console

    return Console(file=io.StringIO())
