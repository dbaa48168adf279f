"""Read the result records under a results folder into one table of runs.

Every record in the folder (``<results>/<run_id>/result.json``, as ``benchmarks.store``
writes them) is read in path order. A record enters the tables only when it is a
complete, successful record of the schema this report reads; every other record is kept
as a :class:`RecordProblem` (which run, why), so the report lists it instead of dropping it.

Units are those of the record: errors in millimetres, AUC and PCK as fractions in [0, 1],
compute in FLOPs; 2D errors in pixels of the network input (``epe_2d_px``) or as a fraction
of the crop side (``epe_2d_frac``).

Newer records also carry the no-image floors (``baselines``), 2D keypoint scores and the pose
head (``config.finetune.head``). Older records lack them: an absent (or null) optional value
is NaN in the table and the head defaults to :data:`DEFAULT_HEAD`; a present value of the
wrong kind makes the record invalid, like a bad required field.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.errors import UserError, one_line
from benchmarks.joints import JOINT_NAMES, joint_label
from benchmarks.store import RECORD, SCHEMA
from eval.pose_model import HEADS

METRICS: tuple[str, ...] = ("pa_epe_mm", "pa_auc", "epe_mm", "auc")
JOINTS: tuple[str, ...] = tuple(joint_label(n) for n in JOINT_NAMES)   # FreiHAND order
PROBE_PREFIX = "probe_"
TEXT_FIELDS: tuple[str, ...] = ("run_id", "method", "backbone", "data", "budget", "match", "profile")
EVAL_FIELDS: tuple[str, ...] = ("step", "images", "pa_epe_mm", "epe_mm")
DEFAULT_HEAD = HEADS[0]           # records written before the head was a choice used it
HEAD_FIELD = "config.finetune.head"
# optional scalar columns (NaN where the record lacks them) -> where the record keeps them
FLOORS: dict[str, str] = {
    "floor_pa_epe_mm": "baselines.canonical_hand.pa_epe_mm",     # the constant canonical hand
    "floor_pa_auc": "baselines.canonical_hand.pa_auc",
    "floor_epe_mm": "baselines.canonical_hand.epe_mm",
    "one_point_pa_epe_mm": "baselines.one_point.pa_epe_mm",     # every joint at one point
}
DIAGNOSTICS: dict[str, str] = {
    "epe_2d_px": "metrics.epe_2d_px",                           # pixels of the network input
    "epe_2d_frac": "metrics.epe_2d_frac",                       # fraction of the crop side
    "auc_2d": "metrics.auc_2d",
}
OPTIONAL: dict[str, str] = {**FLOORS, **DIAGNOSTICS}


@dataclass(frozen=True)
class RecordProblem:
    """A record that is not in the tables.

    ``run`` is the record's folder relative to the results folder; ``kind`` is "failed"
    (the run reported an error), "unreadable" (not a JSON object, e.g. truncated) or
    "invalid" (JSON that breaks the record contract); ``reason`` is one line.
    """

    run: str
    kind: str
    reason: str
    method: str | None = None
    seed: int | None = None


@dataclass(frozen=True)
class Runs:
    """The records of one results folder.

    ``table``: one row per successful record (``run``, the group keys, ``seed``, the four
    scalar metrics, ``pretrain_flops``, ``finetune_flops``, ``total_flops``, ``wall_s``,
    ``external_pretrain``, the array columns ``pck_thresholds_mm``, ``pck``, ``pa_pck``,
    ``per_joint_pa_epe_mm`` as 1-D float arrays, ``head`` (the pose head), the optional
    columns of :data:`OPTIONAL` (the floors ``floor_pa_epe_mm``, ``floor_pa_auc``,
    ``floor_epe_mm``, ``one_point_pa_epe_mm``; the 2D scores ``epe_2d_px``, ``epe_2d_frac``,
    ``auc_2d``; NaN where absent), then one ``probe_<name>`` column per probe).
    ``evals``: the periodic fine-tuning evaluations (``run``, ``step``, ``images``,
    ``pa_epe_mm``, ``epe_mm``), one row per evaluation. ``problems``: every record that is
    not in ``table``, in path order. ``n_files``: how many records were found.
    """

    table: pd.DataFrame
    evals: pd.DataFrame
    problems: list[RecordProblem]
    n_files: int


class _Invalid(Exception):
    pass


def _get(record: dict[str, Any], dotted: str) -> Any:
    value: Any = record
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            raise _Invalid(f"missing {dotted}")
        value = value[part]
    return value


def _number(record: dict[str, Any], dotted: str, minimum: float | None = None) -> float:
    value = _get(record, dotted)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _Invalid(f"{dotted} is {value!r}, not a finite number")
    if minimum is not None and value < minimum:
        raise _Invalid(f"{dotted} is {value!r}, below {minimum:g}")
    return float(value)


def _numbers(record: dict[str, Any], dotted: str, length: int | None = None) -> np.ndarray:
    value = _get(record, dotted)
    try:
        array = np.asarray(value, dtype=float) if isinstance(value, list) else None
    except (TypeError, ValueError):
        array = None
    if array is None or array.ndim != 1 or not np.isfinite(array).all():
        raise _Invalid(f"{dotted} is not a list of finite numbers")
    if length is not None and len(array) != length:
        raise _Invalid(f"{dotted} has {len(array)} values, expected {length}")
    return array


def _lookup(record: dict[str, Any], dotted: str) -> Any:
    """The value at ``dotted``, or None where a part of the path is absent or null; raises
    _Invalid where a part before the last is present but not an object."""
    value: Any = record
    parts = dotted.split(".")
    for i, part in enumerate(parts):
        if not isinstance(value, dict):
            raise _Invalid(f"{'.'.join(parts[:i])} is a {type(value).__name__}, not an object")
        value = value.get(part)
        if value is None:
            return None
    return value


def _optional(record: dict[str, Any], dotted: str) -> float:
    """The finite number >= 0 at ``dotted``, or NaN where a part of the path is absent or null."""
    return math.nan if _lookup(record, dotted) is None else _number(record, dotted, minimum=0.0)


def _head(record: dict[str, Any]) -> str:
    """The pose head in ``config.finetune.head``; :data:`DEFAULT_HEAD` where the config lacks it."""
    value = _lookup(record, HEAD_FIELD)
    if value is None:
        return DEFAULT_HEAD
    if not isinstance(value, str) or not value:
        raise _Invalid(f"{HEAD_FIELD} is {value!r}, not a non-empty string")
    return value


def _text(record: dict[str, Any], key: str) -> str:
    value = _get(record, key)
    if not isinstance(value, str) or not value:
        raise _Invalid(f"{key} is {value!r}, not a non-empty string")
    return value


def _row(record: dict[str, Any], run: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The table row and evaluation rows of a successful record; raises _Invalid."""
    row: dict[str, Any] = {"run": run}
    for key in TEXT_FIELDS:
        row[key] = _text(record, key)
    seed = _get(record, "seed")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise _Invalid(f"seed is {seed!r}, not an integer")
    row["seed"] = seed
    row["label_fraction"] = _number(record, "label_fraction", minimum=0.0)
    for metric in METRICS:
        row[metric] = _number(record, f"metrics.{metric}", minimum=0.0)
    thresholds = _numbers(record, "metrics.pck_thresholds_mm")
    row["pck_thresholds_mm"] = thresholds
    row["pck"] = _numbers(record, "metrics.pck", len(thresholds))
    row["pa_pck"] = _numbers(record, "metrics.pa_pck", len(thresholds))
    row["per_joint_pa_epe_mm"] = _numbers(record, "metrics.per_joint_pa_epe_mm", len(JOINTS))
    row["pretrain_flops"] = _number(record, "compute.pretrain_flops", minimum=0.0)
    row["finetune_flops"] = _number(record, "compute.finetune_flops", minimum=0.0)
    row["total_flops"] = row["pretrain_flops"] + row["finetune_flops"]
    row["wall_s"] = _number(record, "compute.wall_s", minimum=0.0)
    external = record["compute"].get("external_pretrain")
    row["external_pretrain"] = external if isinstance(external, str) and external else None
    row["head"] = _head(record)
    for column, dotted in OPTIONAL.items():
        row[column] = _optional(record, dotted)
    probes = record.get("probes") or {}
    if not isinstance(probes, dict):
        raise _Invalid("probes is not an object")
    for name in sorted(probes):
        if probes[name] is not None:                # a probe that was not run
            row[PROBE_PREFIX + name] = _number(record, f"probes.{name}")
    curves = record.get("curves") or {}
    points = (curves.get("eval") or []) if isinstance(curves, dict) else None
    if not isinstance(points, list):
        raise _Invalid("curves.eval is not a list")
    evals = []
    for i, point in enumerate(points):
        try:
            evals.append({"run": run, **{key: _number(point, key, minimum=0.0) for key in EVAL_FIELDS}})
        except _Invalid as err:
            raise _Invalid(f"curves.eval[{i}]: {err}") from None
    return row, evals


def _parse(path: Path) -> dict[str, Any]:
    """The record as a dict; raises _Invalid with a one-line reason if it cannot be read."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise _Invalid(f"cannot read: {err}") from None
    try:
        record = json.loads(text)
    except json.JSONDecodeError as err:
        if not text.rstrip().endswith("}"):
            raise _Invalid(f"truncated JSON: the file ends after {len(text)} bytes, "
                           f"before the record is complete ({err.msg})") from None
        raise _Invalid(f"not valid JSON: {err}") from None
    if not isinstance(record, dict):
        raise _Invalid(f"a JSON {type(record).__name__}, not a record object")
    return record


def load_runs(results_dir: Path) -> Runs:
    """Read every record below ``results_dir``; raises UserError if there is none."""
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise UserError(f"no results folder {str(results_dir)!r}; pass --results DIR with the run records")
    paths = sorted(results_dir.glob(f"*/{RECORD}"))
    if not paths:
        raise UserError(f"no records in {str(results_dir)!r} (expected <run_id>/{RECORD} files)")
    rows: list[dict[str, Any]] = []
    evals: list[dict[str, Any]] = []
    problems: list[RecordProblem] = []
    for path in paths:
        run = path.parent.name
        try:
            record = _parse(path)
        except _Invalid as err:
            problems.append(RecordProblem(run, "unreadable", one_line(err)))
            continue
        method = record.get("method") if isinstance(record.get("method"), str) else None
        seed = record.get("seed") if isinstance(record.get("seed"), int) else None
        try:
            if record.get("schema") != SCHEMA:
                raise _Invalid(f"schema {record.get('schema')!r}; this report reads schema {SCHEMA}")
            status = record.get("status")
            if status == "failed":
                error = record.get("error") or "no error message in the record"
                problems.append(RecordProblem(run, "failed", one_line(error), method, seed))
                continue
            if status != "ok":
                raise _Invalid(f"status {status!r}, expected 'ok' or 'failed'")
            row, run_evals = _row(record, run)
        except _Invalid as err:
            problems.append(RecordProblem(run, "invalid", one_line(err), method, seed))
            continue
        rows.append(row)
        evals.extend(run_evals)
    table = pd.DataFrame(rows)
    if rows:
        probes = sorted(c for c in table.columns if c.startswith(PROBE_PREFIX))
        table = table[[c for c in table.columns if not c.startswith(PROBE_PREFIX)] + probes]
    evals_frame = pd.DataFrame(evals, columns=["run", *EVAL_FIELDS])
    return Runs(table, evals_frame, problems, len(paths))
