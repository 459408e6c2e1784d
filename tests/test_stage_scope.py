"""An edit reruns the stages that use the edited code and no others, as `dvc status` sees it on a copy of the
repository whose dvc.lock is up to date with its code (as committed): the stand-in's recipe reruns nothing,
OpenMoji rendering only the stages that render, a method the stages that score, never the feature cache."""

import json
import shutil
import subprocess

import pytest

from tests.helpers import REPO, dvc


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    work = tmp_path_factory.mktemp("scope") / "repo"
    listed = ["git", "ls-files", "--cached", "--others", "--exclude-standard"]
    files = subprocess.run(listed, cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    for rel in files + ["dvc.yaml", "dvc.lock", "params.yaml"]:
        if (REPO / rel).is_file():
            (work / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(REPO / rel, work / rel)
    for cmd in (
        ["git", "init", "-q"],
        ["git", "add", "-A"],
        ["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "x"],
    ):
        subprocess.run(cmd, cwd=work, check=True, capture_output=True)
    return work


def status(work) -> dict:
    return json.loads(dvc(work, "status", "--json").stdout or "{}")


def rerun_by_edit(work, rel: str) -> set[str]:
    """Stages whose status an appended comment line in `rel` changes (compared with the status before it)."""
    before = status(work)
    path = work / rel
    original = path.read_text()
    path.write_text(original + "\n# edited\n")
    try:
        after = status(work)
    finally:
        path.write_text(original)
    return {name.split("@")[0] for name in set(before) | set(after) if before.get(name) != after.get(name)}


def test_the_stand_ins_recipe_and_captions_rerun_nothing(repo):
    assert rerun_by_edit(repo, "src/negprompt_standin/pretraining.py") == set()
    assert rerun_by_edit(repo, "src/negprompt_standin/captions.py") == set()


def test_openmoji_rendering_reruns_only_the_stages_that_render(repo):
    assert rerun_by_edit(repo, "src/negprompt_standin/openmoji_render.py") == {"data", "backbone", "sheets"}


def test_a_method_reruns_scoring_not_features(repo):
    changed = rerun_by_edit(repo, "src/negprompt/methods/neglabel.py")
    assert {"score", "neglabel"} <= changed and not changed & {"data", "subset", "features", "train_pos", "train_neg"}


def test_the_check_sees_an_edit_of_shared_code(repo):
    """The comparison itself can fail: the core reruns every stage."""
    assert rerun_by_edit(repo, "src/negprompt/io.py") >= {"data", "subset", "features", "train_pos", "score", "report"}
