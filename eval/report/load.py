"""Read the result records under a results folder into one table of runs.

Every record in the folder (``<results>/<run_id>/result.json``, as ``benchmarks.store``
writes them) is read in path order. A record enters the tables only when it is a
complete, successful record of the schema this report reads; every other record is kept
as a :class:`RecordProblem` (which run, why), so the report lists it instead of dropping it.

The tables count seeds, not records: each successful record must be the only one of its
group and seed (``groups.GROUP_KEYS`` and ``seed``). Two such records (a copy of a run
under another run id, or a rerun with a changed config that kept every group key) make
:func:`load_runs` refuse with a UserError naming both folders, before anything is written:
which of the two is the seed is for the user to say, and leaving one or both out would
change a table's n, statistics and comparisons with only a line in the index to show for
it. (A record copied into another run's folder is already invalid: its ``run_id`` is not
its folder's name, see ``benchmarks.record.check``.)

Units are those of the record: errors in millimetres, AUC and PCK as fractions in [0, 1],
compute in FLOPs; 2D errors in pixels of the network input (``epe_2d_px``) or as a fraction
of the crop side (``epe_2d_frac``).

Newer records also carry the no-image floors (``baselines``), 2D keypoint scores and the pose
head (``config.finetune.head``). Older records lack them: an absent (or null) optional value
is NaN in the table and the head defaults to :data:`DEFAULT_HEAD`; a present value of the
wrong kind makes the record invalid, like a bad required field.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from benchmarks.errors import UserError
from benchmarks.record import (DEFAULT_HEAD, DIAGNOSTICS, EVAL_FIELDS, FLOORS, JOINTS, METRICS,  # noqa: F401
                               OPTIONAL, PRETEXT_PREFIX, PROBE_PREFIX, RECORD, TRANSFER_PREFIX,
                               Checked, check)
from eval.report.groups import GROUP_KEYS


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
    not in ``table``, in path order. ``n_files``: how many records were found. ``pretrain``:
    the pre-training loss curve points (``run``, ``step``, ``loss``), empty for init-only runs.
    """

    table: pd.DataFrame
    evals: pd.DataFrame
    problems: list[RecordProblem]
    n_files: int
    pretrain: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["run", "step", "loss"]))


def _refuse_duplicates(oks: list[Checked]) -> None:
    """Raise UserError, one line naming every folder, where two or more successful records
    are the same seed of one group. (Two of one run id cannot both be ok: the folder of an ok
    record is its run id.)"""
    folders: dict[tuple, list[Checked]] = {}
    for checked in oks:
        folders.setdefault(tuple(checked.row[k] for k in (*GROUP_KEYS, "seed")), []).append(checked)
    clashes = []
    for same in folders.values():
        if len(same) > 1:
            row = same[0].row
            group = ", ".join(f"{k} {row[k]}" for k in GROUP_KEYS if k != "method")
            names = [repr(str(c.path.parent)) for c in same]
            clashes.append(f"{len(same)} records are seed {row['seed']} of {row['method']} ({group}): "
                           f"{', '.join(names[:-1])} and {names[-1]}")
    if clashes:
        raise UserError(f"duplicate seeds: {'; '.join(clashes)}. The report counts each seed of a group "
                        f"once: remove or move all but one record of each seed (runs that differ in "
                        f"another config value are an ablation: bench report --ablation compares them)")


def load_runs(results_dir: Path) -> Runs:
    """Read every record below ``results_dir``; raises UserError if there is none, or where
    two successful records are the same seed of one group (naming both folders)."""
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise UserError(f"no results folder {str(results_dir)!r}; pass --results DIR with the run records")
    paths = sorted(results_dir.glob(f"*/{RECORD}"))
    if not paths:
        raise UserError(f"no records in {str(results_dir)!r} (expected <run_id>/{RECORD} files)")
    rows: list[dict[str, Any]] = []
    evals: list[dict[str, Any]] = []
    problems: list[RecordProblem] = []
    pretrain: list[dict[str, Any]] = []
    oks: list[Checked] = []
    for path in paths:
        run = path.parent.name
        checked = check(path)
        if checked.kind != "ok":
            problems.append(RecordProblem(run, checked.kind, checked.reason, checked.method, checked.seed))
            continue
        oks.append(checked)
    _refuse_duplicates(oks)
    for checked in oks:
        rows.append(checked.row)
        evals.extend(checked.evals)
        pretrain.extend(checked.pretrain)
    table = pd.DataFrame(rows)
    if rows:
        probes = sorted(c for c in table.columns if c.startswith(PROBE_PREFIX))
        table = table[[c for c in table.columns if not c.startswith(PROBE_PREFIX)] + probes]
    evals_frame = pd.DataFrame(evals, columns=["run", *EVAL_FIELDS])
    return Runs(table, evals_frame, problems, len(paths),
                pd.DataFrame(pretrain, columns=["run", "step", "loss"]))
