"""``data=ho3d``: fine-tuned on train.txt less held-out whole sequences, scored on those
("train-heldout"), and the label-free evaluation split predicted for the leaderboard, whose
file ``bench submit`` writes in HO-3D's joint order and OpenGL frame."""
from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

import ho3d_fixture
from benchmarks.data.ho3d import HO3D, read_list
from eval import predictions
from orchestration.cli import main

SEQUENCES = {"ABF10": 4, "MC1": 3, "SM2": 3, "GPMF10": 3, "SS1": 3, "BB11": 2}   # 6: one held out
SMOKE = ["--method", "random", "--profile", "smoke", "--budget", "1ep", "data=ho3d",
         "finetune.batch_size=4"]


@pytest.fixture(scope="module")
def run(tmp_path_factory, data_cache):
    root = tmp_path_factory.mktemp("ho3d")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ho3d_fixture, "TRAIN", SEQUENCES)
        ho3d_fixture.write_tree(root)
    results = tmp_path_factory.mktemp("runs")
    assert main(["run", *SMOKE, f"data.root={root}", "--results", str(results)]) == 0
    (path,) = results.glob("*/result.json")
    return root, path.parent


def test_the_local_score_is_of_whole_held_out_sequences(run):
    root, folder = run
    record = json.loads((folder / "result.json").read_text())
    full = HO3D(root, "train", 32)
    names = sorted(full.sequences)
    held = [s for s in full.sample_sequences() if names.index(s) % 5 == 4]
    assert record["status"] == "ok" and record["metrics"]["n"] == len(held) > 0
    assert record["labelled"]["images"] == full.n_unique - len(held)
    assert predictions.read(folder)["split"] == "train-heldout"


def test_the_leaderboard_file_has_every_evaluation_line_in_the_official_frame(run, tmp_path, capsys):
    root, folder = run
    out = tmp_path / "ho3d.zip"
    assert main(["submit", str(folder), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    with zipfile.ZipFile(out) as zf:
        xyz, verts = json.loads(zf.read("pred.json"))
    lines = read_list(root / "evaluation.txt")
    assert len(xyz) == len(verts) == len(lines)
    xyz = np.asarray(xyz)
    # pred.py's own check: OpenGL coordinates put the hand at negative z
    assert (xyz[..., 2] < 0).all() and np.asarray(verts).shape == (len(lines), 778, 3)
    assert "had no hand box and get the mean prediction" in printed      # the fixture's NO_BOX
    # the entries are the kept predictions, mapped back (line order, HO-3D joints, OpenGL)
    board = predictions.read(folder, predictions.LEADERBOARD)
    from benchmarks.data.ho3d import to_leaderboard
    np.testing.assert_allclose(xyz[board["ids"]], to_leaderboard(board["xyz"]), atol=1e-6)


def test_data_check_reports_the_parts_and_the_leaderboard_split(run, tmp_path, capsys):
    root, _ = run
    assert main(["data", "check", "data=ho3d", f"data.root={root}", "--sheet",
                 str(tmp_path / "s.png")]) == 0
    out = capsys.readouterr().out
    assert "ho3d train-heldout:" in out and "ho3d evaluation (no public labels" in out


def test_a_dry_run_counts_the_frames_the_run_fine_tunes_on(run, tmp_path, capsys):
    """A plan counts train.txt less the held-out sequences (not the files under train/, which
    also hold the held-out frames), and plans the steps the run then took."""
    from omegaconf import OmegaConf

    from benchmarks.data.sets import training_count

    root, folder = run
    record = json.loads((folder / "result.json").read_text())
    for val in (0.0, 0.1):
        cfg = OmegaConf.create({"data": {"name": "ho3d", "val_fraction": val}})
        full = HO3D(root, "train", 32)
        names = sorted(full.sequences)
        held = {4} | ({3} if val else set())
        kept = [s for s in full.sample_sequences() if names.index(s) % 5 not in held]
        # frames without a hand are counted by the plan (no meta file is opened), skipped by the run
        assert len(kept) <= training_count(cfg, root) <= len(kept) + full.n_skipped
    assert full.n_skipped > 0 and record["labelled"]["images"] == len(
        [s for s in full.sample_sequences() if names.index(s) % 5 != 4])
    capsys.readouterr()
    assert main(["run", *SMOKE, f"data.root={root}", "--dry-run", "--results", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"0 + {record['compute']['finetune_steps']}" in out and "1 to run" in out
