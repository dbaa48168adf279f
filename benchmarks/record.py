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
``invalid``     JSON that breaks the record contract: another schema, an unknown status, or
                an ok record whose metric is missing, a string, NaN or out of range

The contract of an ok record is :func:`table_row`: the text fields, an integer seed, the
four scalar metrics, the PCK curves, the 21 per-joint errors and the compute spent are
required; the floors, 2D scores and pose head are optional (absent in older records), but
a present value of the wrong kind makes the record invalid.
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
TEXT_FIELDS: tuple[str, ...] = ("run_id", "method", "backbone", "data", "budget", "match", "profile")
EVAL_FIELDS: tuple[str, ...] = ("step", "images", "pa_epe_mm", "epe_mm")
DEFAULT_HEAD = "regression"       # eval.pose_model.HEADS[0]: records written before the head was a choice used it
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
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


# The record's keys in file order; ``validation`` only where a validation split was scored.
OPTIONAL_SECTIONS = ("metrics", "baselines", "probes", "labelled", "validation", "compute",
                     "curves", "provenance")


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
    curves: dict[str, Any] | None = None       # train (pre-training), eval, finetune
    provenance: dict[str, Any] | None = None
    schema: int = SCHEMA
    extra: dict[str, Any] = field(default_factory=dict)   # keys this version does not know

    @classmethod
    def start(cls, cfg, run_id: str) -> "Record":
        """The record of run ``run_id`` of config ``cfg`` before it has a result."""
        import methods
        from benchmarks.config import to_container

        return cls(run_id=run_id, method=methods.get(cfg.method.name).row_name(cfg.method),
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
        """A record object from a record file's JSON (raises KeyError on a missing required key;
        :func:`check` says whether a record is whole)."""
        known = {f.name for f in fields(cls)} - {"extra"}
        values = {k: v for k, v in d.items() if k in known}
        if isinstance(values.get("compute"), dict):
            values["compute"] = Compute.from_json(values["compute"])
        return cls(**values, extra={k: v for k, v in d.items() if k not in known})


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


def _number(record: dict[str, Any], dotted: str, minimum: float | None = None) -> float:
    value = _get(record, dotted)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise Invalid(f"{dotted} is {value!r}, not a finite number")
    if minimum is not None and value < minimum:
        raise Invalid(f"{dotted} is {value!r}, below {minimum:g}")
    return float(value)


def _numbers(record: dict[str, Any], dotted: str, length: int | None = None) -> np.ndarray:
    value = _get(record, dotted)
    try:
        array = np.asarray(value, dtype=float) if isinstance(value, list) else None
    except (TypeError, ValueError):
        array = None
    if array is None or array.ndim != 1 or not np.isfinite(array).all():
        raise Invalid(f"{dotted} is not a list of finite numbers")
    if length is not None and len(array) != length:
        raise Invalid(f"{dotted} has {len(array)} values, expected {length}")
    return array


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
    """The finite number >= 0 at ``dotted``, or NaN where a part of the path is absent or null."""
    return math.nan if _lookup(record, dotted) is None else _number(record, dotted, minimum=0.0)


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
        raise Invalid("probes is not an object")
    for name in sorted(probes):
        if probes[name] is not None:                # a probe that was not run
            row[PROBE_PREFIX + name] = _number(record, f"probes.{name}")
    curves = record.get("curves") or {}
    points = (curves.get("eval") or []) if isinstance(curves, dict) else None
    if not isinstance(points, list):
        raise Invalid("curves.eval is not a list")
    evals = []
    for i, point in enumerate(points):
        try:
            evals.append({"run": run, **{key: _number(point, key, minimum=0.0) for key in EVAL_FIELDS}})
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
        if not text.rstrip().endswith("}"):
            raise Invalid(f"truncated JSON: the file ends after {len(text)} bytes, "
                           f"before the record is complete ({err.msg})") from None
        raise Invalid(f"not valid JSON: {err}") from None
    if not isinstance(record, dict):
        raise Invalid(f"a JSON {type(record).__name__}, not a record object")
    return record


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
        status = record.get("status")
        if status == "failed":
            return Checked(path, "failed", one_line(record.get("error") or "no error message in the record"),
                           record)
        if status != "ok":
            raise Invalid(f"status {status!r}, expected 'ok' or 'failed'")
        row, evals, pretrain = table_row(record, path.parent.name)
    except Invalid as err:
        return Checked(path, "invalid", one_line(err), record)
    return Checked(path, "ok", None, record, row, evals, pretrain)


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
