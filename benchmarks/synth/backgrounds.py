"""Backgrounds, from plain and green screen to cluttered, defocused scenes.

Kinds (``BACKGROUNDS``): ``plain`` (one colour, a faint light gradient), ``green_screen``
(chroma green, like FreiHAND's capture), ``gradient`` (two random colours), ``texture``
(fractal value noise in two colours) and ``clutter`` (texture plus overlapping rectangles
and ellipses of random colours). Textured kinds are drawn at a quarter of the resolution and
upsampled bilinearly, which also gives them the defocus of a background behind a hand.

``sample_backgrounds`` draws every random number on the CPU generator (the same amount for every
kind, so a seed fixes all of them); ``draw_backgrounds`` turns them into images on any device.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from benchmarks.synth.appearance import random_colours, uniform

BACKGROUNDS = ("plain", "green_screen", "gradient", "texture", "clutter")
_TEXTURED = (BACKGROUNDS.index("texture"), BACKGROUNDS.index("clutter"))
_SHAPES = 10            # clutter shapes per image
_OCTAVES = (2, 4, 8)    # value-noise grid sizes (cells across the image)


@dataclass
class BackgroundSpec:
    """Random parameters of n backgrounds; see ``sample_backgrounds``."""
    kind: Tensor        # (n,) long index into BACKGROUNDS
    c0: Tensor          # (n, 3) colour at one end of the light ramp
    c1: Tensor          # (n, 3) colour at the other end
    ramp: Tensor        # (n, 2) ramp direction (cos, sin)
    noise: list[Tensor]  # per octave (n, 3, g, g) in [-1, 1]
    shapes: Tensor      # (n, _SHAPES, 6): centre x, y, half sizes, angle, ellipse flag
    shape_colours: Tensor  # (n, _SHAPES, 3)

    def repeat(self, k: int) -> "BackgroundSpec":
        """Each background repeated ``k`` times in a row (views of one scene)."""
        def rep(t: Tensor) -> Tensor:
            return t.repeat_interleave(k, 0)
        return BackgroundSpec(rep(self.kind), rep(self.c0), rep(self.c1), rep(self.ramp),
                              [rep(o) for o in self.noise], rep(self.shapes),
                              rep(self.shape_colours))


def sample_backgrounds(n: int, gen: torch.Generator, probs: dict[str, float]) -> BackgroundSpec:
    """Random backgrounds with kinds drawn with the given probabilities (names in BACKGROUNDS)."""
    weights = torch.tensor([float(probs.get(k, 0.0)) for k in BACKGROUNDS])
    kind = torch.multinomial(weights, n, replacement=True, generator=gen)
    plain = random_colours(gen, (n,), sat=(0.0, 0.6), val=(0.15, 0.95))
    green = torch.stack([uniform(gen, (n,), 0.05, 0.25), uniform(gen, (n,), 0.45, 0.75),
                         uniform(gen, (n,), 0.1, 0.3)], 1)
    other = random_colours(gen, (n,))
    shade = uniform(gen, (n, 1), 0.7, 1.1)
    c0 = torch.where((kind == BACKGROUNDS.index("green_screen"))[:, None], green, plain)
    c1 = torch.where((kind == BACKGROUNDS.index("gradient"))[:, None]
                     | (kind == BACKGROUNDS.index("clutter"))[:, None]
                     | (kind == BACKGROUNDS.index("texture"))[:, None], other, c0 * shade)
    angle = uniform(gen, (n,), 0.0, 2 * torch.pi)
    noise = [uniform(gen, (n, 3, g + 1, g + 1), -1.0, 1.0) for g in _OCTAVES]
    k = (n, _SHAPES)
    ellipse = (torch.rand(k, generator=gen) < 0.5).float()
    shapes = torch.stack([uniform(gen, k, -0.1, 1.1), uniform(gen, k, -0.1, 1.1),
                          uniform(gen, k, 0.03, 0.3), uniform(gen, k, 0.03, 0.3),
                          uniform(gen, k, 0.0, torch.pi), ellipse], -1)
    return BackgroundSpec(kind, c0, c1.clamp(0, 1), torch.stack([angle.cos(), angle.sin()], 1),
                          noise, shapes, random_colours(gen, (n, _SHAPES)))


def _pixel_grid(size: int, device: torch.device) -> Tensor:
    return (torch.arange(size, device=device, dtype=torch.float32) + 0.5) / size


def _detail(spec: BackgroundSpec, sel: Tensor, size: int, device: torch.device) -> Tensor:
    """Low-resolution textured images (len(sel), 3, size, size) for backgrounds ``sel``."""
    c0 = spec.c0[sel].to(device)[:, :, None, None]
    c1 = spec.c1[sel].to(device)[:, :, None, None]
    noise = sum(0.5 ** k * F.interpolate(o[sel].to(device), size=(size, size), mode="bilinear",
                                         align_corners=True)
                for k, o in enumerate(spec.noise))
    mix = torch.sigmoid(2.5 * noise.mean(1, keepdim=True))
    img = c0 + (c1 - c0) * mix + 0.12 * noise
    clutter = (spec.kind[sel] == BACKGROUNDS.index("clutter")).to(device)
    grid = _pixel_grid(size, device)
    x, y = grid[None, None, :], grid[None, :, None]
    shapes = spec.shapes[sel].to(device)
    colours = spec.shape_colours[sel].to(device)
    for k in range(shapes.shape[1]):
        cx, cy, a, b, ang, ellipse = (shapes[:, k, i, None, None] for i in range(6))
        dx, dy = x - cx, y - cy
        u = (dx * ang.cos() + dy * ang.sin()) / a
        v = (dy * ang.cos() - dx * ang.sin()) / b
        # approximate distance inside the shape's edge, in pixels, for a one-pixel soft edge
        d_ellipse = (1 - (u * u + v * v).sqrt()) * torch.minimum(a, b)
        d_rect = torch.minimum((1 - u.abs()) * a, (1 - v.abs()) * b)
        d = torch.where(ellipse > 0, d_ellipse, d_rect) * size
        alpha = (d + 0.5).clamp(0.0, 1.0) * clutter[:, None, None]
        img = img + alpha[:, None] * (colours[:, k, :, None, None] - img)
    return img.clamp(0, 1)


def draw_backgrounds(spec: BackgroundSpec, height: int, width: int,
                     device: torch.device | str = "cpu") -> Tensor:
    """Background images (n, 3, H, W) in [0, 1] on ``device``."""
    device = torch.device(device)
    c0 = spec.c0.to(device)
    dc = (spec.c1.to(device) - c0)[:, :, None, None]
    ramp = spec.ramp.to(device)
    u = _pixel_grid(width, device) - 0.5
    v = _pixel_grid(height, device) - 0.5
    t = (ramp[:, 0, None] * u)[:, None, None, :] + (ramp[:, 1, None] * v)[:, None, :, None]
    img = torch.addcmul((c0[:, :, None, None] + 0.5 * dc), dc, t)
    textured = ((spec.kind == _TEXTURED[0]) | (spec.kind == _TEXTURED[1])).nonzero().squeeze(1)
    if textured.numel():
        low = _detail(spec, textured, max(8, max(height, width) // 4), device)
        img[textured.to(device)] = F.interpolate(low, size=(height, width), mode="bilinear",
                                                 align_corners=False)
    return img
