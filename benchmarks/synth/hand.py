"""A procedural, articulated right hand: 21 joints in FreiHAND order, in metres.

Hand frame (shapes, poses and viewpoints are expressed in it): origin at the wrist joint,
``x`` radial (towards the thumb), ``y`` distal (along the middle finger), ``z`` palmar (out of
the palm); right-handed, ``x × y = z``.

Joint order (FreiHAND): 0 wrist; thumb 1-4 (CMC, MCP, IP, tip); index 5-8, middle 9-12,
ring 13-16, little 17-20 (MCP, PIP, DIP, tip). Tips are on the fingertip surface, as FreiHAND's
tips are mesh vertices.

Articulation: each digit has four angles ``(abduction, flex1, flex2, flex3)`` in radians.
For a finger they are the MCP abduction (positive = radial) and the MCP, PIP and DIP flexion
(positive = towards the palm). For the thumb they are the CMC radial abduction (away from the
index), the CMC flexion (opposition: across and in front of the palm) and the MCP and IP
flexion. ``JOINT_LIMITS_DEG`` holds the anatomical range of every angle; sampled poses are
clamped to it.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from benchmarks.joints import PARENTS

BONES = tuple((p, c) for c, p in enumerate(PARENTS) if p >= 0)

# Mean adult hand (metres, hand frame). The middle MCP->PIP bone, FreiHAND's ``scale``,
# is 2.8 cm on average (2.4-3.3 cm over the sampled shapes).
_BASE_POS = (                      # thumb CMC and the four MCPs
    (0.019, 0.024, 0.010),
    (0.023, 0.077, 0.000),
    (0.003, 0.080, -0.002),
    (-0.015, 0.075, 0.000),
    (-0.030, 0.065, 0.004),
)
_BONE_LEN = (                      # per digit: base->2nd, 2nd->3rd, 3rd->tip joint
    (0.034, 0.030, 0.026),
    (0.026, 0.019, 0.020),
    (0.028, 0.021, 0.021),
    (0.026, 0.020, 0.020),
    (0.021, 0.015, 0.018),
)
_RADIUS = (                        # flesh radius at the digit's 4 joints (base .. tip)
    (0.0140, 0.0108, 0.0097, 0.0086),
    (0.0095, 0.0085, 0.0078, 0.0071),
    (0.0098, 0.0088, 0.0080, 0.0073),
    (0.0092, 0.0082, 0.0075, 0.0069),
    (0.0082, 0.0073, 0.0067, 0.0062),
)
_PALM_HALF_THICKNESS = 0.0125
_WRIST_HALF_WIDTH = 0.018
_FOREARM_RADIUS = 0.024
_FOREARM_LENGTH = 0.22
# Thumb rest frame: its rest direction (CMC -> MCP of an open hand) and its flexion direction,
# pronated about 60 degrees towards the palm relative to the fingers.
_THUMB_REST_DIR = (0.683, 0.683, 0.259)
_THUMB_FLEX_DIR = (-0.6, 0.0, 0.8)

JOINT_LIMITS_DEG = torch.tensor([  # (digit, dof, min/max)
    [[-35.0, 30.0], [-15.0, 70.0], [-10.0, 60.0], [-15.0, 85.0]],
    [[-15.0, 25.0], [-25.0, 90.0], [-5.0, 110.0], [-5.0, 85.0]],
    [[-15.0, 15.0], [-25.0, 90.0], [-5.0, 110.0], [-5.0, 85.0]],
    [[-20.0, 10.0], [-25.0, 90.0], [-5.0, 110.0], [-5.0, 85.0]],
    [[-30.0, 10.0], [-25.0, 90.0], [-5.0, 110.0], [-5.0, 85.0]],
])
WRIST_LIMITS_DEG = torch.tensor([[-50.0, 50.0], [-20.0, 20.0]])  # flexion, radial deviation

# Thumb configurations shared by several gestures (abduction, CMC flexion, MCP, IP), degrees.
_THUMB_OPEN = (15.0, 0.0, 5.0, 5.0)
_THUMB_OVER_FINGERS = (-20.0, 55.0, 45.0, 35.0)     # folded over the curled index/middle
_THUMB_ACROSS_PALM = (-30.0, 68.0, 50.0, 30.0)      # tucked into the palm (four)
_THUMB_UP = (-15.0, 10.0, 0.0, -5.0)                 # extended along the fist
_CURLED = (85.0, 100.0, 60.0)                        # finger flexion of a fist (MCP, PIP, DIP)
_STRAIGHT = (5.0, 5.0, 3.0)

# Gesture table: (thumb, index, middle, ring, little), each (abduction, flex1, flex2, flex3) in
# degrees. Contact gestures (ok, pinch) bring the thumb tip to the index tip on the mean hand.
GESTURE_TABLE_DEG: dict[str, tuple[tuple[float, float, float, float], ...]] = {
    "open": (_THUMB_OPEN, (10.0, *_STRAIGHT), (0.0, *_STRAIGHT), (-8.0, *_STRAIGHT),
             (-18.0, *_STRAIGHT)),
    "fist": (_THUMB_OVER_FINGERS, (0.0, *_CURLED), (0.0, *_CURLED), (0.0, *_CURLED),
             (0.0, *_CURLED)),
    "point": (_THUMB_OVER_FINGERS, (3.0, *_STRAIGHT), (0.0, *_CURLED), (0.0, *_CURLED),
              (0.0, *_CURLED)),
    "pinch": ((-21.4, 31.1, 8.1, 14.5), (0.0, 45.0, 35.0, 15.0), (0.0, 70.0, 80.0, 50.0),
              (0.0, 80.0, 90.0, 55.0), (0.0, 85.0, 95.0, 55.0)),
    "peace": (_THUMB_OVER_FINGERS, (12.0, *_STRAIGHT), (-8.0, *_STRAIGHT), (0.0, *_CURLED),
              (0.0, *_CURLED)),
    "thumbs_up": (_THUMB_UP, (0.0, *_CURLED), (0.0, *_CURLED), (0.0, *_CURLED),
                  (0.0, *_CURLED)),
    "ok": ((-20.7, -4.5, 34.6, 55.4), (2.0, 45.0, 60.0, 30.0), (-3.0, 10.0, 10.0, 5.0),
           (-10.0, 15.0, 12.0, 8.0), (-22.0, 20.0, 15.0, 10.0)),
    "three": (_THUMB_OVER_FINGERS, (10.0, *_STRAIGHT), (0.0, *_STRAIGHT), (-8.0, *_STRAIGHT),
              (0.0, *_CURLED)),
    "four": (_THUMB_ACROSS_PALM, (8.0, *_STRAIGHT), (0.0, *_STRAIGHT), (-6.0, *_STRAIGHT),
             (-14.0, *_STRAIGHT)),
    "rock": (_THUMB_OVER_FINGERS, (8.0, *_STRAIGHT), (0.0, *_CURLED), (0.0, *_CURLED),
             (-15.0, *_STRAIGHT)),
    "call": ((25.0, -5.0, 0.0, -5.0), (0.0, *_CURLED), (0.0, *_CURLED), (0.0, *_CURLED),
             (-20.0, *_STRAIGHT)),
}
GESTURES = tuple(GESTURE_TABLE_DEG)


def gesture_angles(dtype: torch.dtype = torch.float32) -> Tensor:
    """The gesture table as a tensor (G, 5, 4) of radians, in ``GESTURES`` order."""
    table = torch.tensor([GESTURE_TABLE_DEG[g] for g in GESTURES], dtype=torch.float64)
    return torch.deg2rad(table).to(dtype)


def _uniform(gen: torch.Generator, shape: tuple[int, ...], lo: float, hi: float) -> Tensor:
    return lo + (hi - lo) * torch.rand(shape, generator=gen)


def _trunc_normal(gen: torch.Generator, shape: tuple[int, ...], std: float,
                  clip: float = 2.0) -> Tensor:
    return (torch.randn(shape, generator=gen) * std).clamp(-clip * std, clip * std)


@dataclass
class HandShape:
    """Per-hand geometry (batch B), metres, hand frame.

    ``base``: (B, 5, 3) thumb CMC and finger MCP positions; ``bone``: (B, 5, 3) bone lengths
    per digit; ``radius``: (B, 5, 4) flesh radius at each digit joint; ``palm_corners``: (B, 4, 3)
    the palm plate (wrist radial, index MCP, little MCP, wrist ulnar) in the plane ``z = 0``;
    ``palm_half``: (B,) half the palm thickness; ``forearm``: (B, 2) radius at the wrist and
    length of the visible forearm.
    """
    base: Tensor
    bone: Tensor
    radius: Tensor
    palm_corners: Tensor
    palm_half: Tensor
    forearm: Tensor

    @property
    def batch(self) -> int:
        return self.base.shape[0]


def mean_shape(batch: int = 1) -> HandShape:
    """The mean hand, repeated ``batch`` times."""
    base = torch.tensor(_BASE_POS).expand(batch, 5, 3).clone()
    bone = torch.tensor(_BONE_LEN).expand(batch, 5, 3).clone()
    radius = torch.tensor(_RADIUS).expand(batch, 5, 4).clone()
    return _assemble(base, bone, radius, torch.full((batch,), _PALM_HALF_THICKNESS),
                     torch.tensor([_FOREARM_RADIUS, _FOREARM_LENGTH]).expand(batch, 2).clone())


def _assemble(base: Tensor, bone: Tensor, radius: Tensor, palm_half: Tensor,
              forearm: Tensor, wrist_half: Tensor | None = None) -> HandShape:
    batch = base.shape[0]
    if wrist_half is None:
        wrist_half = torch.full((batch,), _WRIST_HALF_WIDTH)
    zeros = torch.zeros(batch)
    corners = torch.stack([
        torch.stack([wrist_half, zeros, zeros], -1),
        torch.stack([base[:, 1, 0], base[:, 1, 1], zeros], -1),
        torch.stack([base[:, 4, 0], base[:, 4, 1], zeros], -1),
        torch.stack([-wrist_half, zeros, zeros], -1),
    ], 1)
    return HandShape(base, bone, radius, corners, palm_half, forearm)


def sample_shapes(batch: int, gen: torch.Generator) -> HandShape:
    """Random adult hands: global size (sd 6 %), palm width (sd 4 %), per-digit and
    per-bone lengths (sd 3 % and 2 %) and flesh thickness (sd 7 %) around the mean hand.
    Every factor is truncated at two standard deviations."""
    size = torch.exp(_trunc_normal(gen, (batch, 1, 1), 0.06))
    width = 1.0 + _trunc_normal(gen, (batch, 1), 0.04)
    digit = 1.0 + _trunc_normal(gen, (batch, 5, 1), 0.03)
    per_bone = 1.0 + _trunc_normal(gen, (batch, 5, 3), 0.02)
    thick = 1.0 + _trunc_normal(gen, (batch, 1, 1), 0.07)
    base_jitter = _trunc_normal(gen, (batch, 5, 3), 0.0015)
    forearm_len = _uniform(gen, (batch,), 0.9, 1.1) * _FOREARM_LENGTH

    base = torch.tensor(_BASE_POS) + base_jitter
    base[:, :, 0] = base[:, :, 0] * width
    base = base * size
    bone = torch.tensor(_BONE_LEN) * digit * per_bone * size
    radius = torch.tensor(_RADIUS) * thick * size
    s = size.view(batch)
    return _assemble(base, bone, radius, _PALM_HALF_THICKNESS * thick.view(batch) * s,
                     torch.stack([_FOREARM_RADIUS * thick.view(batch) * s, forearm_len * s], -1),
                     _WRIST_HALF_WIDTH * width.view(batch) * s)


def clamp_to_limits(angles: Tensor) -> Tensor:
    """Clamp articulation angles (..., 5, 4) in radians to ``JOINT_LIMITS_DEG``."""
    lim = torch.deg2rad(JOINT_LIMITS_DEG).to(angles)
    return torch.maximum(torch.minimum(angles, lim[..., 1]), lim[..., 0])


def sample_poses(gesture: Tensor, gen: torch.Generator, blend_max: float = 0.35,
                 blend_p: float = 0.6, noise_deg: float = 6.0) -> tuple[Tensor, Tensor]:
    """Random poses around the given gesture classes (B,) long.

    With probability ``blend_p`` the pose is interpolated towards another random gesture by a
    weight ~ U(0, blend_max) (< 0.5, so the labelled gesture stays the nearest); then Gaussian
    noise (``noise_deg`` per angle, truncated at 2 sd) is added and the result clamped to the
    joint limits. Returns ``(angles (B, 5, 4), wrist (B, 2))`` in radians; ``wrist`` holds the
    wrist flexion and radial deviation, uniform within ``WRIST_LIMITS_DEG``.
    """
    batch = gesture.shape[0]
    table = gesture_angles()
    other = torch.randint(0, len(GESTURES), (batch,), generator=gen)
    weight = _uniform(gen, (batch,), 0.0, blend_max)
    weight = weight * (torch.rand(batch, generator=gen) < blend_p)
    noise = torch.deg2rad(_trunc_normal(gen, (batch, 5, 4), noise_deg))
    w = weight.view(batch, 1, 1)
    angles = clamp_to_limits((1 - w) * table[gesture] + w * table[other] + noise)
    lim = torch.deg2rad(WRIST_LIMITS_DEG)
    wrist = lim[:, 0] + (lim[:, 1] - lim[:, 0]) * torch.rand(batch, 2, generator=gen)
    return angles, wrist


def _rot_x(theta: Tensor) -> Tensor:
    c, s = torch.cos(theta), torch.sin(theta)
    o, z = torch.ones_like(theta), torch.zeros_like(theta)
    return torch.stack([o, z, z, z, c, -s, z, s, c], -1).view(*theta.shape, 3, 3)


def _rot_z(theta: Tensor) -> Tensor:
    c, s = torch.cos(theta), torch.sin(theta)
    o, z = torch.ones_like(theta), torch.zeros_like(theta)
    return torch.stack([c, -s, z, s, c, z, z, z, o], -1).view(*theta.shape, 3, 3)


def rest_frames() -> Tensor:
    """Rest orientation of each digit's base (5, 3, 3): columns are the digit's (x, y, z),
    ``y`` along the first bone, ``z`` its flexion direction; fingers use the hand frame."""
    y = torch.tensor(_THUMB_REST_DIR)
    y = y / y.norm()
    z = torch.tensor(_THUMB_FLEX_DIR)
    z = z - (z @ y) * y
    z = z / z.norm()
    thumb = torch.stack([torch.linalg.cross(y, z), y, z], -1)
    return torch.cat([thumb[None], torch.eye(3).expand(4, 3, 3)], 0)


@dataclass
class Skeleton:
    """Forward kinematics output, hand frame, metres.

    ``joints``: (B, 21, 3). ``frames``: (B, 5, 3, 3, 3) rotation of each digit bone (digit,
    bone, 3x3; columns x, y, z with y along the bone and z its palmar side). ``forearm_dir``:
    (B, 3) unit vector from the wrist along the forearm.
    """
    joints: Tensor
    frames: Tensor
    forearm_dir: Tensor


def forward_kinematics(shape: HandShape, angles: Tensor, wrist: Tensor | None = None) -> Skeleton:
    """Joint positions of ``shape`` posed by ``angles`` (B, 5, 4) radians (see module doc).

    Every bone keeps its length in every pose: a joint is its parent plus the bone length
    times the bone's rotated ``y`` axis. ``wrist`` (B, 2) bends the forearm relative to the
    hand (flexion about x, radial deviation about z); the hand frame itself never moves.
    """
    batch = shape.batch
    dtype = angles.dtype
    frame = rest_frames().to(dtype).expand(batch, 5, 3, 3)
    frame = frame @ _rot_z(-angles[..., 0]) @ _rot_x(angles[..., 1])
    pos = shape.base.to(dtype)
    chain = [pos]
    frames = []
    for k in range(3):
        if k > 0:
            frame = frame @ _rot_x(angles[..., k + 1])
        frames.append(frame)
        pos = pos + frame[..., :, 1] * shape.bone[..., k, None].to(dtype)
        chain.append(pos)
    digits = torch.stack(chain, 2)                                  # (B, 5, 4, 3)
    joints = torch.cat([torch.zeros(batch, 1, 3, dtype=dtype), digits.reshape(batch, 20, 3)], 1)
    if wrist is None:
        wrist = torch.zeros(batch, 2, dtype=dtype)
    arm = _rot_x(-wrist[:, 0].to(dtype)) @ _rot_z(-wrist[:, 1].to(dtype))
    forearm_dir = -arm[..., :, 1]
    return Skeleton(joints, torch.stack(frames, 2), forearm_dir)


def middle_scale(joints: Tensor) -> Tensor:
    """FreiHAND's ``scale``: |xyz[9] - xyz[10]|, the middle MCP->PIP bone (metres)."""
    return (joints[..., 9, :] - joints[..., 10, :]).norm(dim=-1)


def bone_lengths(joints: Tensor) -> Tensor:
    """Lengths (..., 20) of ``BONES`` in ``joints`` (..., 21, 3)."""
    parent = torch.tensor([p for p, _ in BONES])
    child = torch.tensor([c for _, c in BONES])
    return (joints[..., child, :] - joints[..., parent, :]).norm(dim=-1)


def flexion_angles(joints: Tensor) -> Tensor:
    """Unsigned bends (..., 5, 3) in radians of each digit, 0 = straight: at its base joint
    (between the wrist -> base direction and the first bone), its second and third joint."""
    j = joints
    digit_idx = torch.arange(5) * 4 + 1
    chain = torch.stack([j[..., 0:1, :].expand(*j.shape[:-2], 5, 3)]
                        + [j[..., digit_idx + k, :] for k in range(4)], -2)   # (..., 5, 5, 3)
    bones = chain[..., 1:, :] - chain[..., :-1, :]
    u = bones / bones.norm(dim=-1, keepdim=True)
    cos = (u[..., 1:, :] * u[..., :-1, :]).sum(-1).clamp(-1.0, 1.0)
    return torch.arccos(cos)
