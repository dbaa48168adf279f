"""The hand's flesh: tapered capsules along the bones, a thick palm plate and the forearm.

Everything here is in the hand frame (see ``hand.py``); ``scene.py`` moves it into the camera.
Every joint lies inside the flesh: bones run through their joints, the distal capsules end
half a tip radius short of the tip joints (which FreiHAND puts on the fingertip surface), the
wrist joint sits on the palm plate's proximal edge inside the forearm's first sphere, and the
thumb CMC at the start of the thumb's first capsule.
"""
from __future__ import annotations

import torch
from torch import Tensor

from benchmarks.synth.hand import HandShape, Skeleton
from benchmarks.synth.render import Capsules, Plate

SKIN, NAIL, FOREARM = 0, 1, 2           # material slots; distractors use 3, 4, ...
FOREARM_OFFSET = 0.6                    # forearm capsule starts this many radii from the wrist
FOREARM_INDEX = 15                      # position of the forearm among the hand's capsules
FOREARM_TAPER = 1.25                    # radius at the far end / radius at the wrist


def hand_body(shape: HandShape, skel: Skeleton) -> tuple[Capsules, Plate]:
    """Capsules (15 digit bones, then the forearm) and the palm plate, hand frame."""
    B = shape.batch
    digits = skel.joints[:, 1:].reshape(B, 5, 4, 3)
    a = digits[:, :, :3]
    b = digits[:, :, 1:].clone()
    r = shape.radius
    ra, rb = r[:, :, :3], r[:, :, 1:]
    tip_dir = skel.frames[:, :, 2, :, 1]                                   # (B, 5, 3)
    b[:, :, 2] = b[:, :, 2] - 0.5 * rb[:, :, 2, None] * tip_dir
    palmar = skel.frames[..., :, 2]                                       # (B, 5, 3, 3)
    nail = torch.zeros(B, 5, 3, dtype=torch.bool)
    nail[:, :, 2] = True
    digit_caps = Capsules(a.reshape(B, 15, 3), b.reshape(B, 15, 3), ra.reshape(B, 15),
                          rb.reshape(B, 15), torch.full((B, 15), SKIN, dtype=torch.long),
                          palmar.reshape(B, 15, 3), nail.reshape(B, 15))
    radius, length = shape.forearm[:, 0], shape.forearm[:, 1]
    wrist = skel.joints[:, 0]
    fa = wrist + FOREARM_OFFSET * radius[:, None] * skel.forearm_dir
    fb = wrist + length[:, None] * skel.forearm_dir
    arm_palmar = torch.tensor([0.0, 0.0, 1.0]).expand(B, 1, 3)
    forearm = Capsules(fa[:, None], fb[:, None], radius[:, None], FOREARM_TAPER * radius[:, None],
                       torch.full((B, 1), FOREARM, dtype=torch.long), arm_palmar.clone(),
                       torch.zeros(B, 1, dtype=torch.bool))
    plate = Plate(shape.palm_corners, shape.palm_half, torch.full((B,), SKIN, dtype=torch.long),
                  torch.tensor([0.0, 0.0, 1.0]).expand(B, 3).clone())
    return Capsules.cat([digit_caps, forearm]), plate


def clip_forearm(caps: Capsules, z_min: Tensor) -> Capsules:
    """Shorten the forearm (camera frame) so that its far end stays at depth >= ``z_min``
    (B,): an arm reaching towards the camera leaves the view instead of sweeping over it."""
    a, b = caps.a[:, FOREARM_INDEX], caps.b[:, FOREARM_INDEX]
    dz = b[:, 2] - a[:, 2]
    s = ((z_min - a[:, 2]) / dz.clamp_max(-1e-9)).clamp(0.0, 1.0)
    s = torch.where(b[:, 2] < z_min, s, torch.ones_like(s))
    rb = caps.rb.clone()
    b_new = caps.b.clone()
    b_new[:, FOREARM_INDEX] = a + s[:, None] * (b - a)
    ra = caps.ra[:, FOREARM_INDEX]
    rb[:, FOREARM_INDEX] = ra + s * (caps.rb[:, FOREARM_INDEX] - ra)
    return Capsules(caps.a, b_new, caps.ra, rb, caps.material, caps.palmar, caps.nail)


def to_camera(caps: Capsules, plate: Plate, R: Tensor, centre: Tensor, t: Tensor
              ) -> tuple[Capsules, Plate]:
    """Apply ``X_cam = R (X - centre) + t`` to positions and ``R`` to directions."""
    def pts(x: Tensor) -> Tensor:
        return (x - centre[:, None]) @ R.transpose(-1, -2) + t[:, None]

    def dirs(x: Tensor) -> Tensor:
        return x @ R.transpose(-1, -2)

    caps = Capsules(pts(caps.a), pts(caps.b), caps.ra, caps.rb, caps.material,
                    dirs(caps.palmar), caps.nail)
    plate = Plate(pts(plate.corners), plate.half, plate.material,
                  dirs(plate.palmar[:, None])[:, 0])
    return caps, plate
