"""AssemblyHands loader: grey joint dots drawn at the official projection are found at the
loader's uv (joint order, units, extrinsics, K, flip), left hands come out as right hands,
the toolkit's sample rule gives the counts and order, frames without a valid hand are
skipped and counted, bad files are named in one line."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from assemblyhands_fixture import FINGERS, LEVELS, NAMES, write_tree
from benchmarks.data.assemblyhands import AssemblyHands
from benchmarks.data.crops import apply_affine, crop, hand_box
from benchmarks.data.files import decode
from benchmarks.data.freihand import project
from benchmarks.errors import UserError

KEYS = {"image", "K", "xyz", "uv", "scale", "label_id", "image_id"}
SPLITS = ("train", "val", "test")
# FreiHAND's order by name (0 wrist, then per finger base (1) to tip (4)); the official
# index of each comes from the fixture's names, i.e. the toolkit README's keypoint chart
FREIHAND_NAMES = ["wrist"] + [f"{f}{k}" for f in FINGERS for k in (1, 2, 3, 4)]
OFFICIAL = np.array([NAMES.index(name) for name in FREIHAND_NAMES])
PALETTE = np.concatenate([[0.0], LEVELS])                          # 0 = background


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("assemblyhands")
    return root, {r["file"]: r for r in write_tree(root)}


def data_file(root, split, kind="ego_data"):
    return root / "annotations" / split / f"assemblyhands_{split}_{kind}_v1-1.json"


def official(root, split):
    """dataset.py's first-run loop on the fixture, transcribed: (sample ids in order,
    annotations without a sample, the toolkit's n_skip)."""
    db = json.loads(data_file(root, split).read_text())
    images = {im["id"]: im for im in db["images"]}
    samples, empty, n_skip = [], 0, 0
    for ann in db["annotations"]:
        joint_valid = np.array(ann["joint_valid"], dtype=np.float32).reshape(42)
        kept = 0
        for hand_id, hand_type in enumerate(["right", "left"]):
            if ann["bbox"][hand_type] is None:
                continue
            single = joint_valid.copy()
            inv = abs(1 - hand_id)
            single[inv * 21:(inv + 1) * 21] = 0
            if sum(single) < 10:
                n_skip += 1
                continue
            samples.append(f"{images[ann['image_id']]['file_name']}:{hand_type}")
            kept += 1
        empty += kept == 0
    return samples, empty, n_skip


def camera_joints(r):
    """The toolkit's camera-frame joints (world2cam_assemblyhands), mm."""
    return r["world"] @ r["Rt"][:, :3].T + r["Rt"][:, 3]


def dot_hits(item, scale):
    """Per joint: the dot level at the crop pixel holding uv (index into the official
    per-hand order), and the centroid of that level's pixels near uv (pixel edges)."""
    img = item["image"][0].numpy().astype(np.float64)
    nearest = np.abs(img[..., None] - PALETTE).argmin(-1) - 1
    rows, cols = np.indices(img.shape)
    labels, centres = [], []
    for f, (u, v) in enumerate(item["uv"].numpy().astype(np.float64)):
        if not (0 <= u < img.shape[1] and 0 <= v < img.shape[0]):
            labels.append(-2)                               # outside the crop
            centres.append([u, v])
            continue
        labels.append(nearest[int(v), int(u)])
        level = LEVELS[OFFICIAL[f]]
        near = (np.abs(img - level) <= 4) & \
            ((cols + 0.5 - u) ** 2 + (rows + 0.5 - v) ** 2 < (4.5 * scale + 0.5) ** 2)
        centres.append([cols[near].mean() + 0.5, rows[near].mean() + 0.5])
    return np.array(labels), np.array(centres)


@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize("res", [128, 224])
def test_every_joint_dot_sits_at_the_loaders_uv(tree, split, res):
    root, _ = tree
    data = AssemblyHands(root, split, res=res)
    assert data.flipped.any() and not data.flipped.all()
    errors = {True: [], False: []}
    for i, item in enumerate(data):
        scale = item["K"][1, 1].item() / data.frame_K[int(item["label_id"]), 1, 1]
        labels, centres = dot_hits(item, scale)
        valid = data.joint_valid[int(item["label_id"])]
        seen = labels != -2                       # the box holds the valid joints only
        assert seen[valid].all() and seen.sum() >= 10
        assert labels[seen].tolist() == OFFICIAL[seen].tolist()   # order, K, units, flip
        errors[bool(data.flipped[i])].append((centres - item["uv"].numpy())[seen])
    # sub-pixel per side: half a frame pixel off (the toolkit's integer pixel centres taken
    # as edges, or its u -> W - 1 - u flip) moves the mean by 0.25-0.5 crop px
    for side in errors.values():
        assert np.abs(np.concatenate(side).mean(axis=0)).max() < 0.15


def test_items_have_freihand_keys_a_consistent_K_and_grey_images(tree):
    root, _ = tree
    data = AssemblyHands(root, "train", res=96)
    for item in data:
        # FreiHAND's, the mirror flag, and which joints hold ground truth
        assert set(item) == KEYS | {"flipped", "joint_valid"}
        assert item["joint_valid"].shape == (21,) and item["joint_valid"].dtype == torch.bool
        image = item["image"]
        assert image.shape == (3, 96, 96) and image.dtype == torch.uint8
        assert torch.equal(image[0], image[1]) and torch.equal(image[1], image[2])
        for key, shape in (("K", (3, 3)), ("xyz", (21, 3)), ("uv", (21, 2)), ("scale", ())):
            assert item[key].shape == shape and item[key].dtype == torch.float32
        assert item["label_id"].dtype == item["image_id"].dtype == torch.int64
        assert item["label_id"] == item["image_id"]
        K, xyz = item["K"].double().numpy(), item["xyz"].double().numpy()
        assert K[0, 0] > 0 and K[1, 1] > 0 and K[0, 1] == K[1, 0] == 0
        np.testing.assert_allclose(item["uv"].numpy(), project(K, xyz), atol=1e-3)
        assert item["scale"].item() == pytest.approx(np.linalg.norm(xyz[9] - xyz[10]), rel=1e-5)
        assert 0.005 < item["scale"].item() < 0.1 and (xyz[:, 2] > 0.3).all()    # metres


@pytest.mark.parametrize("split", SPLITS)
def test_left_hands_come_out_as_right_hands(tree, split):
    root, records = tree
    data = AssemblyHands(root, split, res=64)
    chirality = []
    for i, name in enumerate(data.sample_ids):
        file, side = name.split(":")
        r = records[file]
        assert data.flipped[i] == (side == "left")
        offset = 21 if side == "left" else 0
        sign = np.array([-1.0 if side == "left" else 1.0, 1.0, 1.0])
        item = data[i]
        want = camera_joints(r)[OFFICIAL + offset] / 1000.0 * sign
        np.testing.assert_allclose(item["xyz"].numpy(), want, atol=2e-6)
        uv = item["uv"].numpy().astype(np.float64)
        a, b = uv[9] - uv[0], uv[4] - uv[0]                  # wrist->middle MCP, ->thumb tip
        chirality.append(np.sign(a[0] * b[1] - a[1] * b[0]))
        # in the frame, unmirrored, a left hand has the opposite chirality
        raw = project(data.frame_K[int(item["label_id"])], data.frame_xyz[int(item["label_id"])])
        a, b = raw[9] - raw[0], raw[4] - raw[0]
        assert np.sign(a[0] * b[1] - a[1] * b[0]) == chirality[-1] * (-1 if side == "left" else 1)
    assert len(set(chirality)) == 1


def test_the_crop_is_the_shared_rule_on_the_valid_joints_of_the_mirrored_frame(tree):
    root, records = tree
    data = AssemblyHands(root, "train", res=80, margin=1.7)
    for i, name in enumerate(data.sample_ids):
        file, side = name.split(":")
        r, offset = records[file], (21 if side == "left" else 0)
        frame = decode(root / "images" / file)
        uv = r["uv"][OFFICIAL + offset] + 0.5                 # official -> pixel edges
        if side == "left":
            frame, uv[:, 0] = frame.flip(-1), 636 - uv[:, 0]
        box = hand_box(uv[r["valid"][OFFICIAL + offset] > 0], 1.7)
        image, affine = crop(frame, box, 80)
        item = data[i]
        assert torch.equal(item["image"], image)
        np.testing.assert_allclose(item["uv"].numpy(), apply_affine(affine, uv), atol=2e-3)


def test_frame_K_and_frame_xyz_are_the_toolkits_camera_in_pixel_edge_convention(tree):
    root, records = tree
    data = AssemblyHands(root, "val")
    assert data.projection_inside() == 1.0
    for j, name in enumerate(data.sample_ids):
        file, side = name.split(":")
        r, offset = records[file], (21 if side == "left" else 0)
        np.testing.assert_allclose(data.frame_K[j], r["K"] + [[0, 0, 0.5], [0, 0, 0.5], [0, 0, 0]])
        np.testing.assert_allclose(project(data.frame_K[j], data.frame_xyz[j].astype(float)),
                                   r["uv"][OFFICIAL + offset] + 0.5, atol=2e-3)
        assert data.joint_valid[j].tolist() == (r["valid"][OFFICIAL + offset] > 0).tolist()
        assert tuple(data.frame_size[j]) == (636, 480)


def test_a_rounded_extrinsic_gives_the_toolkits_get_params_camera(tmp_path):
    linalg = pytest.importorskip("scipy.linalg")
    records = {r["file"]: r for r in write_tree(tmp_path, SMALL)}
    path = data_file(tmp_path, "val", "ego_calib")
    content = json.loads(path.read_text())
    for seq in content["calibration"].values():
        for cams in seq["extrinsics"].values():
            for key, Rt in cams.items():
                Rt = np.array(Rt)
                cams[key] = np.concatenate([np.round(Rt[:, :3], 2) * 1.004, Rt[:, 3:]], 1).tolist()
    path.write_text(json.dumps(content))
    data = AssemblyHands(tmp_path, "val")
    for j, name in enumerate(data.sample_ids):
        file, side = name.split(":")
        r, offset = records[file], (21 if side == "left" else 0)
        Rt = np.array(content["calibration"][r["seq"]]["extrinsics"][f"{r['frame']:06d}"][
            r["cam"] + "_mono10bit"])
        # transforms.py, Camera.factor and get_params, then world2cam / cam2pixel
        P = r["K"] @ Rt
        K, R = linalg.rq(P[:, :3])
        T = np.diag(np.sign(np.diag(K)))
        if linalg.det(T) < 0:
            T[1, 1] *= -1
        K, R, t = K @ T, T @ R, linalg.inv(r["K"]) @ P[:, 3]
        cam = (r["world"] @ R.T + t)[OFFICIAL + offset]
        uv = np.stack([cam[:, 0] / cam[:, 2] * K[0, 0] + K[0, 2],
                       cam[:, 1] / cam[:, 2] * K[1, 1] + K[1, 2]], 1)
        assert abs(K[0, 0] / r["K"][0, 0] - 1) > 1e-3            # the rounding moved focal
        np.testing.assert_allclose(data.frame_xyz[j], cam / 1000.0, atol=1e-6)
        np.testing.assert_allclose(project(data.frame_K[j], data.frame_xyz[j].astype(float)),
                                   uv + 0.5, atol=2e-3)


def test_split_rule_counts_and_order_are_the_toolkits(tree):
    root, _ = tree
    want = {split: official(root, split) for split in SPLITS}
    for split in SPLITS:
        data = AssemblyHands(root, split)
        assert data.counts() == {s: len(w[0]) for s, w in want.items()}
        assert data.sample_ids == want[split][0]
        assert len(data) == data.n_unique == len(want[split][0]) and data.n_versions == 1
        assert data.label_ids.tolist() == list(range(data.n_unique))
    names = [{n.split(":")[0] for n in w[0]} for w in want.values()]
    assert all(names) and not (names[0] & names[1] | names[0] & names[2] | names[1] & names[2])


@pytest.mark.parametrize("split", SPLITS)
def test_frames_without_a_valid_hand_are_skipped_and_counted(tree, split):
    root, records = tree
    data = AssemblyHands(root, split)
    samples, empty, n_skip = official(root, split)
    assert empty > 0 and n_skip > 0
    assert data.n_skipped == empty and data.n_skipped_hands == n_skip
    assert "\n" not in data.skipped_reason and f"{empty} of" in data.skipped_reason
    used = {n.split(":")[0] for n in data.sample_ids}
    for file, r in records.items():
        if r["split"] == split and r["scenario"] in ("none", "both9"):
            assert file not in used
    sides = {n for n in data.sample_ids}
    for file, r in records.items():
        if r["split"] == split:
            assert (f"{file}:right" in sides) == (r["scenario"] in ("both", "right", "left10",
                                                                    "right10"))
            assert (f"{file}:left" in sides) == (r["scenario"] in ("both", "left", "right9",
                                                                   "left10"))


@settings(max_examples=15, deadline=None)
@given(st.data())
def test_ids_select_samples_and_keep_their_full_index(tree, draw):
    root, _ = tree
    full = AssemblyHands(root, "train", res=32)
    ids = draw.draw(st.lists(st.integers(0, full.n_unique - 1), min_size=1, max_size=6))
    chosen = sorted(set(ids))
    for part in (AssemblyHands(root, "train", res=32, ids=ids), full.with_ids(ids)):
        assert len(part) == len(chosen) and part.n_unique == full.n_unique
        assert part.sample_ids == [full.sample_ids[j] for j in chosen]
        assert part.flipped.tolist() == full.flipped[chosen].tolist()
        for i, j in enumerate(chosen):
            a, b = part[i], full[j]
            assert int(a["label_id"]) == j and all(torch.equal(a[k], b[k]) for k in KEYS)


def test_preload_gives_identical_items_and_bad_ids_are_refused(tree):
    root, _ = tree
    lazy, eager = AssemblyHands(root, "val", res=48), AssemblyHands(root, "val", res=48,
                                                                    preload=True)
    assert eager.preloaded and len(lazy) == len(eager)
    for a, b in zip(lazy, eager):
        assert all(torch.equal(a[k], b[k]) for k in KEYS)
    for ids in ([], [-1], [lazy.n_unique]):
        with pytest.raises(UserError, match="ids must be"):
            AssemblyHands(root, "val", ids=ids)
    assert len(lazy.image_paths()) == len(lazy) and all(p.is_file() for p in lazy.image_paths())
    np.testing.assert_array_equal(lazy.poses(), np.stack([it["xyz"].numpy() for it in lazy]))


SMALL = {"val": ((2,), (1,), 5)}      # scenarios both, right, left, right9, left10


def test_an_invalid_joint_does_not_move_the_crop(tmp_path):
    records = write_tree(tmp_path, SMALL)
    before = AssemblyHands(tmp_path, "val", res=64)
    r = next(r for r in records if r["scenario"] == "left10")
    a = 21 + int(np.flatnonzero(r["valid"][21:] == 0)[0])           # an invalid left joint
    path = data_file(tmp_path, "val", "joint_3d")
    content = json.loads(path.read_text())
    entry = content["annotations"][r["seq"]][f"{r['frame']:06d}"]
    entry["world_coord"][a] = (np.array(entry["world_coord"][a]) + [400, -300, 200]).tolist()
    path.write_text(json.dumps(content))
    after = AssemblyHands(tmp_path, "val", res=64)
    i = before.sample_ids.index(f"{r['file']}:left")
    f = int(np.flatnonzero(OFFICIAL == a - 21)[0])
    x, y = before[i], after[i]
    assert torch.equal(x["image"], y["image"]) and torch.equal(x["K"], y["K"])
    assert not torch.equal(x["xyz"][f], y["xyz"][f]) and not after.joint_valid[i, f]


def test_counts_read_no_image_and_absent_splits_count_zero(tmp_path):
    write_tree(tmp_path, {"train": ((0,), (0, 1), 2), "val": ((2,), (1,), 3)})
    for path in (tmp_path / "images").rglob("*.jpg"):
        path.write_bytes(b"not a jpeg")
    data = AssemblyHands(tmp_path, "train")
    assert data.counts() == {"train": len(official(tmp_path, "train")[0]),
                             "val": len(official(tmp_path, "val")[0]), "test": 0}
    with pytest.raises(UserError, match="cannot decode") as err:
        data[0]
    assert data.sample_ids[0].split(":")[0] in str(err.value)


def _edit(path, change):
    content = json.loads(path.read_text())
    change(content)
    path.write_text(json.dumps(content))


def _ann(change):
    return lambda c: change(c["annotations"][0])


def _calib(change):
    return lambda c: change(next(iter(c["calibration"].values())))


def _extrinsic(change):
    def go(c):
        frames = next(iter(c["calibration"].values()))["extrinsics"]
        cams = next(iter(frames.values()))
        key = next(iter(cams))
        cams[key] = change(np.array(cams[key])).tolist()
    return go


def _world(change):
    def go(c):
        frames = next(iter(c["annotations"].values()))
        for entry in frames.values():
            entry["world_coord"] = change(np.array(entry["world_coord"]))
    return go


def _behind(c):                        # every camera looks the other way: joints at z < 0
    for seq in c["calibration"].values():
        for cams in seq["extrinsics"].values():
            for key, Rt in cams.items():
                cams[key] = (np.diag([-1.0, 1.0, -1.0]) @ np.array(Rt)).tolist()


BREAKS = {
    "truncated data": ("ego_data", lambda p: p.write_bytes(p.read_bytes()[:200])),
    "data a list": ("ego_data", lambda p: p.write_text("[]")),
    "data without annotations": ("ego_data", lambda p: _edit(p, lambda c: c.pop("annotations"))),
    "annotation without bbox": ("ego_data", lambda p: _edit(p, _ann(lambda a: a.pop("bbox")))),
    "bbox without left": ("ego_data", lambda p: _edit(p, _ann(lambda a: a["bbox"].pop("left")))),
    "bbox of 3 numbers": ("ego_data", lambda p: _edit(p, _ann(
        lambda a: a["bbox"].update(right=[1.0, 2.0, 3.0], left=[1.0, 2.0, 3.0])))),
    "41 joint_valid flags": ("ego_data", lambda p: _edit(p, _ann(
        lambda a: a.update(joint_valid=[1] * 41)))),
    "joint_valid strings": ("ego_data", lambda p: _edit(p, _ann(
        lambda a: a.update(joint_valid=["1"] * 42)))),
    "unknown image_id": ("ego_data", lambda p: _edit(p, _ann(lambda a: a.update(image_id=999)))),
    "duplicate annotation id": ("ego_data", lambda p: _edit(p, lambda c: c["annotations"][1].update(
        id=c["annotations"][0]["id"]))),
    "image without frame_idx": ("ego_data", lambda p: _edit(
        p, lambda c: [im.pop("frame_idx") for im in c["images"]])),
    "file_name leaving images/": ("ego_data", lambda p: _edit(
        p, lambda c: [im.update(file_name="../" + im["file_name"]) for im in c["images"]])),
    "missing calib": ("ego_calib", lambda p: p.unlink()),
    "calib without calibration": ("ego_calib", lambda p: p.write_text('{"info": {}}')),
    "calib without the sequence": ("ego_calib", lambda p: _edit(
        p, lambda c: c.update(calibration={"other": {}}))),
    "calib without the camera": ("ego_calib", lambda p: _edit(
        p, _calib(lambda s: s.update(intrinsics={})))),
    "calib without the frame": ("ego_calib", lambda p: _edit(
        p, _calib(lambda s: s.update(extrinsics={})))),
    "K with fx < 0": ("ego_calib", lambda p: _edit(p, _calib(lambda s: s.update(
        intrinsics={k: [[-1, 0, 3], [0, 1, 2], [0, 0, 1]] for k in s["intrinsics"]})))),
    "Rt not a rotation": ("ego_calib", lambda p: _edit(p, _extrinsic(lambda m: m * 2))),
    "Rt of 3 x 3": ("ego_calib", lambda p: _edit(p, _extrinsic(lambda m: m[:, :3]))),
    "Rt with NaN": ("ego_calib", lambda p: _edit(p, _extrinsic(lambda m: m * np.nan))),
    "joints behind the camera": ("ego_calib", lambda p: _edit(p, _behind)),
    "missing joints": ("joint_3d", lambda p: p.unlink()),
    "joints not JSON": ("joint_3d", lambda p: p.write_bytes(b"\x00\xff\xfe")),
    "joints without the frame": ("joint_3d", lambda p: _edit(
        p, lambda c: c.update(annotations={k: {} for k in c["annotations"]}))),
    "41 joints": ("joint_3d", lambda p: _edit(p, _world(lambda w: w[:41].tolist()))),
    "joints as strings": ("joint_3d", lambda p: _edit(p, _world(lambda w: [["1"] * 3] * 42))),
    "placeholder joints": ("joint_3d", lambda p: _edit(p, _world(lambda w: [[1.0] * 3] * 42))),
}


@pytest.mark.parametrize("case", sorted(BREAKS))
def test_a_broken_file_is_a_one_line_error_naming_it(tmp_path, case):
    write_tree(tmp_path, {"val": ((2,), (1,), 2)})     # scenarios both, right: all files used
    kind, breaker = BREAKS[case]
    target = data_file(tmp_path, "val", kind)
    breaker(target)
    with pytest.raises(UserError) as err:
        AssemblyHands(tmp_path, "val")
    message = str(err.value)
    assert "\n" not in message and str(target) in message, message


def test_a_missing_or_odd_sized_image_is_named(tmp_path):
    records = write_tree(tmp_path, {"val": ((2,), (1,), 2)})
    data = AssemblyHands(tmp_path, "val")
    frame = tmp_path / "images" / records[0]["file"]
    Image.new("L", (320, 240)).save(frame)
    i = next(i for i, n in enumerate(data.sample_ids) if n.startswith(records[0]["file"]))
    with pytest.raises(UserError, match="636 x 480") as err:
        data[i]
    assert str(frame) in str(err.value)
    frame.unlink()
    with pytest.raises(UserError, match="missing") as err:
        AssemblyHands(tmp_path, "val")
    assert str(frame) in str(err.value) and "\n" not in str(err.value)


def test_bad_names_and_empty_splits_are_refused(tmp_path):
    write_tree(tmp_path, {"val": ((2,), (1,), 2)})
    for kwargs, pattern in (({"split": "demo"}, "split must be"), ({"res": 0}, "res must be"),
                            ({"margin": -1.0}, "margin")):
        with pytest.raises(UserError, match=pattern):
            AssemblyHands(tmp_path, **{"split": "val", **kwargs})
    with pytest.raises(UserError, match="no such file") as err:
        AssemblyHands(tmp_path, "train")
    assert str(data_file(tmp_path, "train")) in str(err.value)
    with pytest.raises(UserError, match="no such folder"):
        AssemblyHands(tmp_path / "nowhere", "val")
    _edit(data_file(tmp_path, "val"), lambda c: [a["bbox"].update(right=None, left=None)
                                                  for a in c["annotations"]])
    with pytest.raises(UserError, match="no AssemblyHands val samples"):
        AssemblyHands(tmp_path, "val")
