"""Where and with what a record was made: git state, library versions, host, SLURM job."""
from __future__ import annotations

import functools
import json
import os
import platform
import socket
import subprocess
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("handbench", "torch", "torchvision", "timm", "lightly", "lightning-fabric",
            "pytorch-lightning", "hydra-core", "submitit", "numpy")


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return found


def slurm_job_id() -> str | None:
    array, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    if array and task:
        return f"{array}_{task}"
    return os.environ.get("SLURM_JOB_ID")


SNAPSHOT_META = "snapshot.json"   # written by launch.snapshot_code beside a code snapshot


@functools.cache
def git_state() -> tuple[str | None, bool | None]:
    """(sha, dirty) of the code that runs: the checkout, or what a snapshot recorded of it.
    Read once per process, at its first run's start (the runner asks then): a process that
    runs several runs (an in-process sweep) runs the code it imported, not what the checkout
    holds by the time a later record is written."""
    meta = ROOT / SNAPSHOT_META
    if meta.exists():
        try:
            data = json.loads(meta.read_text())
            return data.get("git_sha"), data.get("git_dirty")
        except (OSError, ValueError):
            return None, None
    status = _git("status", "--porcelain", "--untracked-files=no")
    return _git("rev-parse", "HEAD"), (bool(status) if status is not None else None)


def collect(started: str) -> dict:
    sha, dirty = git_state()
    return {"git_sha": sha, "git_dirty": dirty,
            "versions": versions(), "host": socket.gethostname(), "slurm_job_id": slurm_job_id(),
            "started": started, "finished": now()}
