"""A training stage killed with SIGKILL mid-run and started again continues from its last finished epoch and
ends with the same bytes (contexts, curves, metrics) as an uninterrupted run; its checkpoint is gone once the
stage completes; a checkpoint of other params, or a damaged one, is one notice and a fresh start
(negprompt.methods.checkpoint; the loops' own resume is tests/test_checkpoint.py)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.helpers import ONE_SEED, REPO, copy_reproduced, dvc, tiny_params, write_params

# 4 + 3 epochs of 7 steps (2 shots x 200 classes, batch 64), each a few seconds: killed between two epochs
PARAMS = {**ONE_SEED, "pos": {"epochs": 4}, "neg": {"epochs": 3}}
OUTS = {
    "train_pos": ["models/pos/seed1.safetensors", "reports/train/pos_seed1"],
    "train_neg": ["models/neg/seed1.safetensors", "reports/train/neg_seed1"],
}


def ckpt_path(work: Path, name: str) -> Path:
    return work / ".negprompt/checkpoints" / f"{name}_seed1.pt"


def command(name: str) -> tuple[list[str], dict]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "NEGPROMPT_THREADS": "1"}
    return [sys.executable, "-m", f"pipeline.{name}", "--seed", "1"], env


def run(work: Path, name: str) -> subprocess.CompletedProcess:
    cmd, env = command(name)
    res = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-3000:]
    return res


def outputs(work: Path, name: str) -> dict[str, bytes]:
    files = {}
    for rel in OUTS[name]:
        path = work / rel
        for f in sorted(path.rglob("*")) if path.is_dir() else [path]:
            if f.is_file():
                files[str(f.relative_to(work))] = f.read_bytes()
    return files


def finished_epochs(path: Path) -> int:
    try:
        return json.loads(path.read_bytes().partition(b"\n")[0])["epoch"]
    except (OSError, ValueError):
        return 0


def kill_after(work: Path, name: str, epochs: int) -> int:
    """Start the stage, SIGKILL it once its checkpoint holds `epochs` finished epochs; the epochs it holds then."""
    cmd, env = command(name)
    path = ckpt_path(work, name)
    proc = subprocess.Popen(cmd, cwd=work, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        while finished_epochs(path) < epochs and proc.poll() is None:
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
        err = proc.stderr.read().decode()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL, f"the stage ended before it was killed:\n{err[-2000:]}"
    return finished_epochs(path)


@pytest.fixture(scope="module")
def work(tmp_path_factory, reproduced_one_seed):
    """The tiny pipeline's inputs of both training stages (one seed), made by DVC: a copy of the reproduced tiny
    pipeline with this module's epochs, stage 1 run again for them."""
    work = copy_reproduced(reproduced_one_seed, tmp_path_factory.mktemp("resume") / "repo")
    write_params(work, **tiny_params(PARAMS))
    dvc(work, "repro", "train_pos@1")
    return work


def resume_is_bit_identical(work: Path, name: str, total: int) -> None:
    run(work, name)  # uninterrupted
    reference = outputs(work, name)
    assert not ckpt_path(work, name).exists(), "an uninterrupted run leaves no checkpoint"
    done = kill_after(work, name, 2)
    assert 2 <= done < total, done
    resumed = run(work, name)
    assert f"notice: resuming from .negprompt/checkpoints/{name}_seed1.pt: {done} epochs done" in resumed.stderr
    after = outputs(work, name)
    assert after.keys() == reference.keys()
    assert [k for k in after if after[k] != reference[k]] == []
    assert not ckpt_path(work, name).exists(), "the checkpoint is removed when the stage completes"
    assert (work / ".negprompt/checkpoints/.gitignore").is_file()
    status = subprocess.run(
        ["git", "status", "--porcelain", "--ignored", ".negprompt"], cwd=work, capture_output=True, text=True
    ).stdout
    assert all(line.startswith("!!") for line in status.splitlines()), status  # ignored, never untracked


@pytest.mark.slow
def test_train_pos_killed_and_rerun_ends_bit_identical(work):
    resume_is_bit_identical(work, "train_pos", PARAMS["pos"]["epochs"])


@pytest.mark.slow
def test_train_pos_checkpoint_of_other_params_is_one_notice_and_a_fresh_start(work):
    reference = outputs(work, "train_pos")
    kill_after(work, "train_pos", 1)
    params = yaml.safe_load((work / "params.yaml").read_text())
    (work / "params.yaml").write_text(yaml.safe_dump({**params, "pos": {**params["pos"], "lr": 0.05}}))
    try:
        res = run(work, "train_pos")
    finally:
        (work / "params.yaml").write_text(yaml.safe_dump(params))
    notices = [line for line in res.stderr.splitlines() if line.startswith("notice:")]
    assert notices == [
        "notice: .negprompt/checkpoints/train_pos_seed1.pt: checkpoint of a run with other params, "
        "inputs or code; ignored, starting from epoch 1"
    ], res.stderr[-2000:]
    assert not ckpt_path(work, "train_pos").exists()
    for rel, data in reference.items():  # what train_neg reads back as it was
        (work / rel).write_bytes(data)


@pytest.mark.slow
def test_train_neg_killed_and_rerun_ends_bit_identical(work):
    resume_is_bit_identical(work, "train_neg", PARAMS["neg"]["epochs"])


@pytest.mark.slow
def test_train_neg_damaged_checkpoint_is_one_notice_and_the_same_result(work):
    reference = outputs(work, "train_neg")
    kill_after(work, "train_neg", 1)
    path = ckpt_path(work, "train_neg")
    raw = path.read_bytes()
    path.write_bytes(raw[:-1] + bytes([raw[-1] ^ 1]))  # one flipped bit
    res = run(work, "train_neg")
    assert "does not match its sha256 (truncated or altered); ignored, starting from epoch 1" in res.stderr
    after = outputs(work, "train_neg")
    assert [k for k in after if after[k] != reference[k]] == []
