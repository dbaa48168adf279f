"""A tiny HO-3D v3 tree in the official layout and file formats (``shreyashampali/ho3d``).

Real formats: ``train.txt`` / ``evaluation.txt`` ('SEQ/%04d' lines, in a shuffled order),
640 x 480 JPEG frames ``<split>/<SEQ>/rgb/%04d.jpg`` and ``<split>/<SEQ>/meta/%04d.pkl``
written with ``pickle`` protocol 2 (as the release; read back with encoding latin1). Train
metas hold ``handJoints3D`` (21 x 3 float32, OpenGL camera frame, HO-3D/MANO order), ``camMat``
and the MANO and object entries; evaluation metas hold the root joint only (``handJoints3D``
of shape (3,)), ``handBoundingBox``, ``camMat`` and the object entries. Special frames: a
train frame without annotations (every entry None, no dots), a train frame on disk that
``train.txt`` does not list, and an evaluation frame whose box is None.

Every frame with a hand shows HO-3D joint k (the file's index, before any mapping) as a dot
of colour ``COLOURS[k]`` (radius ``DOT`` px) at its OFFICIAL projection, the toolkit's
``project_3D_points(camMat, handJoints3D, is_OpenGL_coords=True)``, with pixel centres at
integer coordinates: pixel (row i, col j) is lit when |(j, i) - uv| <= DOT. The hand is laid
out in 2D in FreiHAND's order (a fan), put into HO-3D's order with the toolkit's
``jointsMapManoToSimple`` (FreiHAND joint k = HO-3D joint MAP[k]) and back-projected at
~0.5 m, so the dots are exactly where the labels say.
"""
from __future__ import annotations

import itertools
import pickle
from pathlib import Path

import numpy as np
from PIL import Image

W, H, DOT = 640, 480, 3.5
COLOURS = np.array([c for c in itertools.product((0, 128, 255), repeat=3)
                    if c != (0, 0, 0)][:21], dtype=np.uint8)
# vis_HO3D.py, jointsMapManoToSimple, transcribed: handKps[MAP] is in FreiHAND's order
MAP = [0, 13, 14, 15, 16, 1, 2, 3, 17, 4, 5, 6, 18, 10, 11, 12, 19, 7, 8, 9, 20]
TRAIN = {"ABF10": 4, "MC1": 3, "SM2": 3}
EVALUATION = {"SM1": 3, "MPM10": 2}
UNLISTED = ("train", "ABF10", 3)       # on disk, not in train.txt
NO_HAND = ("train", "MC1", 1)          # no annotations (vis_HO3D.py: objRot is None)
NO_BOX = ("evaluation", "MPM10", 1)    # handBoundingBox None
_REACH = [(22, 40, 55, 68)] + [(45, 62, 76, 88)] * 4
_ANGLE = (-70, -25, 0, 22, 44)


def cam_mat(q: int) -> np.ndarray:
    """A RealSense-like camMat (fractional principal point) of sequence number q."""
    return np.array([[614.6 + 3 * q, 0.0, 312.77 + 1.9 * q], [0.0, 615.2 + 2 * q, 241.31 - 1.4 * q],
                     [0.0, 0.0, 1.0]], dtype=np.float32)


def project_3D_points(cam, pts3D):
    """utils/vis_utils.py, project_3D_points(..., is_OpenGL_coords=True), transcribed."""
    coord_change_mat = np.array([[1., 0., 0.], [0, -1., 0.], [0., 0., -1.]], dtype=np.float32)
    pts3D = pts3D.dot(coord_change_mat.T)
    proj = pts3D.dot(cam.T)
    return np.stack([proj[:, 0] / proj[:, 2], proj[:, 1] / proj[:, 2]], axis=1)


def hand_2d(rng: np.random.Generator) -> np.ndarray:
    """(21, 2) joint positions (toolkit convention) in FreiHAND's order, inside the frame."""
    fan = [np.zeros(2)]
    for reach, angle in zip(_REACH, _ANGLE):
        a = np.deg2rad(angle)
        fan += [r * np.array([np.sin(a), -np.cos(a)]) for r in reach]
    fan = np.array(fan)
    while True:
        t, s = rng.uniform(0, 2 * np.pi), rng.uniform(0.85, 1.15)
        rot = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
        uv = fan @ rot.T * s + rng.uniform([60, 60], [W - 60, H - 60])
        if (uv > 12).all() and (uv[:, 0] < W - 12).all() and (uv[:, 1] < H - 12).all():
            return uv


def draw(uv: np.ndarray | None, rng: np.random.Generator) -> np.ndarray:
    """A dark (H, W, 3) frame with dot k of colour COLOURS[k] at uv[k] (none when None)."""
    frame = rng.integers(0, 24, size=(H, W, 3)).astype(np.uint8)
    if uv is not None:
        rows, cols = np.mgrid[:H, :W]
        for k, (u, v) in enumerate(uv):
            frame[(cols - u) ** 2 + (rows - v) ** 2 <= DOT ** 2] = COLOURS[k]
    return frame


def official_hand(rng: np.random.Generator, K: np.ndarray) -> np.ndarray:
    """(21, 3) float32 handJoints3D in HO-3D's order and OpenGL coordinates."""
    uv = hand_2d(rng)
    z = rng.uniform(0.45, 0.6, size=21)
    cv = np.stack([(uv[:, 0] - K[0, 2]) * z / K[0, 0], (uv[:, 1] - K[1, 2]) * z / K[1, 1], z], 1)
    ho3d = np.empty_like(cv)
    ho3d[MAP] = cv                          # FreiHAND joint k is HO-3D joint MAP[k]
    return (ho3d * [1.0, -1.0, -1.0]).astype(np.float32)


def write_pickle(path: Path, meta: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump(meta, f, protocol=2)


def _object_entries(rng, hand: bool) -> dict:
    if not hand:
        return {"objRot": None, "objTrans": None, "objCorners3D": None,
                "objCorners3DRest": None, "objName": None, "objLabel": None}
    rest = rng.uniform(-0.05, 0.05, (8, 3)).astype(np.float32)
    return {"objRot": rng.normal(size=(3, 1)).astype(np.float32),
            "objTrans": np.array([0.02, -0.01, -0.5], np.float32),
            "objCorners3D": rest + [0.02, -0.01, -0.5], "objCorners3DRest": rest,
            "objName": "021_bleach_cleanser", "objLabel": 12}


def write_tree(root: Path, seed: int = 0) -> list[dict]:
    """Write the tree; returns one record per frame on disk: split, seq, fid ('%04d'), line
    ('SEQ/%04d'), listed (in the split's list), toolkit (its line index or None), hand
    (train: annotated; evaluation: has a box), joints (HO-3D order, OpenGL, float32; the
    full hand also for evaluation frames, whose meta holds only joints[0]), uv (official
    projection, HO-3D order), cam (camMat), box (evaluation: [x0, y0, x1, y1] or None)."""
    rng = np.random.default_rng(seed)
    root = Path(root)
    records, q = [], 0
    for split, seqs in (("train", TRAIN), ("evaluation", EVALUATION)):
        for seq, n_frames in seqs.items():
            K = cam_mat(q)
            q += 1
            for f in range(n_frames):
                fid = f"{f:04d}"
                key = (split, seq, f)
                hand = key not in (NO_HAND,)
                joints = official_hand(rng, K) if hand else None
                uv = project_3D_points(K, joints) if hand else None
                box = None
                if split == "train":
                    meta = {"handJoints3D": joints, "camMat": K if hand else None,
                            "handPose": rng.normal(size=48).astype(np.float32) if hand else None,
                            "handTrans": joints[0] if hand else None,
                            "handBeta": np.zeros(10, np.float32) if hand else None,
                            "handVertContact": np.zeros(778, bool) if hand else None,
                            **_object_entries(rng, hand)}
                else:
                    if key != NO_BOX:
                        box = np.concatenate([uv.min(0) - 9.0, uv.max(0) + 9.0]).astype(np.float32)
                    meta = {"handJoints3D": joints[0].copy(), "handBoundingBox": box,
                            "camMat": K, **_object_entries(rng, True)}
                folder = root / split / seq
                write_pickle(folder / "meta" / f"{fid}.pkl", meta)
                (folder / "rgb").mkdir(parents=True, exist_ok=True)
                Image.fromarray(draw(uv, rng)).save(folder / "rgb" / f"{fid}.jpg", quality=95,
                                                    subsampling=0)
                records.append({"split": split, "seq": seq, "fid": fid, "line": f"{seq}/{fid}",
                                "listed": key != UNLISTED, "toolkit": None,
                                "hand": hand and box is not None if split == "evaluation" else hand,
                                "joints": joints, "uv": uv, "cam": K, "box": box})
    for split in ("train", "evaluation"):
        listed = [r for r in records if r["split"] == split and r["listed"]]
        for t, i in enumerate(rng.permutation(len(listed))):      # not in folder order
            listed[i]["toolkit"] = t
        lines = sorted(listed, key=lambda r: r["toolkit"])
        (root / f"{split}.txt").write_text("".join(r["line"] + "\n" for r in lines))
    return records


def official(records: list[dict], split: str) -> list[dict]:
    """The split's samples by the official rule: its list's lines in order, frames without a
    hand annotation (train) or box (evaluation) dropped."""
    listed = sorted((r for r in records if r["split"] == split and r["listed"]),
                    key=lambda r: r["toolkit"])
    return [r for r in listed if r["hand"]]
