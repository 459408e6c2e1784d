"""What several test modules share: the repository, a tiny configuration, throwaway git + dvc
repositories, running one stage or DVC, and the one-line error every bad input must give.
(Fixtures are in conftest.py.)"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
TINY = {
    "data": {"train_per_class": 4, "test_per_class": 2, "ood_per_set": 24, "image_size": 32},
    "subset": {"seeds": [1, 2], "shots": 2, "calib_per_class": 1},
    "features": {"batch_size": 128},
    "pos": {"epochs": 2},
    "neg": {"epochs": 1},
    "report": {"tsne_images": 40},
}


def tiny_params(overrides: dict = TINY) -> dict:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    for section, values in overrides.items():
        params[section].update(values)
    return params


def make_repo(tmp: Path, params: dict) -> Path:
    """A copy of the tracked pipeline files (no outputs, no lock) as a fresh git + dvc repository."""
    work = tmp / "repo"
    for rel in ("dvc.yaml", "pipeline", "src", "weights"):
        src = REPO / rel
        (
            shutil.copytree(src, work / rel, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
            if src.is_dir()
            else (work.mkdir(parents=True, exist_ok=True), shutil.copy(src, work / rel))
        )
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = dict(os.environ)
    for cmd in (
        ["git", "init", "-q"],
        ["git", "config", "user.email", "t@t"],
        ["git", "config", "user.name", "t"],
        [DVC, "init", "-q"],
    ):
        subprocess.run(cmd, cwd=work, check=True, env=env, capture_output=True)
    shutil.copytree(REPO / ".dvc/plots", work / ".dvc/plots")  # the ROC template and the offline HTML page
    shutil.copy(REPO / ".dvc/config", work / ".dvc/config")
    for cmd in (["git", "add", "-A"], ["git", "commit", "-qm", "init"]):
        subprocess.run(cmd, cwd=work, check=True, env=env, capture_output=True)
    return work


DVC = str(Path(sys.executable).parent / "dvc")


def dvc(work: Path, *args, check=True):
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "NEGPROMPT_THREADS": "2"}
    out = subprocess.run([DVC, *args], cwd=work, env=env, capture_output=True, text=True)
    if check and out.returncode != 0:
        raise AssertionError(f"dvc {' '.join(args)} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    return out


def stage(work: Path, name: str, *args: str) -> subprocess.CompletedProcess:
    # this checkout's library first, whatever copy of negprompt the environment has installed
    env = {**os.environ, "PYTHONPATH": f"{REPO / 'src'}{os.pathsep}{REPO}", "NEGPROMPT_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", f"pipeline.{name}", *args], cwd=work, env=env, capture_output=True, text=True
    )


def write_params(work: Path, **sections) -> None:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    for key, values in sections.items():
        if isinstance(values, dict):
            params[key].update(values)
        else:
            params[key] = values
    (work / "params.yaml").write_text(yaml.safe_dump(params))


def one_line_error(res, *needles):
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert res.returncode == 2, res.stderr[-2000:]
    assert lines[-1].startswith("error: "), res.stderr[-2000:]
    for n in needles:
        assert n in lines[-1], lines[-1]
