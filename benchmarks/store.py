"""Result records: ``<results>/<run_id>/result.json``, written atomically.

A record is written to a temporary file in the same folder and renamed over the target, so
a reader sees either the old record or the whole new one, never a partial file, even with
many jobs finishing at once.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

SCHEMA = 1
RECORD = "result.json"


def default_results() -> Path:
    return Path(os.environ.get("BENCH_RESULTS", "results/runs"))


def write_json_atomic(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f, indent=1, sort_keys=False, allow_nan=False, default=_jsonable)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _jsonable(x):
    if hasattr(x, "tolist"):
        return x.tolist()
    if hasattr(x, "item"):
        return x.item()
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")


def record_path(results: Path, run_id: str) -> Path:
    return Path(results) / run_id / RECORD


def write_record(results: Path, record: dict) -> Path:
    path = record_path(results, record["run_id"])
    write_json_atomic(path, record)
    return path


def read_record(path: Path) -> dict | None:
    """The record at ``path``, or None when it is missing or unreadable."""
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def iter_records(results: Path):
    """(path, record or None) for every record file under ``results``, sorted by path."""
    for path in sorted(Path(results).glob(f"*/{RECORD}")):
        yield path, read_record(path)
