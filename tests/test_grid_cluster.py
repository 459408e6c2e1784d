"""The experiment grid as cluster jobs (`grid.py --executor local|slurm`, benchmarks/experiments/grid_cluster.py):
submitit's local backend end to end with a row failing on purpose and `--resume`; a real single-node Slurm (Debian's
slurm-wlm and munge, started here as root) on that row, with the same metrics;
bad input before any submission."""

import json
import os
import shutil
import subprocess
import sys
import tempfile
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
    return subprocess.run(
        [sys.executable, str(GRID), "--grid", str(TINY_GRID), *args],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def experiments(work: Path) -> dict[str, dict]:
    """{experiment name: its metrics} of `dvc exp show` at HEAD."""
    shown = json.loads(dvc(work, "exp", "show", "--json").stdout)
    return {
        e["name"]: e["revs"][0]["data"]["metrics"]
        for rev in shown
        for e in (rev.get("experiments") or [])
        if e.get("name")
    }


def remote_exps(work: Path) -> set[str]:
    return {line.rsplit("/", 1)[-1] for line in git(work, "ls-remote", "origin").splitlines() if "refs/exps/" in line}


def with_remotes(tmp: Path, params: dict) -> Path:
    """make_repo's repository with a DVC remote (`store`, committed) and a bare Git remote (`origin`) it is
    pushed to."""
    work = make_repo(tmp, params)
    dvc(work, "remote", "add", "-d", "store", str(tmp / "dvc-store"))
    git(work, "add", "-A")
    git(work, "commit", "-qm", "DVC remote")
    git(tmp, "init", "-q", "--bare", str(tmp / "origin.git"))
    git(work, "remote", "add", "origin", str(tmp / "origin.git"))
    git(work, "push", "-q", "origin", "HEAD:main")
    return work


@pytest.fixture(scope="module")
def driver(tmp_path_factory):
    """A tiny repository with a Git remote (bare, `origin`) and a DVC remote, after the stages the rows share (data,
    backbone, NegLabel, features, stage 1) ran, were committed and pushed (outputs and run-cache): no job recomputes
    them."""
    params = tiny_params()
    params["subset"]["seeds"] = [1]
    tmp = tmp_path_factory.mktemp("grid-cluster")
    work = with_remotes(tmp, params)
    dvc(work, "repro", "train_pos@1", "neglabel")  # what the rows share; each row runs stage 2, scores and report
    dvc(work, "push", "--run-cache")
    git(work, "add", "-A")
    git(work, "commit", "-qm", "dvc repro")
    git(work, "push", "-q", "origin", "HEAD:main")
    shutil.copytree(
        tmp / "dvc-store", tmp / "dvc-store-before-the-grid"
    )  # for the Slurm run: none of the rows' stages in it
    return work


@pytest.fixture(scope="module")
def local_run(driver):
    """The local executor on a row and the one that fails, side by side: (result, wall time, {experiment: metrics})."""
    start = time.time()
    res = grid(driver, "--only", "p2,fails", "--executor", "local", "--jobs", "2", "--resource", "cpus=1")
    return res, time.time() - start, experiments(driver)


@pytest.mark.slow
def test_local_executor_runs_the_grid_reports_the_failed_row_and_resume_runs_nothing(driver, local_run):
    res, wall, _ = local_run
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    log = res.stdout + res.stderr
    failed = [line for line in log.splitlines() if line.startswith("failed: grid-fails")]
    assert failed and "select_set" in failed[0], log[-3000:]
    assert Path(failed[0].rsplit("log: ", 1)[1]).exists()
    assert "grid-p2" in remote_exps(driver) and "grid-fails" not in remote_exps(driver)
    md = (driver / "reports/grid.md").read_text()
    assert "| fails | failed |" in md and "| p2 | " in md and "| p2 | not run" not in md
    assert set(json.loads((driver / "reports/grid.json").read_text())) == {"p2"}
    assert (driver / "reports/grid.png").stat().st_size > 1000
    assert experiments(driver)["grid-p2"], "grid-p2 not in dvc exp show"
    # the shared stages came from the DVC remote (the base commit's outputs), not recomputed in the job
    job_log = Path(
        next(line for line in log.splitlines() if "submitted grid-p2" in line).rsplit("log ", 1)[1]
    ).read_text()
    assert "Running stage 'train_pos@1'" not in job_log and "Running stage 'train_neg@1'" in job_log, job_log[-3000:]

    start = time.time()
    again = grid(
        driver, "--only", "p2", "--executor", "local", "--resume"
    )  # (`fails` would run again: no experiment of it)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "already in origin" in again.stdout and "submitted" not in again.stdout + again.stderr, again.stdout
    print(f"\nlocal executor, 2 rows (1 failing), all at once: {wall:.0f} s; --resume: {time.time() - start:.0f} s")


# ---------------------------------------------------------------- a real single-node Slurm


def load(name: str):
    """A module of benchmarks/experiments (scripts, not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, REPO / f"benchmarks/experiments/{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def slurm():
    """munged, slurmctld and slurmd on localhost, 2 CPUs (two job slots); {SLURM_CONF: ...} for the Slurm commands.
    Stopped at the end of the module, by their pid files; skipped with the reason where Slurm cannot be installed or
    started."""
    local = load("slurm_localhost")
    root = Path(
        tempfile.mkdtemp(prefix="grid-slurm-")
    )  # not under pytest's 0700 directories: munged runs as user munge
    try:
        yield local.start(root, cpus=2)
    except local.SlurmUnavailable as e:
        pytest.skip(f"no Slurm here: {e}")
    finally:
        local.stop(root)
        time.sleep(1)
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.slow
def test_real_slurm_runs_a_row_with_the_local_executors_metrics(driver, local_run, slurm):
    """p2 again, as a Slurm job, against a copy of the DVC remote from before the local run (so its own stages run
    again on Slurm, not restored from the local jobs' run-cache): the same metrics in `dvc exp show`. One row: the
    local run above has its jobs running side by side and pushing to one remote."""
    _, _, by_local = local_run
    dvc(driver, "remote", "modify", "--local", "store", "url", str(driver.parent / "dvc-store-before-the-grid"))
    dvc(driver, "exp", "remove", "grid-p2")
    start = time.time()
    res = grid(
        driver,
        "--only",
        "p2",
        "--executor",
        "slurm",
        "--resource",
        "cpus=1",
        "--resource",
        "mem_gb=1",
        "--resource",
        "partition=debug",
        env=slurm,
    )
    wall = time.time() - start
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "failed: " not in res.stdout + res.stderr, res.stdout[-3000:]
    logs = [Path(line.rsplit("log ", 1)[1]) for line in res.stdout.splitlines() if line.startswith("submitted grid-")]
    assert len(logs) == 1 and "Running stage 'train_neg@1'" in logs[0].read_text()
    by_slurm = experiments(driver)
    assert by_slurm["grid-p2"] and by_slurm["grid-p2"] == by_local["grid-p2"]
    print(f"\nreal Slurm, 1 row: {wall:.0f} s")


# ---------------------------------------------------------------- bad input


@pytest.fixture()
def bare(tmp_path):
    """A committed repository (no stage run) with a Git remote and a DVC remote."""
    return with_remotes(tmp_path, tiny_params())


def no_job_submitted(work: Path) -> None:
    assert not (work / ".dvc/tmp/grid/logs").exists()


def test_unknown_resource_key_is_one_line_before_submission(bare):
    res = grid(bare, "--only", "p1", "--executor", "local", "--resource", "gpu=1")
    one_line_error(res, "unknown resource key gpu", "gpus")
    no_job_submitted(bare)
    bad = bare / "bad.yaml"
    bad.write_text("defaults: {cpus: 1, memory: 4}\n")
    one_line_error(
        grid(bare, "--only", "p1", "--executor", "local", "--resources", str(bad)),
        "unknown resource key memory",
        "bad.yaml",
    )


def test_unknown_partition_is_one_line_before_submission(bare, tmp_path):
    fake = tmp_path / "bin"
    fake.mkdir()
    for cmd, text in (("sbatch", "echo 'sbatch must not be called' >&2; exit 1"), ("sinfo", "printf 'debug\\ngpu\\n'")):
        (fake / cmd).write_text(f"#!/bin/sh\n{text}\n")
        (fake / cmd).chmod(0o755)
    res = grid(
        bare,
        "--only",
        "p1",
        "--executor",
        "slurm",
        "--resource",
        "partition=gpux",
        env={"PATH": f"{fake}:{BIN}:{os.environ['PATH']}"},
    )
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
    one_line_error(
        grid(bare, "--only", "p1", "--executor", "local"), "is not on the Git remote 'origin'", "git push origin HEAD"
    )
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
    gc = load("grid_cluster")
    rows = {"table2-conventional": {"group": "table2"}, "p1": {"group": "ablations"}}
    per_row = gc.resources(gc.RESOURCES, rows, ["time_min=30"])
    assert per_row["table2-conventional"]["gpus"] == 1 and per_row["p1"]["gpus"] == 0
    assert per_row["table2-conventional"]["time_min"] == per_row["p1"]["time_min"] == 30
    with pytest.raises(gc.GridError, match="cpus of row table2-conventional must be a whole number >= 1"):
        gc.resources(gc.RESOURCES, rows, ["cpus=0"])


def test_an_earlier_drivers_running_job_is_not_run_twice(bare):
    """The state file names a job still running for this base commit: without --resume, one line and nothing
    submitted."""
    job = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)", "submitit"]
    )  # alive, and looks like a submitit job
    try:
        state = bare / ".dvc/tmp/grid/state.json"
        state.parent.mkdir(parents=True)
        state.write_text(
            json.dumps(
                {"base": git(bare, "rev-parse", "HEAD").strip(), "executor": "local", "jobs": {"p1": str(job.pid)}}
            )
        )
        res = grid(bare, "--only", "p1,p2", "--executor", "local")
        one_line_error(res, f"grid-p1: {job.pid}", "--resume")
        no_job_submitted(bare)
    finally:
        job.kill()
        job.wait()
