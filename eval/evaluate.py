"""``bench evaluate``: score a FreiHAND-format prediction file like the official script.

Predictions: a JSON file in the official submission format, ``[xyz_list, verts_list]``
(N x 21 x 3 and N x 778 x 3, metres), or the ``xyz_list`` alone. Only the keypoints are
scored; vertices, when present, are ignored.

Ground truth: a folder in the FreiHAND layout holding ``evaluation_xyz.json`` (N x 21 x 3,
metres, camera frame) at its root, next to ``evaluation/`` (the official release, or a
synthetic ``lab`` product). Predictions are matched to it by index.

Scores are those of ``eval.metrics.freihand_metrics`` (errors in mm), printed as a table and
optionally written as JSON with the same keys as a result record's ``metrics`` block.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from benchmarks.checked import as_array, read_json
from benchmarks.errors import UserError
from benchmarks.store import write_json_atomic
from eval.metrics import freihand_metrics

GT_XYZ = "evaluation_xyz.json"


def _keypoints(data: Any, path: Path) -> np.ndarray:
    """A finite (N, 21, 3) float array from parsed JSON, or a one-line UserError naming ``path``."""
    return as_array(data, (None, 21, 3), path, what="keypoints (metres)")


def _depth(x: Any) -> int:
    """Nesting depth of the first elements of a JSON list (a scalar has depth 0)."""
    depth = 0
    while isinstance(x, list) and x:
        x, depth = x[0], depth + 1
    return depth


def load_predictions(path: Path) -> np.ndarray:
    """Keypoints (N, 21, 3) in metres from ``[xyz_list, verts_list]`` or a bare ``xyz_list``."""
    data = read_json(path)
    if isinstance(data, list) and len(data) == 2 and _depth(data) == 4:
        data = data[0]  # the submission pair: [N x 21 x 3, N x 778 x 3]
    return _keypoints(data, path)


def load_ground_truth(gt_dir: Path) -> np.ndarray:
    """Keypoints (N, 21, 3) in metres from ``gt_dir/evaluation_xyz.json``."""
    if not gt_dir.is_dir():
        raise UserError(f"{gt_dir}: ground-truth folder not found")
    path = gt_dir / GT_XYZ
    if not path.is_file():
        raise UserError(f"{path}: no such file (give the FreiHAND root that holds {GT_XYZ} next to evaluation/)")
    return _keypoints(read_json(path), path)


def warn_scale(pred: np.ndarray, gt: np.ndarray, path: Path) -> None:
    """One line on stderr when the predictions' scale is implausible for metres: a hand's
    joints spread over about 0.1 m and sit about 0.5 m from the camera; predictions 100x or
    1000x larger are centimetres or millimetres (PA-EPE survives that, EPE does not)."""
    ratio = float(np.median(np.linalg.norm(pred, axis=-1)) / max(np.median(np.linalg.norm(gt, axis=-1)), 1e-12))
    if ratio > 30 or ratio < 1 / 30:
        unit = "millimetres" if 300 < ratio < 3000 else "centimetres" if 30 < ratio <= 300 else "another unit"
        fix = {"millimetres": "divide by 1000", "centimetres": "divide by 100"}.get(unit, "convert to metres")
        print(f"bench evaluate: warning: {path.name} is {ratio:.0f}x the ground truth's scale; the "
              f"predictions look like {unit} ({fix}): FreiHAND scores metres", file=sys.stderr)


def metrics_table(metrics: dict[str, Any], title: str | None = None) -> Table:
    """The headline scores as a rich table (errors in mm)."""
    table = Table(title=title)
    for name in ("EPE mm", "PA-EPE mm", "AUC", "PA-AUC", "n"):
        table.add_column(name, justify="right")
    table.add_row(
        f"{metrics['epe_mm']:.2f}", f"{metrics['pa_epe_mm']:.2f}",
        f"{metrics['auc']:.4f}", f"{metrics['pa_auc']:.4f}", str(metrics["n"]),
    )
    return table


def main(pred_path: str | os.PathLike, gt_dir: str | os.PathLike, out_path: str | os.PathLike | None = None,
         console: Console | None = None) -> dict[str, Any]:
    """Score ``pred_path`` against the ground truth in ``gt_dir``; print a table; return the metrics.

    Writes the metrics as JSON to ``out_path`` when given. Any problem with the inputs
    (missing or unreadable file, wrong shape, NaN/inf, count mismatch) raises a one-line
    ``UserError`` before anything is written.
    """
    pred_path, gt_dir = Path(pred_path), Path(gt_dir)
    gt = load_ground_truth(gt_dir)
    pred = load_predictions(pred_path)
    if len(pred) != len(gt):
        raise UserError(f"{pred_path}: {len(pred)} predictions for {len(gt)} ground-truth samples in {gt_dir / GT_XYZ}")
    warn_scale(pred, gt, pred_path)
    metrics = freihand_metrics(pred, gt)
    (console or Console()).print(metrics_table(metrics, title=f"FreiHAND keypoints: {pred_path.name}"))
    if out_path is not None:
        try:
            write_json_atomic(Path(out_path), metrics)
        except OSError as err:
            raise UserError(f"cannot write {out_path}: {err.strerror or err}") from None
    return metrics
