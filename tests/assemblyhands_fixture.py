"""A tiny AssemblyHands tree in the official layout and file formats (assemblyhands-toolkit).

Real formats: monochrome JPEG frames ``images/ego_images_rectified/<split>/<seq>/
<camera>_mono10bit/%06d.jpg`` (636 x 480), and per split the three JSON files
``annotations/<split>/assemblyhands_<split>_{ego_data,ego_calib,joint_3d}_v1-1.json``:
COCO ``images`` / ``annotations`` (``bbox`` {"right", "left"} as [x0, y0, x1, y1] or null,
``joint_valid`` 42 flags, nested [[1], ...] in train and flat in val/test), calibration per
sequence (``intrinsics[<cam>_mono10bit]`` 3x3, ``extrinsics["%06d"][<cam>_mono10bit]`` 3x4
world -> camera, mm) and ``world_coord`` 42 x 3 in mm per (sequence, frame). Official
sequence and camera names; frame indices step by 2 (30 Hz on the 60 fps grid).

Joints follow the README's chart: 0-20 right, 21-41 left, per finger tip to base (thumb
0-3, index 4-7, middle 8-11, ring 12-15, little 16-19), wrist 20 (``NAMES``). Every hand
with a box is drawn: joint a shows as a disc of grey level ``LEVELS[a % 21]`` (radius
``DOT``) at its OFFICIAL projection ``cam2pixel(R @ X + t)`` with pixel centres at integer
coordinates (the toolkit's convention): pixel (row i, col j) is lit when
|(j, i) - uv| <= DOT. Hands are laid out in 2D (a fan, right hands seen from the back so
the thumb is on the left; left hands their mirror), back-projected at 0.39-0.47 m and
viewed by each camera through its own rotation, so the dots are exactly where the labels
say. Each image gets a scenario (``SCENARIOS``) that exercises the sample rule.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

SEQUENCES = ("nusar-2021_action_both_9081-c11b_9081_user_id_2021-02-12_161433",
             "nusar-2021_action_both_9012-c07c_9012_user_id_2021-02-01_164345",
             "nusar-2021_action_both_9021-c10a_9021_user_id_2021-02-23_100458",
             "nusar-2021_action_both_9054-c01a_9054_user_id_2021-02-08_160424")
CAMERAS = ("HMC_21176875", "HMC_21179183", "HMC_84346135", "HMC_84358933")
W, H, DOT = 636, 480, 4.5
LEVELS = 45 + 10 * np.arange(21)            # grey level of joint a % 21 (background < 16)
FINGERS = ("thumb", "index", "middle", "ring", "little")
NAMES = [f"{f}{4 - p}" for f in FINGERS for p in range(4)] + ["wrist"]   # thumb4 = tip
# scenario: which hands have a box, and how many of a boxed hand's 21 joints are valid
SCENARIOS = {"both": (21, 21), "right": (21, None), "left": (None, 21), "right9": (9, 21),
             "left10": (21, 10), "none": (None, None), "both9": (9, 9), "right10": (10, None)}
# base-to-tip distances (px) and fan angles (deg) of thumb, index, middle, ring, little
_REACH = [(24, 44, 60, 75)] + [(50, 68, 84, 97)] * 4
_ANGLE = (-70, -25, 0, 22, 44)
_K0 = np.array([[300.0, 0.0, 318.0], [0.0, 300.0, 240.0], [0.0, 0.0, 1.0]])


def fan(left: bool) -> np.ndarray:
    """(21, 2) pixel offsets from the wrist in the official (tip-to-base) joint order."""
    out = np.zeros((21, 2))
    for f, (reach, angle) in enumerate(zip(_REACH, _ANGLE)):
        a = np.deg2rad(angle)
        for k, r in enumerate(reach):                           # k = 0 base .. 3 tip
            out[4 * f + 3 - k] = 1.1 * r * np.array([np.sin(a), -np.cos(a)])
    if left:
        out[:, 0] *= -1
    return out


def _rot(axis: int, deg: float) -> np.ndarray:
    c, s = np.cos(np.deg2rad(deg)), np.sin(np.deg2rad(deg))
    i, j = [k for k in range(3) if k != axis]
    R = np.eye(3)
    R[i, i], R[i, j], R[j, i], R[j, j] = c, -s, s, c
    return R


def intrinsics(seq: int, cam: int) -> np.ndarray:
    """The file's K of a (sequence, camera): fractional principal point, no skew."""
    f = 296.3 + 3.1 * cam + 0.7 * seq
    return np.array([[f, 0.0, 317.62 + 0.9 * cam], [0.0, f + 0.4, 239.31 - 0.7 * cam],
                     [0.0, 0.0, 1.0]])


def cam2pixel(K: np.ndarray, cam: np.ndarray) -> np.ndarray:
    """The toolkit's ``cam2pixel`` (transforms.py): u = x / z * fx + cx."""
    return np.stack([cam[:, 0] / cam[:, 2] * K[0, 0] + K[0, 2],
                     cam[:, 1] / cam[:, 2] * K[1, 1] + K[1, 2]], 1)


def draw(uv: np.ndarray, sides: list[int], rng: np.random.Generator) -> np.ndarray:
    """A dark (H, W) frame with the dots of the hands in ``sides`` (0 right, 1 left)."""
    frame = rng.integers(0, 16, size=(H, W)).astype(np.uint8)
    rows, cols = np.mgrid[:H, :W]
    for h in sides:
        for a in range(21):
            u, v = uv[21 * h + a]
            frame[(cols - u) ** 2 + (rows - v) ** 2 <= DOT ** 2] = LEVELS[a]
    return frame


def _scene(rng: np.random.Generator) -> np.ndarray:
    """(42, 3) canonical camera-frame joints (mm): right hand right of the left one."""
    xyz = np.zeros((42, 3))
    for h, wrist in enumerate(((440.0, 335.0), (196.0, 335.0))):
        t = np.deg2rad(rng.uniform(-15, 15))
        R2 = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
        uv = fan(bool(h)) @ R2.T * rng.uniform(0.9, 1.05) + wrist + rng.uniform(-12, 12, 2)
        z = rng.uniform(390, 470, size=21)
        xyz[21 * h:21 * h + 21] = np.stack([(uv[:, 0] - _K0[0, 2]) * z / _K0[0, 0],
                                            (uv[:, 1] - _K0[1, 2]) * z / _K0[1, 1], z], 1)
    return xyz


def _flags(n: int | None, rng: np.random.Generator) -> np.ndarray:
    flags = np.ones(21, int)
    if n is not None and n < 21:
        flags[rng.choice(np.arange(20), size=21 - n, replace=False)] = 0   # wrist kept
    return flags


def write_tree(root: Path, layout: dict | None = None, seed: int = 0) -> list[dict]:
    """Write the tree. ``layout``: split -> (sequence indices, camera indices, frames per
    sequence). Returns one record per image: split, file (relative to images/), seq, cam,
    frame, scenario, K (the file's), Rt, world (42 x 3 mm), uv (42 x 2, official), valid
    (42 flags), bbox."""
    layout = layout or {"train": ((0, 1), (0, 2), 3), "val": ((2,), (1, 3), 3),
                        "test": ((3,), (0, 1), 2)}
    rng = np.random.default_rng(seed)
    root = Path(root)
    records, image_id, counter = [], 0, 0
    names = list(SCENARIOS)
    for split, (seqs, cams, n_frames) in layout.items():
        images, anns, calib, joints = [], [], {}, {}
        for s in seqs:
            seq = SEQUENCES[s]
            calib[seq] = {"intrinsics": {CAMERAS[c] + "_mono10bit": intrinsics(s, c).tolist()
                                         for c in cams}, "extrinsics": {}}
            joints[seq] = {}
            for k in range(n_frames):
                frame = 1200 + 40 * s + 2 * k
                fkey = f"{frame:06d}"
                Rw = _rot(2, rng.uniform(-180, 180)) @ _rot(0, rng.uniform(-60, 60))
                tw = rng.uniform(-300, 300, 3)
                canon = _scene(rng)
                world = (canon - tw) @ Rw                    # Rw.T @ (x - tw) per row
                joints[seq][fkey] = {"world_coord": world.tolist(), "joint_valid": [1] * 42}
                calib[seq]["extrinsics"][fkey] = {}
                for c in cams:
                    scenario = names[counter % len(names)]
                    counter += 1
                    K = intrinsics(s, c)
                    boxed = [h for h in (0, 1) if SCENARIOS[scenario][h] is not None]
                    while True:
                        Rd = _rot(2, rng.uniform(-20, 20)) @ _rot(0, rng.uniform(-6, 6)) \
                            @ _rot(1, rng.uniform(-6, 6))
                        shift = rng.uniform([-15, -15, -20], [15, 15, 20])
                        Rt = np.concatenate([Rd @ Rw, (Rd @ tw + shift)[:, None]], 1)
                        cam_mm = world @ Rt[:, :3].T + Rt[:, 3]
                        uv = cam2pixel(K, cam_mm)
                        inside = (uv > 14).all(1) & (uv[:, 0] < W - 14) & (uv[:, 1] < H - 14)
                        if inside.all():
                            break
                    calib[seq]["extrinsics"][fkey][CAMERAS[c] + "_mono10bit"] = Rt.tolist()
                    valid = np.concatenate([_flags(n, rng) for n in SCENARIOS[scenario]])
                    bbox = {}
                    for h, side in enumerate(("right", "left")):
                        part = uv[21 * h:21 * h + 21]
                        bbox[side] = None if h not in boxed else \
                            [*(part.min(0) - 8).tolist(), *(part.max(0) + 8).tolist()]
                    file = f"ego_images_rectified/{split}/{seq}/{CAMERAS[c]}_mono10bit/{fkey}.jpg"
                    path = root / "images" / file
                    path.parent.mkdir(parents=True, exist_ok=True)
                    Image.fromarray(draw(uv, boxed, rng), mode="L").save(path, quality=95)
                    images.append({"id": image_id, "file_name": file, "width": W, "height": H,
                                   "frame_idx": frame, "seq_name": seq, "camera": CAMERAS[c],
                                   "is_ego": True})
                    keypoints = np.concatenate([uv, valid[:, None]], 1).reshape(-1)
                    anns.append({"id": 5000 + 7 * image_id, "image_id": image_id,
                                 "bbox": bbox, "category_id": 1, "iscrowd": 0,
                                 "keypoints": keypoints.tolist(),
                                 "joint_valid": ([[int(v)] for v in valid] if split == "train"
                                                 else valid.tolist())})
                    records.append({"split": split, "file": file, "seq": seq, "cam": CAMERAS[c],
                                    "frame": frame, "scenario": scenario, "K": K, "Rt": Rt,
                                    "world": world, "uv": uv, "valid": valid, "bbox": bbox})
                    image_id += 1
        order = rng.permutation(len(anns))                 # annotation order != image order
        folder = root / "annotations" / split
        folder.mkdir(parents=True, exist_ok=True)
        info = {"description": "AssemblyHands fixture", "version": "v1-1"}
        files = {"ego_data": {"info": info, "images": images,
                              "annotations": [anns[i] for i in order],
                              "categories": [{"id": 1, "name": "hand"}]},
                 "ego_calib": {"info": info, "calibration": calib},
                 "joint_3d": {"info": info, "annotations": joints}}
        for kind, content in files.items():
            (folder / f"assemblyhands_{split}_{kind}_v1-1.json").write_text(json.dumps(content))
    return records
