"""The 2.5D hand pose model every method is fine-tuned and evaluated with.

Representation (Iqbal et al., "Hand Pose Estimation via Latent 2.5D Heatmap Regression",
ECCV 2018): for each of the 21 FreiHAND joints the network predicts the image position
(u, v) and the scale-normalised depth relative to the root,

    zrel_k = (Z_k - Z_root) / s,   root = joint 9 (middle MCP),   s = |xyz_9 - xyz_10|,

where s, the middle MCP->PIP bone, is FreiHAND's ``scale``. The absolute root depth
``z_root = Z_root / s`` follows in closed form from requiring that bone to have length 1
(Iqbal et al. eq. 6-7); it is detached, clamped to a plausible range and refined by a small
MLP (Spurr et al., "Weakly Supervised 3D Hand Pose Estimation via Biomechanical
Constraints", ECCV 2020), as in the released PeCLR model (Spurr et al., ICCV 2021).

Conventions:
- Images (B, 3, H, W) are floats in [0, 1]; x points right, y down; pixel (row i, col j)
  covers [j, j+1) x [i, i+1), so pixel centres sit at half-integers. ``K`` (B, 3, 3) maps
  camera-frame points to this pixel frame of the *network input* (after any crop/resize):
  ``uv = (K xyz)[:2] / (K xyz)[2]``.
- The head regresses ``u / W`` and ``v / H``: 0 and 1 are the image borders.
- ``X_k = K^-1 [u_k, v_k, 1]`` are the normalised camera coordinates of joint k's ray; the
  scale-normalised 3D joint is ``xyz_norm_k = X_k (zrel_k + z_root)`` (bone 9-10 has length
  1) and the metric joint in metres is ``xyz_norm_k * scale``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

ROOT = 9                 # middle MCP
BONE = (9, 10)           # middle MCP -> PIP, FreiHAND's scale bone
Z_ROOT_RANGE = (4.0, 50.0)  # closed-form root depth clamp, in bone lengths (PeCLR's values)
_EPS = 1e-8


def rays(uv_px: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """Normalised camera coordinates ``K^-1 [u, v, 1]`` of pixel positions: (B, J, 2) -> (B, J, 3)."""
    uv1 = torch.cat([uv_px, torch.ones_like(uv_px[..., :1])], dim=-1)
    return uv1 @ torch.linalg.inv(K).transpose(1, 2)


def root_depth(xy: torch.Tensor, zrel: torch.Tensor, bone: tuple[int, int] = BONE) -> torch.Tensor:
    """Closed-form scale-normalised root depth (Iqbal et al. ECCV 2018, eq. 6-7).

    ``xy`` (B, J, 2) normalised camera coordinates, ``zrel`` (B, J) scale-normalised relative
    depths. Solves ``|X_n (Z + zrel_n) - X_m (Z + zrel_m)| = 1`` for Z, bone (m, n), taking the
    larger root (the hand in front of the camera, far compared with one bone). Returns (B,).
    """
    m, n = bone
    xm, ym, xn, yn = xy[:, m, 0], xy[:, m, 1], xy[:, n, 0], xy[:, n, 1]
    zm, zn = zrel[:, m], zrel[:, n]
    a = (xn - xm) ** 2 + (yn - ym) ** 2
    b = 2 * (zn * (xn**2 + yn**2 - xn * xm - yn * ym) + zm * (xm**2 + ym**2 - xn * xm - yn * ym))
    c = (xn * zn - xm * zm) ** 2 + (yn * zn - ym * zm) ** 2 + (zn - zm) ** 2 - 1
    disc = (b**2 - 4 * a * c).clamp_min(_EPS)
    return (-b + disc.sqrt()) / (2 * a.clamp_min(_EPS))


def targets(xyz: torch.Tensor, K: torch.Tensor) -> dict[str, torch.Tensor]:
    """Ground-truth 2.5D of camera-frame joints ``xyz`` (B, 21, 3) in metres.

    Returns ``uv_px`` (B, 21, 2) pixel positions under ``K``, ``zrel`` (B, 21) and ``z_root``
    (B,) in units of ``scale`` (B,) = |xyz_9 - xyz_10| metres, which is returned as well.
    """
    scale = (xyz[:, BONE[0]] - xyz[:, BONE[1]]).norm(dim=-1)
    proj = xyz @ K.transpose(1, 2)
    z = xyz[..., 2]
    return {
        "uv_px": proj[..., :2] / proj[..., 2:],
        "zrel": (z - z[:, ROOT : ROOT + 1]) / scale[:, None],
        "z_root": z[:, ROOT] / scale,
        "scale": scale,
    }


class RootRefiner(nn.Module):
    """Adds a learned correction to the closed-form root depth (Spurr et al. ECCV 2020).

    Input per sample: zrel (J), ray x, y (2J), closed-form z_root (1). The last layer is
    zero-initialised, so an untrained refiner returns the closed form unchanged.
    """

    def __init__(self, n_joints: int, hidden: int = 128):
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(3 * n_joints + 1, hidden), nn.BatchNorm1d(hidden), nn.LeakyReLU(),
            nn.Linear(hidden, hidden), nn.BatchNorm1d(hidden), nn.LeakyReLU(),
            nn.Linear(hidden, 1),
        )
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)

    def forward(self, zrel: torch.Tensor, xy: torch.Tensor, z_root: torch.Tensor) -> torch.Tensor:
        features = torch.cat([zrel, xy.flatten(1), z_root[:, None]], dim=1)
        return z_root + self.mlp(features).squeeze(1)


class PoseNet(nn.Module):
    """Backbone (pooled features) + linear 2.5D head + closed-form root depth with refinement.

    ``backbone(images)`` must return (B, feat_dim) features (``benchmarks.backbone.Backbone``
    takes images in [0, 1]). The head predicts (u/W, v/H, zrel) for every joint; its u, v
    biases start at 0.5 (the image centre); the root's zrel output is replaced by 0.
    """

    def __init__(self, backbone: nn.Module, feat_dim: int, n_joints: int = 21,
                 z_root_range: tuple[float, float] = Z_ROOT_RANGE):
        super().__init__()
        if n_joints <= max(ROOT, *BONE):
            raise ValueError(f"n_joints must include the root bone {BONE}, got {n_joints}")
        self.backbone = backbone
        self.n_joints = n_joints
        self.z_root_range = z_root_range
        self.head = nn.Linear(feat_dim, 3 * n_joints)
        with torch.no_grad():
            self.head.bias.view(n_joints, 3)[:, :2].fill_(0.5)
        self.refiner = RootRefiner(n_joints)
        root_mask = torch.ones(n_joints)
        root_mask[ROOT] = 0.0
        self.register_buffer("root_mask", root_mask, persistent=False)

    def forward(self, images: torch.Tensor, K: torch.Tensor) -> dict[str, torch.Tensor]:
        """``images`` (B, 3, H, W) in [0, 1], ``K`` (B, 3, 3) of the input image.

        Returns ``uv_px`` (B, J, 2), ``zrel`` (B, J), ``z_root`` (B,) refined and
        scale-normalised, ``xyz_norm`` (B, J, 3) scale-normalised camera-frame joints.
        """
        b, _, h, w = images.shape
        out = self.head(self.backbone(images)).view(b, self.n_joints, 3)
        uv_px = out[..., :2] * out.new_tensor([w, h])
        zrel = out[..., 2] * self.root_mask
        return {"uv_px": uv_px, "zrel": zrel, **self.lift(uv_px, zrel, K)}

    def lift(self, uv_px: torch.Tensor, zrel: torch.Tensor, K: torch.Tensor) -> dict[str, torch.Tensor]:
        """2.5D -> 3D: closed-form root depth (detached, clamped), refined; then back-projection.

        The refiner sees detached inputs, so the root-depth loss trains the refiner only and
        never pulls the 2.5D predictions; the 2.5D losses train the backbone and head.
        Runs in at least float32 with autocast off: the quadratic is ill-conditioned in half
        precision.
        """
        dtype = torch.promote_types(uv_px.dtype, torch.float32)
        with torch.autocast(uv_px.device.type, enabled=False):
            uv_px, zrel, K = uv_px.to(dtype), zrel.to(dtype), K.to(dtype)
            ray = rays(uv_px, K)
            xy = ray[..., :2]
            z0 = root_depth(xy, zrel).detach().clamp(*self.z_root_range)
            z_root = self.refiner(zrel.detach(), xy.detach(), z0)
            return {"z_root": z_root, "xyz_norm": ray * (zrel + z_root[:, None])[..., None]}


def pose_loss(pred: dict[str, torch.Tensor], target: dict[str, torch.Tensor], res: float,
              depth_weight: float = 5.0) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Fine-tuning loss: ``L1(uv / res) + depth_weight * L1(zrel) + L1(z_root)``.

    Every L1 is a mean absolute error over its elements. ``uv`` is divided by the input side
    ``res`` (pixels), so the 2D term is in image widths; ``zrel`` and ``z_root`` are in units
    of the scale bone. The z_root term compares the *refined* root depth with the truth: it
    is what trains the refiner (its inputs are detached, see ``PoseNet.lift``). ``depth_weight``
    5 is PeCLR's fine-tuning value. Returns the loss and detached terms to log.
    """
    uv = F.l1_loss(pred["uv_px"] / res, target["uv_px"] / res)
    zrel = F.l1_loss(pred["zrel"], target["zrel"])
    z_root = F.l1_loss(pred["z_root"], target["z_root"])
    loss = uv + depth_weight * zrel + z_root
    logs = {"loss": loss.detach(), "uv": uv.detach(), "zrel": zrel.detach(), "z_root": z_root.detach()}
    return loss, logs
