"""The experiment grid as cluster jobs (`grid.py --executor local|slurm`, benchmarks/experiments/grid_cluster.py):
submitit's local backend end to end with a row failing on purpose and `--resume`; a real single-node Slurm (Debian's
slurm-wlm and munge, started here as root) against DVC's queue on the same rows; bad input before any submission."""
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import REPO, dvc, make_repo, one_line_error, tiny_params

GRID = REPO / "benchmarks/experiments/grid.py"
TINY_GRID = REPO / "benchmarks/experiments/grid-tiny.yaml"
BIN = Path(sys.executable).parent


def git(cwd, *args):
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def grid(work: Path, *args: str, env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "GRID_POLL_S": "1", **(env or {})}
    return subprocess.run([sys.executable, str(GRID), "--grid", str(TINY_GRID), *args], cwd=work, env=env,
                          capture_output=True, text=True, timeout=timeout)


def experiments(work: Path) -> dict[str, dict]:
    """{experiment name: its metrics} of `dvc exp show` at HEAD."""
    shown = json.loads(dvc(work, "exp", "show", "--json").stdout)
    return {e["name"]: e["revs"][0]["data"]["metrics"] for rev in shown for e in (rev.get("experiments") or []) if e.get("name")}


def remote_exps(work: Path) -> set[str]:
    return {line.rsplit("/", 1)[-1] for line in git(work, "ls-remote", "origin").splitlines() if "refs/exps/" in line}


@pytest.fixture(scope="module")
def driver(tmp_path_factory):
    """A tiny repository with a Git remote (bare, `origin`) and a DVC remote, after the stages the rows share (data,
    backbone, NegLabel, features, stage 1) ran, were committed and pushed (outputs and run-cache): no job recomputes them."""
    params = tiny_params()
    params["subset"]["seeds"] = [1]
    tmp = tmp_path_factory.mktemp("grid-cluster")
    work = make_repo(tmp, params)
    dvc(work, "remote", "add", "-d", "store", str(tmp / "dvc-store"))
    git(work, "add", "-A")
    git(work, "commit", "-qm", "DVC remote")
    git(tmp, "init", "-q", "--bare", str(tmp / "origin.git"))
    git(work, "remote", "add", "origin", str(tmp / "origin.git"))
    git(work, "push", "-q", "origin", "HEAD:main")
    dvc(work, "repro", "train_pos@1", "neglabel")  # what the rows share; each row runs stage 2, scores and report
    dvc(work, "push", "--run-cache")
    git(work, "add", "-A")
    git(work, "commit", "-qm", "dvc repro")
    git(work, "push", "-q", "origin", "HEAD:main")
    return work


@pytest.fixture(scope="module")
def local_run(driver):
    start = time.time()
    res = grid(driver, "--only", "p1,fails", "--executor", "local", "--jobs", "2", "--resource", "cpus=1")
    return res, time.time() - start


@pytest.mark.slow
def test_local_executor_runs_the_grid_reports_the_failed_row_and_resume_runs_nothing(driver, local_run):
    res, wall = local_run
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    log = res.stdout + res.stderr
    failed = [line for line in log.splitlines() if line.startswith("failed: grid-fails")]
    assert failed and "num_prompts" in failed[0], log[-3000:]
    assert Path(failed[0].rsplit("log: ", 1)[1]).exists()
    assert "grid-p1" in remote_exps(driver) and "grid-fails" not in remote_exps(driver)
    md = (driver / "reports/grid.md").read_text()
    assert "| fails | failed |" in md and "| p1 | " in md and "| p1 | not run" not in md
    assert set(json.loads((driver / "reports/grid.json").read_text())) == {"p1"}
    assert (driver / "reports/grid.png").stat().st_size > 1000
    assert experiments(driver)["grid-p1"], "grid-p1 not in dvc exp show"
    # the shared stages came from the DVC remote's run-cache, not recomputed in the job
    job_log = Path(next(line for line in log.splitlines() if "submitted grid-p1" in line).rsplit("log ", 1)[1]).read_text()
    assert "Running stage 'train_pos@1'" not in job_log and "Running stage 'train_neg@1'" in job_log, job_log[-3000:]

    start = time.time()
    again = grid(driver, "--only", "p1", "--executor", "local", "--resume")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "already in origin" in again.stdout and "submitted" not in again.stdout + again.stderr, again.stdout
    print(f"\nlocal executor, 2 rows (1 failing): {wall:.0f} s; --resume: {time.time() - start:.0f} s")


# ---------------------------------------------------------------- a real single-node Slurm


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def slurm_or_skip(tmp: Path) -> dict:
    """munged, slurmctld and slurmd on localhost (2 CPUs: two job slots); {SLURM_CONF: ...} for the commands."""
    if os.geteuid() != 0:
        pytest.skip("Slurm is started as root: not root here")
    if not shutil.which("slurmctld") or not shutil.which("munged"):
        if not shutil.which("apt-get"):
            pytest.skip("no slurm-wlm and no apt-get to install it")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        cmd = ["apt-get", "install", "-y", "-q", "slurm-wlm", "munge"]
        if subprocess.run(cmd, env=env, capture_output=True, timeout=600).returncode:
            subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, timeout=300)
            if subprocess.run(cmd, env=env, capture_output=True, timeout=600).returncode:
                pytest.skip("apt-get could not install slurm-wlm and munge")
    munge = tmp / "munge"
    for d in (munge, tmp / "state", tmp / "spool", tmp / "log"):
        d.mkdir(parents=True)
    shutil.chown(munge, "munge", "munge")
    sock = munge / "munge.socket"
    if not Path("/etc/munge/munge.key").exists():
        subprocess.run(["mungekey", "--create"], capture_output=True)
    started = subprocess.run(["su", "-s", "/bin/sh", "munge", "-c", f"/usr/sbin/munged --socket={sock} --pid-file={munge}/munged.pid "
                              f"--log-file={munge}/munged.log --seed-file={munge}/munged.seed"], capture_output=True, text=True)
    if started.returncode:
        pytest.skip(f"munged did not start: {(started.stderr.strip().splitlines() or ['?'])[-1]}")
    host = socket.gethostname().split(".")[0]
    mem_mb = int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20 * 0.8)
    conf = tmp / "slurm.conf"
    conf.write_text("\n".join([
        "ClusterName=gridtest", f"SlurmctldHost={host}(127.0.0.1)", "AuthType=auth/munge", "CredType=cred/munge", f"AuthInfo=socket={sock}",
        "SlurmUser=root", "SlurmdUser=root", f"SlurmctldPort={free_port()}", f"SlurmdPort={free_port()}",
        f"StateSaveLocation={tmp}/state", f"SlurmdSpoolDir={tmp}/spool", f"SlurmctldPidFile={tmp}/slurmctld.pid", f"SlurmdPidFile={tmp}/slurmd.pid",
        f"SlurmctldLogFile={tmp}/log/slurmctld.log", f"SlurmdLogFile={tmp}/log/slurmd.log",
        "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none", "JobAcctGatherType=jobacct_gather/none",
        "AccountingStorageType=accounting_storage/none", "JobCompType=jobcomp/none", "MpiDefault=none",
        "SelectType=select/cons_tres", "SelectTypeParameters=CR_CPU", "SchedulerType=sched/backfill", "ReturnToService=2",
        f"NodeName={host} NodeAddr=127.0.0.1 CPUs=2 RealMemory={mem_mb} State=UNKNOWN",
        f"PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP", ""]))
    env = {"SLURM_CONF": str(conf)}
    for daemon in ("slurmctld", "slurmd"):
        res = subprocess.run([daemon, "-f", str(conf)], env={**os.environ, **env}, capture_output=True, text=True)
        if res.returncode:
            pytest.skip(f"{daemon} did not start: {(res.stderr.strip().splitlines() or ['?'])[-1]}")
    for _ in range(60):
        state = subprocess.run(["sinfo", "--noheader", "--format=%t"], env={**os.environ, **env}, capture_output=True, text=True).stdout.split()
        if state and state[0] in ("idle", "mix", "alloc"):
            return env
        time.sleep(0.5)
    pytest.skip(f"the Slurm node did not come up (sinfo: {' '.join(state) or 'nothing'})")


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("slurm")
    try:
        yield slurm_or_skip(tmp)
    finally:  # the daemons this test started, by their pid files
        for pid_file in (tmp / "slurmd.pid", tmp / "slurmctld.pid", tmp / "munge/munged.pid"):
            if pid_file.exists():
                try:
                    os.kill(int(pid_file.read_text().split()[0]), 15)
                except (ProcessLookupError, ValueError):
                    pass


@pytest.mark.slow
def test_real_slurm_runs_two_rows_with_the_queue_executors_metrics(driver, local_run, slurm):
    rows = "p2,paper-loss"
    queued = grid(driver, "--only", rows, "--executor", "queue", "--jobs", "2", "--out", "reports/grid-queue.md")
    assert queued.returncode == 0, queued.stderr[-3000:]
    by_queue = experiments(driver)
    for name in ("grid-p2", "grid-paper-loss"):
        dvc(driver, "exp", "remove", name)
    start = time.time()
    res = grid(driver, "--only", rows, "--executor", "slurm", "--resource", "cpus=1", "--resource", "mem_gb=1",
               "--resource", "partition=debug", env=slurm)
    wall = time.time() - start
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "failed" not in res.stdout.lower().replace("failed=0", ""), res.stdout[-3000:]
    assert {"grid-p2", "grid-paper-loss"} <= remote_exps(driver)
    by_slurm = experiments(driver)
    for name in ("grid-p2", "grid-paper-loss"):
        assert by_slurm[name] and by_slurm[name] == by_queue[name], name
    print(f"\nreal Slurm, 2 rows: {wall:.0f} s")


# ---------------------------------------------------------------- bad input


@pytest.fixture()
def bare(tmp_path):
    """A committed repository (no stage run) with a Git remote and a DVC remote."""
    work = make_repo(tmp_path, tiny_params())
    dvc(work, "remote", "add", "-d", "store", str(tmp_path / "dvc-store"))
    git(work, "add", "-A")
    git(work, "commit", "-qm", "DVC remote")
    git(tmp_path, "init", "-q", "--bare", str(tmp_path / "origin.git"))
    git(work, "remote", "add", "origin", str(tmp_path / "origin.git"))
    git(work, "push", "-q", "origin", "HEAD:main")
    return work


def no_job_submitted(work: Path) -> None:
    assert not (work / ".dvc/tmp/grid/logs").exists()


def test_unknown_resource_key_is_one_line_before_submission(bare):
    res = grid(bare, "--only", "p1", "--executor", "local", "--resource", "gpu=1")
    one_line_error(res, "unknown resource key gpu", "gpus")
    no_job_submitted(bare)
    bad = bare / "bad.yaml"
    bad.write_text("defaults: {cpus: 1, memory: 4}\n")
    one_line_error(grid(bare, "--only", "p1", "--executor", "local", "--resources", str(bad)), "unknown resource key memory", "bad.yaml")


def test_unknown_partition_is_one_line_before_submission(bare, tmp_path):
    fake = tmp_path / "bin"
    fake.mkdir()
    for cmd, text in (("sbatch", "echo 'sbatch must not be called' >&2; exit 1"), ("sinfo", "printf 'debug\\ngpu\\n'")):
        (fake / cmd).write_text(f"#!/bin/sh\n{text}\n")
        (fake / cmd).chmod(0o755)
    res = grid(bare, "--only", "p1", "--executor", "slurm", "--resource", "partition=gpux", env={"PATH": f"{fake}:{BIN}:{os.environ['PATH']}"})
    one_line_error(res, "unknown partition 'gpux'", "debug, gpu")
    no_job_submitted(bare)


def test_no_git_remote_is_one_line_before_submission(bare):
    git(bare, "remote", "remove", "origin")
    one_line_error(grid(bare, "--only", "p1", "--executor", "local"), "no Git remote 'origin'")
    no_job_submitted(bare)


def test_base_commit_not_pushed_is_one_line(bare):
    (bare / "note.txt").write_text("x")
    git(bare, "add", "note.txt")
    git(bare, "commit", "-qm", "not pushed")
    one_line_error(grid(bare, "--only", "p1", "--executor", "local"), "is not on the Git remote 'origin'", "git push origin HEAD")
    no_job_submitted(bare)


def test_unreachable_dvc_remote_is_one_line_before_submission(bare, tmp_path):
    (tmp_path / "a-file").write_text("")
    dvc(bare, "remote", "modify", "store", "url", str(tmp_path / "a-file/store"))
    git(bare, "commit", "-qam", "a remote under a file")
    git(bare, "push", "-q", "origin", "HEAD:main")
    one_line_error(grid(bare, "--only", "p1", "--executor", "local"), "DVC remote 'store'", "not reachable")
    no_job_submitted(bare)
    dvc(bare, "remote", "remove", "store")
    git(bare, "commit", "-qam", "no DVC remote")
    git(bare, "push", "-q", "origin", "HEAD:main")
    one_line_error(grid(bare, "--only", "p1", "--executor", "local"), "no default DVC remote")


def test_resources_layer_defaults_group_row_and_command_line():
    import importlib.util

    spec = importlib.util.spec_from_file_location("grid_cluster", REPO / "benchmarks/experiments/grid_cluster.py")
    gc = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gc)
    rows = {"in1k": {"group": "imagenet"}, "p1": {"group": "ablations"}}
    per_row = gc.resources(gc.RESOURCES, rows, ["time_min=30"])
    assert per_row["in1k"]["gpus"] == 1 and per_row["p1"]["gpus"] == 0
    assert per_row["in1k"]["time_min"] == per_row["p1"]["time_min"] == 30
    with pytest.raises(gc.GridError, match="cpus of row in1k must be a whole number >= 1"):
        gc.resources(gc.RESOURCES, rows, ["cpus=0"])
