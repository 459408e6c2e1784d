"""A single-node Slurm on this machine, for trying `grid.py --executor slurm` without a cluster
(tests/test_grid_cluster.py and benchmarks/speed/grid_queue_vs_slurm.py use it). Needs root and Debian's
slurm-wlm and munge.

    python benchmarks/experiments/slurm_localhost.py start /tmp/slurm    # prints the SLURM_CONF=... to export
    python benchmarks/experiments/slurm_localhost.py stop /tmp/slurm

munged, slurmctld and slurmd run as daemons with everything (config, sockets, state, logs, pid files) under the given
directory: localhost only, this machine's CPUs as job slots (CR_CPU), proctrack/linuxproc and task/none (no cgroups),
no accounting. `stop` ends the three daemons by their pid files.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

DAEMONS = ("slurmd", "slurmctld", "munge/munged")


class SlurmUnavailable(Exception):
    """Slurm cannot be installed or started here (the message says why, in one line)."""


def tool(name: str) -> str | None:
    """The path of a Slurm or munge program: Debian puts the daemons in /usr/sbin, which a user's PATH may lack."""
    return shutil.which(name, path=f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin")


def last_line(text: str) -> str:
    return (text.strip().splitlines() or ["?"])[-1]


def install() -> None:
    """apt-get install slurm-wlm munge where they are missing (root, Debian/Ubuntu)."""
    if tool("slurmctld") and tool("munged"):
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise SlurmUnavailable("slurm-wlm is not installed, and installing it needs root and apt-get")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    cmd = ["apt-get", "install", "-y", "-q", "slurm-wlm", "munge"]
    if subprocess.run(cmd, env=env, capture_output=True, timeout=900).returncode:
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, timeout=600)
        res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
        if res.returncode:
            raise SlurmUnavailable(f"apt-get could not install slurm-wlm and munge: {last_line(res.stderr)}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(root: Path, cpus: int | None = None) -> dict[str, str]:
    """Starts the daemons; returns the environment the Slurm commands need ({'SLURM_CONF': ...})."""
    if os.geteuid() != 0:
        raise SlurmUnavailable("the daemons are started as root: not root here")
    install()
    root = Path(root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o755)  # munged runs as user munge: it must reach its directory (so must every parent)
    munge = root / "munge"
    for d in (munge, root / "state", root / "spool", root / "log"):
        d.mkdir(parents=True, exist_ok=True)
    shutil.chown(munge, "munge", "munge")
    sock = munge / "munge.socket"
    if not Path("/etc/munge/munge.key").exists():
        subprocess.run([tool("mungekey") or "mungekey", "--create"], capture_output=True)
    res = subprocess.run(
        [
            "su",
            "-s",
            "/bin/sh",
            "munge",
            "-c",
            f"{tool('munged')} --socket={sock} --pid-file={munge}/munged.pid "
            f"--log-file={munge}/munged.log --seed-file={munge}/munged.seed",
        ],
        capture_output=True,
        text=True,
    )
    if res.returncode:
        raise SlurmUnavailable(
            f"munged did not start: {last_line(res.stderr)} (it runs as user munge: can it reach {root}?)"
        )
    host = socket.gethostname().split(".")[0]
    mem_mb = int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20 * 0.8)
    conf = root / "slurm.conf"
    conf.write_text(
        "\n".join(
            [
                "ClusterName=localhost",
                f"SlurmctldHost={host}(127.0.0.1)",
                "AuthType=auth/munge",
                "CredType=cred/munge",
                f"AuthInfo=socket={sock}",
                "SlurmUser=root",
                "SlurmdUser=root",
                f"SlurmctldPort={free_port()}",
                f"SlurmdPort={free_port()}",
                f"StateSaveLocation={root}/state",
                f"SlurmdSpoolDir={root}/spool",
                f"SlurmctldPidFile={root}/slurmctld.pid",
                f"SlurmdPidFile={root}/slurmd.pid",
                f"SlurmctldLogFile={root}/log/slurmctld.log",
                f"SlurmdLogFile={root}/log/slurmd.log",
                "ProctrackType=proctrack/linuxproc",
                "TaskPlugin=task/none",
                "JobAcctGatherType=jobacct_gather/none",
                "AccountingStorageType=accounting_storage/none",
                "JobCompType=jobcomp/none",
                "MpiDefault=none",
                "SelectType=select/cons_tres",
                "SelectTypeParameters=CR_CPU",
                "SchedulerType=sched/backfill",
                "ReturnToService=2",
                f"NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus or os.cpu_count()} RealMemory={mem_mb} State=UNKNOWN",
                f"PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP",
                "",
            ]
        )
    )
    env = {"SLURM_CONF": str(conf)}
    for daemon in ("slurmctld", "slurmd"):
        res = subprocess.run(
            [tool(daemon) or daemon, "-f", str(conf)], env={**os.environ, **env}, capture_output=True, text=True
        )
        if res.returncode:
            stop(root)
            raise SlurmUnavailable(f"{daemon} did not start: {last_line(res.stderr)}")
    state = []
    for _ in range(60):
        state = subprocess.run(
            ["sinfo", "--noheader", "--format=%t"], env={**os.environ, **env}, capture_output=True, text=True
        ).stdout.split()
        if state and state[0] in ("idle", "mix", "alloc"):
            return env
        time.sleep(0.5)
    stop(root)
    raise SlurmUnavailable(f"the Slurm node did not come up (sinfo: {' '.join(state) or 'nothing'})")


def stop(root: Path) -> None:
    """Ends the daemons that `start` started there, by their pid files."""
    for name in DAEMONS:
        pid_file = Path(root) / f"{name}.pid"
        try:
            os.kill(int(pid_file.read_text().split()[0]), 15)
        except (OSError, ValueError, IndexError):
            pass


def main() -> None:
    if len(sys.argv) != 3 or sys.argv[1] not in ("start", "stop"):
        sys.exit(__doc__)
    if sys.argv[1] == "stop":
        stop(Path(sys.argv[2]))
        return
    try:
        env = start(Path(sys.argv[2]))
    except SlurmUnavailable as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    print(f"export SLURM_CONF={env['SLURM_CONF']}")


if __name__ == "__main__":
    main()
