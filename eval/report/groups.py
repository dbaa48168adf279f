"""What a result group is, which groups a table shows, and the one order they appear in.

A *group* is every run that shares a pose head, a method and a setting; its runs differ
only by seed. The setting is (data, profile, budget, match, label_fraction, backbone). Every
table and figure lists groups in the same order: head (regression, heatmap, others
alphabetically), settings (data, profile, budget by size, match, label fraction, backbone),
then methods in registry order, unknown methods after them alphabetically.

The head is a group key but not a setting a table shows: the report never puts two heads
in one table or figure (``build`` writes each once per head), so within one the head is
shared, and it is named in the setting line (:func:`setting_line`) unless it is the default
regression head. Each group also has its no-image floor (the constant canonical hand's
PA-EPE on the group's evaluation set, ``floor_pa_epe_mm_mean``); :func:`not_below_floor`
says which groups do not beat it.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence

import pandas as pd

from benchmarks.budget import UNITS, parse_budget
from benchmarks.config import MATCHES, POSE_HEADS, PROFILES
from benchmarks.errors import UserError
from benchmarks.record import DEFAULT_HEAD
from methods import MODULES

SETTING_KEYS: tuple[str, ...] = ("data", "profile", "budget", "match", "label_fraction", "backbone")
HEAD = "head"
HEADS: tuple[str, ...] = POSE_HEADS                         # the pose heads, in report order
GROUP_KEYS: tuple[str, ...] = (HEAD, *SETTING_KEYS, "method")
BASELINES: tuple[str, ...] = ("random", "imagenet")
FLOOR = "floor_pa_epe_mm_mean"


class NothingToShow(Exception):
    """Raised by a table or figure builder when the records hold nothing for it (the reason)."""


def method_order(names: Iterable[str]) -> list[str]:
    """The given method names in registry order; names the registry lacks follow, alphabetically."""
    present = set(names)
    known = [name for name in MODULES if name in present]
    return known + sorted(present - set(MODULES))


def match_order(matches: Iterable[str]) -> list[str]:
    """The distinct protocols given, in ``benchmarks.config.MATCHES`` order, others after alphabetically."""
    present = set(matches)
    return [m for m in MATCHES if m in present] + sorted(present - set(MATCHES))


def head_order(heads: Iterable[str]) -> list[str]:
    """The distinct heads given, in :data:`HEADS` order, others after alphabetically."""
    present = set(heads)
    return [h for h in HEADS if h in present] + sorted(present - set(HEADS))


def budget_key(budget: str) -> tuple[int, float, str]:
    """Sort key for budget strings: by unit (in ``benchmarks.budget.UNITS`` order), then by
    size ("2ep" < "10ep" < "1.5kstep"); malformed budgets sort last, by their text."""
    try:
        parsed = parse_budget(budget)
    except UserError:
        return (len(UNITS), 0.0, budget)
    return (UNITS.index(parsed.unit), parsed.value, budget)


def _rank(order: Sequence[str], value: str) -> tuple[int, str]:
    return (order.index(value), "") if value in order else (len(order), value)


def sort_groups(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows in report order (settings, then method); the index is reset.

    Only the group-key columns that ``frame`` has take part in the order.
    """
    keys = [key for key in GROUP_KEYS if key in frame.columns]
    methods = method_order(frame["method"]) if "method" in frame.columns else []
    rankers = {
        HEAD: lambda v: _rank(HEADS, v),
        "profile": lambda v: _rank(PROFILES, v),
        "budget": budget_key,
        "match": lambda v: _rank(MATCHES, v),
        "label_fraction": float,
        "method": methods.index,
    }
    columns = [[rankers.get(key, str)(v) for v in frame[key]] for key in keys]
    row_keys = list(zip(*columns)) if keys else [()] * len(frame)
    rows = sorted(range(len(frame)), key=row_keys.__getitem__)
    return frame.iloc[rows].reset_index(drop=True)


def varying(frame: pd.DataFrame, keys: Iterable[str] = SETTING_KEYS) -> list[str]:
    """The keys (in the order given) that take more than one value in ``frame``."""
    return [key for key in keys if frame[key].nunique() > 1]


def constant(frame: pd.DataFrame, keys: Iterable[str] = SETTING_KEYS) -> list[str]:
    """The keys (in the order given) that take exactly one value in ``frame``."""
    return [key for key in keys if frame[key].nunique() == 1]


def fraction_label(fraction: float) -> str:
    """A label fraction as a percentage of the labelled set: 0.1 -> "10%"."""
    return f"{fraction * 100:g}%"


def value_label(key: str, value: object) -> str:
    """One setting value as text, e.g. ``label_fraction`` 0.1 -> "labels 10%"."""
    if key == "label_fraction":
        return f"labels {fraction_label(float(value))}"
    return f"{key} {value}"


def describe(frame: pd.DataFrame, keys: Iterable[str], row: int = 0, sep: str = " · ") -> str:
    """The values one row of ``frame`` takes on ``keys``, e.g. "data synthetic · match total"."""
    return sep.join(value_label(key, frame[key].iat[row]) for key in keys)


def setting_line(frame: pd.DataFrame, keys: Iterable[str] = SETTING_KEYS) -> str:
    """The setting every row of ``frame`` shares among ``keys``, as one line; preceded by the
    head ("head heatmap · data synthetic") where ``frame`` has one head other than the default."""
    line = describe(frame, constant(frame, keys))
    heads = frame[HEAD].unique() if HEAD in frame.columns else []
    if len(heads) == 1 and heads[0] != DEFAULT_HEAD:
        return " · ".join(part for part in (value_label(HEAD, heads[0]), line) if part)
    return line


def not_below_floor(frame: pd.DataFrame) -> pd.Series:
    """True for each group whose mean PA-EPE does not beat (is not below) its no-image floor;
    False where it does, and where the group has no floor (records without ``baselines``)."""
    if FLOOR not in frame.columns:
        return pd.Series(False, index=frame.index)
    return frame["pa_epe_mm_mean"] >= frame[FLOOR]        # NaN floors compare False


def at_full_labels(frame: pd.DataFrame) -> pd.DataFrame:
    """Groups at the largest label fraction present for their (data, profile, budget, match).

    The main, protocol, probe and per-joint tables show these (and the figures, through
    :func:`headline`); the label-efficiency table and figure show every fraction.
    """
    others = [key for key in (HEAD, *SETTING_KEYS)
              if key in frame.columns and key not in ("label_fraction", "backbone")]
    largest = frame.groupby(others, sort=False)["label_fraction"].transform("max")
    return frame[frame["label_fraction"] == largest].reset_index(drop=True)


def headline(frame: pd.DataFrame, keep: Iterable[str] = ()) -> pd.DataFrame:
    """The groups a figure shows, one slice per (head, data, profile, backbone): full labels
    (:func:`at_full_labels`), the largest budget, and the default protocol (the first of
    ``benchmarks.config.MATCHES`` present). Keys in ``keep`` are not narrowed."""
    keep = set(keep)
    by = [key for key in (HEAD, "data", "profile", "backbone") if key in frame.columns]
    if "label_fraction" not in keep:
        frame = at_full_labels(frame)
    if "budget" not in keep:
        largest = frame.groupby(by, sort=False)["budget"].transform(lambda b: max(b, key=budget_key))
        frame = frame[frame["budget"] == largest]
    if "match" not in keep:
        first = frame.groupby(by, sort=False)["match"].transform(lambda m: match_order(m)[0])
        frame = frame[frame["match"] == first]
    return frame.reset_index(drop=True)
