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

    # an experiment that reruns the report alone: what travels is the experiment, whichever stages it reran
    # (`neg.num_prompts=3`, which reruns training and scoring, is the README's and tests/test_pipeline_e2e.py's)
    dvc(a, "exp", "run", "-n", "tsne-41", "-S", "report.tsne_images=41")
    dvc(a, "exp", "push", "origin", "tsne-41")
    dvc(b, "exp", "pull", "origin", "tsne-41")

    def metrics(repo):
        shown = json.loads(dvc(repo, "exp", "show", "--json").stdout)
        exps = [e for rev in shown for e in (rev.get("experiments") or []) if e.get("name") == "tsne-41"]
        assert exps, f"experiment not shown in {repo}"
        data = exps[0]["revs"][0]["data"]
        assert data["params"]["params.yaml"]["data"]["report"]["tsne_images"] == 41, repo  # its own params
        return data["metrics"]

    assert metrics(b) == metrics(a) and metrics(a)
