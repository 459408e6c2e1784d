"""The `params` stage (pipeline/params.py): a bad value in any section of params.yaml stops `dvc repro` / `dvc exp
run` before any stage deletes or writes an output, with a one-line error naming the key and how to get the
previous params back; a valid change reruns no stage because of it (its output is a constant)."""

import hashlib
import re
import subprocess

import pytest
import yaml

from negprompt.config import Params
from tests.helpers import REPO, copy_reproduced, dvc, one_line_error, stage, write_params

# one bad value per section of params.yaml, with the key the error must name
BAD = {
    "open_vocab": "maybe",
    "data.image_size": 1,
    "backbone.lr": -1,
    "subset.shots": 0,
    "features.dtype": "float8",
    "pos.lr": -1,
    "locoop.lam": -1,
    "neg.select": "foo",
    "score.temperature": 0,
    "neglabel.groups": 0,
    "family.csp.groups": 0,
    "report.tsne_images": 1,
}
RESTORE = "git show HEAD:params.yaml > params.yaml"
OK_TEXT = "params.yaml is valid"


def with_value(key: str, value) -> dict:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    *path, name = key.split(".")
    node = params
    for part in path:
        node = node[part]
    node[name] = value
    return params


# the keys whose failure is watched through `dvc exp run`: one before the training stages, the two of the issue,
# one of the family's
DVC_KEYS = ("data.image_size", "pos.lr", "neg.select", "family.csp.groups")


def test_every_section_has_a_bad_value_here():
    assert {k.split(".")[0] for k in BAD} == set(Params.model_fields)


@pytest.mark.parametrize("key", list(BAD))
def test_a_bad_value_is_one_line_naming_the_key_and_the_way_back(tmp_path, key):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(with_value(key, BAD[key])))
    res = stage(tmp_path, "params")
    one_line_error(res, f"params.yaml: {key} = ", RESTORE, "dvc exp apply")
    assert not (tmp_path / "data").exists()


def test_an_old_flat_family_key_names_its_new_section(tmp_path):
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["family"]["adaneg_thres"] = 0.3
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    one_line_error(stage(tmp_path, "params"), "family.adaneg_thres is now family.adaneg.thres", RESTORE)


def test_select_id_val_without_held_out_images_is_refused_before_any_stage(tmp_path):
    write_params(tmp_path, subset={"calib_per_class": 0}, neg={"select": "id_val"})
    one_line_error(stage(tmp_path, "params"), "neg.select = 'id_val' needs held-out ID images", RESTORE)


def test_valid_params_give_the_same_constant_output(tmp_path):
    write_params(tmp_path)
    assert stage(tmp_path, "params").returncode == 0
    first = (tmp_path / "data/params.ok").read_bytes()
    write_params(tmp_path, pos={"lr": 0.05}, report={"tsne_images": 50})
    assert stage(tmp_path, "params").returncode == 0
    assert (tmp_path / "data/params.ok").read_bytes() == first and OK_TEXT.encode() in first


def test_dvc_yaml_runs_the_params_stage_first_over_every_section_and_every_stage_depends_on_it():
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    first, *others = stages
    assert first == "params" and set(stages["params"]["params"]) == set(Params.model_fields)
    (out,) = stages["params"]["outs"]
    assert out == {"data/params.ok": {"cache": False, "persist": True}}
    for name in others:
        assert "data/params.ok" in stages[name]["deps"], name


def tree_digest(work) -> dict[str, str]:
    """Every file of the workspace but DVC's and git's own, and params.yaml, by content."""
    skip = (".git/", ".dvc/", "params.yaml")
    return {
        str(p.relative_to(work)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(work.rglob("*"))
        if p.is_file() and not str(p.relative_to(work)).startswith(skip)
    }


@pytest.fixture(scope="module")
def reproduced(tmp_path_factory, reproduced_one_seed):
    """The tiny pipeline (one seed) reproduced and committed, as a user's clone after `make repro`."""
    return copy_reproduced(reproduced_one_seed, tmp_path_factory.mktemp("params") / "repo")


@pytest.mark.slow
def test_a_bad_value_in_any_section_deletes_nothing_and_names_the_key(reproduced):
    work = reproduced
    before = tree_digest(work)
    head_params = (work / "params.yaml").read_bytes()
    assert any(k.startswith("reports/train/pos_seed1/plots/") for k in before)
    for key in DVC_KEYS:  # the stage alone checks every section (above); here DVC runs it first and stops
        res = dvc(work, "exp", "run", "-S", f"{key}={BAD[key]}", check=False)
        out = res.stdout + res.stderr
        assert res.returncode != 0 and f"{key} = " in out and RESTORE in out, out[-2000:]
        ran = set(re.findall(r"Running stage '([^']+)'", out))
        assert ran == {"params"}, (key, ran)
        assert tree_digest(work) == before, key  # committed outputs, curves and data/params.ok intact
        subprocess.run(RESTORE, shell=True, cwd=work, check=True)  # as the error says
        assert subprocess.run(["git", "diff", "--quiet", "HEAD", "--", "params.yaml"], cwd=work).returncode == 0
        assert (work / "params.yaml").read_bytes() == head_params


@pytest.mark.slow
def test_a_valid_change_reruns_no_stage_because_of_the_params_stage(reproduced):
    work = reproduced
    res = dvc(work, "exp", "run", "-S", "report.tsne_images=41")
    ran = set(re.findall(r"Running stage '([^']+)'", res.stdout + res.stderr)) - {"tree"}  # tree: always run
    assert ran == {"params", "report"}, ran
