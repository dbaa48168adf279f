"""The result record: its type, how it is written and read, and what it must hold.

One record per run, ``<results>/<run_id>/result.json``. :class:`Record` (with :class:`Compute`)
is its type: the runner fills one in, :func:`write_record` writes it atomically, and every
reader goes through :func:`check` (or :func:`read_record` where a broken record may simply be
skipped).
``Record.to_json`` gives the file's JSON object, keys in a fixed order;
``Record.from_json`` reads one back, keeping keys it does not know.

What a record must hold to be read is checked the same way by every reader.

``bench report`` and ``bench status`` read records through :func:`check`, so a record that
one calls broken the other lists with the same reason. Kinds:

``ok``          a complete, successful record of this schema (:func:`table_row` reads it)
``failed``      the run reported an error (``status: failed``); the reason is its error line
``unreadable``  not a JSON object: truncated, not JSON, or a JSON list or string
``invalid``     JSON that breaks the record contract: another schema, an unknown status, a
                ``run_id`` that is not the name of the record's folder (a record copied or
                moved into another folder), or an ok record whose metric is missing, a
                string, NaN or out of range (see below)

The contract of an ok record is :func:`table_row`: the text fields, an integer seed, the
four scalar metrics, the PCK curves, the 21 per-joint errors and the compute spent are
required; the floors, 2D scores and pose head are optional (absent in older records), but
a present value of the wrong kind makes the record invalid.

Ranges, by the metric's name (:func:`_bounds`): AUC and PCK (``auc``, ``pa_auc``, ``auc_2d``,
every entry of ``pck``, ``pa_pck``, ``pck_2d``) are fractions in [0, 1]; errors in
millimetres (names ending in ``_mm``: the EPEs, the per-joint errors, the floors in
``baselines``, the periodic evaluations' errors) lie in [0, :data:`MAX_ERROR_MM`]. Where an
optional one of these is present it is held to the same range. ``label_fraction`` lies in
(0, 1]; the numbers of ``compute`` (FLOPs, steps, images, seconds) and ``metrics.n``, where
present, are finite, >= 0 and below generous ceilings (:data:`MAX_FLOPS`,
:data:`MAX_COUNT`, :data:`MAX_WALL_S`).
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.errors import one_line
from benchmarks.joints import JOINT_NAMES, joint_label
from benchmarks.store import write_json_atomic

SCHEMA = 1
RECORD = "result.json"

METRICS: tuple[str, ...] = ("pa_epe_mm", "pa_auc", "epe_mm", "auc")
JOINTS: tuple[str, ...] = tuple(joint_label(n) for n in JOINT_NAMES)   # FreiHAND order
PROBE_PREFIX = "probe_"
# Row columns of the pre-training's objective on held-out frames (``Record.pretraining``):
# its value at the start and the end, the method's chance level, an image-blind predictor's
# value (``baseline``), the verdict (``learned``: 1 or 0, the method's criterion met), and the
# collapse indicators a method logs (``COLLAPSE_LOGS``), at the end.
PRETEXT_PREFIX = "pretext_"
# Row columns of cross-dataset evaluation (``Record.transfer``): ``transfer_<set>_pa_epe_mm``
# and its floor ``transfer_<set>_floor_pa_epe_mm``.
TRANSFER_PREFIX = "transfer_"
COLLAPSE_LOGS = ("embedding_std", "teacher_entropy")
TEXT_FIELDS: tuple[str, ...] = ("run_id", "method", "backbone", "data", "budget", "match", "profile")
EVAL_FIELDS: tuple[str, ...] = ("step", "images", "pa_epe_mm", "epe_mm")
DEFAULT_HEAD = "regression"       # benchmarks.pose_model.HEADS[0]: records written before the head was a choice used it
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
    "val_pa_epe_mm": "validation.pa_epe_mm",                    # the held-out training ids
    "val_change": "validation.convergence.change",             # relative, over the last quarter
}
OPTIONAL: dict[str, str] = {**FLOORS, **DIAGNOSTICS}
# the optional per-joint unaligned errors and 2D PCK curve, checked where present (not columns)
PER_JOINT_EPE = "metrics.per_joint_epe_mm"
PCK_2D = "metrics.pck_2d"

# What a metric's name says it holds (see :func:`_bounds`).
FRACTION, ERROR_MM, SIGNED = "fraction", "error in mm", "a signed number"
SIGNED_NAMES: frozenset[str] = frozenset({"change"})          # any finite number
FRACTIONS: frozenset[str] = frozenset({"auc", "pa_auc", "auc_2d", "pck", "pa_pck", "pck_2d"})  # in [0, 1]
ERROR_SUFFIX = "_mm"                 # an error in millimetres, in [0, MAX_ERROR_MM]
NOT_ERRORS: frozenset[str] = frozenset({"pck_thresholds_mm"})          # in mm, but not errors
# The largest error in mm a record may hold: 10 m. The evaluated hands are about 0.2 m across
# and lie within a metre or two of the camera, so no prediction inside the scene, nor one at
# the camera or mirrored behind it, is off by more than a few metres (aligned errors, after
# Procrustes with scale, by less than the hand's size); the largest unaligned EPE of the
# committed records is 381 mm. 10 m is thus above any error a network can make and far below
# what only a unit slip (m for um) or an overflow writes (1e308 overflows the seeds' sums of
# squares to inf and the report then fails in a figure's linear algebra).
MAX_ERROR_MM = 1e4


KINDS = ("ok", "failed", "unreadable", "invalid")


@dataclass
class Compute:
    """What a run spent (``record["compute"]``): FLOPs, steps and images of both phases, the
    budget they were planned from, wall-clock seconds and the device. Fields older records
    lack read as None."""

    budget_flops: float | None = None          # None: a wall-clock (hours) budget
    budget_unfair: bool | None = None          # True for hours budgets: not compute-matched
    pretrain_flops: float | None = None
    finetune_flops: float | None = None
    pretrain_steps: int | None = None
    finetune_steps: int | None = None
    pretrain_images: int | None = None
    finetune_images: int | None = None
    pretrain_step_flops: float | None = None
    finetune_step_flops: float | None = None
    image_flops: float | None = None           # one forward pass of one image at pre-training res
    pretrain_cache_hit: bool | None = None
    pretrain_key: str | None = None
    pretrain_wall_s: float | None = None
    finetune_wall_s: float | None = None
    external_pretrain: str | None = None       # pre-training done elsewhere (ImageNet, a file)
    wall_s: float | None = None
    device: str | None = None

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "Compute":
        """The compute block of a record; ``Invalid`` names a field of the wrong type."""
        if not isinstance(d, dict):
            raise Invalid(f"compute is a JSON {type(d).__name__}, not an object")
        known = {f.name: f.type for f in fields(cls)}
        for key, value in d.items():
            if key in known and value is not None and not _fits(value, known[key]):
                raise Invalid(f"compute.{key} is {_said(value)}, not {_TYPE_WORDS[_base(known[key])]}")
        return cls(**{k: v for k, v in d.items() if k in known})


# The record's keys in file order; ``validation`` only where a validation split was scored.
OPTIONAL_SECTIONS = ("metrics", "baselines", "probes", "labelled", "validation", "compute",
                     "pretraining", "transfer", "curves", "provenance")


@dataclass
class Record:
    """One run's result (see the README's Records section). ``status`` "ok" with metrics,
    or "failed" with the error line; sections a run did not reach stay None and are not
    written."""

    run_id: str
    method: str                                # the row's name: the method, or a weights label
    backbone: str
    data: str
    budget: str
    match: str
    label_fraction: float
    seed: int
    profile: str
    config: dict[str, Any]
    status: str | None = None
    error: str | None = None
    metrics: dict[str, Any] | None = None
    baselines: dict[str, Any] | None = None    # the no-image floors on the evaluation set
    probes: dict[str, Any] | None = None
    labelled: dict[str, Any] | None = None     # ids and images fine-tuned on (and validated on)
    validation: dict[str, Any] | None = None
    compute: Compute | None = None
    # the pre-training's own objective on held-out frames: {"objective", "images", "start",
    # "end"} (start and end: the loss and the method's logged scalars); None when nothing
    # was pre-trained here or its source has no held-out frames
    pretraining: dict[str, Any] | None = None
    # cross-dataset evaluation (eval.also): {set: {pa_epe_mm, pa_auc, epe_mm, auc, n,
    # baselines}} scored without training on the set; None without eval.also
    transfer: dict[str, Any] | None = None
    curves: dict[str, Any] | None = None       # train (pre-training), eval, finetune
    provenance: dict[str, Any] | None = None
    schema: int = SCHEMA
    extra: dict[str, Any] = field(default_factory=dict)   # keys this version does not know

    @classmethod
    def start(cls, run) -> "Record":
        """The record of ``run`` (a ``benchmarks.run.Run``) before it has a result."""
        from benchmarks.config import to_container

        cfg = run.cfg
        return cls(run_id=run.run_id, method=run.row,
                   backbone=cfg.backbone, data=cfg.data.name, budget=cfg.budget, match=cfg.match,
                   label_fraction=float(cfg.finetune.label_fraction), seed=int(cfg.seed),
                   profile=cfg.profile, config=to_container(cfg))

    def failed(self, error: str, provenance: dict[str, Any]) -> "Record":
        """This record as a failed one: the error line and where it ran, no results."""
        self.status, self.error, self.provenance = "failed", error, provenance
        return self

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"schema": self.schema, "run_id": self.run_id, "status": self.status,
                               "error": self.error}
        for key in ("method", "backbone", "data", "budget", "match", "label_fraction", "seed",
                    "profile", "config"):
            out[key] = getattr(self, key)
        for key in OPTIONAL_SECTIONS:
            value = getattr(self, key)
            if value is not None:
                out[key] = asdict(value) if isinstance(value, Compute) else value
        return {**out, **self.extra}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "Record":
        """A record object from a record file's JSON, every field and the nested compute block
        type-checked: ``Invalid`` names a missing or mistyped field (``check`` adds the ranges
        and what an ok record must hold). Keys this version does not know are kept."""
        if not isinstance(d, dict):
            raise Invalid(f"a JSON {type(d).__name__}, not a record object")
        kinds = _RECORD_TYPES
        for key, kind in kinds.items():
            if key not in d:
                if key in _REQUIRED:
                    raise Invalid(f"no {key!r} in the record")
                continue
            value = d[key]
            if value is None and key not in _REQUIRED:
                continue
            if not _fits(value, kind):
                said = ("a list" if isinstance(value, list) else "an object" if isinstance(value, dict)
                        else _said(value))
                raise Invalid(f"{key} is {said}, not {_TYPE_WORDS[_base(kind)]}")
        values = {k: v for k, v in d.items() if k in kinds}
        if isinstance(values.get("compute"), dict):
            values["compute"] = Compute.from_json(values["compute"])
        return cls(**values, extra={k: v for k, v in d.items() if k not in kinds})


# What each field of a record must be (the JSON types); the required ones must be there.
_RECORD_TYPES: dict[str, str] = {
    "schema": "int", "run_id": "str", "status": "str", "error": "str", "method": "str",
    "backbone": "str", "data": "str", "budget": "str", "match": "str", "label_fraction": "float",
    "seed": "int", "profile": "str", "config": "dict", "metrics": "dict", "baselines": "dict",
    "probes": "dict", "labelled": "dict", "validation": "dict", "compute": "dict",
    "pretraining": "dict", "transfer": "dict", "curves": "dict", "provenance": "dict"}
_REQUIRED = ("schema", "run_id", "method", "backbone", "data", "budget", "match",
             "label_fraction", "seed", "profile", "config")
_TYPE_WORDS = {"int": "an integer", "float": "a number", "str": "a string", "dict": "an object",
               "bool": "true or false"}


def _base(kind: Any) -> str:
    """``"float | None"`` (a dataclass field's annotation) -> ``"float"``."""
    return str(kind).split("|")[0].strip()


def _fits(value: Any, kind: Any) -> bool:
    kind = _base(kind)
    if kind == "bool":
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    return {"int": lambda v: isinstance(v, int),
            "float": lambda v: isinstance(v, (int, float)),
            "str": lambda v: isinstance(v, str),
            "dict": lambda v: isinstance(v, dict)}.get(kind, lambda v: True)(value)


def record_path(results: Path, run_id: str) -> Path:
    return Path(results) / run_id / RECORD


def write_record(results: Path, record: Record | dict[str, Any]) -> Path:
    """Write ``record`` to ``<results>/<run_id>/result.json`` atomically; returns the path."""
    data = record.to_json() if isinstance(record, Record) else record
    path = record_path(results, data["run_id"])
    write_json_atomic(path, data)
    return path


def read_record(path: Path) -> dict[str, Any] | None:
    """The record at ``path`` as JSON, or None when it is missing or not a JSON object."""
    try:
        return parse(Path(path))
    except Invalid:
        return None


def stand_in(run_id: str, error: str) -> dict[str, Any]:
    """What a waiting caller gets for a run whose job ended without writing a record: the
    record's identifying keys, status failed and the reason. Never written to a file."""
    return {"schema": SCHEMA, "run_id": run_id, "status": "failed", "error": error}


@dataclass(frozen=True)
class Checked:
    """One record file, read and checked: its ``kind`` (see the module docstring), the
    one-line ``reason`` (None when ok), the record (None when unreadable), and for an ok
    record its :func:`table_row` (``row``, ``evals``, ``pretrain``)."""

    path: Path
    kind: str
    reason: str | None
    record: dict[str, Any] | None
    typed: Record | None = None            # the record as its type (ok and failed records)
    row: dict[str, Any] | None = None
    evals: list[dict[str, Any]] | None = None
    pretrain: list[dict[str, Any]] | None = None

    @property
    def method(self) -> str | None:
        value = (self.record or {}).get("method")
        return value if isinstance(value, str) else None

    @property
    def seed(self) -> int | None:
        value = (self.record or {}).get("seed")
        return value if isinstance(value, int) and not isinstance(value, bool) else None


class Invalid(Exception):
    """A record that breaks the contract; the message is the reason."""


def _get(record: dict[str, Any], dotted: str) -> Any:
    value: Any = record
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            raise Invalid(f"missing {dotted}")
        value = value[part]
    return value


def _bounds(dotted: str) -> str | None:
    """What the metric at ``dotted`` is, by its last name: :data:`FRACTION` (in [0, 1]),
    :data:`ERROR_MM` (in [0, :data:`MAX_ERROR_MM`]), :data:`SIGNED` (any finite number: a
    relative change) or None (any number >= 0)."""
    name = dotted.rsplit(".", 1)[-1]
    if name in FRACTIONS:
        return FRACTION
    if name in SIGNED_NAMES:
        return SIGNED
    if name.endswith(ERROR_SUFFIX) and name not in NOT_ERRORS:
        return ERROR_MM
    return None


def _limits(kind: str | None) -> tuple[float, float]:
    """The lowest and highest value a metric of ``kind`` (see :func:`_bounds`) may hold."""
    return {FRACTION: (0.0, 1.0), ERROR_MM: (0.0, MAX_ERROR_MM),
            SIGNED: (-math.inf, math.inf)}.get(kind, (0.0, math.inf))


def _in_range(dotted: str, value: float, kind: str | None) -> None:
    """Raise Invalid (one line) where the finite number ``value`` is outside what ``kind`` holds."""
    low, high = _limits(kind)
    if low <= value <= high:
        return
    if kind == FRACTION:
        raise Invalid(f"{dotted} is {value!r}, outside [0, 1]: AUC and PCK are fractions")
    if value < low:
        raise Invalid(f"{dotted} is {value!r}, below {low:g}")
    raise Invalid(f"{dotted} is {value!r}, above {high:g} mm: no hand pose error is that large")


def _is_number(value: Any) -> bool:
    """True for a finite int or float (not a bool; not an int too large for a float)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:                       # JSON may hold an integer of any size
        return False


def _said(value: Any) -> str:
    """``value`` as a reason quotes it; an integer too large for a float by its length."""
    if isinstance(value, int) and not isinstance(value, bool) and not _is_number(value):
        return f"an integer of {len(str(abs(value)))} digits"
    return repr(value)


def _pretext(record: dict[str, Any], row: dict[str, Any]) -> None:
    """The ``pretraining`` block's numbers as ``pretext_*`` row columns (none without one)."""
    block = record.get("pretraining")
    if block is None:
        return
    if not isinstance(block, dict):
        raise Invalid("pretraining is not an object")
    objective = block.get("objective", "loss")
    if not isinstance(objective, str) or "." in objective:
        raise Invalid(f"pretraining.objective is {_said(objective)}, not a logged scalar's name")
    for end in ("start", "end"):
        row[f"{PRETEXT_PREFIX}{end}"] = _number(record, f"pretraining.{end}.{objective}")
    if block.get("chance") is not None:
        row[f"{PRETEXT_PREFIX}chance"] = _number(record, "pretraining.chance")
    baseline = block.get("baseline")
    if baseline is not None:
        if not isinstance(baseline, dict):
            raise Invalid(f"pretraining.baseline is {_said(baseline)}, not an object")
        if objective in baseline:
            row[f"{PRETEXT_PREFIX}baseline"] = _number(record, f"pretraining.baseline.{objective}")
    if "learned" in block:
        if not isinstance(block["learned"], bool):
            raise Invalid(f"pretraining.learned is {_said(block['learned'])}, not true or false")
        if not isinstance(block.get("criterion"), str) or not block["criterion"]:
            raise Invalid("pretraining.learned is given without its criterion (a sentence)")
        row[f"{PRETEXT_PREFIX}learned"] = float(block["learned"])
    for name in COLLAPSE_LOGS:
        if isinstance(block.get("end"), dict) and name in block["end"]:
            row[f"{PRETEXT_PREFIX}{name}"] = _number(record, f"pretraining.end.{name}")


def _transfer(record: dict[str, Any], row: dict[str, Any]) -> None:
    """The ``transfer`` block's PA-EPE and floor per scored set as ``transfer_*`` columns."""
    block = record.get("transfer")
    if block is None:
        return
    if not isinstance(block, dict):
        raise Invalid("transfer is not an object")
    for name in sorted(block):
        if not isinstance(name, str) or not name or "." in name:
            raise Invalid(f"transfer holds a set named {_said(name)}")
        row[f"{TRANSFER_PREFIX}{name}_pa_epe_mm"] = _number(record, f"transfer.{name}.pa_epe_mm", 0.0)
        row[f"{TRANSFER_PREFIX}{name}_floor_pa_epe_mm"] = _number(
            record, f"transfer.{name}.baselines.canonical_hand.pa_epe_mm", 0.0)


def _number(record: dict[str, Any], dotted: str, minimum: float | None = None) -> float:
    value = _get(record, dotted)
    if not _is_number(value):
        raise Invalid(f"{dotted} is {_said(value)}, not a finite number")
    if minimum is not None and value < minimum:
        raise Invalid(f"{dotted} is {value!r}, below {minimum:g}")
    return float(value)


# Generous ceilings for what a run spends: far above any real run (the largest training runs
# spend ~1e26 FLOPs; 1e8 s is three years; 1e15 steps or images is more than any data set or
# schedule), far below what an overflow or a unit slip writes (1e308 prints 309 digits).
MAX_FLOPS, MAX_WALL_S, MAX_COUNT = 1e30, 1e8, 1e15
_COMPUTE_LIMITS: dict[str, tuple[float, str]] = {
    **{f"{k}flops": (MAX_FLOPS, "FLOPs") for k in ("budget_", "pretrain_", "finetune_",
                                                    "pretrain_step_", "finetune_step_", "image_")},
    **{k: (MAX_COUNT, k.split("_")[1]) for k in ("pretrain_steps", "finetune_steps",
                                                 "pretrain_images", "finetune_images")},
    **{k: (MAX_WALL_S, "seconds") for k in ("pretrain_wall_s", "finetune_wall_s", "wall_s")},
}


def _bounded(record: dict[str, Any], dotted: str, high: float, unit: str) -> float:
    """The finite number at ``dotted``, in [0, ``high``)."""
    value = _number(record, dotted, minimum=0.0)
    if not value < high:
        raise Invalid(f"{dotted} is {value:.3g}, not below {high:g} {unit}")
    return value


def _check_compute(record: dict[str, Any]) -> None:
    """Every number in ``compute`` (where present) finite, >= 0 and below its ceiling."""
    for key, (high, unit) in _COMPUTE_LIMITS.items():
        if _lookup(record, f"compute.{key}") is not None:
            _bounded(record, f"compute.{key}", high, unit)


def _metric(record: dict[str, Any], dotted: str) -> float:
    """The finite number at ``dotted``, within the range its name implies (:func:`_bounds`)."""
    value = _number(record, dotted)
    _in_range(dotted, _get(record, dotted), _bounds(dotted))    # the value as the file has it
    return value


def _numbers(record: dict[str, Any], dotted: str, length: int | None = None,
             bounded: bool = False) -> np.ndarray:
    """The list of finite numbers at ``dotted`` (of ``length`` values); where ``bounded``, each
    within the range the list's name implies (:func:`_bounds`)."""
    value = _get(record, dotted)
    if not isinstance(value, list):
        raise Invalid(f"{dotted} is not a list of finite numbers")
    try:                                    # vectorised: a report reads thousands of curves
        array = np.asarray(value, dtype=float) if set(map(type, value)) <= {int, float} else None
    except OverflowError:                   # an integer too large for a float
        array = None
    if array is None or not np.isfinite(array).all():
        for i, entry in enumerate(value):   # name the first entry that is not a finite number
            if not _is_number(entry):
                raise Invalid(f"{dotted}[{i}] is {_said(entry)}, not a finite number")
        array = np.asarray(value, dtype=float)
    if length is not None and len(array) != length:
        raise Invalid(f"{dotted} has {len(array)} values, expected {length}")
    if bounded:
        kind = _bounds(dotted)
        low, high = _limits(kind)
        outside = np.flatnonzero((array < low) | (array > high))
        if outside.size:
            i = int(outside[0])
            _in_range(f"{dotted}[{i}]", value[i], kind)
    return array


def _curve(record: dict[str, Any], dotted: str, length: int | None = None) -> np.ndarray:
    """The list at ``dotted``, each entry within the range the list's name implies."""
    return _numbers(record, dotted, length, bounded=True)


def _lookup(record: dict[str, Any], dotted: str) -> Any:
    """The value at ``dotted``, or None where a part of the path is absent or null; raises
    Invalid where a part before the last is present but not an object."""
    value: Any = record
    parts = dotted.split(".")
    for i, part in enumerate(parts):
        if not isinstance(value, dict):
            raise Invalid(f"{'.'.join(parts[:i])} is a {type(value).__name__}, not an object")
        value = value.get(part)
        if value is None:
            return None
    return value


def _optional(record: dict[str, Any], dotted: str) -> float:
    """The metric at ``dotted`` (:func:`_metric`), or NaN where a part of the path is absent or null."""
    return math.nan if _lookup(record, dotted) is None else _metric(record, dotted)


def _check_baselines(record: dict[str, Any]) -> None:
    """Hold every floor's scores in ``baselines`` (where present) to their ranges: the four
    scalar metrics of each floor, not only those the table has a column for."""
    floors = _lookup(record, "baselines")
    if floors is None:
        return
    if not isinstance(floors, dict):
        raise Invalid(f"baselines is a {type(floors).__name__}, not an object")
    for name in sorted(floors):
        for metric in METRICS:
            if _lookup(record, f"baselines.{name}.{metric}") is not None:
                _metric(record, f"baselines.{name}.{metric}")


def _head(record: dict[str, Any]) -> str:
    """The pose head in ``config.finetune.head``; :data:`DEFAULT_HEAD` where the config lacks it."""
    value = _lookup(record, HEAD_FIELD)
    if value is None:
        return DEFAULT_HEAD
    if not isinstance(value, str) or not value:
        raise Invalid(f"{HEAD_FIELD} is {value!r}, not a non-empty string")
    return value


def _text(record: dict[str, Any], key: str) -> str:
    value = _get(record, key)
    if not isinstance(value, str) or not value:
        raise Invalid(f"{key} is {value!r}, not a non-empty string")
    return value


def table_row(record: dict[str, Any], run: str
              ) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    """The table row, the evaluation rows and the pre-training loss points (``run``,
    ``step``, ``loss``) of a successful record; raises Invalid."""
    row: dict[str, Any] = {"run": run}
    for key in TEXT_FIELDS:
        row[key] = _text(record, key)
    seed = _get(record, "seed")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise Invalid(f"seed is {seed!r}, not an integer")
    row["seed"] = seed
    row["label_fraction"] = _number(record, "label_fraction")
    if not 0.0 < row["label_fraction"] <= 1.0:
        raise Invalid(f"label_fraction is {_get(record, 'label_fraction')!r}, outside (0, 1]: "
                      f"the fraction of the labelled set fine-tuned on")
    if _lookup(record, "metrics.n") is not None:
        _bounded(record, "metrics.n", MAX_COUNT, "images")
    for metric in METRICS:
        row[metric] = _metric(record, f"metrics.{metric}")
    thresholds = _numbers(record, "metrics.pck_thresholds_mm")
    row["pck_thresholds_mm"] = thresholds
    row["pck"] = _curve(record, "metrics.pck", len(thresholds))
    row["pa_pck"] = _curve(record, "metrics.pa_pck", len(thresholds))
    row["per_joint_pa_epe_mm"] = _curve(record, "metrics.per_joint_pa_epe_mm", len(JOINTS))
    if _lookup(record, PER_JOINT_EPE) is not None:
        _curve(record, PER_JOINT_EPE, len(JOINTS))
    if _lookup(record, PCK_2D) is not None:
        _curve(record, PCK_2D)
    row["pretrain_flops"] = _number(record, "compute.pretrain_flops", minimum=0.0)
    row["finetune_flops"] = _number(record, "compute.finetune_flops", minimum=0.0)
    _check_compute(record)
    row["total_flops"] = row["pretrain_flops"] + row["finetune_flops"]
    row["wall_s"] = _number(record, "compute.wall_s", minimum=0.0)
    external = record["compute"].get("external_pretrain")
    row["external_pretrain"] = external if isinstance(external, str) and external else None
    row["head"] = _head(record)
    for column, dotted in OPTIONAL.items():
        row[column] = _optional(record, dotted)
    _check_baselines(record)
    probes = record.get("probes") or {}
    if not isinstance(probes, dict):
        raise Invalid("probes is not an object")
    for name in sorted(probes):
        if probes[name] is not None:                # a probe that was not run
            row[PROBE_PREFIX + name] = _number(record, f"probes.{name}")
    _pretext(record, row)
    _transfer(record, row)
    curves = record.get("curves") or {}
    points = (curves.get("eval") or []) if isinstance(curves, dict) else None
    if not isinstance(points, list):
        raise Invalid("curves.eval is not a list")
    evals = []
    for i, point in enumerate(points):
        try:
            evals.append({"run": run, **{key: _metric(point, key) for key in EVAL_FIELDS}})
        except Invalid as err:
            raise Invalid(f"curves.eval[{i}]: {err}") from None
    train = curves.get("train") or [] if isinstance(curves, dict) else []
    if not isinstance(train, list):
        raise Invalid("curves.train is not a list")
    pretrain = []
    for i, point in enumerate(train):
        if isinstance(point, dict) and point.get("phase", "pretrain") != "pretrain":
            continue
        try:
            pretrain.append({"run": run, "step": _number(point, "step", minimum=0.0),
                             "loss": _number(point, "loss")})
        except Invalid as err:
            raise Invalid(f"curves.train[{i}]: {err}") from None
    return row, evals, pretrain


def parse(path: Path) -> dict[str, Any]:
    """The record as a dict; raises Invalid with a one-line reason if it cannot be read."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise Invalid(f"cannot read: {err}") from None
    try:
        record = json.loads(text)
    except json.JSONDecodeError as err:
        if text.lstrip().startswith("{") and not text.rstrip().endswith("}"):
            raise Invalid(f"truncated JSON: the file ends after {len(text)} bytes, "
                           f"before the record is complete ({err.msg})") from None
        raise Invalid(f"not valid JSON: {err}") from None
    except RecursionError:
        raise Invalid("nested too deeply to read (not a record: a record is a few levels "
                      "deep)") from None
    if not isinstance(record, dict):
        raise Invalid(f"a JSON {type(record).__name__}, not a record object")
    return record


def _check_folder(record: dict[str, Any], folder: str) -> None:
    """A record names its run, and its folder is that run's (``<results>/<run_id>/``): a record
    copied into another folder would otherwise count as another run (another seed)."""
    run_id = record.get("run_id")
    if run_id != folder:
        raise Invalid(f"run_id {run_id!r} is not the name of its folder {folder!r}: "
                      f"a record copied or moved into another run's folder")


def check(path: Path) -> Checked:
    """Read the record at ``path`` and say which kind it is (see the module docstring)."""
    path = Path(path)
    try:
        record = parse(path)
    except Invalid as err:
        return Checked(path, "unreadable", one_line(err), None)
    try:
        if record.get("schema") != SCHEMA:
            raise Invalid(f"schema {record.get('schema')!r}; this version reads schema {SCHEMA}")
        _check_folder(record, path.parent.name)
        status = record.get("status")
        if status not in ("ok", "failed"):
            raise Invalid(f"status {status!r}, expected 'ok' or 'failed'")
        typed = Record.from_json(record)
        if status == "failed":
            return Checked(path, "failed", one_line(record.get("error") or "no error message in the record"),
                           record, typed)
        row, evals, pretrain = table_row(record, path.parent.name)
    except Invalid as err:
        return Checked(path, "invalid", one_line(err), record)
    return Checked(path, "ok", None, record, typed, row, evals, pretrain)


def iter_records(results: Path):
    """(path, record JSON or None) for every record file under ``results``, sorted by path."""
    for path in sorted(Path(results).glob(f"*/{RECORD}")):
        yield path, read_record(path)


def reusable(results: Path, run_id: str, force: bool = False, log=print) -> dict[str, Any] | None:
    """The ok record of run ``run_id`` (checked by :func:`check`), said with ``log``, unless
    ``force``: a finished run is never run again by accident. None when it must run."""
    path = record_path(results, run_id)
    if force or not path.exists():
        return None
    checked = check(path)
    if checked.kind != "ok":
        return None
    log(f"{run_id}: already done (status ok); reusing its record (--force to run again)")
    return checked.record
