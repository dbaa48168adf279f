"""Checked reading of JSON files and of the numeric arrays in them, without torch.

Every check raises ``UserError`` with one line that names the offending file (or file and
entry), so that a broken download or a malformed prediction file is reported before any work
starts. The data sets (``benchmarks.data``) and ``bench evaluate`` read through these.

Arrays admit JSON numbers only: ``true``/``false`` are not read as 1/0, a string such as
``"0.1"`` is not parsed and ``null`` is not read as NaN (numpy would do all three).
"""
from __future__ import annotations

import json
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.errors import UserError


def parse_json(raw: bytes | str, where: Path | str) -> Any:
    """Parse JSON text; malformed (truncated, binary, absurdly nested) text is a UserError naming ``where``."""
    try:
        return json.loads(raw)
    except json.JSONDecodeError as err:
        raise UserError(f"{where}: not valid JSON ({err.msg} at line {err.lineno}, "
                        f"column {err.colno})") from None
    except UnicodeDecodeError:
        raise UserError(f"{where}: not valid JSON (not UTF-8 text)") from None
    except RecursionError:
        raise UserError(f"{where}: not valid JSON (lists nested too deeply)") from None
    except ValueError as err:  # e.g. an integer with more digits than Python converts
        raise UserError(f"{where}: not valid JSON ({' '.join(str(err).split())})") from None


def read_json(path: Path) -> Any:
    """Parse a JSON file; a missing, unreadable or malformed (truncated, binary) file is a UserError."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except (FileNotFoundError, IsADirectoryError):
        raise UserError(f"{path}: no such file") from None
    except OSError as err:
        raise UserError(f"{path}: unreadable ({err.strerror or err})") from None
    return parse_json(raw, path)


_FLOAT_MAX = float(np.finfo(np.float64).max)


def _is_number(x: Any) -> bool:
    """A JSON number a float64 holds: not bool (a subclass of int), str or None, nor an
    integer literal beyond float range (json reads ``1e999`` as inf, but ``1000...0`` as int)."""
    return type(x) is float or (type(x) is int and -_FLOAT_MAX <= x <= _FLOAT_MAX)


def describe(x: Any) -> str:
    """A JSON value as a user would name it: ``true``, ``null``, ``the string "0.1"``, ``a list``."""
    if x is None:
        return "null"
    if isinstance(x, bool):
        return "true" if x else "false"
    if isinstance(x, str):
        text = x if len(x) <= 20 else x[:17] + "..."
        return "the string " + json.dumps(text)
    if isinstance(x, dict):
        return "a JSON object"
    if isinstance(x, list):
        return "a list"
    if type(x) is int and not _is_number(x):
        return "an integer beyond float range"
    if _is_number(x):
        return "a single number"
    return type(x).__name__


def first_non_number(x: Any) -> Any:
    """The first leaf of nested lists ``x`` that is not a JSON number (``...`` when there is none)."""
    stack = [x]
    while stack:
        v = stack.pop()
        if isinstance(v, list):
            stack.extend(reversed(v))
        elif not _is_number(v):
            return v
    return ...


def _shape_words(shape: tuple) -> str:
    """``21 x 3``, ``a list of 2`` or ``a single number``."""
    if not shape:
        return "a single number"
    return f"a list of {shape[0]}" if len(shape) == 1 else " x ".join(map(str, shape))


def _shape_of(x: Any) -> tuple[int, ...] | None:
    """The shape of nested lists of numbers, or None where they are ragged."""
    try:
        return np.asarray(x, dtype=np.float64).shape
    except (ValueError, TypeError, OverflowError):
        return None


def _entry_problems(data: list, shape: tuple[int | None, ...], path: Path | str, want: str,
                    what: str) -> UserError:
    """The error for a list whose entries do not convert to ``shape`` (slow, entry by entry):
    non-numbers first, then entries of the wrong shape, each by count and first index."""
    n = len(data)
    leaves = [first_non_number(e) for e in data]
    bad = [i for i, v in enumerate(leaves) if v is not ...]
    if bad:
        return UserError(f"{path}: expected {want} {what}, got non-numbers: {len(bad)} of {n} entries "
                         f"hold something other than a number, first at index {bad[0]} "
                         f"({describe(leaves[bad[0]])}); only JSON numbers are read, not "
                         f"true/false, strings or null")
    sub = shape[1:]
    got = [_shape_of(e) for e in data]
    wrong = [i for i, s in enumerate(got)
             if s is None or len(s) != len(sub) or any(m is not None and m != k for m, k in zip(sub, s))]
    if wrong:
        first = got[wrong[0]]
        seen = "ragged lists" if first is None else _shape_words(first)
        sub_want = _shape_words(tuple("N" if m is None else m for m in sub))
        return UserError(f"{path}: expected {want} {what}, got ragged entries: {len(wrong)} of {n} "
                         f"entries are not {sub_want}, first at index {wrong[0]} ({seen})")
    return UserError(f"{path}: expected {want} {what}, got ragged entries")


def as_array(data: Any, shape: tuple[int | None, ...], path: Path | str,
             what: str = "numbers") -> np.ndarray:
    """``data`` as a finite float64 array of ``shape`` (None = any length), else a UserError.

    ``path`` names where the data came from in the error line (a file, or a file and entry);
    ``what`` names the numbers in it (``"keypoints (metres)"``). Only JSON numbers are read
    (``true``, ``"0.1"`` and ``null`` are refused). Entries along the first axis that hold a
    non-number, have the wrong shape or hold NaN/inf are reported by how many there are and
    the first such index.
    """
    want = " x ".join("N" if n is None else str(n) for n in shape)
    if isinstance(data, np.ndarray) and data.dtype.kind not in "fiu":
        data = data.tolist()
    if isinstance(data, np.ndarray):
        arr = data.astype(np.float64, copy=False)
    elif shape and not isinstance(data, list):
        raise UserError(f"{path}: expected {want} {what}, got {describe(data)}")
    else:
        try:
            arr = np.asarray(data, dtype=np.float64)
        except (ValueError, TypeError, OverflowError):
            raise _entry_problems(data, shape, path, want, what) from None
        if arr.ndim == len(shape) and arr.size:
            leaves: Any = data          # regular nested lists, len(shape) deep
            for _ in range(len(shape) - 1):
                leaves = chain.from_iterable(leaves)
            kinds = set(map(type, leaves))
            if not kinds <= {int, float}:        # bool, str, None: numpy converted them silently
                raise _entry_problems(data, shape, path, want, what)
    if arr.ndim != len(shape) or any(n is not None and n != m for n, m in zip(shape, arr.shape)):
        got = " x ".join(map(str, arr.shape)) or "a single number"
        raise UserError(f"{path}: expected {want} {what}, got shape {got}")
    bad = ~np.isfinite(arr).reshape(len(arr) if arr.ndim else 1, -1).all(axis=1)   # per entry
    if bad.any():
        raise UserError(f"{path}: {int(bad.sum())} of {len(bad)} entries hold NaN or inf, "
                        f"first at index {int(np.argmax(bad))}")
    return arr


def require_list(data: Any, path: Path) -> list:
    """``data`` if it is a JSON list, else a UserError naming the file."""
    if not isinstance(data, list):
        raise UserError(f"{path}: expected a JSON list, got {type(data).__name__}")
    return data


def require_entries(data: dict, key: str, fields: tuple[str, ...], path: Path) -> list[dict]:
    """``data[key]``, a JSON list of objects that each hold ``fields`` (a COCO-style
    ``images`` or ``annotations`` list), else a UserError naming the file and the entry."""
    entries = require_list(data.get(key), path)
    for j, entry in enumerate(entries):
        if not isinstance(entry, dict) or any(f not in entry for f in fields):
            raise UserError(f"{path}: {key}[{j}] must be an object with keys {', '.join(fields)}")
    return entries
