"""A team shares one DVC remote and one Git remote: clone B reuses clone A's work (run-cache), and
experiments travel with `dvc exp push` / `dvc exp pull` (docs/experiments.md, 'Sharing work')."""

import json
import subprocess

import pytest

from tests.helpers import copy_reproduced, dvc, stages_run, up_to_date


def git(cwd, *args):
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


@pytest.mark.slow
def test_clone_b_reproduces_nothing_and_sees_pushed_experiments(tmp_path, reproduced_one_seed):
    a = copy_reproduced(reproduced_one_seed, tmp_path / "a")  # clone A after its `dvc repro`
    store, origin = tmp_path / "dvc-store", tmp_path / "origin.git"
    dvc(a, "remote", "add", "-d", "store", str(store))
    assert stages_run(dvc(a, "repro").stdout) == []
    git(a, "add", "-A")
    git(a, "commit", "-qm", "DVC remote")
    dvc(a, "push", "--run-cache")
    git(tmp_path, "init", "-q", "--bare", str(origin))
    git(a, "remote", "add", "origin", str(origin))
    git(a, "push", "-q", "origin", "HEAD:main")

    b = tmp_path / "b"
    git(tmp_path, "clone", "-q", "-b", "main", str(origin), str(b))
    dvc(b, "pull", "--run-cache")
    out = dvc(b, "repro").stdout
    assert stages_run(out) == [], out
    assert up_to_date(dvc(b, "status").stdout)

    dvc(a, "exp", "run", "-n", "three-prompts", "-S", "neg.num_prompts=3")
    dvc(a, "exp", "push", "origin", "three-prompts")
    dvc(b, "exp", "pull", "origin", "three-prompts")

    def metrics(repo):
        shown = json.loads(dvc(repo, "exp", "show", "--json").stdout)
        exps = [e for rev in shown for e in (rev.get("experiments") or []) if e.get("name") == "three-prompts"]
        assert exps, f"experiment not shown in {repo}"
        return exps[0]["revs"][0]["data"]["metrics"]

    assert metrics(b) == metrics(a)
