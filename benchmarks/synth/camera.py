"""Perspective cameras around a hand: viewpoints on the view sphere, intrinsics, framing.

Conventions:
- Camera frame (OpenCV, like FreiHAND): x right, y down, z forward, metres. A point ``X`` projects
  to ``uv = (K X)[:2] / (K X)[2]`` in pixels, x right and y down; pixel (row i, col j) covers
  ``[j, j+1) x [i, i+1)``, so its centre is ``(j + 0.5, i + 0.5)`` and the image centre is
  ``(res / 2, res / 2)``.
- Viewpoint: the direction ``v`` from the hand centre to the camera, in the hand frame
  (x radial, y distal, z palmar; see ``hand.py``), as ``(azimuth, elevation)`` in degrees with
  ``v = (cos(el) sin(az), sin(el), cos(el) cos(az))``: az 0 = looking at the palm, az 180 = at the
  back of the hand, az 90 = from the thumb side, el 90 = from the fingertips.
- Extrinsics: ``X_cam = R (X_hand - centre) + t``; ``R`` rotates the hand frame into the camera.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

# FreiHAND-like intrinsics for a 224-pixel crop: focal lengths of several hundred pixels.
FOCAL_RANGE_224 = (380.0, 620.0)
FREIHAND_RES = 224


def direction_from_viewpoint(az_el_deg: Tensor) -> Tensor:
    """Unit view directions (..., 3) from (azimuth, elevation) degrees (..., 2)."""
    az, el = torch.deg2rad(az_el_deg).unbind(-1)
    return torch.stack([torch.cos(el) * torch.sin(az), torch.sin(el),
                        torch.cos(el) * torch.cos(az)], -1)


def viewpoint_from_direction(v: Tensor) -> Tensor:
    """(azimuth, elevation) degrees (..., 2) of directions ``v`` (..., 3), az in (-180, 180]."""
    v = v / v.norm(dim=-1, keepdim=True)
    el = torch.asin(v[..., 1].clamp(-1.0, 1.0))
    az = torch.atan2(v[..., 0], v[..., 2])
    return torch.rad2deg(torch.stack([az, el], -1))


def uniform_directions(n: int, gen: torch.Generator) -> Tensor:
    """``n`` directions uniform on the unit sphere (n, 3)."""
    v = torch.randn(n, 3, generator=gen)
    return v / v.norm(dim=-1, keepdim=True)


def directions_outside_cap(axis: Tensor, cap_deg: float, gen: torch.Generator,
                           tries: int = 8) -> Tensor:
    """Directions (n, 3) uniform on the sphere minus the cap of half-angle ``cap_deg`` around
    each ``axis`` (n, 3, unit): the first of ``tries`` uniform candidates outside the cap (a
    candidate inside it is mirrored out in the rare case that all fall inside)."""
    n = axis.shape[0]
    cand = uniform_directions(n * tries, gen).view(n, tries, 3)
    cos_cap = math.cos(math.radians(cap_deg))
    inside = (cand * axis[:, None]).sum(-1) > cos_cap
    first = torch.argmax((~inside).to(torch.int8), dim=1)
    v = cand[torch.arange(n), first]
    stuck = inside[torch.arange(n), first]
    mirrored = v - 2 * (v * axis).sum(-1, keepdim=True) * axis
    return torch.where(stuck[:, None], mirrored, v)


def look_rotation(v: Tensor, roll: Tensor) -> Tensor:
    """World(hand)-to-camera rotations (n, 3, 3) for cameras at direction ``v`` (n, 3) looking
    at the hand centre, rolled by ``roll`` (n,) radians about the optical axis.

    The unrolled camera keeps the hand's distal axis ``y`` pointing up in the image (or the
    palmar axis ``z`` when the camera looks along ``y``).
    """
    forward = -v
    up_ref = torch.tensor([0.0, 1.0, 0.0]).to(v).expand_as(v)
    alt = torch.tensor([0.0, 0.0, 1.0]).to(v).expand_as(v)
    up_ref = torch.where((v[:, 1].abs() > 0.98)[:, None], alt, up_ref)
    right = torch.linalg.cross(forward, up_ref)
    right = right / right.norm(dim=-1, keepdim=True)
    down = torch.linalg.cross(forward, right)
    c, s = torch.cos(roll)[:, None], torch.sin(roll)[:, None]
    right, down = c * right + s * down, -s * right + c * down
    return torch.stack([right, down, forward], 1)


def axis_angle(axis: Tensor, angle: Tensor) -> Tensor:
    """Rotation matrices (n, 3, 3) about unit ``axis`` (n, 3) by ``angle`` (n,) radians."""
    x, y, z = axis.unbind(-1)
    zero = torch.zeros_like(x)
    k = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], -1).view(-1, 3, 3)
    s, c = torch.sin(angle)[:, None, None], torch.cos(angle)[:, None, None]
    eye = torch.eye(3, dtype=axis.dtype).expand_as(k)
    return eye + s * k + (1 - c) * (k @ k)


def sample_intrinsics(n: int, res: int, gen: torch.Generator,
                      centre_jitter: float = 0.01) -> Tensor:
    """FreiHAND-like intrinsics (n, 3, 3) for ``res``-pixel images: focal length uniform in
    ``FOCAL_RANGE_224`` scaled by res / 224, fx/fy within 1 %, principal point within
    ``centre_jitter`` x res of the image centre."""
    lo, hi = FOCAL_RANGE_224
    f = (lo + (hi - lo) * torch.rand(n, generator=gen)) * res / FREIHAND_RES
    aspect = 1.0 + 0.01 * (2 * torch.rand(n, generator=gen) - 1)
    c = res / 2 + centre_jitter * res * (2 * torch.rand(n, 2, generator=gen) - 1)
    K = torch.zeros(n, 3, 3)
    K[:, 0, 0], K[:, 1, 1] = f, f * aspect
    K[:, :2, 2] = c
    K[:, 2, 2] = 1.0
    return K


def project(K: Tensor, x_cam: Tensor) -> Tensor:
    """Pixel coordinates (..., P, 2) of camera-frame points (..., P, 3)."""
    uvw = x_cam @ K.transpose(-1, -2)
    return uvw[..., :2] / uvw[..., 2:]


def frame_hand(points: Tensor, R: Tensor, K: Tensor, diameter: Tensor, centre: Tensor,
               max_extent: Tensor, iters: int = 4) -> Tensor:
    """Translations ``t`` (n, 3) that frame ``points`` (n, P, 3; hand frame, centred on the
    hand centre) for cameras ``R``, ``K``.

    The depth makes the points' bounding sphere (radius: the farthest point) project to
    ``diameter`` (n,) pixels, a size that does not depend on the viewpoint (a hand seen end-on
    looks as small as it is); the lateral offset puts the centre of the projected bounding box
    at ``centre`` (n, 2) pixels; where perspective would make that box longer than
    ``max_extent`` (n,) pixels, the camera backs off until it fits. Fixed-point iterations."""
    y = points @ R.transpose(-1, -2)
    f = 0.5 * (K[:, 0, 0] + K[:, 1, 1])
    depth = f * 2 * points.norm(dim=-1).amax(1) / diameter
    t = torch.stack([torch.zeros_like(depth), torch.zeros_like(depth), depth], -1)
    focal = torch.stack([K[:, 0, 0], K[:, 1, 1]], -1)
    for _ in range(iters):
        uv = project(K, y + t[:, None])
        size = (uv.amax(1) - uv.amin(1)).amax(-1)
        t = t * (size / max_extent).clamp_min(1.0)[:, None]    # about the camera: same centre
        uv = project(K, y + t[:, None])
        shift = (centre - 0.5 * (uv.amin(1) + uv.amax(1))) * t[:, 2:] / focal
        t = t + torch.cat([shift, torch.zeros_like(shift[:, :1])], -1)
    return t


def orbit_step(v: Tensor, R: Tensor, axis: Tensor, step: Tensor) -> tuple[Tensor, Tensor]:
    """Move cameras (directions ``v`` (n, 3), rotations ``R``) along the great circle about
    ``axis`` (n, 3, unit, orthogonal to v) by ``step`` (n,) radians around the hand centre.
    Returns the new directions and rotations; ``±step`` give views symmetric about ``v``
    (the right view is the slerp continuation of left -> centre)."""
    Q = axis_angle(axis, step)
    return (Q @ v[..., None])[..., 0], R @ Q.transpose(-1, -2)


def random_tangent(v: Tensor, gen: torch.Generator) -> Tensor:
    """Random unit vectors (n, 3) orthogonal to ``v`` (n, 3), uniform in angle."""
    a = torch.randn(v.shape, generator=gen, dtype=v.dtype)
    a = a - (a * v).sum(-1, keepdim=True) * v
    return a / a.norm(dim=-1, keepdim=True)


def angle_between(u: Tensor, v: Tensor) -> Tensor:
    """Angles (...) in radians between unit vectors, stable near 0 and pi."""
    return 2 * torch.atan2((u - v).norm(dim=-1), (u + v).norm(dim=-1))
