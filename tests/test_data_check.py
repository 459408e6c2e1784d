"""Checked data (issue 43): every set of a real benchmark counted against its size before any feature,
`negprompt check-data`, and the `tree` stage's listing, on which `data` reruns only when the tree changes."""

import json

import pandas as pd
import pytest
import yaml
from PIL import Image
from typer.testing import CliRunner

from negprompt import NegPromptError
from negprompt.benchmarks import inventory
from negprompt.benchmarks.tables import Benchmark
from negprompt.cli import app
from negprompt.clip.backbone import TINY_MODEL
from negprompt.report.narrative import partial_data_note
from tests.helpers import dvc, make_repo, tiny_params
from tests.test_imagenet import _jpeg, imagenet_root, write_tree  # noqa: F401 (the module's tiny tree)


def bench(sun: int) -> Benchmark:
    """Tables shaped like the conventional benchmark's: 2 classes x 2 train, 1 val each, SUN with `sun` images."""
    test = pd.DataFrame({"path": ["v0", "v1"] + [f"s{i}" for i in range(sun)], "label": [0, 1] + [-1] * sun})
    test["set"] = ["id", "id"] + ["SUN"] * sun
    pool = pd.DataFrame({"path": list("abcd"), "label": [0, 0, 1, 1]})
    classes = pd.DataFrame({"class_id": ["n0", "n1"], "name": ["x", "y"]})
    return Benchmark(None, classes, pool, test, ["SUN"])


def test_a_short_set_is_named_with_its_counts_and_the_param_that_accepts_it(tmp_path):
    counts = inventory.set_counts(
        bench(2), "imagenet_conventional", "split1", {"train_per_class": 2, "val_per_class": 1}
    )
    assert [(c.name, c.found, c.expected, c.ok) for c in counts] == [
        ("train classes", 2, 2, True),
        ("train", 4, 4, True),
        ("val", 2, 2, True),
        ("SUN", 2, 10_000, False),  # not declared: SUN's size as distributed
    ]
    message = inventory.mismatch_message(tmp_path, counts)
    assert "SUN holds 2 images, expected 10,000" in message and "data.allow_partial: true" in message
    assert "\n" not in message and "train" not in message.split(":", 1)[1]
    assert all(
        c.ok for c in inventory.set_counts(bench(3), "imagenet_conventional", "split1", {"SUN": 3}) if c.name == "SUN"
    )
    # undeclared, ImageNet's own: 1,281,167 train images, 50 val per class
    real = {c.name: c for c in inventory.set_counts(bench(3), "imagenet_conventional", "split1", {})}
    assert (real["train"].expected, real["val"].expected) == (1_281_167, 100)


def test_hard_split_train_is_a_lower_bound_and_unknown_sizes_are_shown_not_checked():
    hard = bench(0).test.assign(set="id")
    b = Benchmark(None, bench(0).classes, bench(0).pool, hard, ["ood"])
    train = inventory.set_counts(b, "imagenet_hard", "split2", {})[1]
    assert (train.expected, train.at_least, train.ok, train.expected_text()) == (2 * 732, True, False, "at least 1,464")
    unknown = inventory.SetCount("near/NINCO", 5, None)
    assert unknown.ok and unknown.expected_text() == "not known"


@pytest.mark.parametrize(
    "raw, needle",
    [
        ({"SUN": -1}, "SUN = -1 (expected a count >= 0)"),
        ({"SUN": True}, "SUN = True"),
        ({"sun": 3}, "unknown key 'sun'"),
    ],
)
def test_bad_declared_counts(tmp_path, raw, needle):
    (tmp_path / inventory.COUNTS_FILE).write_text(json.dumps(raw))
    with pytest.raises(NegPromptError, match="expected_counts.json: ") as e:
        inventory.declared_counts(tmp_path)
    assert needle in str(e.value)


def test_the_listing_is_byte_identical_until_an_image_changes(tmp_path):
    root = tmp_path / "root"
    for j in range(2):
        _jpeg(root / "SUN" / f"s{j}.jpg", j)
    (root / "SUN" / "notes.txt").write_text("not an image: not read, not listed")
    (tmp_path / "elsewhere").mkdir()
    _jpeg(tmp_path / "elsewhere" / "p.jpg", 9)
    (root / "Places").symlink_to(tmp_path / "elsewhere")  # linked-in folders are followed
    listing = inventory.tree_listing(root, ["SUN", "Places", "missing"])
    assert [line.split("\t")[0] for line in listing.splitlines()] == ["Places/p.jpg", "SUN/s0.jpg", "SUN/s1.jpg"]
    assert inventory.tree_listing(root, ["SUN", "Places"]) == listing
    _jpeg(root / "SUN" / "s1.jpg", 7)
    (root / "SUN" / "s1.jpg").write_bytes((root / "SUN" / "s1.jpg").read_bytes() + b"\0")  # same name, new size
    assert inventory.tree_listing(root, ["SUN", "Places"]) != listing


def test_check_data_prints_found_against_expected_and_fails_on_a_mismatch(imagenet_root):  # noqa: F811
    runner = CliRunner()
    ok = runner.invoke(app, ["check-data", str(imagenet_root), "--benchmark", "imagenet_conventional"])
    assert ok.exit_code == 0, ok.output
    assert "declared by" in ok.stdout and [line.split()[:3] for line in ok.stdout.splitlines()][-3] == ["SUN", "3", "3"]
    bad = runner.invoke(app, ["check-data", str(imagenet_root), "--expect", "SUN=4"])
    assert bad.exit_code == 1 and "MISMATCH" in bad.stdout
    assert bad.stderr.strip().splitlines() == [bad.stderr.strip()] and "SUN holds 3 images, expected 4" in bad.stderr
    for args, needle in (
        (["--expect", "SUN=-1"], "error: --expect: SUN = -1 (expected a count >= 0)"),
        (["--benchmark", "openmoji"], "error: --benchmark 'openmoji' is not read from a tree"),
        (["--benchmark", "imagenet"], "error: --benchmark 'imagenet' is not read from a tree"),
    ):
        res = runner.invoke(app, ["check-data", str(imagenet_root), *args])
        assert res.exit_code == 2 and res.stderr.strip().startswith(needle), res.output
        assert len(res.stderr.strip().splitlines()) == 1


def test_the_report_opens_with_the_partial_sets():
    sets = [{"name": "SUN", "found": 2, "expected": 3, "at_least": False}]
    check = {"expected_from": "declared by /r/expected_counts.json", "declared": True, "sets": sets}
    note = partial_data_note({"check": {**check, "partial": ["SUN"]}})
    assert note.startswith("\n> **Partial data.** SUN holds 2 of 3 images (`data.allow_partial: true`)")
    assert "declared by /r/expected_counts.json" in note
    assert partial_data_note({"check": {**check, "partial": [], "declared": False}}) == ""
    assert partial_data_note({"counts": {}}) == ""  # generated benchmarks: no check


def ran(out) -> set[str]:
    return {line.split("'")[1] for line in out.stdout.splitlines() if line.startswith("Running stage")}


@pytest.mark.slow
def test_a_short_set_stops_before_features_and_the_listing_reruns_only_what_changed(tmp_path):
    """SUN short by one image: `data` fails before features, naming SUN, its counts and data.allow_partial.
    The image put back: only the listing reruns. An image replaced (same count, new size): data and its
    dependants rerun. With data.allow_partial the data stage records the partial set for the report."""
    root = write_tree(tmp_path / "imagenet")
    params = tiny_params(
        {
            "data": {"benchmark": "imagenet_conventional", "root": str(root)},
            "backbone": {"model": TINY_MODEL, "pretrained": "random"},
            "subset": {"seeds": [1], "shots": 1, "calib_per_class": 1},
        }
    )
    work = make_repo(tmp_path, params)
    first = dvc(work, "repro", "backbone", "subset")
    assert {"tree", "data", "backbone", "subset"} <= ran(first)
    manifest = json.loads((work / "data/benchmark/manifest.json").read_text())
    assert manifest["check"]["partial"] == [] and manifest["check"]["declared"]

    sun = root / "SUN/ood_2.jpg"
    aside = tmp_path / "ood_2.jpg"
    sun.rename(aside)
    short = dvc(work, "repro", "features", check=False)
    errors = [line for line in (short.stdout + short.stderr).splitlines() if line.startswith("error: ")]
    assert short.returncode != 0 and len(errors) == 1, short.stdout + short.stderr
    assert "SUN holds 2 images, expected 3" in errors[0] and "data.allow_partial: true" in errors[0]
    assert not (work / "features").exists() and "backbone" not in ran(short)

    aside.rename(sun)
    again = dvc(work, "repro", "backbone", "subset")
    assert ran(again) == {"tree"}, again.stdout

    size = (root / "Places/ood_0.jpg").stat().st_size
    Image.new("RGB", (16, 16), (200, 10, 10)).save(root / "Places/ood_0.jpg")  # same name and count, new bytes
    assert (root / "Places/ood_0.jpg").stat().st_size != size
    changed = dvc(work, "repro", "backbone", "subset")
    assert ran(changed) == {"tree", "data", "backbone"}, changed.stdout  # subset reads the train pool only
    after = json.loads((work / "data/benchmark/manifest.json").read_text())
    assert after["check"]["tree_listing_sha256"] != manifest["check"]["tree_listing_sha256"]

    sun.unlink()
    params["data"]["allow_partial"] = True
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    partial = dvc(work, "repro", "data")
    assert "running on partial sets SUN" in partial.stdout
    check = json.loads((work / "data/benchmark/manifest.json").read_text())["check"]
    assert check["partial"] == ["SUN"]
    assert partial_data_note({"check": check}).startswith("\n> **Partial data.** SUN holds 2 of 3 images")
