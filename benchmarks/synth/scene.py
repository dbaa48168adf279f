"""Scenes of the synthetic hand world: sampling (hand, pose, camera, light, background,
distractors, camera effects) and rendering them to labelled images.

A ``Style`` says how a product's images look; ``LAB`` mimics FreiHAND's hand-centred crops,
``WILD`` is the domain-shifted in-the-wild set and ``TRIPLET`` the clean viewpoint triplets.
Sampling happens on the CPU from one ``torch.Generator``; rendering runs on any device.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import TypeVar, cast

import torch
from torch import Tensor

from benchmarks.config import WORLDS
from benchmarks.errors import UserError
import benchmarks.synth.appearance as appearance
from benchmarks.synth.appearance import LightRange, Skin, uniform
from benchmarks.synth.backgrounds import BackgroundSpec, draw_backgrounds, sample_backgrounds
from benchmarks.synth.body import NAIL, SKIN, clip_forearm, hand_body, to_camera
from benchmarks.synth.camera import (directions_outside_cap, frame_hand, look_rotation,
                                     orbit_step, project, random_tangent, sample_intrinsics,
                                     viewpoint_from_direction)
from benchmarks.synth.effects import add_sensor_noise, gaussian_blur, to_uint8
from benchmarks.synth.hand import GESTURES, forward_kinematics, sample_poses, sample_shapes
from benchmarks.synth.render import Capsules, Lighting, Plate, composite, rasterize, shade

T = TypeVar("T")
DISTRACTOR = 3          # first material slot of distractor shapes
FOREARM_CAP_DEG = 30.0  # no camera within this angle of the forearm axis (it would be in the arm)
FOREARM_CLIP = 0.5      # the forearm ends no nearer to the camera than this x the hand's depth


@dataclass(frozen=True)
class Style:
    """How the images of one product are composed.

    ``fill``: range of the hand's projected size (the diameter of the joints' bounding
    sphere) as a fraction of the image side. ``offset``: largest shift of the joints' box
    centre from the image centre (fraction of the side); ``anywhere`` instead places it
    uniformly wherever it fits. ``backgrounds``:
    kind -> probability. ``distractors``: up to this many random shapes in the scene.
    ``blur_p`` / ``blur_sigma``: probability and range of a defocus blur, in pixels of a
    128-pixel image. ``noise``: range of the sensor noise standard deviation ([0, 1] units).
    """
    fill: tuple[float, float]
    offset: float
    anywhere: bool
    backgrounds: dict[str, float]
    light: LightRange
    sleeve_p: float
    distractors: int
    blur_p: float
    blur_sigma: tuple[float, float]
    noise: tuple[float, float]


LAB = Style(fill=(0.6, 0.9), offset=0.04, anywhere=False,
            backgrounds={"green_screen": 0.35, "plain": 0.2, "gradient": 0.15, "texture": 0.15,
                         "clutter": 0.15},
            light=LightRange(0.8, False, (0.35, 0.55), (0.5, 0.8), (0.03, 0.1), 0.05),
            sleeve_p=0.3, distractors=0, blur_p=0.0, blur_sigma=(0.0, 0.0), noise=(0.004, 0.012))
WILD = Style(fill=(0.3, 0.8), offset=0.0, anywhere=True,
             backgrounds={"clutter": 0.6, "texture": 0.25, "gradient": 0.1, "plain": 0.05},
             light=LightRange(1.5, True, (0.15, 0.6), (0.4, 1.0), (0.0, 0.15), 0.25),
             sleeve_p=0.6, distractors=4, blur_p=0.5, blur_sigma=(0.3, 1.5), noise=(0.005, 0.03))
TRIPLET = Style(fill=(0.6, 0.85), offset=0.0, anywhere=False,
                backgrounds={"plain": 0.35, "gradient": 0.35, "texture": 0.3},
                light=LightRange(0.8, False, (0.35, 0.55), (0.5, 0.8), (0.03, 0.1), 0.05),
                sleeve_p=0.3, distractors=0, blur_p=0.0, blur_sigma=(0.0, 0.0),
                noise=(0.003, 0.008))
TRIPLET_STEP_DEG = (5.0, 12.0)      # angle between neighbouring views of a triplet


@dataclass(frozen=True)
class Viewpoints:
    """Where cameras stand around the hand and how they roll.

    ``elevation_deg``: largest angle between the view direction and the hand's palm plane
    equator (the plane spanned by the radial and palmar axes); directions are uniform in area
    over that band (None: the whole sphere minus the forearm cap). ``roll_deg``: the roll about
    the optical axis is uniform in +-roll_deg around the pose in which the fingers point up the
    image (180: any roll).
    """
    elevation_deg: float | None
    roll_deg: float


# ``capture`` resembles FreiHAND's capture: a person holds the hand up in front of a rig of
# cameras arranged around it, so the cameras see palm, back and both sides (any azimuth) from
# within +-50 degrees of the palm's equator (never straight down the fingers; with the wrist
# flexed the forearm can come within 30 degrees of the view, where the renderer clips it), and
# the crops show the fingers pointing up to sideways (roll +-45 degrees). ``sphere`` is the
# harder world of handbench's first release: any direction outside the forearm cap, any roll.
VIEWPOINTS = {"capture": Viewpoints(elevation_deg=50.0, roll_deg=45.0),
              "sphere": Viewpoints(elevation_deg=None, roll_deg=180.0)}
assert tuple(VIEWPOINTS) == WORLDS    # viewpoint distributions of the labelled (lab) product


def sample_directions(n: int, views: Viewpoints, forearm: Tensor, gen: torch.Generator) -> Tensor:
    """View directions (n, 3) in the hand frame drawn from ``views``."""
    if views.elevation_deg is None:
        return directions_outside_cap(forearm, FOREARM_CAP_DEG, gen)
    s = math.sin(math.radians(views.elevation_deg))
    sin_el = uniform(gen, (n,), -s, s)                 # uniform in area over the band
    az = uniform(gen, (n,), -math.pi, math.pi)
    cos_el = (1 - sin_el**2).sqrt()
    return torch.stack([cos_el * torch.sin(az), sin_el, cos_el * torch.cos(az)], -1)


@dataclass
class Scenes:
    """n fully specified scenes (CPU tensors). Joints and the hand's flesh are in the hand
    frame; ``R``, ``centre``, ``t`` map them into the camera (``camera.py``)."""
    gesture: Tensor          # (n,) long index into GESTURES
    joints: Tensor           # (n, 21, 3) hand frame, metres
    caps: Capsules           # hand frame
    plate_corners: Tensor    # (n, 4, 3) hand frame
    plate_half: Tensor       # (n,)
    R: Tensor                # (n, 3, 3)
    centre: Tensor           # (n, 3)
    t: Tensor                # (n, 3)
    K: Tensor                # (n, 3, 3)
    light: Lighting
    skin: Skin
    background: BackgroundSpec
    distractors: Capsules    # camera frame
    distractor_colours: Tensor   # (n, D, 3)
    blur: Tensor             # (n,) pixels
    noise: Tensor            # (n,) standard deviation
    noise_offset: Tensor     # (n, 2) in [0, 1): where the image's noise window starts

    def __len__(self) -> int:
        return self.gesture.shape[0]

    def select(self, index: Tensor) -> "Scenes":
        """The scenes at ``index`` (a 1-D long tensor), in that order."""
        return _pick(self, index)

    def viewpoints(self) -> Tensor:
        """(azimuth, elevation) degrees (n, 2) of the camera seen from ``centre`` (the hand's
        joint centroid; for triplets the orbit's pivot at the hand's depth)."""
        v = -(self.R.transpose(1, 2) @ self.t[..., None])[..., 0]
        return viewpoint_from_direction(v)

    def camera_joints(self) -> Tensor:
        """Joints in the camera frame (n, 21, 3), metres."""
        return (self.joints - self.centre[:, None]) @ self.R.transpose(1, 2) + self.t[:, None]


def _distractors(n: int, count: int, K: Tensor, depth: Tensor, res: int,
                 gen: torch.Generator) -> tuple[Capsules, Tensor]:
    """Up to ``count`` random capsules and spheres per image in the camera frame, around the
    hand's depth (0.8x to 2x), anywhere in the view; unused slots have radius 0."""
    shape = (n, count)
    z = depth[:, None] * uniform(gen, shape, 0.8, 2.0)
    uv = uniform(gen, (n, count, 2), -0.1 * res, 1.1 * res)
    f = K[:, 0, 0, None]
    a = torch.stack([(uv[..., 0] - K[:, 0, 2, None]) * z / f,
                     (uv[..., 1] - K[:, 1, 2, None]) * z / f, z], -1)
    direction = torch.randn(n, count, 3, generator=gen)
    direction = direction / direction.norm(dim=-1, keepdim=True)
    length = uniform(gen, shape, 0.0, 0.25) * (torch.rand(shape, generator=gen) < 0.7)
    radius = uniform(gen, shape, 0.006, 0.035)
    taper = uniform(gen, shape, 0.5, 1.5)
    used = torch.arange(count)[None] < torch.randint(0, count + 1, (n, 1), generator=gen)
    radius = radius * used
    material = DISTRACTOR + torch.arange(count).expand(n, count)
    caps = Capsules(a, a + length[..., None] * direction, radius, radius * taper, material,
                    torch.zeros(n, count, 3), torch.zeros(shape, dtype=torch.bool))
    return caps, appearance.random_colours(gen, shape)


def _framing(n: int, style: Style, res: int, gen: torch.Generator
             ) -> tuple[Tensor, Tensor, Tensor]:
    """Hand sizes (n,), joint box centres (n, 2) and the largest joint box sides (n,) that
    keep every joint 2 % of the side inside the image, all in pixels."""
    fill = uniform(gen, (n,), *style.fill)
    u = torch.rand(n, 2, generator=gen)
    if style.anywhere:
        margin = 0.5 * fill[:, None] + 0.02
        centre = margin + u * (1 - 2 * margin)
    else:
        centre = 0.5 + style.offset * (2 * u - 1)
    room = 2 * torch.minimum(centre, 1 - centre).amin(1) - 0.04
    return fill * res, centre * res, room * res


def _pick(x: T, index: Tensor) -> T:
    """Index every tensor of a (nested) dataclass or list along its first axis."""
    if isinstance(x, Tensor):
        return cast(T, x.index_select(0, index))
    if isinstance(x, list):
        return cast(T, [_pick(v, index) for v in x])
    return replace(x, **{f.name: _pick(getattr(x, f.name), index) for f in fields(x)})


def sample_scenes(n: int, style: Style, res: int, gen: torch.Generator,
                  gesture: Tensor | None = None, hand_of: Tensor | None = None,
                  world: str = "sphere") -> Scenes:
    """``n`` random scenes in ``style`` for ``res``-pixel images. Gestures are uniform over
    ``GESTURES`` unless given; viewpoints follow ``VIEWPOINTS[world]`` (``sphere``: uniform
    over the view sphere except the cap of ``FOREARM_CAP_DEG`` around the forearm, where the
    camera would sit in the arm, with a uniform roll about the optical axis). ``hand_of`` (n,)
    maps scenes to hand identities (shape and skin) 0..H-1; by default every scene has its own
    hand."""
    if world not in VIEWPOINTS:
        raise UserError(f"unknown synthetic world {world!r}; choose one of: {', '.join(WORLDS)}")
    views = VIEWPOINTS[world]
    if gesture is None:
        gesture = torch.randint(0, len(GESTURES), (n,), generator=gen)
    if hand_of is None:
        hand_of = torch.arange(n)
    hands = int(hand_of.max()) + 1
    shape = _pick(sample_shapes(hands, gen), hand_of)
    angles, wrist = sample_poses(gesture, gen)
    skel = forward_kinematics(shape, angles, wrist)
    caps, plate = hand_body(shape, skel)
    v = sample_directions(n, views, skel.forearm_dir, gen)
    roll = math.radians(views.roll_deg)
    R = look_rotation(v, uniform(gen, (n,), -roll, roll))
    K = sample_intrinsics(n, res, gen)
    size, target, room = _framing(n, style, res, gen)
    centre = skel.joints.mean(1)
    t = frame_hand(skel.joints - centre[:, None], R, K, size, target, room)
    light = appearance.sample_light(n, gen, style.light)
    skin = _pick(appearance.sample_skin(hands, gen, style.sleeve_p), hand_of)
    background = sample_backgrounds(n, gen, style.backgrounds)
    distractors, colours = _distractors(n, style.distractors, K, t[:, 2], res, gen)
    blur = uniform(gen, (n,), *style.blur_sigma) * (res / 128)
    blur = blur * (torch.rand(n, generator=gen) < style.blur_p)
    noise = uniform(gen, (n,), *style.noise)
    noise_offset = torch.rand(n, 2, generator=gen)
    return Scenes(gesture, skel.joints, caps, plate.corners, plate.half, R, centre, t, K, light,
                  skin, background, distractors, colours, blur, noise, noise_offset)


def sample_triplets(n: int, style: Style, res: int, gen: torch.Generator,
                    hand_of: Tensor | None = None) -> Scenes:
    """``n`` viewpoint triplets as 3n scenes ordered (left, centre, right) per triplet.

    The centre camera is framed like ``style``; the left camera is the centre one orbited
    about the hand by a random step (``TRIPLET_STEP_DEG``) in a random tangent direction, the
    right camera by the same step the other way, so the three views lie on one great circle
    with the centre exactly midway (right = slerp(left, centre, 2)). Hand, pose, light (fixed
    to the hand, not the camera) and background are shared by the three views; ``hand_of``
    as in ``sample_scenes``."""
    sc = sample_scenes(n, style, res, gen, hand_of=hand_of)
    # orbit about the point on the centre camera's optical axis at the framed depth
    lateral = torch.cat([sc.t[:, :2], torch.zeros(n, 1)], 1)
    pivot = sc.centre - (sc.R.transpose(1, 2) @ lateral[..., None])[..., 0]
    t = torch.cat([torch.zeros(n, 2), sc.t[:, 2:]], 1)
    v = -sc.R[:, 2]
    axis = random_tangent(v, gen)
    step = torch.deg2rad(uniform(gen, (n,), *TRIPLET_STEP_DEG))
    R_left = orbit_step(v, sc.R, axis, -step)[1]
    R_right = orbit_step(v, sc.R, axis, step)[1]
    light_world = (sc.R.transpose(1, 2) @ sc.light.direction[..., None])[..., 0]
    out = sc.select(torch.arange(n).repeat_interleave(3))
    out.R = torch.stack([R_left, sc.R, R_right], 1).reshape(3 * n, 3, 3)
    out.centre = pivot.repeat_interleave(3, 0)
    out.t = t.repeat_interleave(3, 0)
    out.light.direction = (out.R @ light_world.repeat_interleave(3, 0)[..., None])[..., 0]
    out.noise_offset = torch.rand(3 * n, 2, generator=gen)
    return out


@dataclass
class Rendered:
    """Rendered scenes: ``images`` uint8 (n, 3, H, W); ``mask`` bool (n, H, W), the hand and
    forearm pixels; ``xyz`` (n, 21, 3) camera frame metres; ``uv`` (n, 21, 2) pixels."""
    images: Tensor
    mask: Tensor
    xyz: Tensor
    uv: Tensor


def render_scenes(sc: Scenes, res: int, gen: torch.Generator,
                  device: torch.device | str = "cpu") -> Rendered:
    """Render ``sc`` to ``res`` x ``res`` images on ``device``; ``gen`` draws the sensor noise."""
    device = torch.device(device)
    n = len(sc)

    def to(x: Tensor) -> Tensor:
        return x.to(device)

    caps_h = Capsules(*(to(getattr(sc.caps, f.name)) for f in fields(Capsules)))
    plate_h = Plate(to(sc.plate_corners), to(sc.plate_half),
                    torch.full((n,), SKIN, dtype=torch.long, device=device),
                    torch.tensor([0.0, 0.0, 1.0], device=device).expand(n, 3))
    caps, plate = to_camera(caps_h, plate_h, to(sc.R), to(sc.centre), to(sc.t))
    caps = clip_forearm(caps, FOREARM_CLIP * to(sc.t[:, 2]))
    dist = Capsules(*(to(getattr(sc.distractors, f.name)) for f in fields(Capsules)))
    caps = Capsules.cat([caps, dist])
    K = to(sc.K)
    g = rasterize(caps, plate, K, res, res, NAIL)
    albedo = torch.cat([torch.stack([sc.skin.back, sc.skin.nail, sc.skin.forearm], 1),
                        sc.distractor_colours], 1)
    light = Lighting(*(to(getattr(sc.light, f.name)) for f in fields(Lighting)))
    colour = shade(g, to(albedo), to(sc.skin.palm), light, skin_material=SKIN)
    images = composite(colour, g, draw_backgrounds(sc.background, res, res, device))
    blurred = (sc.blur > 0).nonzero().squeeze(1)
    if blurred.numel():
        idx = blurred.to(device)
        images[idx] = gaussian_blur(images[idx], sc.blur[blurred])
    add_sensor_noise(images, sc.noise, sc.noise_offset, gen)
    hand = torch.zeros(n * res * res, dtype=torch.bool, device=device)
    hand[g.pixels[g.material < DISTRACTOR]] = True
    xyz = sc.camera_joints()
    return Rendered(to_uint8(images).cpu(), hand.view(n, res, res).cpu(), xyz,
                    project(sc.K, xyz))
