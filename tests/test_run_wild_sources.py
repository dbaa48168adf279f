"""SiMHand's own pre-training data (Hand100M over Ego4D / 100DOH frames) and a user's folder
of frames with boxes are pre-training sources like any other: a run mines, trains and ends
ok on them, and a method that needs what they lack is refused before training."""
from __future__ import annotations

import json

import pytest

from hand100m_fixture import write_hand100m
from orchestration.cli import main
from test_data_folder import write_folder

SMOKE = ["--profile", "smoke", "--budget", "1ep", "pretrain.batch_size=4", "finetune.epochs=1"]


@pytest.fixture(scope="module")
def roots(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("wild")
    write_hand100m(tmp / "ego")
    (tmp / "folder").mkdir()
    write_folder(tmp / "folder")
    return tmp


@pytest.mark.parametrize("method,source", [("simhand", "ego4d"), ("simclr", "folder")])
def test_a_run_pretrains_on_the_source_and_ends_ok(method, source, roots, tmp_path, capsys,
                                                   data_cache):
    root = roots / ("ego" if source == "ego4d" else "folder")
    rc = main(["run", "--method", method, *SMOKE, f"pretrain.sources=[{{name: {source}, root: {root}}}]",
               "--results", str(tmp_path)])
    assert rc == 0, capsys.readouterr().err
    (path,) = tmp_path.glob("*/result.json")
    record = json.loads(path.read_text())
    assert record["status"] == "ok" and record["compute"]["pretrain_flops"] > 0
    assert record["config"]["pretrain"]["sources"][0]["name"] == source


@pytest.mark.parametrize("method,source,need", [("tempclr", "ego4d", "sequences"),
                                                ("supervised2d", "folder", "2D keypoints")])
def test_what_the_source_lacks_is_refused(method, source, need, roots, tmp_path, capsys):
    rc = main(["run", "--method", method, *SMOKE, f"pretrain.sources=[{{name: {source}, root: {roots}}}]",
               "--results", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert rc == 2 and need in err and err.count("\n") == 1
