"""A tiny Hand100M tree in the official layout (ut-vision/SiMHand ``src/data_loader/
ego4d_loader.py`` / ``doh_loader.py``): ``annotations/<Ego4D|100DOH>/Hand100M_<..>_<scale>
_v1-1.json`` with ``images`` (id, file_name, width, height) and ``annotations`` (hand_id,
image_id, boxes as a JSON string, keypoint_25d 21 x 3 normalised to the official
``crop_and_resize`` square, left_right, positive_sample, distance), and the frames at
``root/<file_name>`` = ``<prefix>/<video>/frame_%06d.jpg`` as the extraction scripts write.

Each keypoint is a white 3 x 3 dot on a black frame, centred on the keypoint's frame pixel
position (a pixel centre: integer + 0.5). The normalised values are computed here with a
plain-Python port of the official ``crop_and_resize`` arithmetic (independent of the
reader's numpy one). Hands near the frame border make the official square clip. The hand
annotated twice (Right and Left) avoids a half-pixel tie of the crop rule's square corner,
so its two crops are exact mirror images.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

W, H = 320, 240
DIRS = {"ego4d": "Ego4D", "100doh": "100DOH"}
# top-left corners of the 80 x 80 areas hands lie in: near the top-left and bottom-right
# borders (the official square clips there) and in the middle
AREAS = ((4, 4), (236, 156), (120, 80))


def official_square(box, width, height, scale=1.3):
    """qx1, qy1, qx2, qy2 of the official crop_and_resize (ints, clipped to the frame)."""
    x1, y1, x2, y2 = int(box[0]), int(box[1]), int(box[2]), int(box[3])
    w, h = x2 - x1, y2 - y1
    sw, sh = int(w * scale), int(h * scale)
    sx1, sy1 = x1 - int((sw - w) / 2), y1 - int((sh - h) / 2)
    sx2, sy2 = x2 + int((sw - w) / 2), y2 + int((sh - h) / 2)
    cx, cy = (sx1 + sx2) / 2, (sy1 + sy2) / 2
    half = max(sx2 - sx1, sy2 - sy1) // 2
    return (max(0, int(cx - half)), max(0, int(cy - half)),
            min(width, int(cx + half)), min(height, int(cy + half)))


def hand_pixels(rng: np.random.Generator, area: tuple[int, int]) -> np.ndarray:
    """21 integer dot centres in an 80 x 80 area, at least 11 px apart (no symmetry)."""
    ox, oy = area
    points: list[np.ndarray] = []
    while len(points) < 21:
        p = rng.integers([ox + 2, oy + 2], [ox + 78, oy + 78])
        if all(np.abs(p - q).max() >= 11 for q in points):
            points.append(p)
    return np.array(points)


def _ties(uv: np.ndarray, margin: float = 1.5) -> bool:
    """Whether the crop rule's square corner is a half-pixel tie in x (rounded half up, so
    the square of the mirrored hand would sit one pixel off the mirrored square)."""
    lo, hi = uv.min(0), uv.max(0)
    side = np.floor(margin * (hi - lo).max() + 0.5)
    return ((lo[0] + hi[0]) / 2 - side / 2) % 1 == 0.5


def write_hand100m(root: Path, name: str = "ego4d", scale: str = "50k", seed: int = 0,
                   prefix: str | None = None) -> list[dict]:
    """Write the tree; returns per annotation: frame (Path), uv (21, 2) frame pixels as
    drawn (unflipped), left (bool), video (str), image_id."""
    rng = np.random.default_rng(seed)
    prefix = prefix or f"{DIRS[name]}_frames"
    # (video, frame number, [(area, labels)]): two hands per frame, one Left one Right; the
    # last frame shows one hand annotated twice, as Right and as Left
    plan = [(v, n, [(AREAS[0], ("Right",)), (AREAS[1], ("Left",))])
            for v in ("vidA", "vidB") for n in (0, 30)]
    plan.append(("vidB", 60, [(AREAS[2], ("Right", "Left"))]))
    images, annotations, truth = [], [], []
    for image_id, (video, number, hands) in enumerate(plan):
        file_name = f"{prefix}/{video}/frame_{number:06d}.jpg"
        frame = np.zeros((H, W, 3), dtype=np.uint8)
        for area, labels in hands:
            px = hand_pixels(rng, area)
            while len(labels) > 1 and _ties(px + 0.5):
                px = hand_pixels(rng, area)
            for x, y in px:
                frame[y - 1:y + 2, x - 1:x + 2] = 255
            uv = px + 0.5
            lo, hi = uv.min(0), uv.max(0)
            box = [float(lo[0] - rng.uniform(2, 8)), float(lo[1] - rng.uniform(2, 8)),
                   float(hi[0] + rng.uniform(2, 8)), float(hi[1] + rng.uniform(2, 8))]
            q = official_square(box, W, H)
            norm = np.stack([(uv[:, 0] - q[0]) / (q[2] - q[0]),
                             (uv[:, 1] - q[1]) / (q[3] - q[1]), rng.uniform(-1, 1, 21)], 1)
            for label in labels:
                hand_id = str(len(annotations))
                annotations.append({"hand_id": hand_id, "image_id": image_id,
                                    "boxes": json.dumps(box), "keypoint_25d": norm.tolist(),
                                    "left_right": label, "positive_sample": ["0"],
                                    "distance": [0.5]})
                truth.append({"frame": root / file_name, "uv": uv, "left": label == "Left",
                              "video": video, "image_id": image_id})
        (root / file_name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(frame).save(root / file_name, quality=95, subsampling=0)
        images.append({"id": image_id, "file_name": file_name, "width": W, "height": H})
    path = annotation_path(root, name, scale)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"images": images, "annotations": annotations}))
    return truth


def annotation_path(root: Path, name: str = "ego4d", scale: str = "50k") -> Path:
    d = DIRS[name]
    return root / "annotations" / d / f"Hand100M_{d}_{scale}_v1-1.json"
