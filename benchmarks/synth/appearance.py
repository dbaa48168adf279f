"""Colours and light: skin tones, nails, sleeves, distractor paint, one directional light.

Colours are sRGB values in [0, 1]. All sampling draws from an explicit ``torch.Generator``
on the CPU, so a seed fixes every colour whatever device renders the images.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from benchmarks.synth.render import Lighting

# Skin tones from very light to very dark (sRGB), interpolated piecewise linearly.
SKIN_TONES = torch.tensor([
    [0.98, 0.85, 0.76], [0.94, 0.78, 0.66], [0.88, 0.69, 0.56], [0.80, 0.60, 0.46],
    [0.69, 0.49, 0.36], [0.55, 0.38, 0.27], [0.42, 0.29, 0.21], [0.32, 0.22, 0.16],
])
_PALM_TONE = torch.tensor([0.96, 0.76, 0.68])     # palms are lighter and pinker than backs
_NAIL_TONE = torch.tensor([0.97, 0.88, 0.85])


def uniform(gen: torch.Generator, shape: tuple[int, ...], lo: float, hi: float) -> Tensor:
    """``U(lo, hi)`` samples from ``gen`` (CPU, float32)."""
    return lo + (hi - lo) * torch.rand(shape, generator=gen)


def hsv_to_rgb(hsv: Tensor) -> Tensor:
    """(..., 3) hue in [0, 1), saturation, value -> sRGB (..., 3)."""
    h, s, v = hsv.unbind(-1)
    k = torch.stack([(5 + h * 6) % 6, (3 + h * 6) % 6, (1 + h * 6) % 6], -1)
    return v[..., None] - v[..., None] * s[..., None] * (torch.minimum(k, 4 - k).clamp(0, 1))


def random_colours(gen: torch.Generator, shape: tuple[int, ...],
                   sat: tuple[float, float] = (0.0, 0.9),
                   val: tuple[float, float] = (0.1, 0.95)) -> Tensor:
    """Random colours (*shape, 3): any hue, saturation and value in the given ranges."""
    hsv = torch.stack([torch.rand(shape, generator=gen), uniform(gen, shape, *sat),
                       uniform(gen, shape, *val)], -1)
    return hsv_to_rgb(hsv)


@dataclass
class Skin:
    """Per-hand colours (B, 3): back of the hand, palm, nails, forearm (skin or a sleeve)."""
    back: Tensor
    palm: Tensor
    nail: Tensor
    forearm: Tensor


def sample_skin(n: int, gen: torch.Generator, sleeve_p: float) -> Skin:
    """Skin tones spread over ``SKIN_TONES`` with a little per-channel variation; a sleeve of a
    random colour covers the forearm with probability ``sleeve_p``."""
    pos = torch.rand(n, generator=gen) * (len(SKIN_TONES) - 1)
    lo = pos.floor().long().clamp_max(len(SKIN_TONES) - 2)
    w = (pos - lo)[:, None]
    back = SKIN_TONES[lo] * (1 - w) + SKIN_TONES[lo + 1] * w
    back = (back * uniform(gen, (n, 3), 0.95, 1.05)).clamp(0, 1)
    darkness = (pos / (len(SKIN_TONES) - 1))[:, None]
    palm = back + (0.2 + 0.35 * darkness) * (_PALM_TONE - back)
    nail = back + 0.55 * (_NAIL_TONE - back)
    sleeve = random_colours(gen, (n,))
    forearm = torch.where((torch.rand(n, generator=gen) < sleeve_p)[:, None], sleeve, back)
    return Skin(back, palm, nail, forearm)


@dataclass(frozen=True)
class LightRange:
    """Ranges of the light: lateral spread of its direction (0 = from the camera), whether it
    may come from behind the hand, ambient / diffuse / specular strengths, colour tint."""
    spread: float
    from_behind: bool
    ambient: tuple[float, float]
    diffuse: tuple[float, float]
    specular: tuple[float, float]
    tint: float


def sample_light(n: int, gen: torch.Generator, r: LightRange) -> Lighting:
    """Lights (n) with directions in the camera frame; a caller whose light is fixed to the
    world rather than the camera rotates ``direction`` itself."""
    lateral = uniform(gen, (n, 2), -r.spread, r.spread)
    depth = uniform(gen, (n,), -0.3 if r.from_behind else 0.4, 1.0)
    d = torch.cat([lateral, -depth[:, None]], 1)
    colour = 1.0 + uniform(gen, (n, 3), -r.tint, r.tint)
    return Lighting(d / d.norm(dim=1, keepdim=True), colour / colour.mean(1, keepdim=True),
                    uniform(gen, (n,), *r.ambient), uniform(gen, (n,), *r.diffuse),
                    uniform(gen, (n,), *r.specular))
