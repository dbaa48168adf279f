"""Checked reading of JSON files and of the numeric arrays in them, without torch.

Every check raises ``UserError`` with one line that names the offending file (or file and
entry), so that a broken download or a malformed prediction file is reported before any work
starts. The data sets (``benchmarks.data``) and ``bench evaluate`` read through these.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.errors import UserError


def read_json(path: Path) -> Any:
    """Parse a JSON file; a missing, unreadable or malformed (truncated, binary) file is a UserError."""
    try:
        with open(path, "rb") as f:
            return json.load(f)
    except (FileNotFoundError, IsADirectoryError):
        raise UserError(f"{path}: no such file") from None
    except json.JSONDecodeError as err:
        raise UserError(f"{path}: not valid JSON ({err.msg} at line {err.lineno}, "
                        f"column {err.colno})") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not valid JSON (not UTF-8 text)") from None
    except OSError as err:
        raise UserError(f"{path}: unreadable ({err.strerror or err})") from None


def as_array(data: Any, shape: tuple[int | None, ...], path: Path | str,
             what: str = "numbers") -> np.ndarray:
    """``data`` as a finite float64 array of ``shape`` (None = any length), else a UserError.

    ``path`` names where the data came from in the error line (a file, or a file and entry);
    ``what`` names the numbers in it (``"keypoints (metres)"``). Non-finite values are
    reported by how many entries along the first axis hold them and the first such index.
    """
    want = " x ".join("N" if n is None else str(n) for n in shape)
    try:
        arr = np.asarray(data, dtype=np.float64)
    except (ValueError, TypeError):
        raise UserError(f"{path}: expected {want} {what}, got ragged or non-numeric "
                        f"entries") from None
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
