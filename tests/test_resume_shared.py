"""Resume wherever a grid row runs: with NEGPROMPT_CHECKPOINTS (grid.py sets it for its queue workers and jobs) the
checkpoints live in one shared folder, a sub-folder per run key, so that a row killed in DVC's temporary copy or in a
job's throw-away clone continues from its last finished epoch when it runs again, and ends bit-identical to an
uninterrupted run (negprompt.methods.checkpoint; the workspace's own resume is tests/test_resume.py)."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from negprompt import NegPromptError
from negprompt.methods import checkpoint
from tests.helpers import REPO, dvc, make_repo, tiny_params
from tests.test_resume import OUTS, PARAMS, finished_epochs

# ---------------------------------------------------------------- the folder layout (fast)


def loop_state() -> checkpoint.LoopState:
    w = torch.nn.Parameter(torch.zeros(3))
    opt = torch.optim.SGD([w], lr=0.1)
    return checkpoint.LoopState(
        {"w": w}, opt, torch.optim.lr_scheduler.StepLR(opt, 1), torch.Generator(), torch.amp.GradScaler("cpu")
    )


def test_shared_folder_holds_one_sub_folder_per_run_key(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shared = tmp_path / "shared"
    monkeypatch.setenv(checkpoint.SHARED_ENV, str(shared))
    a = checkpoint.stage_checkpoint("train_pos", 1, {"lr": 0.1}, [])
    b = checkpoint.stage_checkpoint("train_pos", 1, {"lr": 0.2}, [])
    assert a.path == shared / a.key / "train_pos_seed1.pt" and b.path.parent == shared / b.key and a.key != b.key
    a.save(loop_state(), 1, [], [])
    b.save(loop_state(), 2, [], [])
    assert (shared / ".gitignore").is_file() and not (shared / a.key / ".gitignore").exists()
    assert checkpoint.stage_checkpoint("train_pos", 1, {"lr": 0.1}, []).epoch == 1  # another process finds it
    a.remove()
    assert not (shared / a.key).exists(), "the run key's folder goes with its last checkpoint"
    assert b.path.is_file() and not (tmp_path / ".negprompt").exists()
    monkeypatch.delenv(checkpoint.SHARED_ENV)
    c = checkpoint.stage_checkpoint("train_pos", 1, {"lr": 0.1}, [])
    assert c.path == Path(".negprompt/checkpoints/train_pos_seed1.pt"), "unset: the workspace's path, as before"


def test_a_relative_shared_folder_is_one_line(monkeypatch):
    monkeypatch.setenv(checkpoint.SHARED_ENV, "ckpts")
    with pytest.raises(NegPromptError, match=r"^NEGPROMPT_CHECKPOINTS=ckpts: expected an absolute folder") as e:
        checkpoint.stage_checkpoint("train_pos", 1, {}, [])
    assert "\n" not in str(e.value)


# ---------------------------------------------------------------- a queued row and a submitit job, killed and rerun

STAGE = "train_pos"
EPOCHS = PARAMS["pos"]["epochs"]
BIN = Path(sys.executable).parent


def shared_ckpt(shared: Path) -> Path | None:
    found = sorted(shared.glob(f"*/{STAGE}_seed1.pt"))
    return found[0] if found else None


def kill_tree(pid: int) -> None:
    """SIGKILL a process and everything it started (a lost node: nothing gets to clean up)."""
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return
    for p in procs:
        try:
            p.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass


def wait_for_epochs(shared: Path, epochs: int, alive, timeout: float = 900) -> None:
    start = time.time()
    while time.time() - start < timeout and alive():
        path = shared_ckpt(shared)
        if path is not None and finished_epochs(path) >= epochs:
            return
        time.sleep(0.05)
    raise AssertionError(f"no checkpoint with {epochs} finished epochs in {shared}")


def outputs(work: Path) -> dict[str, bytes]:
    files = {}
    for rel in OUTS[STAGE]:
        path = work / rel
        for f in sorted(path.rglob("*")) if path.is_dir() else [path]:
            if f.is_file():
                files[str(f.relative_to(work))] = f.read_bytes()
    return files


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """The tiny pipeline up to train_pos's inputs, committed with its dvc.lock (a queued row or a clone restores them
    from the cache), and the bytes of an uninterrupted train_pos (run in the workspace with one thread, then
    undone)."""
    work = make_repo(tmp_path_factory.mktemp("resume-shared"), tiny_params(PARAMS))
    dvc(work, "repro", f"{STAGE}@1")
    res = subprocess.run(  # again with one thread, as the rows below run it: the same float sums
        [sys.executable, "-m", f"pipeline.{STAGE}", "--seed", "1"],
        cwd=work,
        env={**os.environ, "PYTHONPATH": f"{REPO / 'src'}{os.pathsep}{REPO}", "NEGPROMPT_THREADS": "1"},
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    reference = outputs(work)
    lock = yaml.safe_load((work / "dvc.lock").read_text())
    lock["stages"].pop(f"{STAGE}@1")
    (work / "dvc.lock").write_text(yaml.safe_dump(lock, sort_keys=False))
    for rel in OUTS[STAGE]:
        shutil.rmtree(work / rel, ignore_errors=True) if (work / rel).is_dir() else (work / rel).unlink()
    shutil.rmtree(work / ".dvc/cache/runs")  # else the queued row would be restored from the run-cache, not trained
    subprocess.run(["git", "add", "-A"], cwd=work, check=True)
    subprocess.run(["git", "commit", "-qm", "inputs of train_pos"], cwd=work, check=True)
    return work, reference


def queue_env(shared: Path, tmp: Path) -> dict:
    """The environment `dvc queue start` passes on to its workers. DVC's daemon sets the workers' PYTHONPATH to its
    own: a `python` first on PATH puts this checkout's library back in the stages (dvc.yaml runs `python -m ...`)."""
    shim = tmp / "bin"
    shim.mkdir(exist_ok=True)
    (shim / "python").write_text(
        f'#!/bin/sh\nPYTHONPATH="{REPO / "src"}${{PYTHONPATH:+:$PYTHONPATH}}" exec {sys.executable} "$@"\n'
    )
    (shim / "python").chmod(0o755)
    return {
        **os.environ,
        "PATH": f"{shim}:{BIN}:{os.environ['PATH']}",
        "NEGPROMPT_THREADS": "1",
        checkpoint.SHARED_ENV: str(shared),
    }


def exp_state(work: Path, name: str) -> str | None:
    """The row's state from `dvc.api.exp_show`, asked in a child process with a time limit: while a queued row runs,
    pygit2's blob reader under exp_show can wait for good (seen once in CI); a call that hangs or fails (the worker
    setting up the row's temporary copy) is asked again."""
    code = (
        "import json, sys, dvc.api; rows = dvc.api.exp_show(repo=sys.argv[1]); "
        "print(json.dumps([r.get('State') for r in rows if r.get('Experiment') == sys.argv[2]]))"
    )
    try:
        res = subprocess.run([sys.executable, "-c", code, str(work), name], capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        return None
    if res.returncode:
        return None
    states = json.loads(res.stdout.strip().splitlines()[-1])
    return states[-1] if states else None


def wait_state(work: Path, name: str, states: set[str], timeout: float = 900) -> str:
    start = time.time()
    while time.time() - start < timeout:
        state = exp_state(work, name)
        if state in states:
            return state
        time.sleep(2)
    raise AssertionError(f"{name} not {states} after {timeout} s (last: {state})")


def stage_pid(shared: Path) -> int | None:
    """The queued row's train_pos process (in DVC's temporary copy; its environment names the shared folder)."""
    import psutil

    for p in psutil.process_iter(["cmdline"]):
        if f"pipeline.{STAGE}" in " ".join(p.info["cmdline"] or []):
            try:
                if p.environ().get(checkpoint.SHARED_ENV) == str(shared):
                    return p.pid
            except psutil.Error:
                pass
    return None


def kill_row_after_first_epoch(shared: Path, timeout: float = 900) -> None:
    """SIGKILL the queued row's stage once its shared checkpoint holds a finished epoch (the process is found
    first, so that the kill follows the checkpoint within a poll)."""
    start, pid = time.time(), None
    while time.time() - start < timeout:
        pid = pid or stage_pid(shared)
        path = shared_ckpt(shared)
        if pid and path is not None and finished_epochs(path) >= 1:
            kill_tree(pid)
            return
        time.sleep(0.05)
    raise AssertionError(f"no stage process with a checkpoint in {shared} after {timeout} s")


@pytest.mark.slow
def test_a_queued_row_killed_mid_training_resumes_from_the_shared_folder(base, tmp_path):
    work, reference = base
    shared = tmp_path / "checkpoints"
    env = queue_env(shared, tmp_path)
    start = time.time()

    def queue_and_start(name: str) -> None:
        dvc_ = str(BIN / "dvc")
        subprocess.run([dvc_, "exp", "run", "--queue", "-n", name, f"{STAGE}@1"], cwd=work, env=env, check=True)
        # the worker outlives `queue start` and inherits its pipes: captured, the call would return only once the
        # queue is empty (as grid.py's run_queue notes)
        subprocess.run(
            [dvc_, "queue", "start", "--jobs", "1"],
            cwd=work, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip

    queue_and_start("row")
    kill_row_after_first_epoch(shared)
    assert wait_state(work, "row", {"Failed", "Success"}) == "Failed"
    assert 1 <= finished_epochs(shared_ckpt(shared)) < EPOCHS, "the kill came after the last epoch"
    done = finished_epochs(shared_ckpt(shared))

    queue_and_start("row-again")
    assert wait_state(work, "row-again", {"Failed", "Success"}) == "Success"
    log = subprocess.run(
        [str(BIN / "dvc"), "queue", "logs", "row-again"], cwd=work, env=env, capture_output=True, text=True
    ).stdout
    assert f"notice: resuming from {shared}/" in log and f"{STAGE}_seed1.pt: {done} epochs done" in log, log[-3000:]
    assert shared_ckpt(shared) is None, "the checkpoint is removed when the stage completes"
    refs = subprocess.run(
        ["git", "for-each-ref", "--format=%(refname)", "refs/exps"], cwd=work, capture_output=True, text=True
    ).stdout.split()
    (ref,) = [r for r in refs if r.endswith("/row-again")]
    subprocess.run(["git", "checkout", ref, "--", "dvc.lock"], cwd=work, check=True)  # the row's train_pos outputs,
    dvc(work, "checkout", f"{STAGE}@1")  # from the cache (the DVCLive folder is not cached: the contexts only)
    after = outputs(work)
    assert "models/pos/seed1.safetensors" in after and [k for k in after if after[k] != reference[k]] == []
    print(f"\nqueued row, killed after {done} epochs and rerun: {time.time() - start:.0f} s")


class CloneAndTrain:
    """A job as grid_cluster.RowJob runs one: in a copy of the repository deleted at the start and the end of every
    attempt, the stage with the environment submitit copied from the submitting process."""

    def __call__(self, work: str, clone: str) -> dict[str, str]:
        clone_dir = Path(clone)
        shutil.rmtree(clone_dir, ignore_errors=True)
        try:
            shutil.copytree(work, clone_dir, ignore=shutil.ignore_patterns(".dvc", ".git"))
            res = subprocess.run(
                [sys.executable, "-m", f"pipeline.{STAGE}", "--seed", "1"],
                cwd=clone_dir,
                env={**os.environ, "PYTHONPATH": f"{REPO / 'src'}{os.pathsep}{REPO}", "NEGPROMPT_THREADS": "1"},
                capture_output=True,
                text=True,
            )
            if res.returncode:
                raise RuntimeError(res.stderr[-2000:])
            return {"stderr": res.stderr, **{k: v.hex() for k, v in outputs(clone_dir).items()}}
        finally:
            shutil.rmtree(clone_dir, ignore_errors=True)


@pytest.mark.slow
def test_a_submitit_local_job_killed_mid_training_resumes_from_the_shared_folder(base, tmp_path, monkeypatch):
    import cloudpickle
    import submitit

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the job need not import the tests package
    work, reference = base
    shared = tmp_path / "checkpoints"
    monkeypatch.setenv(checkpoint.SHARED_ENV, str(shared))  # submitit copies the environment into the job
    monkeypatch.setenv("PATH", f"{BIN}:{os.environ['PATH']}")
    ex = submitit.LocalExecutor(folder=tmp_path / "logs")
    ex.update_parameters(timeout_min=30)
    clone = tmp_path / "clone"
    start = time.time()
    job = ex.submit(CloneAndTrain(), str(work), str(clone))
    wait_for_epochs(shared, 1, alive=lambda: not job.done())
    kill_tree(int(job.job_id))
    job.wait()
    assert job.exception() is not None, "the job ended before it was killed"
    done = finished_epochs(shared_ckpt(shared))
    assert 1 <= done < EPOCHS, done

    result = ex.submit(CloneAndTrain(), str(work), str(clone)).result()
    assert f"notice: resuming from {shared}/" in result["stderr"], result["stderr"][-2000:]
    assert f"{STAGE}_seed1.pt: {done} epochs done" in result["stderr"]
    after = {k: bytes.fromhex(v) for k, v in result.items() if k != "stderr"}
    assert after.keys() == reference.keys() and [k for k in after if after[k] != reference[k]] == []
    assert shared_ckpt(shared) is None and not clone.exists()
    print(f"\nsubmitit local job, killed after {done} epochs and resubmitted: {time.time() - start:.0f} s")
