"""Tiny data set trees in the exact on-disk formats, for the data loader tests.

Frames are black with a white 3 x 3 dot centred on a known point (so a test can find where
content went), written as JPEGs by PIL from numpy.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image


def write_image(path: Path, frame: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(frame).save(path, quality=95, subsampling=0)


def write_json(path: Path, data) -> None:
    path.write_text(json.dumps(data))


def dot_frame(h: int, w: int, point: np.ndarray, background: int = 0) -> np.ndarray:
    """An (h, w, 3) uint8 frame with a white 3 x 3 dot centred on pixel-edge point (x, y)."""
    frame = np.full((h, w, 3), background, dtype=np.uint8)
    j, i = int(point[0]), int(point[1])
    frame[max(i - 1, 0):i + 2, max(j - 1, 0):j + 2] = 255
    return frame


def find_dot(image: np.ndarray) -> np.ndarray:
    """Brightness-weighted centroid (x, y) in pixel-edge coordinates of the white dot.

    ``image`` is (3, H, W) or (H, W, 3) on a flat background (its median, subtracted);
    pixels less than a fifth as bright as the dot's peak are ignored.
    """
    img = image if image.shape[-1] == 3 else np.moveaxis(image, 0, -1)
    v = img.astype(np.float64).min(axis=-1)
    v = np.clip(v - np.median(v), 0.0, None)
    v = np.where(v > 0.2 * v.max(), v, 0.0)
    rows, cols = np.indices(v.shape)
    return np.array([(v * (cols + 0.5)).sum(), (v * (rows + 0.5)).sum()]) / v.sum()


def random_hands(n: int, rng: np.random.Generator, frame: int) -> tuple[np.ndarray, np.ndarray]:
    """(xyz (n, 21, 3) metres, K (n, 3, 3)) for hands ~0.5 m away that project inside a frame."""
    xyz = rng.uniform(-0.04, 0.04, size=(n, 21, 3)) + np.array([0.0, 0.0, 0.5])
    f = rng.uniform(2.5, 3.5, size=n) * frame
    K = np.zeros((n, 3, 3))
    K[:, 0, 0], K[:, 1, 1] = f, f * rng.uniform(0.98, 1.02, size=n)
    K[:, 0, 2], K[:, 1, 2], K[:, 2, 2] = frame / 2, frame / 2, 1.0
    return xyz, K


def freihand_tree(root: Path, n: int = 3, versions: int = 2, frame: int = 40, n_eval: int = 2,
                  seed: int = 0, meta: bool = False) -> dict[str, np.ndarray]:
    """A FreiHAND-layout tree; image idx + n*k has background 40*k and a dot on joint 0.

    Returns the annotations written: xyz, K, scale (training) and eval_xyz, eval_K, eval_scale.
    """
    rng = np.random.default_rng(seed)
    out = {}
    for prefix, count, n_versions in (("training", n, versions), ("evaluation", n_eval, 1)):
        xyz, K = random_hands(count, rng, frame)
        scale = np.linalg.norm(xyz[:, 9] - xyz[:, 10], axis=-1)
        uvw = np.einsum("nij,nkj->nki", K, xyz)
        uv = uvw[..., :2] / uvw[..., 2:]
        for k in range(n_versions):
            for idx in range(count):
                write_image(root / prefix / "rgb" / f"{idx + count * k:08d}.jpg",
                            dot_frame(frame, frame, uv[idx, 0], background=40 * k))
        write_json(root / f"{prefix}_xyz.json", xyz.tolist())
        write_json(root / f"{prefix}_K.json", K.tolist())
        write_json(root / f"{prefix}_scale.json", scale.tolist())
        if meta:
            write_json(root / f"{prefix}_meta.json",
                       [{"gesture": "open", "viewpoint": [0.0, 0.0]}] * count)
        key = "" if prefix == "training" else "eval_"
        out |= {f"{key}xyz": xyz, f"{key}K": K, f"{key}scale": scale}
    return out


def wild_tree(root: Path, n: int = 4, h: int = 48, w: int = 64, seed: int = 0) -> np.ndarray:
    """A wild-layout tree with hands anywhere in the frame; a dot on joint 0. Returns uv."""
    rng = np.random.default_rng(seed)
    centre = rng.uniform([12, 12], [w - 12, h - 12], size=(n, 1, 2))
    uv = centre + rng.uniform(-8, 8, size=(n, 21, 2))
    uv[:, 0] = np.floor(uv[:, 0]) + 0.5                   # the dot's centre is a pixel centre
    for i in range(n):
        write_image(root / "rgb" / f"{i:08d}.jpg", dot_frame(h, w, uv[i, 0]))
    write_json(root / "wild_uv.json", uv.tolist())
    write_json(root / "wild_meta.json", [{"gesture": "fist", "viewpoint": [10.0, 5.0]}] * n)
    return uv


VIEW_GREY = {"l": 60, "c": 130, "r": 200}


def triplets_tree(root: Path, splits=("train", "test", "train", "train"), frame: int = 24
                  ) -> list[dict]:
    """A triplets-layout tree; view v of every triplet is a flat grey ``VIEW_GREY[v]``."""
    entries = []
    for j, split in enumerate(splits):
        for v, grey in VIEW_GREY.items():
            write_image(root / "rgb" / f"{j:08d}_{v}.jpg",
                        np.full((frame, frame, 3), grey, dtype=np.uint8))
        entries.append({"gesture": j % 3, "gesture_name": ["open", "fist", "point"][j % 3],
                        "viewpoint": [[10.0 * j - 5, 2.0], [10.0 * j, 2.5], [10.0 * j + 5, 3.0]],
                        "split": split})
    write_json(root / "triplets.json", entries)
    write_json(root / "gestures.json", ["open", "fist", "point"])
    return entries


def youtube_tree(root: Path, split: str = "train") -> dict:
    """A YouTube3DHands-layout tree with 4 frames (80 x 60) and 5 hands.

    Each hand's vertices fill a rectangle painted white, with a red stripe on its left edge.
    Frame 1 holds a right and a left hand; frame 2 is written as .png under its own name;
    frame 3 is missing on disk. Returns the JSON written.
    """
    rects = {0: [(10, 10, 30, 40, 0)], 1: [(5, 20, 25, 50, 0), (50, 5, 70, 35, 1)],
             2: [(40, 10, 70, 30, 1)], 3: [(20, 20, 40, 40, 0)]}
    rng = np.random.default_rng(0)
    images, annotations = [], []
    for image_id, hands in rects.items():
        name = f"youtube/vid{image_id}/video/frames/{image_id}.png"
        images.append({"name": name, "width": 80, "height": 60, "id": image_id})
        frame = np.zeros((60, 80, 3), dtype=np.uint8)
        for x0, y0, x1, y1, is_left in hands:
            verts = np.column_stack([rng.uniform(x0, x1, 778), rng.uniform(y0, y1, 778),
                                     rng.uniform(-1, 1, 778)])
            verts[0, :2], verts[1, :2] = (x0, y0), (x1, y1)
            frame[y0:y1, x0:x1] = 255
            frame[y0:y1, x0:x0 + 4] = (255, 0, 0)
            annotations.append({"vertices": verts.tolist(), "is_left": is_left,
                                "image_id": image_id, "id": len(annotations)})
        if image_id == 2:
            write_image(root / name, frame)
        elif image_id != 3:
            write_image(root / Path(name).with_suffix(".jpg"), frame)
    data = {"images": images, "annotations": annotations}
    write_json(root / f"youtube_{split}.json", data)
    return data
