"""Probes on frozen features: what a pre-trained backbone knows about gesture and viewpoint.

The probing protocol of trajectory regularization (Wang, Chen and Yu, ECCV 2024), on the
``triplets`` set (left, centre, right views of one hand from nearby viewpoints): one
semantic and two pose read-outs of the same frozen feature, so that a gain in pose awareness
is never bought with a loss of semantics unnoticed.

Features: the backbone's pooled features of every view, in eval mode without gradients,
computed once, in batches; every view of a triplet is one sample (3 per triplet). The probes
themselves are trained on the CPU in float32, seeded, so that a result depends on the features
only.

- ``gesture_acc``: linear probe (multinomial logistic regression on standardised features,
  L2 penalty 1e-4, full-batch L-BFGS for ``epochs`` iterations), accuracy in [0, 1].
- ``viewpoint_err_deg``: absolute viewpoint by kNN regression (cosine similarity of the
  features, the 10 nearest training views): the mean of the neighbours' unit view
  directions, renormalised; error = mean angle in degrees between the predicted and the true
  view direction.
- ``rel_viewpoint_err_deg``: relative viewpoint of two views of one hand (the six ordered
  pairs of a triplet's views): an MLP on the standardised pair feature [f_a, f_b, f_a - f_b]
  (one hidden layer of 256, ReLU; full-batch Adam, lr 1e-2 with a cosine decay, for
  ``epochs`` iterations, mean squared error) predicts the step between the unit view
  directions, d = u_b - u_a. Error: the angle in degrees between normalise(u_a + d_hat), the
  view that the predicted step reaches from view a's true direction, and the true u_b; it
  scores the step, not view a's absolute viewpoint.

The probes read the pooled features, the representation that fine-tuning starts from; the
paper also probes mid-level maps (ResNet conv3), which this protocol leaves out.

Viewpoints are (azimuth, elevation) in degrees; the unit view direction is
u = (cos el cos az, cos el sin az, sin el).
"""
from __future__ import annotations

from itertools import chain, permutations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

L2_PENALTY = 1e-4         # logistic regression, on the weights
KNN_K = 10
MLP_HIDDEN = 256
MLP_LR = 1e-2
PAIRS = tuple(permutations(range(3), 2))   # ordered (a, b) view pairs of a triplet


def view_direction(viewpoint: Tensor) -> Tensor:
    """(..., 2) azimuth, elevation in degrees -> (..., 3) unit view direction."""
    az, el = torch.deg2rad(viewpoint.double()).unbind(-1)
    return torch.stack([el.cos() * az.cos(), el.cos() * az.sin(), el.sin()], -1).float()


def angle_deg(a: Tensor, b: Tensor) -> Tensor:
    """Angle in degrees between the directions of ``a`` and ``b`` (..., 3), any lengths."""
    cos = F.cosine_similarity(a.double(), b.double(), dim=-1).clamp(-1.0, 1.0)
    return torch.rad2deg(torch.acos(cos)).float()


@torch.no_grad()
def triplet_features(backbone: nn.Module, triplet: Tensor, batch_size: int = 256) -> Tensor:
    """Pooled features (N, 3, D) float32 on the CPU of ``triplet`` (N, 3, 3, H, W).

    Images are float in [0, 1] or uint8 in [0, 255]. The backbone runs in eval mode on its
    own device and gets its previous mode back.
    """
    device = next(chain(backbone.parameters(), backbone.buffers()), torch.empty(0)).device
    images = triplet.flatten(0, 1)
    was_training = backbone.training
    backbone.eval()
    try:
        out = []
        for chunk in images.split(batch_size):
            x = chunk.to(device).float()
            if chunk.dtype == torch.uint8:
                x = x / 255.0
            out.append(backbone(x).float().cpu())
    finally:
        backbone.train(was_training)
    return torch.cat(out).view(len(triplet), 3, -1)


def _standardiser(train: Tensor):
    mean, std = train.mean(0), train.std(0).clamp_min(1e-6)
    return lambda x: (x - mean) / std


def gesture_probe(train_x: Tensor, train_y: Tensor, test_x: Tensor, test_y: Tensor,
                  generator: torch.Generator, epochs: int) -> float:
    """Accuracy of a logistic-regression probe (features (N, D), labels (N,) int64)."""
    scale = _standardiser(train_x)
    x, xt = scale(train_x), scale(test_x)
    n_classes = int(max(train_y.max(), test_y.max())) + 1
    probe = nn.Linear(x.shape[1], n_classes)
    with torch.no_grad():
        probe.weight.normal_(0.0, 0.01, generator=generator)
        probe.bias.zero_()
    opt = torch.optim.LBFGS(probe.parameters(), lr=1.0, max_iter=epochs,
                            line_search_fn="strong_wolfe")

    def closure() -> Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(probe(x), train_y) + L2_PENALTY * probe.weight.square().sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        return float((probe(xt).argmax(1) == test_y).float().mean())


def knn_viewpoint_error(train_x: Tensor, train_dir: Tensor, test_x: Tensor, test_dir: Tensor,
                        k: int = KNN_K) -> float:
    """Mean angle (degrees) of kNN-regressed unit view directions (cosine similarity)."""
    sim = F.normalize(test_x, dim=1) @ F.normalize(train_x, dim=1).T
    nearest = sim.topk(min(k, len(train_x)), dim=1).indices                 # (M, k)
    pred = train_dir[nearest].mean(1)
    return float(angle_deg(pred, test_dir).mean())


def _pairs(feats: Tensor, dirs: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Pair features [f_a, f_b, f_a - f_b], u_a and u_b of every ordered view pair."""
    a, b = (torch.tensor(i) for i in zip(*PAIRS))
    fa, fb = feats[:, a].flatten(0, 1), feats[:, b].flatten(0, 1)
    return torch.cat([fa, fb, fa - fb], 1), dirs[:, a].flatten(0, 1), dirs[:, b].flatten(0, 1)


def relative_viewpoint_error(train_feats: Tensor, train_dirs: Tensor, test_feats: Tensor,
                             test_dirs: Tensor, generator: torch.Generator, epochs: int) -> float:
    """Mean angle (degrees) by which the MLP's predicted step from view a misses view b.

    ``*_feats`` (N, 3, D) and ``*_dirs`` (N, 3, 3) unit view directions per triplet view.
    """
    x, ua, ub = _pairs(train_feats, train_dirs)
    xt, uat, ubt = _pairs(test_feats, test_dirs)
    scale = _standardiser(x)
    x, xt = scale(x), scale(xt)
    step = ub - ua
    step_scale = step.std(0).clamp_min(1e-6)
    target = step / step_scale

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(torch.randint(2**31, (1,), generator=generator)))
        mlp = nn.Sequential(nn.Linear(x.shape[1], MLP_HIDDEN), nn.ReLU(),
                            nn.Linear(MLP_HIDDEN, 3))
    opt = torch.optim.Adam(mlp.parameters(), lr=MLP_LR)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    for _ in range(epochs):
        opt.zero_grad()
        F.mse_loss(mlp(x), target).backward()
        opt.step()
        sched.step()
    with torch.no_grad():
        reached = uat + mlp(xt) * step_scale
    return float(angle_deg(reached, ubt).mean())


def run_probes(backbone: nn.Module, train: dict[str, Tensor], test: dict[str, Tensor],
               seed: int = 0, epochs: int = 100, batch_size: int = 256) -> dict[str, float]:
    """Gesture, absolute and relative viewpoint probes on frozen features (module docstring).

    ``train`` and ``test`` hold ``triplet`` (N, 3, 3, H, W), ``gesture`` (N,) int64 and
    ``viewpoint`` (N, 3, 2) degrees. Returns ``gesture_acc`` (fraction), ``viewpoint_err_deg``
    and ``rel_viewpoint_err_deg`` (degrees) as floats; the same features and seed give the
    same numbers.
    """
    generator = torch.Generator().manual_seed(seed)
    feats = {name: triplet_features(backbone, split["triplet"], batch_size)
             for name, split in (("train", train), ("test", test))}
    dirs = {name: view_direction(split["viewpoint"].cpu())
            for name, split in (("train", train), ("test", test))}
    labels = {name: split["gesture"].cpu().long().repeat_interleave(3)
              for name, split in (("train", train), ("test", test))}
    flat = {name: f.flatten(0, 1) for name, f in feats.items()}
    return {
        "gesture_acc": gesture_probe(flat["train"], labels["train"], flat["test"],
                                     labels["test"], generator, epochs),
        "viewpoint_err_deg": knn_viewpoint_error(flat["train"], dirs["train"].flatten(0, 1),
                                                 flat["test"], dirs["test"].flatten(0, 1)),
        "rel_viewpoint_err_deg": relative_viewpoint_error(feats["train"], dirs["train"],
                                                          feats["test"], dirs["test"],
                                                          generator, epochs),
    }
