"""DexYCB loader: coloured joint dots drawn at the official projection are found at the
loader's uv (joint order, units, K, flip), left hands come out mirrored, the toolkit's split
rule gives the counts, no-hand frames are skipped and counted, bad files are named."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks.data.dexycb import DexYCB
from benchmarks.data.freihand import project
from benchmarks.errors import UserError
from dexycb_fixture import COLOURS, SERIALS, SUBJECTS, intrinsics, write_tree

KEYS = {"image", "K", "xyz", "uv", "scale", "label_id", "image_id"}
PALETTE = np.concatenate([np.zeros((1, 3)), COLOURS]).astype(np.float64)   # 0 = background
# dex_ycb_toolkit/dex_ycb.py, DexYCBDataset.__init__, transcribed:
# (subject_ind, serial_ind, sequence-index predicate)
TOOLKIT = {
    ("s0", "train"): (range(10), range(8), lambda i: i % 5 != 4),
    ("s0", "val"): ([0, 1], range(8), lambda i: i % 5 == 4),
    ("s0", "test"): (range(2, 10), range(8), lambda i: i % 5 == 4),
    ("s1", "train"): ([0, 1, 2, 3, 4, 5, 9], range(8), lambda i: True),
    ("s1", "val"): ([6], range(8), lambda i: True),
    ("s1", "test"): ([7, 8], range(8), lambda i: True),
    ("s2", "train"): (range(10), range(6), lambda i: True),
    ("s2", "val"): (range(10), [6], lambda i: True),
    ("s2", "test"): (range(10), [7], lambda i: True),
    ("s3", "train"): (range(10), range(8), lambda i: i // 5 not in (3, 7, 11, 15, 19)),
    ("s3", "val"): (range(10), range(8), lambda i: i // 5 in (3, 19)),
    ("s3", "test"): (range(10), range(8), lambda i: i // 5 in (7, 11, 15)),
}


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("dexycb")
    # subjects 0, 1 (s0 val), 2 and 7 (s0 and s1 test); 7 sequences each (s0 holds out i = 4)
    return root, write_tree(root, subjects=(0, 1, 2, 7), n_seq=7, n_frames=2)


def official(records, setup, split):
    """The toolkit's sample list on the fixture: [(relative colour path, toolkit index,
    record)], frames without a hand dropped (as hpe_eval.py does)."""
    subjects, serials, keep = TOOLKIT[(setup, split)]
    out, offset = [], 0
    for s in subjects:
        seqs = sorted({(r["seq"], r["sequence"]) for r in records if r["subject"] == s})
        for i, seq in seqs:
            if not keep(i):
                continue
            rs = [r for r in records if r["sequence"] == seq]
            cams = [c for c in serials if c in rs[0]["serials"]]
            n_frames = max(r["frame"] for r in rs) + 1
            for k, c in enumerate(cams):
                for f in range(n_frames):
                    r = next(r for r in rs if r["serial"] == c and r["frame"] == f)
                    if r["hand"]:
                        out.append((f"{seq}/{SERIALS[c]}/color_{f:06d}.jpg",
                                    offset + k * n_frames + f, r))
            offset += len(cams) * n_frames
    return out


def by_path(records):
    return {f"{r['sequence']}/{SERIALS[r['serial']]}/color_{r['frame']:06d}.jpg": r
            for r in records}


def dot_hits(item):
    """Per joint: the palette index of the crop pixel holding uv, and the colour-masked
    centroid of that joint's dot near uv (pixel-edge coordinates)."""
    img = item["image"].numpy().transpose(1, 2, 0).astype(np.float64)
    nearest = ((img[:, :, None, :] - PALETTE) ** 2).sum(-1).argmin(-1) - 1
    rows, cols = np.indices(nearest.shape)
    labels, centres = [], []
    for k, (u, v) in enumerate(item["uv"].numpy().astype(np.float64)):
        labels.append(nearest[int(v), int(u)])
        near = (nearest == k) & ((cols + 0.5 - u) ** 2 + (rows + 0.5 - v) ** 2 < 8 ** 2)
        centres.append([cols[near].mean() + 0.5, rows[near].mean() + 0.5])
    return np.array(labels), np.array(centres)


@pytest.mark.parametrize("split", ["train", "val", "test"])
@pytest.mark.parametrize("res", [128, 224])
def test_every_joint_dot_sits_at_the_loaders_uv(tree, split, res):
    root, _ = tree
    data = DexYCB(root, split, res=res)
    assert data.flipped.any() and not data.flipped.all()
    errors = {True: [], False: []}
    for i, item in enumerate(data):
        labels, centres = dot_hits(item)
        assert labels.tolist() == list(range(21))            # joint order, K, units, flip
        errors[bool(data.flipped[i])].append(centres - item["uv"].numpy())
    # sub-pixel, per hand side: the dots' centres are on uv on average (the mask centroid is
    # quantised per dot); off by half a frame pixel (the toolkit's integer pixel centres
    # taken as pixel edges) the mean error is 0.35-0.65 crop px
    for side in errors.values():
        if side:
            assert np.abs(np.concatenate(side).mean(axis=0)).max() < 0.15


def test_items_have_freihand_keys_and_a_consistent_K(tree):
    root, _ = tree
    data = DexYCB(root, "train", res=96)
    for item in data:
        assert set(item) == KEYS | {"flipped"}          # FreiHAND's, and the mirror flag
        assert item["flipped"] == float(data.flipped[data.label_ids.tolist().index(int(item["label_id"]))])
        assert item["image"].shape == (3, 96, 96) and item["image"].dtype == torch.uint8
        for key, shape in (("K", (3, 3)), ("xyz", (21, 3)), ("uv", (21, 2)), ("scale", ())):
            assert item[key].shape == shape and item[key].dtype == torch.float32
        assert item["label_id"].dtype == item["image_id"].dtype == torch.int64
        assert item["label_id"] == item["image_id"]
        K, xyz = item["K"].double().numpy(), item["xyz"].double().numpy()
        assert K[0, 0] > 0 and K[1, 1] > 0 and K[0, 1] == K[1, 0] == 0
        np.testing.assert_allclose(item["uv"].numpy(), project(K, xyz), atol=1e-3)
        assert item["scale"].item() == pytest.approx(np.linalg.norm(xyz[9] - xyz[10]), rel=1e-5)


def test_left_hands_are_mirrored_and_right_hands_untouched(tree):
    root, records = tree
    paths = by_path(records)
    data = DexYCB(root, "train", res=64)
    for i, name in enumerate(data.sample_ids):
        path, side = name.split(":")
        r = paths[path]
        assert side == r["side"] and data.flipped[i] == (side == "left")
        sign = np.array([-1.0 if side == "left" else 1.0, 1.0, 1.0], np.float32)
        item = data[i]
        np.testing.assert_array_equal(item["xyz"].numpy(), r["joint_3d"] * sign)
        # the crop's K is the flipped frame's: cx -> W - cx, i.e. K_out = A @ flip @ K_frame @ M
        Kf = data.frame_K[int(item["label_id"])]
        A = item["K"].double().numpy() @ np.linalg.inv(Kf @ np.diag(sign.astype(float)))
        expect_sign = -1.0 if side == "left" else 1.0
        assert np.sign(A[0, 0]) == expect_sign and A[1, 1] > 0


def test_frame_K_is_the_yml_K_in_pixel_edge_convention_and_joints_project_inside(tree):
    root, records = tree
    data = DexYCB(root, "test")
    assert data.projection_inside() == 1.0
    paths = by_path(records)
    for j in range(data.n_unique):
        r = paths[data._rel(j)]
        np.testing.assert_allclose(data.frame_K[j], intrinsics(r["serial"]) + np.array(
            [[0, 0, 0.5], [0, 0, 0.5], [0, 0, 0]]))
        np.testing.assert_array_equal(data.frame_xyz[j], r["joint_3d"])
        np.testing.assert_allclose(project(data.frame_K[j], data.frame_xyz[j].astype(float)),
                                   r["joint_2d"] + 0.5, atol=1e-3)


@pytest.mark.parametrize("setup", ["s0", "s1", "s2", "s3"])
def test_split_rule_counts_and_order_are_the_toolkits(tree, setup):
    root, records = tree
    want = {split: official(records, setup, split) for split in ("train", "val", "test")}
    for split, expected in want.items():
        if not expected:
            with pytest.raises(UserError, match=f"no {setup} {split} samples"):
                DexYCB(root, split, setup=setup)
            continue
        data = DexYCB(root, split, setup=setup)
        assert data.counts() == {s: len(e) for s, e in want.items()}
        assert [n.split(":")[0] for n in data.sample_ids] == [p for p, _, _ in expected]
        assert data.toolkit_ids.tolist() == [t for _, t, _ in expected]
        assert len(data) == data.n_unique == len(expected) and data.n_versions == 1
    if setup == "s0":
        names = [{p for p, _, _ in e} for e in want.values()]
        assert not (names[0] & names[1]) and not (names[0] & names[2]) and all(names)


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_frames_without_a_hand_are_skipped_and_counted(tree, split):
    root, records = tree
    data = DexYCB(root, split)
    subjects, serials, keep = TOOLKIT[("s0", split)]
    frames = [r for r in records if r["subject"] in subjects and keep(r["seq"])]
    empty = [r for r in frames if not r["hand"]]
    assert empty and data.n_skipped == len(empty) and data.n_unique == len(frames) - len(empty)
    assert "\n" not in data.skipped_reason and str(len(empty)) in data.skipped_reason
    skipped = {f"{r['sequence']}/{SERIALS[r['serial']]}/color_{r['frame']:06d}.jpg"
               for r in empty}
    assert not skipped & {n.split(":")[0] for n in data.sample_ids}


@settings(max_examples=15, deadline=None)
@given(st.data())
def test_ids_select_samples_and_keep_their_full_index(tree, draw):
    root, _ = tree
    full = DexYCB(root, "train", res=32)
    ids = draw.draw(st.lists(st.integers(0, full.n_unique - 1), min_size=1, max_size=6))
    part = DexYCB(root, "train", res=32, ids=ids)
    chosen = sorted(set(ids))
    assert len(part) == len(chosen) and part.n_unique == full.n_unique
    assert part.sample_ids == [full.sample_ids[j] for j in chosen]
    assert part.flipped.tolist() == full.flipped[chosen].tolist()
    for i, j in enumerate(chosen):
        a, b = part[i], full[j]
        assert int(a["label_id"]) == j
        assert all(torch.equal(a[k], b[k]) for k in KEYS)


def test_preload_gives_identical_items_and_bad_ids_are_refused(tree):
    root, _ = tree
    lazy, eager = DexYCB(root, "val", res=48), DexYCB(root, "val", res=48, preload=True)
    assert eager.preloaded and len(lazy) == len(eager)
    for a, b in zip(lazy, eager):
        assert all(torch.equal(a[k], b[k]) for k in KEYS)
    for ids in ([], [-1], [lazy.n_unique]):
        with pytest.raises(UserError, match="ids must be"):
            DexYCB(root, "val", ids=ids)


def test_counts_read_no_image(tmp_path):
    records = write_tree(tmp_path, subjects=(1,), n_seq=5, n_frames=2)
    jpgs = sorted(tmp_path.rglob("color_*.jpg"))
    for path in jpgs:
        path.write_bytes(b"not a jpeg")
    data = DexYCB(tmp_path, "train")
    assert data.counts() == {split: len(official(records, "s0", split))
                             for split in ("train", "val", "test")}
    assert data.counts()["val"] > 0 and data.counts()["test"] == 0
    with pytest.raises(UserError, match="cannot decode") as err:
        data[0]
    assert data._rel(0) in str(err.value)


def _small(tmp_path):
    """One subject (02), one sequence, a hand in both frames: every file is used by s0 train."""
    records = write_tree(tmp_path, subjects=(1,), n_seq=1, n_frames=2)
    seq = tmp_path / records[0]["sequence"]
    cam = seq / SERIALS[records[0]["serial"]]
    intr = tmp_path / "calibration" / "intrinsics" / f"{SERIALS[records[0]['serial']]}_640x480.yml"
    return seq, cam, intr


def _npz(path, **arrays):
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def _npy(path):
    with open(path, "wb") as f:
        np.save(f, np.ones((1, 21, 3)))


BREAKS = {
    "truncated npz": ("labels", lambda p: p.write_bytes(p.read_bytes()[:100])),
    "npz without joint_3d": ("labels", lambda p: _npz(p, joint_2d=np.zeros((1, 21, 2)))),
    "joint_3d of the wrong shape": ("labels", lambda p: _npz(p, joint_3d=np.ones((1, 20, 3)))),
    "pickled joint_3d": ("labels", lambda p: _npz(p, joint_3d=np.array([{}], dtype=object))),
    "npy, not npz": ("labels", _npy),
    "NaN joints": ("labels", lambda p: _npz(p, joint_3d=np.full((1, 21, 3), np.nan))),
    "joints behind the camera": ("labels", lambda p: _npz(p, joint_3d=-np.ones((1, 21, 3)) * 2)),
    "missing labels": ("labels", lambda p: p.unlink()),
    "missing colour frame": ("color", lambda p: p.unlink()),
    "missing meta": ("meta", lambda p: p.unlink()),
    "meta not YAML": ("meta", lambda p: p.write_text("serials: [unclosed\n")),
    "meta a list": ("meta", lambda p: p.write_text("- 1\n- 2\n")),
    "meta without num_frames": ("meta", lambda p: p.write_text(
        p.read_text().replace("num_frames", "frames"))),
    "meta with an unknown serial": ("meta", lambda p: p.write_text(
        p.read_text().replace("serials:\n", "serials:\n- '123'\n"))),
    "meta with a bad side": ("meta", lambda p: p.write_text(
        p.read_text().replace("- left", "- both").replace("- right", "- both"))),
    "missing intrinsics": ("intr", lambda p: p.unlink()),
    "intrinsics without fx": ("intr", lambda p: p.write_text(p.read_text().replace("fx:", "f:"))),
    "intrinsics binary": ("intr", lambda p: p.write_bytes(b"\x00\xff\xfe")),
}


@pytest.mark.parametrize("case", sorted(BREAKS))
def test_a_broken_file_is_a_one_line_error_naming_it(tmp_path, case):
    seq, cam, intr = _small(tmp_path)
    which, breaker = BREAKS[case]
    target = {"labels": cam / "labels_000001.npz", "color": cam / "color_000001.jpg",
              "meta": seq / "meta.yml", "intr": intr}[which]
    breaker(target)
    with pytest.raises(UserError) as err:
        DexYCB(tmp_path, "train")
    message = str(err.value)
    assert "\n" not in message and str(target) in message, message


def test_a_missing_camera_folder_and_bad_frames_are_named(tmp_path):
    seq, cam, _ = _small(tmp_path)
    data = DexYCB(tmp_path, "train")
    frame = cam / "color_000000.jpg"
    from PIL import Image
    Image.new("RGB", (320, 240)).save(frame)
    with pytest.raises(UserError, match="640 x 480") as err:
        data[0]
    assert str(frame) in str(err.value)
    shutil.rmtree(cam)
    with pytest.raises(UserError) as err:
        DexYCB(tmp_path, "train")
    assert str(cam) in str(err.value) and "meta.yml" in str(err.value)


def test_a_monochrome_frame_comes_out_with_three_equal_channels(tmp_path):
    _, cam, _ = _small(tmp_path)
    from PIL import Image
    frame = tmp_path / "grey.jpg"
    Image.open(cam / "color_000000.jpg").convert("L").save(frame)
    frame.replace(cam / "color_000000.jpg")
    item = DexYCB(tmp_path, "train", res=64)[0]
    image = item["image"]
    assert image.shape == (3, 64, 64) and torch.equal(image[0], image[1])
    assert torch.equal(image[1], image[2]) and image.max() > 100


def test_bad_names_and_empty_roots_are_refused(tmp_path):
    _small(tmp_path)
    for kwargs, pattern in (({"split": "eval"}, "split must be"),
                            ({"setup": "s4"}, "setup must be"),
                            ({"res": 0}, "res must be"),
                            ({"margin": -1.0}, "margin")):
        with pytest.raises(UserError, match=pattern):
            DexYCB(tmp_path, **{"split": "train", **kwargs})
    with pytest.raises(UserError, match="no s0 val samples") as err:
        DexYCB(tmp_path, "val")
    assert SUBJECTS[0] in str(err.value)
    with pytest.raises(UserError, match="no such folder"):
        DexYCB(tmp_path / "nowhere", "train")
