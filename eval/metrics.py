"""FreiHAND's official 3D keypoint evaluation, vectorised over samples.

This reproduces ``eval.py`` and ``utils/eval_util.py::EvalUtil`` of the FreiHAND toolbox
(Zimmermann et al., ICCV 2019; github.com/lmb-freiburg/freihand) for the 21 keypoints:

- Coordinates are in **metres** inside; every error this module returns is in **millimetres**.
- Unaligned scores compare the raw prediction with the camera-frame ground truth (no root
  alignment: absolute translation errors count).
- Aligned ("PA") scores first map each predicted hand onto its ground truth by the
  similarity transform of ``align_w_scale`` (translation, rotation, uniform scale; the
  rotation comes from ``scipy.linalg.orthogonal_procrustes``, so reflections are **not**
  excluded; both point sets are scaled by their Frobenius norm + 1e-8 first).
- Measures are taken per keypoint over the samples, then averaged over keypoints
  (``EvalUtil.get_measures``): PCK(t) = fraction of distances ``<= t`` (inclusive) at 100
  evenly spaced thresholds from 0 to 50 mm inclusive; the AUC of a keypoint is
  ``trapezoid(pck, t) / trapezoid(1, t)``; AUC and EPE are the means over keypoints.

Per-joint validity (``valid``, (N, K) booleans; AssemblyHands marks joints its annotation
could not place) follows ``EvalUtil.feed``'s ``keypoint_vis``: a joint's measures are taken
over the samples where it is valid, and the Procrustes alignment of a sample is fitted to its
valid joints alone (``procrustes_align``), then applied to all of them. Every joint must be
valid in at least one sample (the data sets check this before a run starts). Without
``valid``, or with every joint valid, the computation is exactly the one above.

A constant 10 mm error on every joint gives EPE 10 mm and AUC 79.5 / 99 = 0.80303.
The 1e-8 added to the norms shrinks an aligned hand by a relative ~1e-8 (a few nanometres),
so even a perfect prediction is a hair above the 0 mm threshold after alignment: its PA-AUC
is 98.5 / 99 = 0.99495, as in the official script (its unaligned AUC is 1).
"""
from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike

THRESHOLDS_M = np.linspace(0.0, 0.05, 100)
"""The official PCK thresholds in metres: 0 to 50 mm inclusive, 100 points (step 50/99 mm)."""

_NORM_EPS = 1e-8  # added to the Frobenius norms in align_w_scale


def procrustes_align(gt: np.ndarray, pred: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """Align each predicted point set to its ground truth, exactly like FreiHAND's ``align_w_scale``.

    ``gt`` and ``pred`` are (N, K, 3) in the same unit. Per sample: both sets are centred and
    divided by their Frobenius norm (+1e-8); ``R = U V^T`` and ``s = sum(singular values)`` of
    the SVD of ``G^T P`` (``scipy.linalg.orthogonal_procrustes(G, P)``, reflections allowed);
    the result is ``P R^T s ||G|| + mean(gt)``. Returns the aligned prediction, (N, K, 3).

    With ``valid`` (N, K) booleans, the means, norms and the SVD use each sample's valid
    joints only (the same transform as ``align_w_scale`` on that subset), and the transform
    moves every joint.
    """
    w = None if valid is None or np.all(valid) else np.asarray(valid, dtype=bool)[..., None]
    t1, t2 = _centre(gt, w), _centre(pred, w)
    g = gt - t1
    p_all = pred - t2
    p = p_all
    if w is not None:               # invalid joints take no part in the fit
        g, p = g * w, p * w
    s1 = np.linalg.norm(g, axis=(1, 2), keepdims=True) + _NORM_EPS
    s2 = np.linalg.norm(p, axis=(1, 2), keepdims=True) + _NORM_EPS
    u, sv, vt = np.linalg.svd(np.swapaxes(g / s1, 1, 2) @ (p / s2))
    rot = u @ vt
    s = sv.sum(axis=-1)[:, None, None]
    return (p_all / s2 @ np.swapaxes(rot, 1, 2)) * s * s1 + t1


def _centre(x: np.ndarray, w: np.ndarray | None) -> np.ndarray:
    """Each sample's mean point (N, 1, 3), over its ``w`` (N, K, 1) joints where given."""
    if w is None:
        return x.mean(axis=1, keepdims=True)
    return (x * w).sum(axis=1, keepdims=True) / w.sum(axis=1, keepdims=True)


def check_valid(valid: ArrayLike | None, shape: tuple[int, ...]) -> np.ndarray | None:
    """``valid`` as (N, K) booleans matching the first two axes of ``shape`` (None: all valid).
    Raises ValueError when a joint is valid in no sample (its error is undefined)."""
    if valid is None:
        return None
    v = np.asarray(valid, dtype=bool)
    if v.shape != tuple(shape[:2]):
        raise ValueError(f"valid must be (N, K) = {tuple(shape[:2])}, got {v.shape}")
    never = np.flatnonzero(~v.any(axis=0))
    if never.size:
        raise ValueError(f"joints {never.tolist()} are valid in no sample: their error is undefined")
    return None if v.all() else v


def _per_joint_mean(x: np.ndarray, valid: np.ndarray | None) -> np.ndarray:
    """Mean over samples (axis 0) of ``x`` (N, K, ...), over each joint's valid samples."""
    if valid is None:
        return x.mean(axis=0)
    w = valid.reshape(valid.shape + (1,) * (x.ndim - 2)).astype(np.float64)
    return (x * w).sum(axis=0) / w.sum(axis=0)


def _measures(dist: np.ndarray, valid: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, float]:
    """``EvalUtil.get_measures`` on distances (N, K) in metres, over each keypoint's valid
    samples where ``valid`` is given.

    Returns (per-keypoint mean distance (K,), PCK curve averaged over keypoints (100,),
    AUC averaged over keypoints).
    """
    per_joint = _per_joint_mean(dist, valid)
    pck_per_joint = _per_joint_mean(dist[:, :, None] <= THRESHOLDS_M, valid)  # (K, 100)
    norm = np.trapezoid(np.ones_like(THRESHOLDS_M), THRESHOLDS_M)
    auc_per_joint = np.trapezoid(pck_per_joint, THRESHOLDS_M, axis=-1) / norm
    return per_joint, pck_per_joint.mean(axis=0), float(auc_per_joint.mean())


def freihand_metrics(pred_xyz: ArrayLike, gt_xyz: ArrayLike, valid: ArrayLike | None = None
                     ) -> dict[str, Any]:
    """Score predicted 3D keypoints against ground truth the way the FreiHAND benchmark does.

    ``pred_xyz`` and ``gt_xyz`` are (N, 21, 3) camera-frame coordinates in metres (any
    array-like, e.g. a CPU tensor); ``valid`` optional (N, 21) per-joint flags (see the module
    docstring). Returns JSON-ready python values, errors in mm:

    ``epe_mm``, ``pa_epe_mm``      mean keypoint error, unaligned / after Procrustes
    ``auc``, ``pa_auc``            area under the PCK curve over 0-50 mm, in [0, 1]
    ``pck_thresholds_mm``          the 100 thresholds, 0 to 50 inclusive
    ``pck``, ``pa_pck``            PCK at each threshold, in [0, 1]
    ``per_joint_epe_mm``, ``per_joint_pa_epe_mm``   21 per-keypoint mean errors
    ``n``                          number of samples
    """
    pred = np.asarray(pred_xyz, dtype=np.float64)
    gt = np.asarray(gt_xyz, dtype=np.float64)
    if pred.shape != gt.shape or gt.ndim != 3 or gt.shape[-1] != 3 or gt.shape[0] == 0:
        raise ValueError(f"expected two equal (N, K, 3) arrays with N > 0, got {pred.shape} and {gt.shape}")
    v = check_valid(valid, gt.shape)

    dist = np.linalg.norm(pred - gt, axis=-1)
    pa_dist = np.linalg.norm(procrustes_align(gt, pred, v) - gt, axis=-1)
    per_joint, pck, auc = _measures(dist, v)
    pa_per_joint, pa_pck, pa_auc = _measures(pa_dist, v)
    return {
        "epe_mm": float(per_joint.mean() * 1000.0),
        "pa_epe_mm": float(pa_per_joint.mean() * 1000.0),
        "auc": auc,
        "pa_auc": pa_auc,
        "pck_thresholds_mm": (THRESHOLDS_M * 1000.0).tolist(),
        "pck": pck.tolist(),
        "pa_pck": pa_pck.tolist(),
        "per_joint_epe_mm": (per_joint * 1000.0).tolist(),
        "per_joint_pa_epe_mm": (pa_per_joint * 1000.0).tolist(),
        "n": int(gt.shape[0]),
    }


THRESHOLDS_2D = np.linspace(0.0, 0.1, 100)
"""2D PCK thresholds as fractions of the crop side: 0 to 10 % inclusive, 100 points (at 224 px,
0 to 22.4 px)."""


def keypoint_2d_metrics(pred_uv: ArrayLike, gt_uv: ArrayLike, side: float,
                        valid: ArrayLike | None = None) -> dict[str, Any]:
    """2D scores of predicted image keypoints, so that learning shows before 3D converges.

    ``pred_uv`` and ``gt_uv`` are (N, K, 2) pixels of the network input, ``side`` its side in
    pixels. Measures follow the 3D ones (per keypoint over its valid samples, then the keypoint
    mean):

    ``epe_2d_px``          mean end-point error in pixels of the network input
    ``epe_2d_frac``        the same as a fraction of the crop side
    ``pck_2d_thresholds``  ``THRESHOLDS_2D``, fractions of the side
    ``pck_2d``, ``auc_2d`` PCK at each threshold and its normalised trapezoid area
    """
    pred = np.asarray(pred_uv, dtype=np.float64)
    gt = np.asarray(gt_uv, dtype=np.float64)
    if pred.shape != gt.shape or gt.ndim != 3 or gt.shape[-1] != 2 or gt.shape[0] == 0:
        raise ValueError(f"expected two equal (N, K, 2) arrays with N > 0, got {pred.shape} and {gt.shape}")
    if not side > 0:
        raise ValueError(f"side must be > 0 pixels, got {side}")
    v = check_valid(valid, gt.shape)
    dist = np.linalg.norm(pred - gt, axis=-1) / side
    per_joint = _per_joint_mean(dist, v)
    pck = _per_joint_mean(dist[:, :, None] <= THRESHOLDS_2D, v)
    norm = np.trapezoid(np.ones_like(THRESHOLDS_2D), THRESHOLDS_2D)
    auc = np.trapezoid(pck, THRESHOLDS_2D, axis=-1) / norm
    return {
        "epe_2d_px": float(per_joint.mean() * side),
        "epe_2d_frac": float(per_joint.mean()),
        "pck_2d_thresholds": THRESHOLDS_2D.tolist(),
        "pck_2d": pck.mean(axis=0).tolist(),
        "auc_2d": float(auc.mean()),
    }
