"""``bench evaluate``: score a FreiHAND-format prediction file like the official script.

Predictions: a JSON file in the official submission format, ``[xyz_list, verts_list]``
(N x 21 x 3 and N x 778 x 3, metres; both lists one entry per sample, as the official
``eval.py`` asserts), or a ``.zip`` CodaLab submission holding that file as ``pred.json``
(at its top level or in one folder), as ``bench submit`` writes it. Only the keypoints are
scored; vertices are counted but otherwise ignored. The official script's checks apply: two
lists, each with one entry per ground-truth sample; a bare ``xyz_list`` (not wrapped with
the vertices) is refused, as the official script and CodaLab refuse it.

Ground truth: a folder in the FreiHAND layout holding ``evaluation_xyz.json`` (N x 21 x 3,
metres, camera frame) at its root, next to ``evaluation/`` (the official release, or a
synthetic ``lab`` product). That file is not in the main FreiHAND download but in its
separate evaluation download, ``FreiHAND_pub_v2_eval.zip``. Predictions are matched to it
by index.

Anything wrong with the inputs is refused with one line (a ``UserError``, exit status 2)
before anything is printed or written: non-numbers (``true``, ``"0.1"``, ``null``), NaN/inf,
entries that are not 21 x 3, xyz and verts lists of different lengths, a count that differs
from the ground truth's, the unfilled all-zero submission template, and predictions so large
that the errors overflow.

Scores are those of ``eval.metrics.freihand_metrics`` (errors in mm), printed as a table and
optionally written as JSON with the same keys as a result record's ``metrics`` block.
"""
from __future__ import annotations

import math
import os
import sys
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from benchmarks.checked import as_array, describe, parse_json, read_json
from benchmarks.config import FREIHAND_EVAL_DOWNLOAD as EVAL_DOWNLOAD
from benchmarks.errors import UserError
from benchmarks.store import write_json_atomic
from eval.metrics import freihand_metrics
from eval.predictions import PRED_JSON

GT_XYZ = "evaluation_xyz.json"


def _keypoints(data: Any, where: Path | str) -> np.ndarray:
    """A finite (N, 21, 3) float array from parsed JSON, or a one-line UserError naming ``where``."""
    return as_array(data, (None, 21, 3), where, what="keypoints (metres)")


def _depth(x: Any) -> int:
    """Nesting depth of the first elements of a JSON list (a scalar has depth 0)."""
    depth = 0
    while isinstance(x, list) and x:
        x, depth = x[0], depth + 1
    return depth


def _is_zip(path: Path) -> bool:
    """A ``.zip`` name or a zip's magic bytes (JSON text never starts with ``PK``)."""
    if path.suffix.lower() == ".zip":
        return True
    try:
        with open(path, "rb") as f:
            return f.read(2) == b"PK"
    except OSError:
        return False   # read_json says what is wrong with it


def read_submission_zip(path: Path) -> tuple[Any, str]:
    """The parsed ``pred.json`` of a CodaLab submission zip and the name it is reported by."""
    try:
        with zipfile.ZipFile(path) as zf:
            names = [n for n in zf.namelist() if not n.endswith("/") and not n.startswith("__MACOSX/")]
            found = [n for n in names if PurePosixPath(n).name == PRED_JSON and len(PurePosixPath(n).parts) <= 2]
            if not found:
                held = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
                raise UserError(f"{path}: no {PRED_JSON} in this zip (a FreiHAND CodaLab submission holds "
                                f"{PRED_JSON} at its top level); it holds {held or 'no files'}")
            if len(found) > 1:
                raise UserError(f"{path}: {len(found)} {PRED_JSON} files in this zip ({', '.join(found[:3])}); "
                                f"a submission holds one")
            where = f"{path} ({found[0]})"
            raw = zf.read(found[0])
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise UserError(f"{path}: no such file (a folder)") from None
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, NotImplementedError, RuntimeError) as err:
        raise UserError(f"{path}: not a readable zip archive ({' '.join(str(err).split())})") from None
    except OSError as err:
        raise UserError(f"{path}: unreadable ({err.strerror or err})") from None
    return parse_json(raw, where), where


def load_predictions(path: Path) -> np.ndarray:
    """Keypoints (N, 21, 3) in metres from ``[xyz_list, verts_list]`` (a JSON file, or a zip
    holding it as ``pred.json``). The two lists must be equally long, as the official script
    asserts; a bare ``xyz_list`` is refused with one line, as the official script refuses it."""
    path = Path(path)
    data, where = read_submission_zip(path) if _is_zip(path) else (read_json(path), str(path))
    if isinstance(data, list) and len(data) == 2 and _depth(data) == 4:
        xyz, verts = data   # the submission pair: [N x 21 x 3, N x 778 x 3]
        if not isinstance(verts, list):
            raise UserError(f"{where}: expected [xyz_list, verts_list], but the second element is "
                            f"{describe(verts)}, not a list of vertices")
        if len(xyz) != len(verts):
            raise UserError(f"{where}: [xyz_list, verts_list] of different lengths: {len(xyz)} xyz "
                            f"entries, {len(verts)} verts entries (the official script needs one of "
                            f"each per sample)")
        return _keypoints(xyz, f"{where} (xyz list)")
    xyz = _keypoints(data, where)       # says first what is wrong with its shape, if anything
    raise UserError(f"{where}: a bare xyz list of {len(xyz)} entries; the official script and "
                    f"CodaLab need [xyz_list, verts_list] (bench submit writes one from a run; "
                    f"or wrap it as [xyz_list, verts_list] yourself)")


def check_gt_dir(gt_dir: str | os.PathLike) -> Path:
    """``gt_dir`` as a Path; an empty name or a file is a one-line UserError (``Path('')`` is
    the working folder, which would be scored silently)."""
    if str(gt_dir) == "":
        raise UserError("--gt '': not a folder; give the FreiHAND root that holds " + GT_XYZ)
    gt_dir = Path(gt_dir)
    if gt_dir.exists() and not gt_dir.is_dir():
        raise UserError(f"--gt {gt_dir}: not a folder (a file); give the FreiHAND root that "
                        f"holds {GT_XYZ}")
    return gt_dir


METRIC_KEYS = ("epe_mm", "pa_epe_mm", "auc", "pa_auc", "n")
"""Keys every metrics JSON this command writes holds (those of ``freihand_metrics``)."""


def _is_metrics_json(path: Path) -> bool:
    """Whether ``path`` holds a metrics JSON object as ``main`` writes it."""
    try:
        if not path.is_file() or path.stat().st_size > 1_000_000:   # ours are a few KB
            return False
        data = parse_json(path.read_bytes(), path)
    except (OSError, UserError):
        return False
    return isinstance(data, dict) and all(k in data for k in METRIC_KEYS)


def check_out(out_path: str | os.PathLike, pred_path: Path, gt_dir: Path) -> Path:
    """The metrics file to write, or a one-line UserError for one that is the prediction
    file, inside the ground-truth folder, a folder, or an existing file that is not an
    earlier metrics JSON of this command (which it would overwrite)."""
    out = Path(out_path)
    if str(out_path) == "":
        raise UserError("--out '': no file name given for the metrics JSON")
    real = out.resolve()
    if pred_path.exists() and real == pred_path.resolve():
        raise UserError(f"--out {out}: is the prediction file {pred_path}; give a new file "
                        f"for the metrics JSON")
    if real.is_relative_to(gt_dir.resolve()):
        raise UserError(f"--out {out}: inside the ground-truth folder {gt_dir}; write the "
                        f"metrics elsewhere")
    if out.is_dir():
        raise UserError(f"--out {out}: is a folder; give a file name for the metrics JSON")
    if (out.exists() or out.is_symlink()) and not _is_metrics_json(out):
        raise UserError(f"--out {out}: exists and is not a metrics JSON written by bench "
                        f"evaluate; not overwritten (remove it or choose another name)")
    return out


def load_ground_truth(gt_dir: Path) -> np.ndarray:
    """Keypoints (N, 21, 3) in metres from ``gt_dir/evaluation_xyz.json``."""
    gt_dir = check_gt_dir(gt_dir)
    if not gt_dir.is_dir():
        raise UserError(f"{gt_dir}: ground-truth folder not found")
    path = gt_dir / GT_XYZ
    if not path.is_file():
        if (gt_dir.parent / GT_XYZ).is_file():
            where = f"give its parent, {gt_dir.parent}, as --gt"
        else:
            where = f"unpack it into the FreiHAND root given as --gt ({gt_dir}), next to evaluation/"
        raise UserError(f"{path}: no such file: {GT_XYZ} comes in FreiHAND's separate evaluation "
                        f"download ({EVAL_DOWNLOAD}), not the main one; {where}")
    return _keypoints(read_json(path), path)


TOO_LARGE = 1e150
"""Predictions at or above this magnitude are refused: their squares overflow float64 (about
1.8e308) in the error norms, which would score inf. No unit puts a hand anywhere near it."""


def check_predictions(pred: np.ndarray, gt: np.ndarray, where: Path | str, gt_path: Path) -> None:
    """One-line UserErrors for predictions that would score, but meaninglessly: a count that
    differs from the ground truth's, the unfilled all-zero submission template, and values
    so large that the errors overflow to inf."""
    if len(pred) != len(gt):
        raise UserError(f"{where}: {len(pred)} predictions for {len(gt)} ground-truth samples in {gt_path}")
    if not pred.any():
        raise UserError(f"{where}: all {len(pred)} predictions are zero: this looks like the unfilled "
                        f"submission template; fill in the predicted keypoints (metres)")
    big = (np.abs(pred) >= TOO_LARGE).reshape(len(pred), -1).any(axis=1)
    if big.any():
        raise UserError(f"{where}: {int(big.sum())} of {len(big)} entries hold values too large to score "
                        f"(up to {float(np.abs(pred).max()):.3g}; FreiHAND scores metres), first at index "
                        f"{int(np.argmax(big))}")


def score(pred: np.ndarray, gt: np.ndarray, where: Path | str) -> dict[str, Any]:
    """``freihand_metrics``, refused with one line should any score come out NaN or inf."""
    def finite(v: Any) -> bool:
        if isinstance(v, (list, tuple)):
            return all(map(finite, v))
        return not isinstance(v, float) or math.isfinite(v)

    try:
        metrics = freihand_metrics(pred, gt)
    except np.linalg.LinAlgError as err:
        raise UserError(f"{where}: cannot align the predictions to the ground truth ({err})") from None
    bad = [k for k, v in metrics.items() if not finite(v)]
    if bad:
        raise UserError(f"{where}: the scores {', '.join(bad)} are not finite; nothing written")
    return metrics


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

    ``pred_path`` is ``[xyz_list, verts_list]`` as JSON or as ``pred.json`` in a submission
    zip (a bare ``xyz_list`` is refused, as the official script refuses it).
    Writes the metrics as JSON to ``out_path`` when given (refused, with one line, when it is
    the prediction file, inside ``gt_dir``, a folder, or an existing file other than an earlier
    metrics JSON). Any problem with the inputs
    (missing or unreadable file, non-numbers, wrong shape, NaN/inf, count mismatch, the
    all-zero template, overflowing errors) raises a one-line ``UserError`` before anything is
    printed or written.
    """
    pred_path, gt_dir = Path(pred_path), check_gt_dir(gt_dir)
    gt = load_ground_truth(gt_dir)
    if out_path is not None:
        out_path = check_out(out_path, pred_path, gt_dir)
    pred = load_predictions(pred_path)
    check_predictions(pred, gt, pred_path, gt_dir / GT_XYZ)
    metrics = score(pred, gt, pred_path)
    warn_scale(pred, gt, pred_path)
    (console or Console()).print(metrics_table(metrics, title=f"FreiHAND keypoints: {pred_path.name}"))
    if out_path is not None:
        try:
            write_json_atomic(Path(out_path), metrics)
        except OSError as err:
            raise UserError(f"cannot write {out_path}: {err.strerror or err}") from None
    return metrics
