"""No-image floors: what a predictor that never looks at the image scores.

A number means something only beside its floor. Every run scores two constant predictors on its
own evaluation set with the official metric (``eval.metrics.freihand_metrics``):

- ``canonical_hand``: one hand for every image, the mean shape of the fine-tuning ids' poses
  after generalised Procrustes alignment (similarity transforms, like the metric's). Under the
  aligned (PA) scores the metric itself poses it onto each sample, so it is the best a model
  can do knowing only the typical hand shape. For the unaligned scores it is scaled to the
  training poses' mean size, turned to best fit their camera-frame mean and put at their mean
  centroid. This is the floor a fine-tuned model must beat.
- ``one_point``: all 21 joints at the training ids' mean root position. Under alignment it
  collapses to the sample's centroid (the degenerate plateau of a model that has learned
  nothing: every joint predicted at one place).

Where a set marks joints invalid (AssemblyHands), the constants are built from the training
poses whose 21 joints are all valid (from every pose when none is) and scored over the valid
joints, as the models are.

Camera-frame averages of poses over many viewpoints are blobs whose score depends on which ids
are averaged; the aligned mean shape is stable.
"""
from __future__ import annotations

import numpy as np

from eval.metrics import freihand_metrics, procrustes_align
from benchmarks.pose_model import ROOT

FLOORS = ("canonical_hand", "one_point")
KEYS = ("epe_mm", "pa_epe_mm", "auc", "pa_auc")


def canonical_shape(poses: np.ndarray, iters: int = 20, tol: float = 1e-10) -> np.ndarray:
    """Generalised Procrustes mean (K, 3) of ``poses`` (N, K, 3): centred, unit Frobenius norm.

    Starts from the pose nearest the others' mean and alternates aligning every pose to the
    current mean (``procrustes_align``, reflections allowed like the metric) with re-averaging.
    """
    x = poses - poses.mean(axis=1, keepdims=True)
    x = x / (np.linalg.norm(x, axis=(1, 2), keepdims=True) + 1e-12)
    mean = x[np.argmin(np.linalg.norm(x - x.mean(0), axis=(1, 2)))]
    for _ in range(iters):
        aligned = procrustes_align(np.broadcast_to(mean, x.shape), x)
        new = aligned.mean(0)
        new = (new - new.mean(0)) / np.linalg.norm(new - new.mean(0))
        done = np.linalg.norm(new - mean) < tol
        mean = new
        if done:
            break
    return mean


def floor_predictions(train_xyz: np.ndarray, valid: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """The constant predictions (K, 3), metres, camera frame, of every floor; with ``valid``
    (N, K) flags, from the poses whose joints are all valid (all poses when none is)."""
    train = np.asarray(train_xyz, dtype=np.float64)
    if valid is not None:
        whole = np.asarray(valid, dtype=bool).all(axis=1)
        if whole.any():
            train = train[whole]
    shape = canonical_shape(train)
    centred = train - train.mean(axis=1, keepdims=True)
    size = np.linalg.norm(centred, axis=(1, 2)).mean()
    target = centred.mean(0)
    u, _, vt = np.linalg.svd(target.T @ shape)          # rotation only: shape @ R ~ target
    d = np.sign(np.linalg.det(u @ vt))
    rot = (u @ np.diag([1.0, 1.0, d]) @ vt).T
    canonical = shape @ rot * size + train.mean(axis=(0, 1))
    one_point = np.repeat(train[:, ROOT].mean(0)[None], train.shape[1], axis=0)
    return {"canonical_hand": canonical, "one_point": one_point}


def score_floors(predictions: dict[str, np.ndarray], eval_xyz: np.ndarray,
                 valid: np.ndarray | None = None) -> dict[str, dict[str, float]]:
    """``{floor: {epe_mm, pa_epe_mm, auc, pa_auc}}`` of each constant of ``floor_predictions``
    on ``eval_xyz`` (N, K, 3) metres (over its ``valid`` joints where given)."""
    gt = np.asarray(eval_xyz, dtype=np.float64)
    out = {}
    for name, pred in predictions.items():
        m = freihand_metrics(np.broadcast_to(pred, gt.shape), gt, valid)
        out[name] = {k: m[k] for k in KEYS}
    return out


def no_image_floors(train_xyz: np.ndarray, eval_xyz: np.ndarray) -> dict[str, dict[str, float]]:
    """The floors on ``eval_xyz``, their constants built from ``train_xyz`` (the fine-tuning
    ids' poses); ``score_floors`` scores constants built once on several sets."""
    return score_floors(floor_predictions(train_xyz), eval_xyz)
