"""``bench data check``: a root is validated, counted and drawn before a long job; a copy
with its intrinsics wrong exits 2 with one line."""
from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from PIL import Image

from benchmarks.data.dexycb import DexYCB
from data_trees import freihand_tree
from dexycb_fixture import write_tree
from orchestration.cli import main


def run_check(words, sheet, capsys):
    rc = main(["data", "check", *words, "--sheet", str(sheet)])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_a_freihand_copy_is_counted_and_drawn(tmp_path, capsys):
    freihand_tree(tmp_path / "fh", n=5, versions=2, n_eval=3)
    sheet = tmp_path / "sheet.png"
    rc, out, err = run_check(["data=freihand", f"data.root={tmp_path / 'fh'}"], sheet, capsys)
    assert rc == 0, err
    assert "freihand train: 10 samples (5 ids x 2 versions)" in out
    assert "freihand eval: 3 samples" in out and "100.0 % of joints project inside" in out
    with Image.open(sheet) as img:
        assert img.width > 0 and img.height > 0


def test_a_transposed_K_exits_2_with_one_line(tmp_path, capsys):
    labels = freihand_tree(tmp_path / "fh", n=5, versions=1)
    (tmp_path / "fh" / "training_K.json").write_text(
        json.dumps(np.swapaxes(labels["K"], 1, 2).tolist()))
    sheet = tmp_path / "sheet.png"
    rc, out, err = run_check(["data=freihand", f"data.root={tmp_path / 'fh'}"], sheet, capsys)
    assert rc == 2 and err.count("\n") == 1 and "training_K.json" in err
    assert not sheet.exists()


@pytest.fixture(scope="module")
def dex(tmp_path_factory):
    root = tmp_path_factory.mktemp("dexycb")
    write_tree(root, subjects=(0, 1, 2), n_seq=6, n_frames=2)
    return root


def test_a_dexycb_copy_reports_the_official_split_counts(dex, tmp_path, capsys):
    rc, out, err = run_check(["data=dexycb", f"data.root={dex}"], tmp_path / "s.png", capsys)
    assert rc == 0, err
    counts = DexYCB(dex, "train", 32).counts()
    for split in ("train", "val", "test"):
        assert f"dexycb {split}: {counts[split]} samples" in out


def test_dexycb_intrinsics_of_another_camera_model_exit_2(dex, tmp_path, capsys):
    import shutil

    copy = tmp_path / "dex"
    shutil.copytree(dex, copy)
    for path in (copy / "calibration" / "intrinsics").glob("*.yml"):
        data = yaml.safe_load(path.read_text())
        data["color"]["ppx"], data["color"]["ppy"] = 3 * data["color"]["ppx"], 3 * data["color"]["ppy"]
        path.write_text(yaml.safe_dump(data))
    rc, out, err = run_check(["data=dexycb", f"data.root={copy}"], tmp_path / "s.png", capsys)
    assert rc == 2 and err.count("\n") == 1 and "project outside" in err and "intrinsics" in err


def test_the_synthetic_world_is_not_a_root_to_check(tmp_path, capsys):
    rc, out, err = run_check([], tmp_path / "s.png", capsys)
    assert rc == 2 and "reads a real data set" in err
