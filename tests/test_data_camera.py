"""Intrinsics that do not belong to the images are refused before training (issue 28's
transposed K and resampled frames both ended ok), and the FreiHAND layout's other slips get
one line that says what was found."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from benchmarks.data import FreiHAND
from benchmarks.data.camera import MAX_OUTSIDE, outside_fraction
from benchmarks.errors import UserError
from data_trees import freihand_tree


def test_outside_fraction_counts_joints_off_the_frame_and_behind_the_camera():
    K = np.array([[100.0, 0, 50], [0, 100.0, 50], [0, 0, 1]])
    xyz = np.array([[0.0, 0.0, 1.0],       # centre: inside
                    [0.6, 0.0, 1.0],       # u = 110: outside a 100 px frame
                    [0.0, 0.0, -1.0],      # behind the camera
                    [-0.49, -0.49, 1.0]])  # u = v = 1: inside
    assert outside_fraction(K, xyz, (100, 100)) == 0.5


def test_a_valid_tree_opens(tmp_path):
    freihand_tree(tmp_path, n=4, versions=1)
    assert len(FreiHAND(tmp_path, "train", 32)) == 4


def test_a_transposed_K_is_refused_naming_the_file(tmp_path):
    labels = freihand_tree(tmp_path, n=4, versions=1)
    (tmp_path / "training_K.json").write_text(json.dumps(np.swapaxes(labels["K"], 1, 2).tolist()))
    with pytest.raises(UserError) as err:
        FreiHAND(tmp_path, "train", 32)
    line = str(err.value)
    assert "training_K.json" in line and "project outside the 40x40 frames" in line
    assert "transposed K" in line and "\n" not in line


def test_frames_resampled_without_their_intrinsics_are_refused(tmp_path):
    freihand_tree(tmp_path, n=4, versions=1)
    for path in (tmp_path / "training" / "rgb").iterdir():
        with Image.open(path) as img:
            big = img.resize((80, 80))
        big.save(path)
    with pytest.raises(UserError) as err:
        FreiHAND(tmp_path, "train", 32)
    assert "far from the centre of the 80x80 hand-centred frames" in str(err.value)
    assert "another resolution" in str(err.value)


def test_a_few_joints_outside_are_allowed(tmp_path):
    labels = freihand_tree(tmp_path, n=40, versions=1)
    xyz = labels["xyz"].copy()
    xyz[0, 20, 0] += 1.0                           # one fingertip of 840 joints far off frame
    (tmp_path / "training_xyz.json").write_text(json.dumps(xyz.tolist()))
    assert 0 < outside_fraction(labels["K"], xyz, (40, 40)) < MAX_OUTSIDE
    assert len(FreiHAND(tmp_path, "train", 32)) == 40


def test_png_frames_are_named_in_the_refusal(tmp_path):
    freihand_tree(tmp_path, n=3, versions=1)
    for path in (tmp_path / "training" / "rgb").iterdir():
        with Image.open(path) as img:
            img.save(path.with_suffix(".png"))
        path.unlink()
    with pytest.raises(UserError, match=r"holds 3 PNG images but no %08d\.jpg"):
        FreiHAND(tmp_path, "train", 32)


def test_missing_evaluation_labels_name_the_separate_download(tmp_path):
    freihand_tree(tmp_path, n=3, versions=1)
    (tmp_path / "evaluation_xyz.json").unlink()
    with pytest.raises(UserError, match=r"separate evaluation download \(FreiHAND_pub_v2_eval\.zip\)"):
        FreiHAND(tmp_path, "eval", 32)


def test_a_corrupt_frame_of_a_streamed_set_is_found_before_training(tmp_path):
    freihand_tree(tmp_path, n=6, versions=1)
    bad = tmp_path / "training" / "rgb" / "00000004.jpg"
    bad.write_bytes(b"\xff\xd8 not a jpeg")
    ds = FreiHAND(tmp_path, "train", 32)             # streamed: nothing decoded yet
    with pytest.raises(UserError, match=r"00000004\.jpg: not a readable image .*checked before training"):
        ds.verify()


def test_verification_decodes_a_sample_past_the_headers(tmp_path, monkeypatch):
    from benchmarks.data import files

    freihand_tree(tmp_path, n=6, versions=1)
    decoded = []
    monkeypatch.setattr(files, "decode", lambda p: decoded.append(p.name))
    files.verify_images(FreiHAND(tmp_path, "train", 32).image_paths(), sample=4)
    assert len(decoded) == 4 == len(set(decoded))
