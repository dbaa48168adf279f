"""Files written so that a reader never sees half of one: JSON (records, metas, curves, job
files) written to a temporary file in the same folder and renamed over the target, and whole
folders (a report) swapped in. Records themselves are ``benchmarks.record``."""
from __future__ import annotations

import ctypes
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path


def default_results() -> Path:
    return Path(os.environ.get("BENCH_RESULTS", "results/runs"))


def write_json_atomic(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())        # mkstemp's 0600 would hide it from colleagues
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f, indent=1, sort_keys=False, allow_nan=False, default=_jsonable)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def replace_dir(new: Path, target: Path) -> None:
    """Put the folder ``new`` at ``target`` so that, killed at any point, ``target`` holds the
    old folder or the new one, never neither. Linux swaps the two in one ``renameat2`` call
    (RENAME_EXCHANGE); elsewhere the old folder is renamed aside to ``.<name>.old`` first, and
    ``recover_dir`` puts it back if a kill came between the two renames."""
    new, target = Path(new), Path(target)
    old = target.with_name(f".{target.name}.old")
    recover_dir(target)
    if not target.exists():
        new.rename(target)
        return
    if _exchange(new, target):
        shutil.rmtree(new)                      # now the old folder
        return
    shutil.rmtree(old, ignore_errors=True)
    target.rename(old)
    new.rename(target)
    shutil.rmtree(old)


def recover_dir(target: Path) -> None:
    """Undo a ``replace_dir`` killed between its renames: the old folder goes back."""
    old = Path(target).with_name(f".{Path(target).name}.old")
    if old.exists() and not Path(target).exists():
        old.rename(target)
    shutil.rmtree(old, ignore_errors=True)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    rc = renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange)
    return rc == 0


def _umask() -> int:
    """The process umask (read by setting it and setting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _jsonable(x):
    if hasattr(x, "tolist"):
        return x.tolist()
    if hasattr(x, "item"):
        return x.item()
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")
