"""Decode-and-crop throughput of the real-data readers, per core, at the paper resolution.

Each reader's item path (decode the JPEG, crop or resize to the network input) is timed on
one thread over frames written at the data set's own size (FreiHAND 224 x 224 whole frames
resized; DexYCB 640 x 480 frames cropped around the hand; YouTube3DHands-like 640 x 360
frames cropped), against the two faster JPEG decoders a loader could use: PIL's draft mode
(the DCT scaled by 1/2, 1/4 or 1/8 while decoding, when the crop is to be shrunk at least 2x)
and ``torchvision.io.decode_jpeg``, which ``benchmarks.data.files.decode`` uses for JPEGs
since this measurement (1.4-1.8x PIL; draft mode gains nothing, as no crop here is shrunk 2x
or more). Rates are per CPU second of this process (one thread, so
a dedicated core's rate; other processes do not disturb it), best of ``--repeats``,
interleaved so that drift hits every variant alike; the ratios are printed side by side.

    python -m perf.loaders [--frames 64] [--repeats 5] [--res 224 128]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from benchmarks.data.crops import crop, hand_box
from benchmarks.data.files import decode, resize

# (name, frame width, height, hand box side as a fraction of the frame height, whole frame)
SETS = (("freihand", 224, 224, 1.0, True), ("dexycb", 640, 480, 0.35, False),
        ("youtube3d", 640, 360, 0.45, False))


def write_frames(folder: Path, w: int, h: int, n: int) -> list[Path]:
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        # smooth noise compresses like a photograph (not like flat colour or white noise)
        small = rng.integers(0, 255, size=(h // 8, w // 8, 3), dtype=np.uint8)
        frame = Image.fromarray(small).resize((w, h), Image.BILINEAR)
        paths.append(folder / f"{i:08d}.jpg")
        frame.save(paths[-1], quality=90)
    return paths


def box_of(w: int, h: int, side: float, i: int) -> np.ndarray:
    s = side * h
    cx, cy = w / 2 + (i % 5 - 2) * w / 12, h / 2 + (i % 3 - 1) * h / 10
    return np.array([[cx - s / 3, cy - s / 3], [cx + s / 3, cy + s / 3]])


def pil_decode(path: Path) -> torch.Tensor:
    with Image.open(path) as img:
        return torch.from_numpy(np.ascontiguousarray(np.asarray(img.convert("RGB")).transpose(2, 0, 1)))


def pil_item(path: Path, points: np.ndarray | None, res: int) -> torch.Tensor:
    frame = pil_decode(path)
    return (resize(frame, res) if points is None else crop(frame, hand_box(points), res))[0]


def draft_item(path: Path, points: np.ndarray | None, res: int) -> torch.Tensor:
    """PIL draft mode: the JPEG decoded at the largest 1/2^k scale still >= the output."""
    with Image.open(path) as img:
        w, h = img.size
        side = max(w, h) if points is None else hand_box(points).side
        scale = 1
        while side / (scale * 2) >= res and scale < 8:
            scale *= 2
        img.draft("RGB", (w // scale, h // scale))
        got = img.size[0] / w
        frame = torch.from_numpy(np.ascontiguousarray(np.asarray(img.convert("RGB")).transpose(2, 0, 1)))
    if points is None:
        return resize(frame, res)[0]
    return crop(frame, hand_box(points * got), res)[0]


def tv_item(path: Path, points: np.ndarray | None, res: int) -> torch.Tensor:
    frame = decode(path)             # the suite's decoder: torchvision.io for JPEGs
    return (resize(frame, res) if points is None else crop(frame, hand_box(points), res))[0]


VARIANTS = {"PIL": pil_item, "PIL draft": draft_item, "torchvision": tv_item}


def measure(frames: int, repeats: int, resolutions: list[int]) -> dict:
    torch.set_num_threads(1)
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, w, h, side, whole in SETS:
            folder = Path(tmp) / name
            folder.mkdir()
            paths = write_frames(folder, w, h, frames)
            boxes = [None if whole else box_of(w, h, side, i) for i in range(frames)]
            for res in resolutions:
                for fn in VARIANTS.values():             # imports and first-call set-up
                    fn(paths[0], boxes[0], res)
                best = {v: 0.0 for v in VARIANTS}
                for _ in range(repeats):
                    for v, fn in VARIANTS.items():
                        c0 = time.process_time()
                        for p, b in zip(paths, boxes):
                            fn(p, b, res)
                        best[v] = max(best[v], frames / (time.process_time() - c0))
                out[(name, res)] = best
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m perf.loaders", description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--res", type=int, nargs="+", default=[224, 128])
    args = parser.parse_args(argv)
    rates = measure(args.frames, args.repeats, args.res)
    print(f"{'set':<10} {'res':>4} " + " ".join(f"{v + ' img/s':>17}" for v in VARIANTS)
          + "   draft/PIL  torchvision/PIL")
    for (name, res), r in rates.items():
        print(f"{name:<10} {res:>4} " + " ".join(f"{r[v]:>17.0f}" for v in VARIANTS)
              + f"   {r['PIL draft'] / r['PIL']:>9.2f}  {r['torchvision'] / r['PIL']:>15.2f}")


if __name__ == "__main__":
    main()
