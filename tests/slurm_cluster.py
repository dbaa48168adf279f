"""A throw-away one-node SLURM cluster (Debian's slurmctld, slurmd, munge) in a temporary folder.

Everything lives under the folder: the munge key, socket and log, ``slurm.conf``, the state and
spool directories and the daemons' logs and pid files; the daemons listen on free ports. The
client commands (``sbatch``, ``squeue``, ``scontrol``) and the jobs find the cluster through
``SLURM_CONF``, which ``env()`` returns. Needs root (slurmd starts jobs as their user).

    reason = unavailable()          # None, or why this machine cannot run the cluster
    with SlurmCluster(tmp) as cluster:
        subprocess.run(["sinfo"], env={**os.environ, **cluster.env()})

Packages (Debian 12): ``apt-get install -y slurmctld slurmd slurm-client munge``.
Run as a script (``python tests/slurm_cluster.py``) it starts a cluster, prints ``sinfo`` and
stops it again.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BINARIES = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "sinfo")
PARTITION = "debug"
REQUEUE_DELAY_S = 5          # cred_expire: how long a requeued job waits before it may start


def unavailable() -> str | None:
    """Why a cluster cannot be started here, or None when it can."""
    missing = [b for b in BINARIES if shutil.which(b) is None]
    if missing:
        return (f"SLURM is not installed ({', '.join(missing)} not found; "
                f"apt-get install -y slurmctld slurmd slurm-client munge)")
    if os.geteuid() != 0:
        return "starting a SLURM cluster needs root (slurmd runs jobs as their user)"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _node_line() -> str:
    """This machine as a SLURM node: ``slurmd -C``'s CPUs, a memory slightly under its own."""
    fields = dict(w.split("=", 1) for w in
                  subprocess.run(["slurmd", "-C"], capture_output=True, text=True, check=True)
                  .stdout.split() if "=" in w)
    memory = int(int(fields["RealMemory"]) * 0.9)
    return f"NodeName={fields['NodeName']} CPUs={fields['CPUs']} RealMemory={memory} State=UNKNOWN"


def _terminate(pid: int, grace_s: float = 20.0) -> None:
    """SIGTERM, then SIGKILL if ``pid`` is still alive after ``grace_s``."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


class SlurmCluster:
    """Start with ``start()`` (or ``with``), stop with ``stop()``; ``env()`` for clients."""

    def __init__(self, folder: Path, boot_timeout_s: float = 60.0):
        self.folder = Path(folder)
        self.boot_timeout_s = boot_timeout_s
        self.conf = self.folder / "slurm.conf"
        self.munge_socket = self.folder / "munge" / "munge.socket"
        self._pid_files = [self.folder / "slurmd.pid", self.folder / "slurmctld.pid",
                           self.folder / "munge" / "munged.pid"]

    def env(self) -> dict[str, str]:
        return {"SLURM_CONF": str(self.conf)}

    def _run(self, *cmd: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(cmd, env={**os.environ, **self.env()}, capture_output=True,
                              text=True, check=check, timeout=60)

    def _start_munge(self) -> None:
        d = self.folder / "munge"
        d.mkdir(mode=0o700)
        key = d / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        subprocess.run(["munged", "--force", f"--socket={self.munge_socket}", f"--key-file={key}",
                        f"--pid-file={d / 'munged.pid'}", f"--log-file={d / 'munged.log'}",
                        f"--seed-file={d / 'munged.seed'}"], check=True, capture_output=True,
                       text=True, timeout=30)

    def _write_conf(self) -> None:
        host = socket.gethostname().split(".")[0]
        for sub in ("state", "spool"):
            (self.folder / sub).mkdir()
        f = self.folder
        self.conf.write_text("\n".join([
            "ClusterName=handbench-test",
            f"SlurmctldHost={host}",
            f"SlurmctldPort={_free_port()}",
            f"SlurmdPort={_free_port()}",
            "SlurmUser=root",
            "SlurmdUser=root",
            "AuthType=auth/munge",
            f"AuthInfo=socket={self.munge_socket},cred_expire={REQUEUE_DELAY_S}",
            f"StateSaveLocation={f / 'state'}",
            f"SlurmdSpoolDir={f / 'spool'}",
            f"SlurmctldPidFile={f / 'slurmctld.pid'}",
            f"SlurmdPidFile={f / 'slurmd.pid'}",
            f"SlurmctldLogFile={f / 'slurmctld.log'}",
            f"SlurmdLogFile={f / 'slurmd.log'}",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "SwitchType=switch/none",
            "MpiDefault=none",
            "ReturnToService=2",
            "SchedulerType=sched/backfill",
            "SchedulerParameters=sched_interval=1,bf_interval=1",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core_Memory",
            "JobCompType=jobcomp/none",
            "AccountingStorageType=accounting_storage/none",
            "JobAcctGatherType=jobacct_gather/none",
            "MinJobAge=300",
            "KillWait=5",
            _node_line(),
            f"PartitionName={PARTITION} Nodes=ALL Default=YES MaxTime=INFINITE State=UP",
        ]) + "\n")

    def start(self) -> "SlurmCluster":
        reason = unavailable()
        if reason:
            raise RuntimeError(reason)
        self.folder.mkdir(parents=True, exist_ok=True)
        try:
            self._start_munge()
            self._write_conf()
            env = {**os.environ, **self.env()}
            subprocess.run(["slurmctld", "-i"], env=env, check=True, timeout=60)
            subprocess.run(["slurmd"], env=env, check=True, timeout=60)
            self._wait_idle()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_idle(self) -> None:
        deadline = time.monotonic() + self.boot_timeout_s
        state = ""
        while time.monotonic() < deadline:
            out = self._run("sinfo", "-h", "-o", "%T", check=False)
            state = out.stdout.strip()
            if out.returncode == 0 and state.startswith("idle"):
                return
            time.sleep(0.5)
        raise RuntimeError(f"SLURM node not idle after {self.boot_timeout_s:.0f} s (state "
                           f"{state!r}); see {self.folder}/slurmctld.log and slurmd.log")

    def stop(self) -> None:
        """Cancel every job, then stop slurmd, slurmctld and munged (by their pid files)."""
        if self.conf.exists():
            self._run("scancel", "--full", f"--partition={PARTITION}", check=False)
        for pid_file in self._pid_files:
            try:
                pid = int(pid_file.read_text().strip())
            except (OSError, ValueError):
                continue
            _terminate(pid)

    def __enter__(self) -> "SlurmCluster":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


if __name__ == "__main__":
    why = unavailable()
    if why:
        sys.exit(f"cannot start a cluster: {why}")
    with tempfile.TemporaryDirectory(prefix="slurm-") as tmp, SlurmCluster(Path(tmp)) as c:
        print(c._run("sinfo").stdout)
