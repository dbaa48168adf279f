"""``bench clean``: remove from a results folder what no record needs.

A finished run removes its own checkpoints (``runner``, ``pretrain``); this sweeps up what
older versions, failed runs and killed processes left behind:

- the fine-tuning checkpoints of a run whose record is ok or failed (a failed run's rerun
  starts over from its record's settings);
- the pre-training checkpoints of a pre-training whose backbone is cached;
- temporary files of writes that never finished (``.*.tmp``, older than an hour), only where
  the results layout writes them: ``<results>/``, ``<results>/<run_id>/`` (and its ``ckpt/``),
  ``<results>/.pretrain/<key>/`` (and its ``ckpt/``), nowhere deeper;
- pre-training cache entries the runner set aside as unreadable (``.pretrain/<key>.bad-<time>/``:
  never read again);
- the locks of cached pre-trainings and of finished runs, and the run locks
  (``.locks/<run_id>.lock``), when no process holds them.

Checkpoints of a run or pre-training that was interrupted (no record yet, no cached backbone)
are what resuming needs: they stay unless ``--interrupted``. Runs whose job is pending or
running are never touched, nor are runs whose job file cannot be read (``bench status``
says why; whether a job still runs them is unknown): they are listed as kept. Records, job
files and logs always stay.
"""
from __future__ import annotations

import fcntl
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from orchestration import status
from eval.pretrain import WEIGHTS

STALE_TMP_S = 3600.0
BAD = ".bad-"          # eval.pretrain.read_cache moves an unreadable entry to <key>.bad-<time>
RUN_LOCKS = ".locks"   # orchestration.runner.LOCKS: <results>/.locks/<run_id>.lock


@dataclass
class Removal:
    path: Path
    why: str
    size: int


def plan(results: Path, interrupted: bool = False) -> tuple[list[Removal], list[Removal]]:
    """(what to remove, what stays and why it is worth saying) under ``results``."""
    results = Path(results)
    remove, keep = [], []
    states = {s.run_id: s for s in status.collect(results)}
    for rid in status.run_ids(results):
        folder = results / rid
        st = states.get(rid)
        state = st.state if st is not None else None
        if state in ("pending", "running"):
            continue
        ckpt = folder / "ckpt"
        if st is not None and st.job_error is not None:
            if ckpt.exists():
                keep.append(_item(ckpt, f"{st.job_error}; left alone, as a job may still run it"))
            continue
        if ckpt.exists():
            if state == "ok" or (state == "failed" and st.record is not None):
                remove.append(_item(ckpt, f"fine-tuning checkpoints of a {state} run"))
            elif interrupted:
                remove.append(_item(ckpt, "fine-tuning checkpoints of an interrupted run"))
            else:
                keep.append(_item(ckpt, "an interrupted run resumes from it (--interrupted removes it)"))
        lock = folder / ".job.json.lock"
        if state in ("ok", "failed") and lock.exists() and not _held(lock):
            remove.append(_item(lock, "lock of a finished run"))
    cache = results / ".pretrain"
    if cache.is_dir():
        for folder in sorted(p for p in cache.iterdir() if p.is_dir()):
            if BAD in folder.name:
                remove.append(_item(folder, "unreadable pre-training cache entry set aside; never read again"))
                continue
            lock = cache / f"{folder.name}.lock"
            if lock.exists() and _held(lock):
                continue                                    # being trained right now
            cached = (folder / WEIGHTS).exists()
            if (folder / "ckpt").exists():
                if cached:
                    remove.append(_item(folder / "ckpt", "pre-training checkpoints of a cached backbone"))
                elif interrupted:
                    remove.append(_item(folder / "ckpt", "checkpoints of an interrupted pre-training"))
                else:
                    keep.append(_item(folder / "ckpt",
                                      "an interrupted pre-training resumes from it (--interrupted removes it)"))
            if cached and lock.exists():
                remove.append(_item(lock, "lock of a cached pre-training"))
    locks = results / RUN_LOCKS
    if locks.is_dir():
        for lock in sorted(locks.glob("*.lock")):
            st = states.get(lock.stem)
            if st is not None and (st.state in ("pending", "running") or st.job_error is not None):
                continue
            if lock.is_file() and not _held(lock):
                remove.append(_item(lock, "run lock no process holds"))
    now = time.time()
    for tmp in _tmp_files(results):
        if tmp.is_file() and not tmp.is_symlink() and now - tmp.stat().st_mtime > STALE_TMP_S:
            remove.append(_item(tmp, "temporary file of a write that never finished"))
    return remove, keep


def _tmp_files(results: Path) -> list[Path]:
    """The ``.*.tmp`` files where the results layout writes them, nowhere deeper."""
    folders = [results]
    for rid in status.run_ids(results):
        folders += [results / rid, results / rid / "ckpt"]
    cache = results / ".pretrain"
    if cache.is_dir():
        for entry in sorted(p for p in cache.iterdir() if p.is_dir() and BAD not in p.name):
            folders += [entry, entry / "ckpt"]
    return sorted(t for f in folders if f.is_dir() and not f.is_symlink() for t in f.glob(".*.tmp"))


def main(results: Path, dry_run: bool = False, interrupted: bool = False) -> int:
    remove, keep = plan(results, interrupted)
    verb = "would remove" if dry_run else "removed"
    for r in remove:
        if not dry_run:
            shutil.rmtree(r.path) if r.path.is_dir() else r.path.unlink(missing_ok=True)
        print(f"{verb} {r.path} ({_size(r.size)}): {r.why}")
    for k in keep:
        print(f"kept {k.path} ({_size(k.size)}): {k.why}")
    print(f"{verb} {len(remove)} items, {_size(sum(r.size for r in remove))}"
          + (f"; kept {len(keep)} ({_size(sum(k.size for k in keep))})" if keep else ""))
    return 0


def _item(path: Path, why: str) -> Removal:
    return Removal(path, why, _du(path))


def _du(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _held(lock: Path) -> bool:
    """Whether a process holds the flock on ``lock`` now."""
    try:
        fd = os.open(lock, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def _size(n: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"
