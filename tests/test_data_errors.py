"""Every malformed data set is refused at construction with one line naming the file."""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Callable

import pytest

from benchmarks.data import FreiHAND, Triplets, Wild, YouTube3D
from benchmarks.errors import UserError
from data_trees import freihand_tree, triplets_tree, wild_tree, youtube_tree


def _edit_json(path: Path, change: Callable) -> None:
    path.write_text(json.dumps(change(json.loads(path.read_text()))))


def _truncate(path: Path) -> None:
    text = path.read_text()
    path.write_text(text[: len(text) // 2])


def _refused(build: Callable, names: str) -> None:
    with pytest.raises(UserError) as err:
        build()
    line = str(err.value)
    assert "\n" not in line and names in line, line


FH_BREAKS = {
    "no root": (lambda r: shutil.rmtree(r), ""),
    "no image folder": (lambda r: shutil.rmtree(r / "training" / "rgb"), "rgb"),
    "truncated xyz": (lambda r: _truncate(r / "training_xyz.json"), "training_xyz.json"),
    "xyz not a list": (lambda r: _edit_json(r / "training_xyz.json", lambda d: {"xyz": d}),
                       "training_xyz.json"),
    "xyz 21x2": (lambda r: _edit_json(r / "training_xyz.json",
                                      lambda d: [[p[:2] for p in h] for h in d]),
                 "training_xyz.json"),
    "xyz ragged": (lambda r: _edit_json(r / "training_xyz.json", lambda d: [d[0][:20]] + d[1:]),
                   "training_xyz.json"),
    "xyz NaN": (lambda r: _edit_json(r / "training_xyz.json",
                                     lambda d: [[[float("nan")] * 3] * 21] + d[1:]),
                "training_xyz.json"),
    "K count": (lambda r: _edit_json(r / "training_K.json", lambda d: d[:-1]), "training_K.json"),
    "scale count": (lambda r: _edit_json(r / "training_scale.json", lambda d: d + [0.01]),
                    "training_scale.json"),
    "missing K file": (lambda r: (r / "training_K.json").unlink(), "training_K.json"),
    "meta count": (lambda r: _edit_json(r / "training_meta.json", lambda d: d[:1]),
                   "training_meta.json"),
    "image count": (lambda r: (r / "training" / "rgb" / "00000004.jpg").unlink(), "rgb"),
    "image gap": (lambda r: (r / "training" / "rgb" / "00000002.jpg").rename(
        r / "training" / "rgb" / "00000006.jpg"), "00000002.jpg"),
}


@pytest.mark.parametrize("brk", FH_BREAKS, ids=list(FH_BREAKS))
def test_broken_freihand_trees_are_refused_naming_the_file(tmp_path, brk):
    root = tmp_path / "fh"
    freihand_tree(root, n=3, versions=2, frame=16, n_eval=1, meta=True)
    change, name = FH_BREAKS[brk]
    change(root)
    _refused(lambda: FreiHAND(root, "train", 8), name or str(root))


@pytest.mark.parametrize("kwargs, words", [({"split": "test"}, "split"),
                                           ({"ids": [0, 3]}, "ids"),
                                           ({"ids": []}, "ids"),
                                           ({"versions": [2]}, "versions"),
                                           ({"versions": "gs"}, "versions"),
                                           ({"res": 0}, "res"),
                                           ({"crop_margin": 0.0}, "margin")])
def test_bad_freihand_arguments_are_refused(tmp_path, kwargs, words):
    freihand_tree(tmp_path, n=3, versions=2, frame=16, n_eval=1)
    _refused(lambda: FreiHAND(tmp_path, **kwargs), words)


def test_an_undecodable_image_names_the_file(tmp_path):
    freihand_tree(tmp_path, n=2, versions=1, frame=16, n_eval=1)
    (tmp_path / "training" / "rgb" / "00000001.jpg").write_bytes(b"not a jpeg")
    data = FreiHAND(tmp_path, res=8)
    _refused(lambda: data[1], "00000001.jpg")


def _drop_key(key):
    return lambda d: {k: v for k, v in d.items() if k != key}


def _set_first_hand(field, value):
    def change(d):
        d["annotations"][0][field] = value
        return d
    return change


YT_BREAKS = {
    "truncated": lambda p: _truncate(p),
    "not an object": lambda p: _edit_json(p, lambda d: [d]),
    "no annotations": lambda p: _edit_json(p, _drop_key("annotations")),
    "hand lacks vertices": lambda p: _edit_json(p, lambda d: _set_first_hand("is_left", 0)(
        {**d, "annotations": [{k: v for k, v in a.items() if k != "vertices"}
                              for a in d["annotations"]]})),
    "unknown image": lambda p: _edit_json(p, _set_first_hand("image_id", 99)),
    "vertices 777": lambda p: _edit_json(p, lambda d: _set_first_hand(
        "vertices", d["annotations"][0]["vertices"][:777])(d)),
    "no frames": lambda p: [shutil.rmtree(p.parent / "youtube")],
}


@pytest.mark.parametrize("brk", YT_BREAKS, ids=list(YT_BREAKS))
def test_broken_youtube_trees_are_refused_naming_the_file(tmp_path, brk):
    youtube_tree(tmp_path)
    YT_BREAKS[brk](tmp_path / "youtube_train.json")
    _refused(lambda: YouTube3D(tmp_path, "train", 16), "youtube_train.json")


def test_a_missing_youtube_split_names_the_file(tmp_path):
    youtube_tree(tmp_path)
    _refused(lambda: YouTube3D(tmp_path, "val", 16), "youtube_val.json")


WILD_BREAKS = {
    "truncated uv": (lambda r: _truncate(r / "wild_uv.json"), "wild_uv.json"),
    "uv 21x3": (lambda r: _edit_json(r / "wild_uv.json", lambda d: [[p + [0] for p in h]
                                                                     for h in d]), "wild_uv.json"),
    "fewer uv than images": (lambda r: [(r / "wild_meta.json").unlink(),
                                        _edit_json(r / "wild_uv.json", lambda d: d[:-1])], "rgb"),
    "meta count": (lambda r: _edit_json(r / "wild_meta.json", lambda d: d + d), "wild_meta.json"),
    "no images": (lambda r: shutil.rmtree(r / "rgb"), "rgb"),
}


@pytest.mark.parametrize("brk", WILD_BREAKS, ids=list(WILD_BREAKS))
def test_broken_wild_trees_are_refused_naming_the_file(tmp_path, brk):
    wild_tree(tmp_path, n=3)
    change, name = WILD_BREAKS[brk]
    change(tmp_path)
    _refused(lambda: Wild(tmp_path, 16), name)


def _first_entry(field, value):
    def change(d):
        d[0][field] = value
        return d
    return change


TRIPLET_BREAKS = {
    "gesture out of range": (lambda r: _edit_json(r / "triplets.json", _first_entry("gesture", 3)),
                             "triplets.json"),
    "gesture a name": (lambda r: _edit_json(r / "triplets.json", _first_entry("gesture", "open")),
                       "triplets.json"),
    "bad split": (lambda r: _edit_json(r / "triplets.json", _first_entry("split", "val")),
                  "triplets.json"),
    "viewpoint 2x2": (lambda r: _edit_json(r / "triplets.json",
                                           _first_entry("viewpoint", [[0, 0], [1, 1]])),
                      "triplets.json"),
    "truncated gestures": (lambda r: _truncate(r / "gestures.json"), "gestures.json"),
    "missing view": (lambda r: (r / "rgb" / "00000002_r.jpg").unlink(), "_r.jpg"),
}


@pytest.mark.parametrize("brk", TRIPLET_BREAKS, ids=list(TRIPLET_BREAKS))
def test_broken_triplet_trees_are_refused_naming_the_file(tmp_path, brk):
    triplets_tree(tmp_path, frame=8)
    change, name = TRIPLET_BREAKS[brk]
    change(tmp_path)
    _refused(lambda: Triplets(tmp_path, "train", 8), name)
