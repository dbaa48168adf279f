"""What a result group is, which groups a table shows, and the one order they appear in.

A *group* is every run that shares a method and a setting; its runs differ only by seed.
The setting is (data, profile, budget, match, label_fraction, backbone). Every table and
figure lists groups in the same order: settings first (data, profile, budget by size,
match, label fraction, backbone), then methods in registry order, unknown methods after
them alphabetically.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence

import pandas as pd

from benchmarks.budget import UNITS, parse_budget
from benchmarks.config import MATCHES, PROFILES
from benchmarks.errors import UserError
from methods import MODULES

SETTING_KEYS: tuple[str, ...] = ("data", "profile", "budget", "match", "label_fraction", "backbone")
GROUP_KEYS: tuple[str, ...] = SETTING_KEYS + ("method",)
BASELINES: tuple[str, ...] = ("random", "imagenet")


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


def at_full_labels(frame: pd.DataFrame) -> pd.DataFrame:
    """Groups at the largest label fraction present for their (data, profile, budget, match).

    The main, protocol, probe and per-joint tables show these (and the figures, through
    :func:`headline`); the label-efficiency table and figure show every fraction.
    """
    others = [key for key in SETTING_KEYS if key not in ("label_fraction", "backbone")]
    largest = frame.groupby(others, sort=False)["label_fraction"].transform("max")
    return frame[frame["label_fraction"] == largest].reset_index(drop=True)


def headline(frame: pd.DataFrame, keep: Iterable[str] = ()) -> pd.DataFrame:
    """The groups a figure shows, one slice per (data, profile, backbone): full labels
    (:func:`at_full_labels`), the largest budget, and the default protocol (the first of
    ``benchmarks.config.MATCHES`` present). Keys in ``keep`` are not narrowed."""
    keep = set(keep)
    by = ["data", "profile", "backbone"]
    if "label_fraction" not in keep:
        frame = at_full_labels(frame)
    if "budget" not in keep:
        largest = frame.groupby(by, sort=False)["budget"].transform(lambda b: max(b, key=budget_key))
        frame = frame[frame["budget"] == largest]
    if "match" not in keep:
        first = frame.groupby(by, sort=False)["match"].transform(lambda m: match_order(m)[0])
        frame = frame[frame["match"] == first]
    return frame.reset_index(drop=True)
