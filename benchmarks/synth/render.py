"""Batched z-buffer renderer for tapered capsules and a thick palm plate, in torch.

Geometry is given in the camera frame (see ``camera.py``: x right, y down, z forward, metres)
with per-image intrinsics ``K``; pixel (row i, col j) is sampled at its centre (j + 0.5, i + 0.5).
Two primitive kinds:

- ``Capsules``: a sphere swept along a segment with a radius varying linearly from ``ra`` to
  ``rb`` (finger bones, forearm, distractors). Each is drawn as a screen-space impostor: the
  projected segment with projected radii gives the silhouette, the depth is the segment depth
  minus the spherical bulge, and the nearer end cap is tested separately so that a segment
  pointing at the camera occludes correctly.
- ``Plate``: a convex planar quad thickened by ``half`` on both sides (the palm). Its visible
  face is ray-cast exactly; three of its edges are rounded by capsules of radius ``half``
  (the fourth, the wrist, is covered by the forearm).

Pass 1 evaluates every (image, primitive) pair inside a window around its projected bounding
box; pairs are bucketed by window size and laid out with the pairs on the last, contiguous axis
so that each bucket is a few long vectorised tensor ops. Visibility is resolved with a packed
(depth, primitive id) key and ``scatter_reduce(amin)``: exact and order independent, hence
deterministic. Pass 2, shading and compositing touch only covered pixels.

Silhouettes are anti-aliased by a 3 x 3 box filter of the coverage mask: a pixel's alpha is
the covered fraction of its neighbourhood, and a partly covered pixel outside the silhouette
takes the mean colour of its covered neighbours.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

NEAR = 1e-2                      # metres; primitives closer than this are not drawn
PLATE_TILT = 0.4                 # bend of the plate's shading normal at its sides
_ID_BITS = 10                    # primitive ids per image: up to 1023
_ID_MASK = (1 << _ID_BITS) - 1
# "nothing here": decodes to depth +inf and an id no primitive has, above every real key
_NO_HIT = 0x7F800000 | _ID_MASK
_SCREEN_KEYS = ("ua", "va", "ub", "vb", "Ra", "Rb", "za", "zb", "un", "vn", "Rn", "zn", "f")


@dataclass
class Capsules:
    """Tapered capsules (batch B, P per image), camera frame, metres.

    ``a``, ``b``: (B, P, 3) segment ends; ``ra``, ``rb``: (B, P) radii at the ends (a radius
    <= 0 hides the capsule); ``material``: (B, P) long index into the albedo table;
    ``palmar``: (B, P, 3) unit vector of the bone's palmar side (zero for non-hand shapes),
    used for the palm tint and nails; ``nail``: (B, P) bool, a nail is drawn on the dorsal
    side of the ``b`` half.
    """
    a: Tensor
    b: Tensor
    ra: Tensor
    rb: Tensor
    material: Tensor
    palmar: Tensor
    nail: Tensor

    @staticmethod
    def cat(parts: list["Capsules"]) -> "Capsules":
        return Capsules(*(torch.cat([getattr(p, k) for p in parts], 1)
                          for k in ("a", "b", "ra", "rb", "material", "palmar", "nail")))


@dataclass
class Plate:
    """A convex quad ``corners`` (B, 4, 3) in order around its boundary, thickened by
    ``half`` (B,) on both sides; ``material`` (B,) long; ``palmar`` (B, 3) unit normal of the
    palmar face."""
    corners: Tensor
    half: Tensor
    material: Tensor
    palmar: Tensor

    @staticmethod
    def hidden(batch: int, device: torch.device) -> "Plate":
        """A plate behind the camera, which draws nothing."""
        corners = torch.tensor([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]], device=device)
        corners = torch.cat([corners, torch.full((4, 1), -1.0, device=device)], 1)
        return Plate(corners.expand(batch, 4, 3), torch.full((batch,), 0.01, device=device),
                     torch.zeros(batch, dtype=torch.long, device=device),
                     torch.tensor([0.0, 0.0, 1.0], device=device).expand(batch, 3))

    def rim(self) -> Capsules:
        """Capsules of radius ``half`` along the edges 0-1, 1-2 and 2-3 that round the plate;
        the edge 3-0 is where the plate meets other flesh (the forearm, for a palm)."""
        r = self.half[:, None].expand(-1, 3)
        mat = self.material[:, None].expand(-1, 3)
        return Capsules(self.corners[:, :3], self.corners[:, 1:], r, r, mat,
                        self.palmar[:, None].expand(-1, 3, 3),
                        torch.zeros_like(mat, dtype=torch.bool))


@dataclass
class GBuffer:
    """What the rasterizer knows about the visible surfaces of B images of H x W pixels.

    ``pixels`` (N,): flat indices into B*H*W of the covered pixels, ascending; for them
    ``depth`` (N,) metres, ``normal`` (3, N) unit camera-frame normals facing the camera,
    ``material`` (N,) long (nails resolved to ``nail_material``), ``palmar`` (N,) cosine
    between the normal and the bone's palmar side, ``occlusion`` (N,) contact-shadow factor,
    ``alpha`` (N,) coverage (below 1 on the silhouette). ``fringe`` (M,): pixels outside every
    silhouette with a covered 8-neighbour, with ``fringe_alpha`` (M,) and ``fringe_from``
    (8, M) positions in ``pixels`` of their neighbours (-1 where not covered).
    """
    shape: tuple[int, int, int]
    pixels: Tensor
    depth: Tensor
    normal: Tensor
    material: Tensor
    palmar: Tensor
    occlusion: Tensor
    alpha: Tensor
    fringe: Tensor
    fringe_alpha: Tensor
    fringe_from: Tensor


class _Screen:
    """Projected capsule parameters as a table (F, B*P), rows named by ``_SCREEN_KEYS``."""

    def __init__(self, caps: Capsules, K: Tensor):
        fx, fy = K[:, 0, 0, None], K[:, 1, 1, None]
        cx, cy = K[:, 0, 2, None], K[:, 1, 2, None]
        f = 0.5 * (fx + fy)
        za = caps.a[..., 2].clamp_min(NEAR)
        zb = caps.b[..., 2].clamp_min(NEAR)
        visible = (caps.a[..., 2] > NEAR) & (caps.b[..., 2] > NEAR) & (caps.ra > 0) & (caps.rb > 0)
        zero = torch.zeros_like(za)
        ua, va = fx * caps.a[..., 0] / za + cx, fy * caps.a[..., 1] / za + cy
        ub, vb = fx * caps.b[..., 0] / zb + cx, fy * caps.b[..., 1] / zb + cy
        Ra = torch.where(visible, caps.ra * f / za, zero)
        Rb = torch.where(visible, caps.rb * f / zb, zero)
        near_a = za <= zb
        cols = {"ua": ua, "va": va, "ub": ub, "vb": vb, "Ra": Ra, "Rb": Rb, "za": za, "zb": zb,
                "un": torch.where(near_a, ua, ub), "vn": torch.where(near_a, va, vb),
                "Rn": torch.where(near_a, Ra, Rb), "zn": torch.where(near_a, za, zb),
                "f": f.expand_as(za)}
        self.table = torch.stack([cols[k].flatten() for k in _SCREEN_KEYS])
        self.visible = visible.flatten()

    def rows(self, members: Tensor) -> dict[str, Tensor]:
        return dict(zip(_SCREEN_KEYS, self.table.index_select(1, members).unbind(0)))

    def bbox(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Float pixel bounds (x_lo, x_hi, y_lo, y_hi) (B*P,) of the silhouettes."""
        t = dict(zip(_SCREEN_KEYS, self.table.unbind(0)))
        x_lo = torch.minimum(t["ua"] - t["Ra"], t["ub"] - t["Rb"])
        x_hi = torch.maximum(t["ua"] + t["Ra"], t["ub"] + t["Rb"])
        y_lo = torch.minimum(t["va"] - t["Ra"], t["vb"] - t["Rb"])
        y_hi = torch.maximum(t["va"] + t["Ra"], t["vb"] + t["Rb"])
        empty = torch.full_like(x_lo, -1e9)
        x_hi = torch.where(self.visible, x_hi, empty)
        return x_lo, x_hi, y_lo, y_hi


def _capsule_eval(s: dict[str, Tensor], px: Tensor, py: Tensor) -> dict[str, Tensor]:
    """Impostor evaluation at pixel centres ``(px, py)``; ``s`` holds per-primitive scalars
    that broadcast against them (pass 1: px (1, X, N), py (Y, 1, N), s (N,); pass 2: all (N,)).

    Returns ``depth`` (metres), ``hit`` and what the normal needs."""
    abx, aby = s["ub"] - s["ua"], s["vb"] - s["va"]
    inv_l2 = 1.0 / (abx * abx + aby * aby).clamp_min(1e-12)
    dxa, dya = px - s["ua"], py - s["va"]
    t = (dxa * (abx * inv_l2) + dya * (aby * inv_l2)).clamp_(0.0, 1.0)
    ex = torch.addcmul(dxa, t, abx, value=-1.0)
    ey = torch.addcmul(dya, t, aby, value=-1.0)
    d2 = (ex * ex).addcmul_(ey, ey)
    radius = torch.addcmul(s["Ra"], t, s["Rb"] - s["Ra"])
    z = torch.addcmul(s["za"], t, s["zb"] - s["za"])
    h2 = (radius * radius).sub_(d2)
    depth_body = torch.addcmul(z, h2.clamp_min(0.0).sqrt_(), z / s["f"], value=-1.0)
    dxn, dyn = px - s["un"], py - s["vn"]
    h2n = (s["Rn"] * s["Rn"] - dyn * dyn) - dxn * dxn
    cap_hit = h2n > 0
    depth_cap = torch.addcmul(s["zn"], h2n.clamp_min(0.0).sqrt_(), s["zn"] / s["f"], value=-1.0)
    depth_cap = torch.where(cap_hit, depth_cap, float("inf"))
    hit = (h2 > 0).logical_or_(cap_hit)
    return {"depth": torch.minimum(depth_body, depth_cap), "hit": hit,
            "depth_body": depth_body, "depth_cap": depth_cap, "t": t, "ex": ex, "ey": ey,
            "h2": h2, "dxn": dxn, "dyn": dyn, "h2n": h2n}


def _window_sizes(limit: int) -> Tensor:
    """Allowed window sides: 4, 5, 7, ... growing by about 1.3x, the last one ``limit``."""
    sizes = [min(4, limit)]
    while sizes[-1] < limit:
        sizes.append(min(limit, max(sizes[-1] + 1, round(sizes[-1] * 1.3))))
    return torch.tensor(sizes)


class _Windows:
    """Integer windows for float bounds, bucketed by padded size and kept inside the image."""

    def __init__(self, x_lo: Tensor, x_hi: Tensor, y_lo: Tensor, y_hi: Tensor, W: int, H: int):
        x0 = x_lo.floor().clamp(0, W).long()
        x1 = x_hi.ceil().clamp(0, W).long()
        y0 = y_lo.floor().clamp(0, H).long()
        y1 = y_hi.ceil().clamp(0, H).long()
        w_sizes, h_sizes = _window_sizes(W).to(x0.device), _window_sizes(H).to(x0.device)
        bw = torch.searchsorted(w_sizes, (x1 - x0).contiguous())
        bh = torch.searchsorted(h_sizes, (y1 - y0).contiguous())
        live = (x1 > x0) & (y1 > y0)
        key = torch.where(live, bw * len(h_sizes) + bh, torch.full_like(bw, -1))
        self.x0 = torch.minimum(x0, W - w_sizes[bw.clamp_max(len(w_sizes) - 1)])
        self.y0 = torch.minimum(y0, H - h_sizes[bh.clamp_max(len(h_sizes) - 1)])
        self.buckets: list[tuple[Tensor, int, int]] = []
        for k in torch.unique(key).tolist():
            if k >= 0:
                members = (key == k).nonzero().squeeze(1)
                self.buckets.append((members, int(w_sizes[k // len(h_sizes)]),
                                     int(h_sizes[k % len(h_sizes)])))


class _Buffers:
    """Flat z-buffer keys of B images, plus one trash slot for masked writes."""

    def __init__(self, B: int, H: int, W: int, device: torch.device):
        self.B, self.H, self.W = B, H, W
        self.trash = B * H * W
        self.keys = torch.full((B * H * W + 1,), _NO_HIT, dtype=torch.int32, device=device)

    def window(self, image: Tensor, x0: Tensor, y0: Tensor, sx: int, sy: int
               ) -> tuple[Tensor, Tensor, Tensor]:
        """Pixel centres (1, sx, N) and (sy, 1, N) and flat indices (sy, sx, N) of windows of
        members in images ``image`` (N,). Members are the last, contiguous axis."""
        xs = x0 + torch.arange(sx, device=x0.device)[:, None]                 # (sx, N)
        ys = y0 + torch.arange(sy, device=x0.device)[:, None]                 # (sy, N)
        index = (image * (self.H * self.W) + ys * self.W)[:, None, :] + xs[None, :, :]
        return (xs.to(torch.float32) + 0.5)[None], (ys.to(torch.float32) + 0.5)[:, None], index

    def write(self, index: Tensor, hit: Tensor, key: Tensor) -> None:
        """Keep the smaller key where ``hit``."""
        index = torch.where(hit, index, self.trash)
        self.keys.scatter_reduce_(0, index.flatten(), key.flatten(), reduce="amin")


def _depth_key(depth: Tensor, pid: Tensor) -> Tensor:
    """Pack a positive float32 depth and a primitive id into one int32 ordered by depth first:
    the depth's IEEE-754 bit pattern (ordered like positive floats) with its lowest
    ``_ID_BITS`` mantissa bits replaced by the id, a relative depth resolution of 1.2e-4."""
    bits = depth.clamp_min(1e-6).view(torch.int32)
    return (bits & ~_ID_MASK) | pid.to(torch.int32)


class _PlateFace:
    """The camera-facing face of a ``Plate``: plane ``n . x = h`` and inward edge normals.

    Its shading normal is bent like that of a shallow cylinder across the plate (along the
    edge 3 -> 0, the width of a palm): tilted by up to ``PLATE_TILT`` x the side direction at
    the sides, so a flat palm reads as the rounded back or front of a hand."""

    def __init__(self, plate: Plate, K: Tensor):
        self.K = K
        c = plate.corners
        n = torch.linalg.cross(c[:, 1] - c[:, 0], c[:, 2] - c[:, 0])
        n = n / n.norm(dim=-1, keepdim=True)
        toward = torch.where(((n * c.mean(1)).sum(-1) < 0)[:, None], n, -n)
        corners = c + plate.half[:, None, None] * toward[:, None]
        edge = corners.roll(-1, dims=1) - corners
        m = torch.linalg.cross(toward[:, None].expand_as(edge), edge)
        inward = ((corners.mean(1, keepdim=True) - corners) * m).sum(-1, keepdim=True)
        m = torch.where(inward < 0, -m, m)                                   # (B, 4, 3)
        # rows: n (3), h, m_k (4 x 3), m_k . c_k (4), fx, fy, cx, cy
        self.table = torch.cat([toward, (toward * corners[:, 0]).sum(-1, keepdim=True),
                                m.flatten(1), (m * corners).sum(-1), K[:, 0, 0, None],
                                K[:, 1, 1, None], K[:, 0, 2, None], K[:, 1, 2, None]], 1).T
        self.normal = toward
        self.centre = corners.mean(1)
        side = corners[:, 0] - corners[:, 3]
        side = side - (side * toward).sum(-1, keepdim=True) * toward
        side = side / side.norm(dim=-1, keepdim=True)
        half_width = ((corners - self.centre[:, None]) * side[:, None]).sum(-1).abs().amax(1)
        self.side = side / half_width[:, None]                       # 1 at the widest corner
        uv = corners[..., :2] / corners[..., 2:].clamp_min(NEAR)
        uv = uv * torch.stack([K[:, 0, 0], K[:, 1, 1]], -1)[:, None] + K[:, None, :2, 2]
        behind = corners[:, :, 2].amin(1) <= NEAR
        self.bounds = (uv[..., 0].amin(1), torch.where(behind, -1e9, uv[..., 0].amax(1)),
                       uv[..., 1].amin(1), uv[..., 1].amax(1))

    def shading_normal(self, image: Tensor, px: Tensor, py: Tensor, depth: Tensor,
                       K: Tensor) -> Tensor:
        """Bent unit normals (3, N) of face pixels of ``image`` (N,) at centres (px, py)."""
        Kb = K.index_select(0, image)
        x = torch.stack([(px - Kb[:, 0, 2]) / Kb[:, 0, 0] * depth,
                         (py - Kb[:, 1, 2]) / Kb[:, 1, 1] * depth, depth])
        side = self.side.T.index_select(1, image)
        offset = ((x - self.centre.T.index_select(1, image)) * side).sum(0).clamp(-1.0, 1.0)
        side = side / (side * side).sum(0).sqrt()
        n = self.normal.T.index_select(1, image) + (PLATE_TILT * offset) * side
        return n * torch.rsqrt((n * n).sum(0))

    def eval(self, members: Tensor, px: Tensor, py: Tensor) -> tuple[Tensor, Tensor]:
        """Depth and hit of the face at pixel centres for images ``members``."""
        r = self.table.index_select(1, members)
        dx = (px - r[22]) / r[20]
        dy = (py - r[23]) / r[21]
        nd = (r[0] * dx + r[2]) + r[1] * dy
        depth = r[3] / nd
        ok = nd < 0
        for k in range(4):
            mx, my, mz = r[4 + 3 * k], r[5 + 3 * k], r[6 + 3 * k]
            ok = ok & (depth * ((mx * dx + mz) + my * dy) >= r[16 + k])
        return depth, ok


def rasterize(caps: Capsules, plate: Plate | None, K: Tensor, height: int, width: int,
              nail_material: int = -1) -> GBuffer:
    """Resolve visibility and surface attributes of ``caps`` and ``plate`` (with its rim; none
    if ``None``) in images of ``height`` x ``width``; nails get ``nail_material``."""
    if plate is None:
        plate = Plate.hidden(caps.ra.shape[0], caps.a.device)
    caps = Capsules.cat([caps, plate.rim()])
    B, P = caps.ra.shape
    if P >= _ID_MASK:
        raise ValueError(f"at most {_ID_MASK - 1} capsules per image, got {P}")
    buf = _Buffers(B, height, width, caps.a.device)
    screen = _Screen(caps, K)
    win = _Windows(*screen.bbox(), width, height)
    for members, sx, sy in win.buckets:
        image = members // P
        px, py, index = buf.window(image, win.x0[members], win.y0[members], sx, sy)
        ev = _capsule_eval(screen.rows(members), px, py)
        buf.write(index, ev["hit"], _depth_key(ev["depth"], members - image * P))

    face = _PlateFace(plate, K)
    fwin = _Windows(*face.bounds, width, height)
    for members, sx, sy in fwin.buckets:
        px, py, index = buf.window(members, fwin.x0[members], fwin.y0[members], sx, sy)
        depth, hit = face.eval(members, px, py)
        buf.write(index, hit, _depth_key(depth, torch.full_like(members, P)))
    return _resolve(buf, caps, screen, face, plate, nail_material)


_NEIGHBOURS = ((-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1))
_AXES = ((-1, 0), (0, -1), (0, 1), (1, 0))


def _resolve(buf: _Buffers, caps: Capsules, screen: _Screen, face: _PlateFace,
             plate: Plate, nail_material: int) -> GBuffer:
    """Pass 2 over covered pixels only: the winner's normal, material and palmar side."""
    B, H, W = buf.B, buf.H, buf.W
    P = caps.ra.shape[1]
    dev = buf.keys.device
    keys = buf.keys[:-1]
    hit = keys != _NO_HIT
    pixels = hit.nonzero().squeeze(1)
    k = keys.index_select(0, pixels)
    pid = k & _ID_MASK
    depth = (k & ~_ID_MASK).view(torch.float32)
    image = pixels // (H * W)
    rem = pixels - image * (H * W)
    # the plate face is flat with a bent shading normal; capsules recompute their impostor
    normal = torch.empty(3, pixels.numel(), device=dev)
    tip_half = torch.zeros_like(pixels, dtype=torch.bool)
    on_face = (pid == P).nonzero().squeeze(1)
    if on_face.numel():
        rem_f = rem.index_select(0, on_face)
        normal.index_copy_(1, on_face, face.shading_normal(
            image.index_select(0, on_face), (rem_f % W).to(torch.float32) + 0.5,
            (rem_f // W).to(torch.float32) + 0.5, depth.index_select(0, on_face), face.K))
    on_caps = (pid != P).nonzero().squeeze(1)
    if on_caps.numel():
        rem_c = rem.index_select(0, on_caps)
        rows = screen.rows(image.index_select(0, on_caps) * P + pid.index_select(0, on_caps))
        ev = _capsule_eval(rows, (rem_c % W).to(torch.float32) + 0.5,
                           (rem_c // W).to(torch.float32) + 0.5)
        use_cap = ev["depth_cap"] < ev["depth_body"]
        nx = torch.where(use_cap, ev["dxn"], ev["ex"])
        ny = torch.where(use_cap, ev["dyn"], ev["ey"])
        nz = -torch.where(use_cap, ev["h2n"], ev["h2"]).clamp_min(0.0).sqrt()
        inv = torch.rsqrt((nx * nx + ny * ny + nz * nz).clamp_min(1e-12))
        normal.index_copy_(1, on_caps, torch.stack([nx * inv, ny * inv, nz * inv]))
        # a nail covers the tip half of a last bone (all its cap when the tip is the near end)
        tip_half[on_caps] = torch.where(use_cap, rows["zb"] < rows["za"], ev["t"] > 0.4)

    row = image * (P + 1) + pid
    palmar_t = torch.cat([caps.palmar, plate.palmar[:, None]], 1).view(-1, 3).T
    palmar = (palmar_t.index_select(1, row) * normal).sum(0)
    material = torch.cat([caps.material, plate.material[:, None]], 1).view(-1).index_select(0, row)
    nail = torch.cat([caps.nail, torch.zeros(B, 1, dtype=torch.bool, device=dev)], 1)
    nail = nail.view(-1).index_select(0, row) & tip_half & (palmar < -0.45)
    material = torch.where(nail, nail_material, material)

    occlusion = _contact_shadow(keys, pixels, depth, pid, (B, H, W), max(1, min(H, W) // 48))
    alpha, fringe, fringe_alpha, fringe_from = _antialias(hit, pixels, (B, H, W))
    return GBuffer((B, H, W), pixels, depth, normal, material, palmar, occlusion, alpha,
                   fringe, fringe_alpha, fringe_from)


def _antialias(hit: Tensor, pixels: Tensor, shape: tuple[int, int, int]
               ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Coverage by a 3 x 3 box filter of the mask ``hit`` (B*H*W,): alpha of the covered
    ``pixels``, the fringe pixels (uncovered, with a covered 8-neighbour), their alpha and the
    positions in ``pixels`` of their 8 neighbours (-1 where not covered)."""
    B, H, W = shape
    count = torch.zeros(B, H + 2, W + 2, dtype=torch.uint8, device=hit.device)
    for dy in range(3):
        for dx in range(3):
            count[:, dy:dy + H, dx:dx + W] += hit.view(B, H, W)
    count = count[:, 1:H + 1, 1:W + 1].reshape(-1)
    fringe = ((count > 0) & ~hit).nonzero().squeeze(1)
    slot = torch.full((B * H * W,), -1, dtype=torch.int32, device=hit.device)
    slot[pixels] = torch.arange(pixels.numel(), dtype=torch.int32, device=hit.device)
    fringe_from = torch.stack([torch.where(ok, slot.index_select(0, nb), -1)
                               for nb, ok in _neighbour_positions(fringe, shape, 1)]).long()
    alpha = count.index_select(0, torch.cat([pixels, fringe])).float() / 9.0
    return alpha[:pixels.numel()], fringe, alpha[pixels.numel():], fringe_from


@dataclass
class Lighting:
    """One directional light plus ambient, per image. ``direction``: (B, 3) unit vector
    towards the light, camera frame; ``colour``: (B, 3); ``ambient``, ``diffuse``,
    ``specular``: (B,) strengths."""
    direction: Tensor
    colour: Tensor
    ambient: Tensor
    diffuse: Tensor
    specular: Tensor


def _neighbour_positions(pixels: Tensor, shape: tuple[int, int, int], dist: int,
                         directions: tuple[tuple[int, int], ...] = _NEIGHBOURS
                         ) -> list[tuple[Tensor, Tensor]]:
    """For each direction (dy, dx): flat index of the neighbour ``dist`` pixels away (the
    pixel itself where that falls outside the image) and whether it is inside."""
    _, H, W = shape
    y, x = (pixels // W) % H, pixels % W
    out = []
    for dy, dx in directions:
        ok = (y + dy * dist >= 0) & (y + dy * dist < H) & (x + dx * dist >= 0) & (x + dx * dist < W)
        out.append((torch.where(ok, pixels + (dy * W + dx) * dist, pixels), ok))
    return out


def _contact_shadow(keys: Tensor, pixels: Tensor, depth: Tensor, pid: Tensor,
                    shape: tuple[int, int, int], dist: int) -> Tensor:
    """Occlusion factor (N,) in [0.6, 1] of the covered ``pixels``: darker where another
    primitive ``dist`` pixels away along a row or column is more than 1 cm nearer (a
    screen-space contact shadow where one finger lies over another; bulges within one shape
    never darken it)."""
    B, H, W = shape
    Hp, Wp = H + 2 * dist, W + 2 * dist
    padded = torch.full((B, Hp, Wp), _NO_HIT, dtype=torch.int32, device=keys.device)
    padded[:, dist:dist + H, dist:dist + W] = keys.view(B, H, W)
    padded = padded.view(-1)
    image = pixels // (H * W)
    rem = pixels - image * (H * W)
    centre = image * (Hp * Wp) + (rem // W + dist) * Wp + rem % W + dist
    gap = torch.zeros_like(depth)
    for dy, dx in _AXES:
        k = padded.index_select(0, centre + dist * (dy * Wp + dx))
        nb_depth = (k & ~_ID_MASK).view(torch.float32)
        gap = torch.maximum(gap, torch.where((k & _ID_MASK) != pid, depth - nb_depth, 0.0))
    return 1.0 - 0.4 * ((gap - 0.010) / 0.02).clamp(0.0, 1.0)


def shade(g: GBuffer, albedo: Tensor, palm_albedo: Tensor, light: Lighting,
          skin_material: int = 0, wrap: float = 0.35) -> Tensor:
    """Colours (3, N) in [0, 1] of the covered pixels ``g.pixels``.

    ``albedo``: (B, M, 3) colour per material; ``palm_albedo``: (B, 3) the lighter skin of the
    palmar side, blended in on skin by the normal's palmar cosine. Wrapped Lambert diffuse
    (soft, skin-like terminator), Blinn-Phong specular (exponent 16), the contact shadow.
    """
    B, H, W = g.shape
    image = g.pixels // (H * W)
    M = albedo.shape[1]
    base = albedo.reshape(B * M, 3).T.index_select(1, image * M + g.material)
    palm_w = 0.7 * ((g.palmar - 0.1) / 0.6).clamp(0.0, 1.0)
    palm_w = torch.where(g.material == skin_material, palm_w, 0.0)
    base = base + palm_w * (palm_albedo.T.index_select(1, image) - base)
    n = g.normal
    l_dir = light.direction.T.index_select(1, image)
    diffuse = (((n * l_dir).sum(0) + wrap) / (1 + wrap)).clamp_min(0.0)
    half = l_dir.clone()
    half[2] -= 1.0
    spec = ((n * half).sum(0) * torch.rsqrt((half * half).sum(0))).clamp_min(0.0)
    for _ in range(4):
        spec = spec * spec
    light_c = light.colour.T.index_select(1, image)
    strengths = torch.stack([light.ambient, light.diffuse, light.specular]).index_select(1, image)
    lit = (strengths[0] + strengths[1] * diffuse) * g.occlusion
    return (base * lit + strengths[2] * spec).mul_(light_c).clamp_(0.0, 1.0)


def composite(colour: Tensor, g: GBuffer, background: Tensor) -> Tensor:
    """Blend the covered pixels' ``colour`` (3, N) over ``background`` (B, 3, H, W) in place
    with the anti-aliased coverage, fringe pixels with their covered neighbours' mean colour."""
    B, H, W = g.shape
    HW = H * W
    padded = torch.cat([colour, torch.zeros(3, 1, device=colour.device)], 1)
    src = torch.where(g.fringe_from >= 0, g.fringe_from, colour.shape[1])     # (8, M)
    count = (g.fringe_from >= 0).sum(0)
    fringe_colour = padded.index_select(1, src.flatten()).view(3, *src.shape).sum(1) / count
    pixels = torch.cat([g.pixels, g.fringe])
    values = torch.cat([colour, fringe_colour], 1)
    alpha = torch.cat([g.alpha, g.fringe_alpha])
    image = pixels // HW
    flat = background.view(-1)
    for c in range(3):
        idx = image * (3 * HW) + c * HW + (pixels - image * HW)
        bg = flat.index_select(0, idx)
        flat.index_copy_(0, idx, bg + alpha * (values[c] - bg))
    return background
