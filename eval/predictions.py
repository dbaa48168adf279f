"""A run's predictions on its evaluation split, kept next to its record, and the leaderboard
file made from them (``bench submit``).

``<results>/<run_id>/predictions.npz`` holds, for every evaluated sample in the order of the
evaluation split:

- ``ids`` int64 (N,): the sample's index in the split (FreiHAND: the evaluation image id);
- ``xyz`` float32 (N, 21, 3): the predicted joints in metres, in the data set's camera frame
  and the suite's (FreiHAND) joint order; a hand the loader mirrored (a left hand shown as a
  right one) is mirrored back (x -> -x), so the prediction is of the hand as it was filmed;
- ``data`` and ``split``: the data set's name and the split, as strings.

It is written before the record (an ok record always has its predictions) and is a few
hundred KB for FreiHAND's 3,960 samples; it is not a record and is not committed with studies.

A data set whose leaderboard split has no public labels (HO-3D's evaluation split) also gets
``leaderboard.npz``: that split's predictions, ``ids`` being each frame's line in its list.

Leaderboard files (``submission``): FreiHAND's CodaLab ``pred.json`` is ``[xyz_list,
verts_list]``, one entry per evaluation sample in id order, zipped; its ``eval.py`` asserts
two lists whose lengths both equal the ground truth's. The pose model predicts no mesh, so
the verts list holds, for each sample, the 778 vertices placed on its 21 predicted joints in
turn (vertex v at joint v mod 21): the file is then well formed and its mesh alignment
finite, but the leaderboard's mesh scores (mesh error, F-scores) are meaningless; only its
keypoint scores measure the model. HO-3D's ``pred.json`` has the same shape, one entry per line
of ``evaluation.txt``, in HO-3D's joint order and its OpenGL camera frame (``ho3d_submission``).
"""
from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path

import numpy as np

from benchmarks.errors import UserError

PREDICTIONS = "predictions.npz"
LEADERBOARD = "leaderboard.npz"  # a label-free split's predictions (HO-3D's evaluation split)
# The split a run's metrics and ``predictions.npz`` are of, by data set.
SCORED_SPLITS = {"dexycb": "test", "ho3d": "train-heldout", "assemblyhands": "test"}
PRED_JSON = "pred.json"          # the file a CodaLab submission zip holds
N_VERTICES = 778                 # MANO's mesh, the second list of a FreiHAND submission
# The data sets whose leaderboard takes FreiHAND's [xyz_list, verts_list] (the synthetic lab
# world is written in FreiHAND's layout, so its runs make the same file).
LEADERBOARDS = {"freihand": "FreiHAND (CodaLab)", "synthetic": "FreiHAND format",
                "ho3d": "HO-3D v3 (CodaLab)"}
NO_MESH = ("the pose model predicts no mesh: each sample's 778 vertices are placed on its 21 "
           "predicted joints in turn, so the leaderboard's mesh scores are meaningless; only "
           "its keypoint scores measure the model")


def scored_split(data: str) -> str:
    """The split a run of ``data`` is scored on (its metrics, ``predictions.npz``)."""
    return SCORED_SPLITS.get(data, "evaluation")


def write(folder: Path, ids: np.ndarray, xyz: np.ndarray, data: str, split: str,
          name: str = PREDICTIONS, lines: int | None = None) -> Path:
    """Write ``name`` (``predictions.npz``, or ``leaderboard.npz`` with the length ``lines``
    of the split's frame list) into ``folder`` atomically; returns its path."""
    ids = np.asarray(ids, dtype=np.int64).reshape(-1)
    xyz = np.asarray(xyz, dtype=np.float32)
    if xyz.shape != (len(ids), 21, 3):
        raise ValueError(f"predictions: {xyz.shape} keypoints for {len(ids)} ids")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    tmp = folder / f".{name}.tmp{os.getpid()}"
    extra = {} if lines is None else {"lines": np.array(int(lines))}
    try:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, ids=ids, xyz=xyz, data=np.array(data), split=np.array(split),
                                **extra)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def read(folder: Path, name: str = PREDICTIONS) -> dict:
    """The predictions of the run in ``folder``: ids, xyz, data, split (and ``lines`` for a
    leaderboard file); one-line UserErrors."""
    path = Path(folder) / name
    if not path.is_file():
        raise UserError(f"{path}: no such file: the run kept no predictions (runs made before "
                        f"predictions were kept, or a failed run); rerun it with --force")
    try:
        with np.load(path, allow_pickle=False) as z:
            out = {"ids": z["ids"], "xyz": z["xyz"], "data": str(z["data"]), "split": str(z["split"])}
            if "lines" in z:
                out["lines"] = int(z["lines"])
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as err:
        raise UserError(f"{path}: not a predictions file ({' '.join(str(err).split())})") from None
    ids, xyz = out["ids"], out["xyz"]
    if ids.ndim != 1 or xyz.shape != (len(ids), 21, 3) or not np.isfinite(xyz).all():
        raise UserError(f"{path}: holds {xyz.shape} keypoints for {ids.shape} ids, or non-finite "
                        f"values; expected finite (N, 21, 3) for N ids")
    return out


def submission(pred: dict, n_expected: int, where: Path) -> list:
    """FreiHAND's ``[xyz_list, verts_list]`` of ``pred`` (``read``'s dict): one entry per id
    0..n_expected-1 in id order; refused unless the ids are exactly those."""
    ids, xyz = pred["ids"], pred["xyz"]
    order = np.argsort(ids, kind="stable")
    if len(ids) != n_expected or not np.array_equal(ids[order], np.arange(n_expected)):
        raise UserError(f"{where}: predictions for {len(ids)} samples (ids {_span(ids)}), but the "
                        f"evaluation split has {n_expected}: a leaderboard file needs every "
                        f"sample once")
    xyz = xyz[order].astype(np.float64)
    verts = xyz[:, np.arange(N_VERTICES) % 21]
    return [xyz.tolist(), verts.tolist()]


def ho3d_submission(pred: dict, where: Path, say=print) -> list:
    """HO-3D's ``[xyz_list, verts_list]`` of a ``leaderboard.npz``: one entry per line of
    ``evaluation.txt`` in its order, in HO-3D's joint order and OpenGL frame (as ``pred.py``
    writes them). A line the reader skipped (no hand box) gets the mean prediction, said."""
    from benchmarks.data.ho3d import to_leaderboard

    ids, xyz, lines = pred["ids"], pred["xyz"].astype(np.float64), pred.get("lines")
    if lines is None or len(np.unique(ids)) != len(ids) or ids.min() < 0 or ids.max() >= lines:
        raise UserError(f"{where}: not a leaderboard file of HO-3D's evaluation split "
                        f"(ids {_span(ids)}, lines {lines})")
    full = np.broadcast_to(xyz.mean(axis=0), (lines, 21, 3)).copy()
    full[ids] = xyz
    if (missing := lines - len(ids)):
        say(f"note: {missing} of {lines} lines of evaluation.txt had no hand box and get the "
            f"mean prediction")
    official = to_leaderboard(full)
    return [official.tolist(), official[:, np.arange(N_VERTICES) % 21].tolist()]


def write_zip(pair: list, out: Path) -> Path:
    """``pair`` as ``pred.json`` in the zip ``out`` (written atomically)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
    buf = io.StringIO()
    json.dump(pair, buf)
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            zf.writestr(PRED_JSON, buf.getvalue())
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


def _span(ids: np.ndarray) -> str:
    return f"{int(ids.min())}..{int(ids.max())}" if len(ids) else "none"


def submit(run_folder: Path, out: Path, say=print) -> Path:
    """``bench submit``: the leaderboard file of the ok run in ``run_folder`` written to ``out``
    (a ``.zip``); one-line UserErrors for anything that would make a wrong file."""
    from benchmarks.record import Invalid, parse

    run_folder, out = Path(run_folder), Path(out)
    record_file = run_folder / "result.json"
    if not record_file.is_file():
        raise UserError(f"{run_folder}: not a run folder (no result.json); give "
                        f"<results>/<run_id>")
    try:
        record = parse(record_file)
    except Invalid as err:
        raise UserError(f"{record_file}: {err}") from None
    if record.get("status") != "ok":
        raise UserError(f"{record_file}: the run's status is {record.get('status')!r}, not ok: "
                        f"it has no predictions to submit")
    data = record.get("data")
    if data not in LEADERBOARDS:
        raise UserError(f"{record_file}: no leaderboard file is defined for data={data}; "
                        f"bench submit writes {', '.join(LEADERBOARDS)}")
    if out.suffix.lower() != ".zip":
        raise UserError(f"--out {out}: a leaderboard submission is a .zip (it holds {PRED_JSON})")
    if out.is_dir():
        raise UserError(f"--out {out}: a folder; give the .zip file to write")
    if out.exists() and not zipfile.is_zipfile(out):
        raise UserError(f"--out {out}: exists and is not a zip; not overwritten")
    if data == "ho3d":
        pair = ho3d_submission(read(run_folder, LEADERBOARD), run_folder / LEADERBOARD, say)
        n = len(pair[0])
    else:
        n = int((record.get("metrics") or {}).get("n", -1))
        pair = submission(read(run_folder), n, run_folder / PREDICTIONS)
    write_zip(pair, out)
    say(f"{out}: {PRED_JSON} = [xyz_list, verts_list] for {n} samples of {LEADERBOARDS[data]}, "
        f"run {record.get('run_id')} (PA-EPE {record['metrics']['pa_epe_mm']:.2f} mm on "
        f"{scored_split(data)})")
    say(f"note: {NO_MESH}")
    return out
