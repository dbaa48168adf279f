"""A tiny DexYCB tree in the official layout and file formats (dex-ycb-toolkit's ``dex_ycb.py``).

Real formats: 640 x 480 JPEG frames ``color_%06d.jpg``, ``labels_%06d.npz`` (seg, pose_y,
pose_m, joint_3d 1 x 21 x 3 float32 metres, joint_2d 1 x 21 x 2), ``meta.yml`` per sequence,
``calibration/intrinsics/<serial>_640x480.yml`` for the 8 official serials. Subjects and
serials carry their official names; each subject holds ``n_seq`` (not 100) sequences, and
each sequence 1 or 2 of the 8 cameras, listed in its meta.yml.

Every frame with a hand shows joint k as a dot of colour ``COLOURS[k]`` (radius ``DOT`` px)
at its OFFICIAL projection ``joint_2d = K_yml @ joint_3d`` in the toolkit's convention,
pixel centres at integer coordinates: pixel (row i, col j) is lit when
|(j, i) - joint_2d| <= DOT. The joints are laid out in 2D first (a hand-like fan, no two
dots touching) and back-projected at ~0.55 m, so the dots are exactly where the labels say.
"""
from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

SUBJECTS = ("20200709-subject-01", "20200813-subject-02", "20200820-subject-03",
            "20200903-subject-04", "20200908-subject-05", "20200918-subject-06",
            "20200928-subject-07", "20201002-subject-08", "20201015-subject-09",
            "20201022-subject-10")
SERIALS = ("836212060125", "839512060362", "840412060917", "841412060263",
           "932122060857", "932122060861", "932122061900", "932122062010")
W, H, DOT = 640, 480, 3.5
COLOURS = np.array([c for c in itertools.product((0, 128, 255), repeat=3)
                    if c != (0, 0, 0)][:21], dtype=np.uint8)
# base-to-tip distances (px) and fan angles (deg) of thumb, index, middle, ring, little
_REACH = [(22, 40, 55, 68)] + [(45, 62, 76, 88)] * 4
_ANGLE = (-70, -25, 0, 22, 44)


def intrinsics(c: int) -> np.ndarray:
    """The official-convention K of serial index c (fractional principal points)."""
    return np.array([[610.3 + c, 0.0, 313.03 + 1.7 * c], [0.0, 609.8 + c, 245.01 - 1.3 * c],
                     [0.0, 0.0, 1.0]])


def hand_2d(rng: np.random.Generator) -> np.ndarray:
    """(21, 2) joint positions in the frame (official convention), FreiHAND/MANO order."""
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
    """A dark (H, W, 3) frame with the coloured joint dots (none when uv is None)."""
    frame = rng.integers(0, 24, size=(H, W, 3)).astype(np.uint8)
    if uv is not None:
        rows, cols = np.mgrid[:H, :W]
        for k, (u, v) in enumerate(uv):
            frame[(cols - u) ** 2 + (rows - v) ** 2 <= DOT ** 2] = COLOURS[k]
    return frame


def write_yaml(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data))


def write_tree(root: Path, subjects=(0, 1, 2), n_seq: int = 6, n_frames: int = 2,
               seed: int = 0) -> list[dict]:
    """Write the tree; returns one record per (sequence, serial, frame), in no set order:
    subject (index), seq (index in the subject's sorted sequences), sequence (relative
    folder), serials (the meta.yml list), serial (index), frame, side, hand (bool),
    joint_3d (21, 3) float32, joint_2d (21, 2), K (official 3 x 3)."""
    rng = np.random.default_rng(seed)
    root = Path(root)
    for c, serial in enumerate(SERIALS):
        K = intrinsics(c)
        write_yaml(root / "calibration" / "intrinsics" / f"{serial}_{W}x{H}.yml",
                   {"serial": serial, "color": {"fx": float(K[0, 0]), "fy": float(K[1, 1]),
                                                "ppx": float(K[0, 2]), "ppy": float(K[1, 2])},
                    "depth": {"fx": 385.0, "fy": 385.0, "ppx": 320.0, "ppy": 240.0}})
    records, g = [], 0
    for s in subjects:
        date = SUBJECTS[s][:8]
        for i in rng.permutation(n_seq):                 # created out of order on purpose
            name = f"{date}_{14 + i // 60:02d}{i % 60:02d}{17 + i:02d}"
            g = s * 100 + int(i)
            cams = sorted({g % 8, (g + 3) % 8} if g % 4 == 0 else {g % 8})
            side = "left" if (s + i) % 2 else "right"
            write_yaml(root / SUBJECTS[s] / name / "meta.yml",
                       {"serials": [SERIALS[c] for c in cams], "num_frames": n_frames,
                        "ycb_ids": [1, 11], "ycb_grasp_ind": 0, "mano_sides": [side],
                        "mano_calib": [SUBJECTS[s]], "extrinsics": f"{date}_151821"})
            for c in cams:
                K = intrinsics(c)
                for f in range(n_frames):
                    hand = not (f == n_frames - 1 and (s + 2 * i) % 3 == 0)
                    uv, xyz = None, np.full((21, 3), -1.0, np.float32)
                    if hand:
                        uv = hand_2d(rng)
                        z = rng.uniform(0.52, 0.58, size=21)
                        xyz = np.stack([(uv[:, 0] - K[0, 2]) * z / K[0, 0],
                                        (uv[:, 1] - K[1, 2]) * z / K[1, 1], z], 1)
                        xyz = xyz.astype(np.float32)
                        uv = xyz.astype(np.float64) @ K.T
                        uv = uv[:, :2] / uv[:, 2:]                  # exactly what the labels say
                    folder = root / SUBJECTS[s] / name / SERIALS[c]
                    folder.mkdir(parents=True, exist_ok=True)
                    Image.fromarray(draw(uv, rng)).save(folder / f"color_{f:06d}.jpg",
                                                         quality=95, subsampling=0)
                    joint_2d = np.full((21, 2), -1.0) if uv is None else uv
                    np.savez_compressed(folder / f"labels_{f:06d}.npz",
                                        seg=np.zeros((H, W), np.uint8),
                                        pose_y=np.zeros((2, 3, 4), np.float32),
                                        pose_m=np.zeros((1, 51), np.float32),
                                        joint_3d=xyz[None],
                                        joint_2d=joint_2d[None].astype(np.float32))
                    records.append({"subject": s, "seq": int(i),
                                    "sequence": f"{SUBJECTS[s]}/{name}", "serials": cams, "serial": c, "frame": f, "side": side,
                                    "hand": hand, "joint_3d": xyz, "joint_2d": joint_2d, "K": K})
    return records
