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

from benchmarks.config import POSE_HEADS, ROOT_MODES  # noqa: F401 (ROOT_MODES: re-exported)

ROOT = 9                 # middle MCP
BONE = (9, 10)           # middle MCP -> PIP, FreiHAND's scale bone
Z_ROOT_RANGE = (4.0, 50.0)  # closed-form root depth clamp, in bone lengths (PeCLR's values)
HEADS = POSE_HEADS                     # direct regression (PeCLR's RN_25D_wMLPref) | 2.5D heatmaps
# ROOT_MODES: what the root refiner corrects (see RootRefiner)
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


def bone_scale(xyz: torch.Tensor) -> torch.Tensor:
    """FreiHAND's ``scale`` (B,): the length of the middle MCP->PIP bone of joints (B, J, 3)."""
    return (xyz[:, BONE[0]] - xyz[:, BONE[1]]).norm(dim=-1)


def root_depths(xyz: torch.Tensor) -> torch.Tensor:
    """Scale-normalised root depths (B,) of camera-frame joints (B, J, 3): ``targets``'
    ``z_root``, which needs no camera."""
    return xyz[:, ROOT, 2] / bone_scale(xyz)


def targets(xyz: torch.Tensor, K: torch.Tensor) -> dict[str, torch.Tensor]:
    """Ground-truth 2.5D of camera-frame joints ``xyz`` (B, 21, 3) in metres.

    Returns ``uv_px`` (B, 21, 2) pixel positions under ``K``, ``zrel`` (B, 21) and ``z_root``
    (B,) in units of ``scale`` (B,) = |xyz_9 - xyz_10| metres, which is returned as well.
    """
    scale = bone_scale(xyz)
    proj = xyz @ K.transpose(1, 2)
    z = xyz[..., 2]
    return {
        "uv_px": proj[..., :2] / proj[..., 2:],
        "zrel": (z - z[:, ROOT : ROOT + 1]) / scale[:, None],
        "z_root": root_depths(xyz),
        "scale": scale,
    }


class RootRefiner(nn.Module):
    """A learned root depth from the 2.5D prediction (Spurr et al. ECCV 2020).

    Input per sample: zrel (J), ray x, y (2J), closed-form z_root (1). Two ways to start:

    - ``closed_form`` (the released PeCLR model): ``z_root = z0 + mlp(...)``, a correction to
      the closed form, which an untrained refiner returns unchanged.
    - ``prior``: ``z_root = median + spread * mlp(...)``, a scaled correction to the training
      ids' median root depth (``set_prior``), with the closed form as one more input (in units
      of the spread). An untrained refiner predicts the median, the best constant under L1;
      the closed form, clamped and computed from a noisy early 2D estimate, can be off by tens
      of bone lengths.

    The last layer is zero-initialised in both.
    """

    def __init__(self, n_joints: int, hidden: int = 128, mode: str = "closed_form"):
        super().__init__()
        if mode not in ROOT_MODES:
            raise ValueError(f"root refiner mode must be one of {ROOT_MODES}, got {mode!r}")
        self.mode = mode
        self.mlp = nn.Sequential(
            nn.Linear(3 * n_joints + 1, hidden), nn.BatchNorm1d(hidden), nn.LeakyReLU(),
            nn.Linear(hidden, hidden), nn.BatchNorm1d(hidden), nn.LeakyReLU(),
            nn.Linear(hidden, 1),
        )
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)
        self.register_buffer("prior", torch.tensor([0.0, 1.0]))   # median, spread

    def set_prior(self, z_root: torch.Tensor) -> None:
        """The training ids' root depths (bone lengths): their median and a robust spread
        (1.4826 x the median absolute deviation, floored at 1e-3)."""
        z = z_root.detach().double().flatten().cpu()
        med = z.median()
        spread = ((z - med).abs().median() * 1.4826).clamp_min(1e-3)
        self.prior.copy_(torch.stack([med, spread]).to(self.prior))

    def forward(self, zrel: torch.Tensor, xy: torch.Tensor, z_root: torch.Tensor) -> torch.Tensor:
        if self.mode == "closed_form":
            features = torch.cat([zrel, xy.flatten(1), z_root[:, None]], dim=1)
            return z_root + self.mlp(features).squeeze(1)
        med, spread = self.prior[0].to(z_root), self.prior[1].to(z_root)
        features = torch.cat([zrel, xy.flatten(1), ((z_root - med) / spread)[:, None]], dim=1)
        return med + spread * self.mlp(features).squeeze(1)


class HeatmapHead(nn.Module):
    """Latent 2.5D heatmaps with soft-argmax (integral regression; Iqbal et al. ECCV 2018).

    Input: the backbone's pyramid of three feature maps (``Backbone.pyramid``: a ResNet's
    last three stages, strides 8, 16, 32; a ViT's patch grids after a third, two thirds and
    all of its blocks, all at its patch stride). A small
    top-down pyramid (Lin et al., "Feature Pyramid Networks", CVPR 2017) brings them to the
    stride-8 map: 1x1 lateral convolutions to ``width`` channels, bilinear upsampling, sum, two
    3x3 conv-BN-ReLU. A 1x1 convolution gives per joint a heatmap logit map and a depth map.
    The softmax of the logits is a distribution over the map: its expectation of the cell
    centres is (u/W, v/H) and its expectation of the depth map is zrel. Everything is
    differentiable, so the same L1 losses as the direct head train it; ``heatmap_prior_loss``
    adds the distribution regulariser of Nibali et al. (2018).

    At 64 px the stride-8 map is 8 x 8 cells; the stride-32 map alone would be 2 x 2, which
    measured no better than direct regression (see results/calibration). A ViT's maps all
    have its patch stride (16): ``upsample`` 2 makes the summed map twice as fine as its
    grid, so the heatmap is at stride 8 as on a ResNet (4 x 4 cells at 32 px, 8 x 8 at 64 px).
    """

    def __init__(self, in_channels: tuple[int, ...], n_joints: int, width: int = 128,
                 upsample: int = 1):
        super().__init__()
        self.upsample = upsample          # output map over the finest input map (2 on a ViT)
        self.lateral = nn.ModuleList(nn.Conv2d(c, width, 1) for c in in_channels)
        self.mix = nn.Sequential(
            nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True))
        self.out = nn.Conv2d(width, 2 * n_joints, 1)
        nn.init.normal_(self.out.weight, std=1e-3)
        nn.init.zeros_(self.out.bias)
        self.n_joints = n_joints

    def forward(self, fmaps: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Feature maps, finest first -> ((B, J, 3): u/W, v/H in [0, 1] and zrel; (B, J, h, w)
        heatmap logits)."""
        size = tuple(int(n) * self.upsample for n in fmaps[0].shape[-2:])
        x = sum(F.interpolate(lat(f), size=size, mode="bilinear", align_corners=False)
                if f.shape[-2:] != size else lat(f) for lat, f in zip(self.lateral, fmaps))
        x = self.out(self.mix(x))
        j = self.n_joints
        return soft_argmax(x[:, :j].float(), x[:, j:].float()), x[:, :j]


def soft_argmax(logits: torch.Tensor, depth: torch.Tensor) -> torch.Tensor:
    """(B, J, h, w) logits and depth maps -> (B, J, 3): the softmax-expected cell centre as
    fractions of the map (u/W, v/H; cell (i, j) is centred at ((j + 0.5)/w, (i + 0.5)/h)) and
    the expected depth."""
    b, j, h, w = logits.shape
    prob = torch.softmax(logits.flatten(2), dim=-1)                       # (B, J, h*w)
    ys = (torch.arange(h, device=logits.device, dtype=prob.dtype) + 0.5) / h
    xs = (torch.arange(w, device=logits.device, dtype=prob.dtype) + 0.5) / w
    u = prob @ xs.repeat(h)                                               # row-major cells
    v = prob @ ys.repeat_interleave(w)
    z = (prob * depth.flatten(2)).sum(-1)
    return torch.stack([u, v, z], dim=-1)


def heatmap_prior_loss(logits: torch.Tensor, uv01: torch.Tensor, sigma: float = 1.0,
                       valid: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-entropy of the heatmap softmax against a Gaussian of ``sigma`` cells centred on
    the true position ``uv01`` (B, J, 2, fractions of the image); the regulariser of Nibali
    et al., "Numerical Coordinate Regression with Convolutional Neural Networks" (2018), in
    its cross-entropy form. It gives every cell a gradient from the first step, where the
    soft-argmax's L1 alone moves the distribution's mean only. Mean over joints and samples
    (over the ``valid`` (B, J) joints where given)."""
    b, j, h, w = logits.shape
    ys = torch.arange(h, device=logits.device, dtype=torch.float32) + 0.5
    xs = torch.arange(w, device=logits.device, dtype=torch.float32) + 0.5
    cu, cv = uv01[..., 0].float() * w, uv01[..., 1].float() * h
    g = torch.exp(-((xs.view(1, 1, 1, w) - cu[..., None, None]) ** 2
                    + (ys.view(1, 1, h, 1) - cv[..., None, None]) ** 2) / (2 * sigma**2))
    g = g.flatten(2)
    g = g / g.sum(-1, keepdim=True).clamp_min(1e-12)
    ce = -(g * torch.log_softmax(logits.float().flatten(2), -1)).sum(-1)
    return ce.mean() if valid is None else masked_mean(ce, valid)


def masked_mean(x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean of ``x`` (B, J, ...) over its entries whose joint is ``valid`` (B, J); 0 when none is."""
    w = valid.to(x.dtype).reshape(valid.shape + (1,) * (x.dim() - valid.dim())).expand_as(x)
    return (x * w).sum() / w.sum().clamp_min(1.0)


class PoseNet(nn.Module):
    """Backbone + 2.5D head + closed-form root depth with refinement.

    ``head``: ``regression`` (pooled features, one linear layer for (u/W, v/H, zrel) of every
    joint, its u, v biases starting at the image centre; PeCLR's released model) or
    ``heatmap`` (``HeatmapHead`` on the backbone's pyramid). ``root``: how the refiner starts
    (``RootRefiner``). ``backbone(images)`` must return (B, feat_dim) pooled features and
    ``backbone.pyramid(images)`` three feature maps, finest first, of ``pyramid_channels``
    channels, the finest at stride ``pyramid_stride`` (``benchmarks.backbone.Backbone``,
    ResNet or ViT, images in [0, 1]). The root's zrel output is replaced by 0.
    """

    def __init__(self, backbone: nn.Module, feat_dim: int, n_joints: int = 21,
                 z_root_range: tuple[float, float] = Z_ROOT_RANGE, head: str = "regression",
                 root: str = "closed_form"):
        super().__init__()
        if n_joints <= max(ROOT, *BONE):
            raise ValueError(f"n_joints must include the root bone {BONE}, got {n_joints}")
        if head not in HEADS:
            raise ValueError(f"head must be one of {HEADS}, got {head!r}")
        self.backbone = backbone
        self.n_joints = n_joints
        self.z_root_range = z_root_range
        self.head_kind = head
        if head == "regression":
            self.head = nn.Linear(feat_dim, 3 * n_joints)
            with torch.no_grad():
                self.head.bias.view(n_joints, 3)[:, :2].fill_(0.5)
        else:
            stride = getattr(backbone, "pyramid_stride", 8)
            self.head = HeatmapHead(tuple(backbone.pyramid_channels), n_joints,
                                    upsample=max(1, stride // 8))
        self.refiner = RootRefiner(n_joints, mode=root)
        root_mask = torch.ones(n_joints)
        root_mask[ROOT] = 0.0
        self.register_buffer("root_mask", root_mask, persistent=False)

    def forward(self, images: torch.Tensor, K: torch.Tensor) -> dict[str, torch.Tensor]:
        """``images`` (B, 3, H, W) in [0, 1], ``K`` (B, 3, 3) of the input image.

        Returns ``uv_px`` (B, J, 2), ``zrel`` (B, J), ``z_root`` (B,) refined and
        scale-normalised, ``xyz_norm`` (B, J, 3) scale-normalised camera-frame joints.
        """
        b, _, h, w = images.shape
        extra = {}
        if self.head_kind == "regression":
            out = self.head(self.backbone(images)).view(b, self.n_joints, 3)
        else:
            out, extra["heatmap_logits"] = self.head(self.backbone.pyramid(images))
        uv_px = out[..., :2] * out.new_tensor([w, h])
        zrel = out[..., 2] * self.root_mask
        return {"uv_px": uv_px, "zrel": zrel, **self.lift(uv_px, zrel, K), **extra}

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
              depth_weight: float = 5.0, heatmap_weight: float = 0.0, heatmap_sigma: float = 1.0,
              valid: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Fine-tuning loss: ``L1(uv / res) + depth_weight * L1(zrel) + L1(z_root)``, plus
    ``heatmap_weight * heatmap_prior_loss`` when the head gives heatmaps.

    Every L1 is a mean absolute error over its elements. ``uv`` is divided by the input side
    ``res`` (pixels), so the 2D term is in image widths; ``zrel`` and ``z_root`` are in units
    of the scale bone. The z_root term compares the *refined* root depth with the truth: it
    is what trains the refiner (its inputs are detached, see ``PoseNet.lift``). ``depth_weight``
    5 is PeCLR's fine-tuning value. Returns the loss and detached terms to log.

    ``valid`` (B, J) booleans (a set that marks joints without ground truth, AssemblyHands):
    the 2D, relative-depth and heatmap terms average over the valid joints only, so an invalid
    joint's prediction gets no gradient; the root depth term stays, since the root's depth and
    the scale bone are taken as given for every sample, as the set's toolkit takes them.
    """
    if valid is not None and not bool(valid.all()):
        uv = masked_mean((pred["uv_px"] - target["uv_px"]).abs() / res, valid)
        zrel = masked_mean((pred["zrel"] - target["zrel"]).abs(), valid)
    else:
        valid = None
        uv = F.l1_loss(pred["uv_px"] / res, target["uv_px"] / res)
        zrel = F.l1_loss(pred["zrel"], target["zrel"])
    z_root = F.l1_loss(pred["z_root"], target["z_root"])
    loss = uv + depth_weight * zrel + z_root
    logs = {"uv": uv.detach(), "zrel": zrel.detach(), "z_root": z_root.detach()}
    if heatmap_weight > 0 and "heatmap_logits" in pred:
        reg = heatmap_prior_loss(pred["heatmap_logits"], target["uv_px"] / res, heatmap_sigma, valid)
        loss = loss + heatmap_weight * reg
        logs["heatmap"] = reg.detach()
    logs["loss"] = loss.detach()
    return loss, logs
