"""A contact sheet of synthetic samples with their 2D keypoints and bones drawn."""
from __future__ import annotations

import math
import os
from pathlib import Path

import torch
from PIL import Image, ImageDraw

from benchmarks.errors import UserError
from benchmarks.synth.backgrounds import BACKGROUNDS
from benchmarks.synth.hand import BONES, GESTURES
from benchmarks.synth.products import MAX_RES, MIN_RES, generator
from benchmarks.synth.scene import LAB, WILD, render_scenes, sample_scenes

COLUMNS = 4                                          # samples per row, each shown twice
CAPTION = 14                                         # pixels of text under each sample
# one colour per digit (thumb, index, middle, ring, little); bones take their child's digit
DIGIT_COLOURS = ((230, 40, 40), (240, 170, 20), (40, 200, 60), (30, 140, 230), (200, 60, 220))


def _digit(joint: int) -> int:
    return (joint - 1) // 4


def annotate(tile: Image.Image, uv: list[list[float]]) -> Image.Image:
    overlay = Image.new("RGBA", tile.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    width = max(1, tile.width // 96)
    for parent, child in BONES:
        colour = DIGIT_COLOURS[_digit(child)] + (190,)
        draw.line([tuple(uv[parent]), tuple(uv[child])], fill=colour, width=width)
    r = max(1.0, tile.width / 80)
    for j, (x, y) in enumerate(uv):
        colour = (255, 255, 255) if j == 0 else DIGIT_COLOURS[_digit(j)]
        draw.ellipse([x - r, y - r, x + r, y + r], fill=colour + (230,))
    return Image.alpha_composite(tile.convert("RGBA"), overlay).convert("RGB")


def preview(path: Path, res: int = 128, seed: int = 0, n: int = 24, world: str = "capture") -> Path:
    """Write a PNG grid of ``n`` samples (two thirds in the lab style with ``world``'s
    viewpoints, cycling through every gesture, the rest in the wild style), each shown as
    rendered and with its keypoints and bones drawn, captioned with the gesture and background
    kind. Returns ``path``. Refused with one line, before rendering: a path that exists, does not
    end in ``.png`` or whose folder does not exist, n <= 0, res outside [MIN_RES, MAX_RES]."""
    path = check_path(path)
    if n <= 0:
        raise UserError(f"the preview needs n > 0 samples, got {n}")
    if res < MIN_RES:
        raise UserError(f"synthetic images need res >= {MIN_RES} pixels, got {res}")
    if res > MAX_RES:
        raise UserError(f"synthetic images need res <= {MAX_RES} pixels, got {res}")
    gen = generator(seed, "preview", 0)
    n_lab = math.ceil(2 * n / 3)
    gestures = torch.arange(n) % len(GESTURES)
    captions, tiles = [], []
    with torch.inference_mode():
        for style, idx, views in ((LAB, gestures[:n_lab], world), (WILD, gestures[n_lab:], "sphere")):
            if not len(idx):
                continue
            sc = sample_scenes(len(idx), style, res, gen, gesture=idx, world=views)
            out = render_scenes(sc, res, gen)
            for i in range(len(idx)):
                image = Image.fromarray(out.images[i].permute(1, 2, 0).numpy())
                pair = Image.new("RGB", (2 * res, res))
                pair.paste(image, (0, 0))
                pair.paste(annotate(image, out.uv[i].tolist()), (res, 0))
                tiles.append(pair)
                captions.append((GESTURES[int(idx[i])], BACKGROUNDS[int(sc.background.kind[i])]))
    rows = math.ceil(n / COLUMNS)
    sheet = Image.new("RGB", (COLUMNS * 2 * res, rows * (res + CAPTION)), (24, 24, 24))
    draw = ImageDraw.Draw(sheet)
    for k, (tile, (gesture, background)) in enumerate(zip(tiles, captions)):
        x, y = (k % COLUMNS) * 2 * res, (k // COLUMNS) * (res + CAPTION)
        sheet.paste(tile, (x, y))
        caption = f"{gesture} / {background}"
        if draw.textlength(caption) > 2 * res - 6:                     # too narrow: gesture only
            caption = gesture
        draw.text((x + 3, y + res + 1), caption, fill=(235, 235, 235))
    try:
        with open(path, "xb") as f:                  # never over a file made meanwhile
            try:
                sheet.save(f, format="PNG")
            except BaseException:
                f.close()
                path.unlink(missing_ok=True)
                raise
    except FileExistsError:
        raise UserError(f"{path}: exists (created while the preview was rendered); not "
                        f"overwritten") from None
    except OSError as err:
        raise UserError(f"cannot write {path}: {err.strerror or err}") from None
    return path


def check_path(path: str | os.PathLike) -> Path:
    """The preview's file: a new ``.png`` in an existing folder, else a one-line UserError."""
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise UserError(f"{path}: the preview is a PNG image; give a file name ending in .png")
    if os.path.lexists(path):
        what = "a folder" if path.is_dir() else "a file"
        raise UserError(f"{path}: exists ({what}); the preview is written only to a new file "
                        f"(remove it or choose another name)")
    parent = path.parent
    if not parent.is_dir():
        what = "not a folder" if parent.exists() else "no such folder"
        raise UserError(f"{path}: its folder {parent} is {what}; create it first or choose "
                        f"another path")
    return path
