"""HO-3D v3 loader: coloured joint dots drawn at the official projection (HO-3D order, OpenGL
joints, camMat) are found at the loader's uv (joint order and its direction, units, K); hands
stay right hands; the frame lists give the counts and order; frames without an annotation are
skipped and counted; the evaluation split is label-free but exportable; bad files are named
in one line; and the meta pickles are read without running them."""
from __future__ import annotations

import io
import os
import pickle
import struct

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks import safe_pickle
from benchmarks.data.crops import hand_box
from benchmarks.data.freihand import project
from benchmarks.data.ho3d import HO3D, to_leaderboard
from benchmarks.errors import UserError
from ho3d_fixture import COLOURS, MAP, official, write_pickle, write_tree

KEYS = {"image", "K", "xyz", "uv", "scale", "label_id", "image_id"}
PALETTE = np.concatenate([np.zeros((1, 3)), COLOURS]).astype(np.float64)   # 0 = background
GL = np.array([1.0, -1.0, -1.0])


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("ho3d")
    return root, write_tree(root)


def by_line(records, split):
    return {r["line"]: r for r in records if r["split"] == split}


def line_of(sample_id):
    split, seq, _, name = sample_id.split(":")[0].split("/")
    return split, f"{seq}/{name.split('.')[0]}"


def nearest(item):
    """Per crop pixel: the palette index of its colour (-1 background, k = HO-3D joint k)."""
    img = item["image"].numpy().transpose(1, 2, 0).astype(np.float64)
    return ((img[:, :, None, :] - PALETTE) ** 2).sum(-1).argmin(-1) - 1


def dot_centre(labels, k, u, v):
    rows, cols = np.indices(labels.shape)
    near = (labels == k) & ((cols + 0.5 - u) ** 2 + (rows + 0.5 - v) ** 2 < 8 ** 2)
    return np.array([cols[near].mean() + 0.5, rows[near].mean() + 0.5])


@pytest.mark.parametrize("res", [128, 224])
def test_every_joint_dot_sits_at_the_loaders_uv(tree, res):
    root, _ = tree
    data = HO3D(root, "train", res=res)
    errors = []
    for item in data:
        labels = nearest(item)
        uv = item["uv"].numpy().astype(np.float64)
        # FreiHAND joint k must show the dot the toolkit drew for HO-3D joint MAP[k]
        assert [labels[int(v), int(u)] for u, v in uv] == MAP
        errors.append([dot_centre(labels, MAP[k], u, v) - (u, v) for k, (u, v) in enumerate(uv)])
    # sub-pixel on average (0.01-0.02 crop px here); the toolkit's integer pixel centres
    # taken as pixel edges (no +0.5) give 0.35 / 0.62 crop px at res 128 / 224
    assert np.abs(np.array(errors).reshape(-1, 2).mean(axis=0)).max() < 0.1


def test_the_inverse_mapping_would_not_find_the_dots(tree):
    # the permutation is not its own inverse, so the test above pins the direction: a
    # loader taking ho3d[argsort(MAP)] (a scatter read as a gather) puts uv[k] on other dots
    inverse = np.argsort(MAP)
    assert (inverse != np.array(MAP)).sum() > 10
    root, _ = tree
    item = HO3D(root, "train", res=160)[0]
    labels = nearest(item)
    uv = item["uv"].numpy()                  # = official[MAP]; so official = uv[inverse]
    wrong = uv[inverse][inverse]             # official[inverse]
    assert sum(labels[int(v), int(u)] == m for (u, v), m in zip(wrong, MAP)) < 5


def test_items_have_freihand_keys_and_a_consistent_K(tree):
    root, _ = tree
    data = HO3D(root, "train", res=96)
    for item in data:
        assert set(item) == KEYS
        assert item["image"].shape == (3, 96, 96) and item["image"].dtype == torch.uint8
        for key, shape in (("K", (3, 3)), ("xyz", (21, 3)), ("uv", (21, 2)), ("scale", ())):
            assert item[key].shape == shape and item[key].dtype == torch.float32
        assert item["label_id"].dtype == item["image_id"].dtype == torch.int64
        assert item["label_id"] == item["image_id"]
        K, xyz = item["K"].double().numpy(), item["xyz"].double().numpy()
        assert K[0, 0] > 0 and K[1, 1] > 0 and K[0, 1] == K[1, 0] == 0
        assert (xyz[:, 2] > 0).all()                          # OpenCV: the hand in front
        np.testing.assert_allclose(item["uv"].numpy(), project(K, xyz), atol=1e-3)
        assert item["scale"].item() == pytest.approx(np.linalg.norm(xyz[9] - xyz[10]), rel=1e-5)


def test_hands_are_right_hands_and_never_mirrored(tree):
    # HO-3D has right hands only: no item is flipped, xyz is the file's joints (gathered,
    # OpenGL -> OpenCV) and the crop's affine keeps x's direction
    root, records = tree
    lines = by_line(records, "train")
    data = HO3D(root, "train", res=64)
    assert data.flipped.dtype == bool and not data.flipped.any()
    assert len(data.flipped) == len(data)
    for i, name in enumerate(data.sample_ids):
        assert name.endswith(":right")
        r = lines[line_of(name)[1]]
        item = data[i]
        np.testing.assert_allclose(item["xyz"].numpy(), r["joints"][MAP] * GL, atol=1e-7)
        np.testing.assert_allclose(data.frame_xyz[int(item["label_id"])], r["joints"][MAP] * GL,
                                   atol=1e-7)
        A = item["K"].double().numpy() @ np.linalg.inv(data.frame_K[int(item["label_id"])])
        assert A[0, 0] > 0 and A[1, 1] > 0 and abs(A[0, 1]) < 1e-9


def test_to_leaderboard_gives_back_the_files_joints(tree):
    root, records = tree
    lines = by_line(records, "train")
    data = HO3D(root, "train", res=32)
    for i, name in enumerate(data.sample_ids):
        r = lines[line_of(name)[1]]
        np.testing.assert_allclose(to_leaderboard(data[i]["xyz"].numpy()), r["joints"], atol=1e-6)
    stack = to_leaderboard(data.poses())
    assert stack.shape == (len(data), 21, 3) and (stack[..., 2] < 0).all()   # OpenGL: -z


def test_frame_K_is_camMat_in_pixel_edge_convention_and_joints_project_inside(tree):
    root, records = tree
    lines = by_line(records, "train")
    data = HO3D(root, "train")
    assert data.projection_inside() == 1.0
    for j, name in enumerate(data.sample_ids):
        r = lines[line_of(name)[1]]
        np.testing.assert_allclose(data.frame_K[j], r["cam"] + np.array(
            [[0, 0, 0.5], [0, 0, 0.5], [0, 0, 0]]), atol=1e-5)
        np.testing.assert_allclose(project(data.frame_K[j], data.frame_xyz[j])[MAP.index(0)],
                                   r["uv"][0] + 0.5, atol=1e-3)
        np.testing.assert_allclose(project(data.frame_K[j], data.frame_xyz[j]),
                                   r["uv"][MAP] + 0.5, atol=1e-3)


def test_the_evaluation_split_is_label_free_but_cropped_by_its_box(tree):
    root, records = tree
    lines = by_line(records, "evaluation")
    data = HO3D(root, "evaluation", res=128)
    assert not data.labelled and not data.flipped.any()
    assert data.projection_inside() == 1.0                    # the roots
    for i, name in enumerate(data.sample_ids):
        r = lines[line_of(name)[1]]
        item = data[i]
        assert set(item) == KEYS
        xyz, uv = item["xyz"].numpy(), item["uv"].numpy()
        assert np.isnan(xyz[1:]).all() and np.isnan(uv[1:]).all()
        assert np.isnan(item["scale"].item())
        np.testing.assert_allclose(xyz[0], r["joints"][0] * GL, atol=1e-7)   # the root only
        assert torch.isfinite(item["K"]).all()
        # the crop is the shared rule on the box corners (shifted to pixel edges)
        corners = r["box"].astype(np.float64).reshape(2, 2) + 0.5
        A = item["K"].double().numpy() @ np.linalg.inv(data.frame_K[int(item["label_id"])])
        np.testing.assert_allclose(A, hand_box(corners).affine(128), atol=1e-4)
        labels = nearest(item)
        assert labels[int(uv[0, 1]), int(uv[0, 0])] == 0      # the wrist dot at the root's uv
        assert set(range(21)) <= set(np.unique(labels).tolist())   # the whole hand in the crop
        # the full hand (not in the meta) projects through the crop's K onto its dots
        full = r["joints"][MAP] * GL
        hits = [labels[int(v), int(u)] for u, v in project(item["K"].double().numpy(), full)]
        assert hits == MAP


def test_split_rule_counts_and_order_are_the_lists(tree):
    root, records = tree
    want = {split: official(records, split) for split in ("train", "evaluation")}
    for split, expected in want.items():
        data = HO3D(root, split)
        assert data.counts() == {s: len(e) for s, e in want.items()}
        assert [line_of(n)[1] for n in data.sample_ids] == [r["line"] for r in expected]
        assert {line_of(n)[0] for n in data.sample_ids} == {split}
        assert data.toolkit_ids.tolist() == [r["toolkit"] for r in expected]
        assert len(data) == data.n_unique == len(expected) and data.n_versions == 1
    on_disk = {r["line"] for r in records if r["split"] == "train"}
    unlisted = {r["line"] for r in records if r["split"] == "train" and not r["listed"]}
    assert unlisted and unlisted <= on_disk
    assert not unlisted & {line_of(n)[1] for n in HO3D(root, "train").sample_ids}


@pytest.mark.parametrize("split", ["train", "evaluation"])
def test_frames_without_an_annotation_are_skipped_and_counted(tree, split):
    root, records = tree
    data = HO3D(root, split)
    listed = [r for r in records if r["split"] == split and r["listed"]]
    empty = [r for r in listed if not r["hand"]]
    assert empty and data.n_skipped == len(empty) and data.n_unique == len(listed) - len(empty)
    assert "\n" not in data.skipped_reason and str(len(empty)) in data.skipped_reason
    assert not {r["line"] for r in empty} & {line_of(n)[1] for n in data.sample_ids}


@settings(max_examples=10, deadline=None)
@given(st.data())
def test_ids_select_samples_and_keep_their_full_index(tree, draw):
    root, _ = tree
    full = HO3D(root, "train", res=32)
    ids = draw.draw(st.lists(st.integers(0, full.n_unique - 1), min_size=1, max_size=4))
    part = HO3D(root, "train", res=32, ids=ids)
    chosen = sorted(set(ids))
    assert len(part) == len(chosen) and part.n_unique == full.n_unique
    assert part.sample_ids == [full.sample_ids[j] for j in chosen]
    assert part.toolkit_ids.tolist() == full.toolkit_ids[chosen].tolist()
    same = full.with_ids(ids)
    for i, j in enumerate(chosen):
        a, b, c = part[i], full[j], same[i]
        assert int(a["label_id"]) == j
        assert all(torch.equal(a[k], b[k]) and torch.equal(a[k], c[k]) for k in KEYS)


def test_preload_gives_identical_items_and_bad_ids_are_refused(tree):
    root, _ = tree
    lazy, eager = HO3D(root, "evaluation", res=48), HO3D(root, "evaluation", res=48, preload=True)
    assert eager.preloaded and len(lazy) == len(eager)
    for a, b in zip(lazy, eager):
        assert all(torch.equal(a[k], b[k]) or (a[k].isnan() == b[k].isnan()).all() and
                   torch.equal(a[k].nan_to_num(), b[k].nan_to_num()) for k in KEYS)
    for ids in ([], [-1], [lazy.n_unique]):
        with pytest.raises(UserError, match="ids must be"):
            HO3D(root, "evaluation", ids=ids)


def test_counts_read_no_image(tmp_path):
    records = write_tree(tmp_path)
    data, train = HO3D(tmp_path, "evaluation"), HO3D(tmp_path, "train")
    for path in tmp_path.rglob("*.jpg"):
        path.write_bytes(b"not a jpeg")
    assert data.counts() == {s: len(official(records, s)) for s in ("train", "evaluation")}
    with pytest.raises(UserError, match="cannot decode") as err:
        data[0]
    assert data.sample_ids[0].split(":")[0] in str(err.value)
    (tmp_path / "evaluation.txt").unlink()                   # a partial download
    assert train.counts() == {"train": len(official(records, "train")), "evaluation": 0}


# --- bad files ---------------------------------------------------------------------------

class _Shell:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _meta(path):
    with open(path, "rb") as f:
        return pickle.load(f, encoding="latin1")


def _edit(path, **changes):
    meta = _meta(path)
    for key, value in changes.items():
        if value is KeyError:
            del meta[key]
        else:
            meta[key] = value
    write_pickle(path, meta)


BREAKS = {
    "truncated meta": ("meta", lambda p: p.write_bytes(p.read_bytes()[:60])),
    "meta not a pickle": ("meta", lambda p: p.write_bytes(b"\xff\xd8\xff\xe0 JFIF")),
    "meta a list": ("meta", lambda p: write_pickle(p, [1, 2])),
    "meta without handJoints3D": ("meta", lambda p: _edit(p, handJoints3D=KeyError)),
    "meta without camMat": ("meta", lambda p: _edit(p, camMat=KeyError)),
    "joints of the wrong shape": ("meta", lambda p: _edit(p, handJoints3D=np.ones((16, 3)))),
    "NaN joints": ("meta", lambda p: _edit(p, handJoints3D=np.full((21, 3), np.nan))),
    "joints as text": ("meta", lambda p: _edit(p, handJoints3D="0.1")),
    "joints not in OpenGL": ("meta", lambda p: _edit(p, handJoints3D=-_meta(p)["handJoints3D"])),
    "camMat transposed": ("meta", lambda p: _edit(p, camMat=_meta(p)["camMat"].T.copy())),
    "a pickled shell command": ("meta", lambda p: write_pickle(p, {"handJoints3D": _Shell(
        p.parent / "MARKER")})),
    "a pickled eval": ("meta", lambda p: p.write_bytes(
        b"\x80\x02cbuiltins\neval\nq\x00X\x04\x00\x00\x001+1q\x01\x85q\x02Rq\x03.")),
    "missing meta": ("meta", lambda p: p.unlink()),
    "missing frame": ("rgb", lambda p: p.unlink()),
    "missing train.txt": ("list", lambda p: p.unlink()),
    "train.txt with a bad line": ("list", lambda p: p.write_text("MC1/0000\nMC1 0002\n")),
    "train.txt repeating a line": ("list", lambda p: p.write_text("MC1/0000\nMC1/0000\n")),
    "train.txt leaving the folder": ("list", lambda p: p.write_text("../0000\n")),
    "empty train.txt": ("list", lambda p: p.write_text("\n")),
}


def _small(tmp_path):
    write_tree(tmp_path)
    (tmp_path / "train.txt").write_text("MC1/0000\nMC1/0002\n")
    seq = tmp_path / "train" / "MC1"
    return {"meta": seq / "meta" / "0002.pkl", "rgb": seq / "rgb" / "0002.jpg",
            "list": tmp_path / "train.txt"}


@pytest.mark.parametrize("case", sorted(BREAKS))
def test_a_broken_file_is_a_one_line_error_naming_it(tmp_path, case):
    targets = _small(tmp_path)
    HO3D(tmp_path, "train")
    which, breaker = BREAKS[case]
    breaker(targets[which])
    with pytest.raises(UserError) as err:
        HO3D(tmp_path, "train")
    message = str(err.value)
    assert "\n" not in message and str(targets[which]) in message, message
    assert not (targets["meta"].parent / "MARKER").exists()


@pytest.mark.parametrize("case", ["box inverted", "box missing", "root of the wrong shape",
                                  "root behind the camera"])
def test_a_broken_evaluation_meta_is_named(tmp_path, case):
    write_tree(tmp_path)
    path = tmp_path / "evaluation" / "SM1" / "meta" / "0000.pkl"
    box, root = _meta(path)["handBoundingBox"], _meta(path)["handJoints3D"]
    _edit(path, **{"box inverted": {"handBoundingBox": box[[2, 3, 0, 1]]},
                   "box missing": {"handBoundingBox": KeyError},
                   "root of the wrong shape": {"handJoints3D": np.ones((21, 3))},
                   "root behind the camera": {"handJoints3D": -root}}[case])
    with pytest.raises(UserError) as err:
        HO3D(tmp_path, "evaluation")
    assert "\n" not in str(err.value) and str(path) in str(err.value)


def test_a_frame_of_another_size_and_a_monochrome_frame(tmp_path):
    targets = _small(tmp_path)
    from PIL import Image
    frame = targets["rgb"]
    Image.open(frame).convert("L").save(frame)
    item = HO3D(tmp_path, "train", res=64)[1]
    assert item["image"].shape == (3, 64, 64)
    assert torch.equal(item["image"][0], item["image"][1])
    assert torch.equal(item["image"][1], item["image"][2]) and item["image"].max() > 100
    Image.new("RGB", (320, 240)).save(frame)
    data = HO3D(tmp_path, "train")
    with pytest.raises(UserError, match="640 x 480") as err:
        data[1]
    assert str(frame) in str(err.value)


def test_bad_names_and_roots_are_refused(tmp_path):
    _small(tmp_path)
    for kwargs, pattern in (({"split": "val"}, "split must be"), ({"res": 0}, "res must be"),
                            ({"margin": -1.0}, "margin")):
        with pytest.raises(UserError, match=pattern):
            HO3D(tmp_path, **{"split": "train", **kwargs})
    with pytest.raises(UserError, match="no such folder"):
        HO3D(tmp_path / "nowhere", "train")
    (tmp_path / "train.txt").write_text("MC1/0001\n")          # the frame without a hand
    with pytest.raises(UserError, match="no HO-3D train samples"):
        HO3D(tmp_path, "train")


# --- the restricted unpickler ------------------------------------------------------------

def test_a_pickle_that_runs_a_command_is_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / "MARKER"
    path = tmp_path / "0000.pkl"
    path.write_bytes(pickle.dumps({"camMat": np.eye(3), "x": _Shell(marker)}, protocol=2))
    with pytest.raises(UserError) as err:
        safe_pickle.load(path)
    message = str(err.value)
    assert "\n" not in message and str(path) in message and "system" in message, message
    assert not marker.exists()
    with pytest.raises(UserError, match="_codecs.encode"):     # another codec is refused
        safe_pickle.loads(b"\x80\x02c_codecs\nencode\nX\x01\x00\x00\x00xX\x05\x00\x00\x00rot13"
                          b"\x86R.", "x.pkl")


class _Py2Pickler(pickle._Pickler):
    """Writes bytes as Python 2's str (SHORT_BINSTRING / BINSTRING), as the release does."""
    dispatch = pickle._Pickler.dispatch.copy()

    def save_bytes(self, obj):
        n = len(obj)
        head = pickle.SHORT_BINSTRING + bytes([n]) if n < 256 else \
            pickle.BINSTRING + struct.pack("<i", n)
        self.write(head + obj)
        self.memoize(obj)

    dispatch[bytes] = save_bytes


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 2 ** 32 - 1), st.sampled_from(["<f4", "<f8", "<i8", "|u1", "|b1"]),
       st.lists(st.integers(0, 5), min_size=0, max_size=3))
def test_numpy_pickles_of_python_2_and_3_load_as_pickle_does(seed, dtype, shape):
    rng = np.random.default_rng(seed)
    meta = {"a": (rng.normal(size=shape) * 100).astype(dtype), "s": np.float64(rng.normal()),
            "i": np.int32(7), "name": "021_bleach_cleanser", "n": None, "l": [1, (2.5, "x")],
            "K": np.asfortranarray(rng.normal(size=(3, 3)))}
    py3 = pickle.dumps(meta, protocol=2)
    buf = io.BytesIO()
    _Py2Pickler(buf, protocol=2).dump(meta)
    py2 = buf.getvalue().replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n")
    assert b"_codecs" not in py2 and b"numpy.core.multiarray\n_reconstruct" in py2
    for raw in (py3, py2):
        got, want = safe_pickle.loads(raw, "m.pkl"), pickle.loads(raw, encoding="latin1")
        assert set(got) == set(want) and got["l"] == want["l"] and got["name"] == want["name"]
        for key in ("a", "s", "i", "K"):
            assert np.asarray(got[key]).dtype == np.asarray(want[key]).dtype
            np.testing.assert_array_equal(got[key], want[key])


def test_the_fixtures_metas_read_as_the_toolkit_reads_them(tree):
    root, _ = tree
    for path in sorted(root.rglob("*.pkl")):
        got, want = safe_pickle.load(path), _meta(path)
        assert set(got) == set(want)
        for key in want:
            if isinstance(want[key], np.ndarray):
                np.testing.assert_array_equal(got[key], want[key])
            else:
                assert got[key] == want[key]
