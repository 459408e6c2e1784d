"""Checkpoint selection through the real stages: the official protocol's settings in a tiny
`dvc exp run`, its curves, report and metrics, and the bad inputs of `select`."""

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from negprompt.config import validate
from negprompt.io import load_tensors
from negprompt.methods.selection import TEST_LABEL
from tests.helpers import REPO, copy_reproduced, dvc, one_line_error, stage, write_params

OFFICIAL = {"pos.schedule": "official", "neg.schedule": "official", "pos.select": "test", "neg.select": "test"}


def grid_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("grid", REPO / "benchmarks/experiments/grid.py")
    grid = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(grid)
    return grid


def test_the_official_protocol_is_the_same_settings_wherever_it_is_offered():
    """The protocol is offered three times: the grid's OpenMoji row, its ImageNet row and the README's
    command. Each must set the same values, as `grid.py` turns a row into `-S` arguments, and they must
    validate to test-set selection with the cycling schedule while params.yaml's defaults stay honest."""
    grid = grid_module()
    rows = yaml.safe_load((REPO / "benchmarks/experiments/grid.yaml").read_text())["experiments"]

    def settings(args: list[str]) -> dict[str, str]:
        assert args[0::2] == ["-S"] * (len(args) // 2), args
        return dict(a.split("=", 1) for a in args[1::2])

    openmoji = settings(grid.queue_args(rows["official-protocol"]["params"], [], None))
    imagenet = settings(grid.queue_args(rows["ours-official-protocol"]["params"], [], None))
    (command,) = [line for line in (REPO / "README.md").read_text().splitlines() if "-S pos.select=test" in line]
    assert settings(command.split()[3:]) == openmoji, command
    assert {k: imagenet[k] for k in openmoji} == openmoji
    id_val = settings(grid.queue_args(rows["id-val-protocol"]["params"], [], None))
    assert {k: v for k, v in id_val.items() if v != "id_val"} == {k: v for k, v in openmoji.items() if v != "test"}
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    defaults = validate(params)
    protocol = lambda p: (p.pos.select, p.neg.select, p.pos.schedule, p.neg.schedule, p.pos.epochs, p.neg.epochs)  # noqa: E731
    assert protocol(defaults)[:4] == ("last", "last", "cosine", "cosine")
    for key, value in rows["official-protocol"]["params"].items():
        section, name = key.split(".")
        params[section][name] = value
    assert protocol(validate(params)) == ("test", "test", "official", "official", 100, 100)


def test_grid_marks_test_selected_rows():
    grid = grid_module()
    assert grid.test_selected({"protocol": {"pos": {"select": "last"}, "neg": {"select": "test"}}})
    assert not grid.test_selected(
        {"protocol": {"pos": {"select": "id_val"}, "neg": {"select": "last"}}}
    ) and not grid.test_selected({})


def curve(work, run: str, key: str) -> np.ndarray:
    return pd.read_csv(work / f"reports/train/{run}/plots/metrics/{key}.tsv", sep="\t").iloc[:, 1].to_numpy()


@pytest.fixture(scope="module")
def official(tmp_path_factory, reproduced_one_seed):
    """`dvc exp run` with the official protocol's four settings (epochs kept tiny: 3 + 4), one seed, in a copy of the
    reproduced tiny pipeline."""
    work = copy_reproduced(reproduced_one_seed, tmp_path_factory.mktemp("official") / "repo")
    sets = [a for k, v in {**OFFICIAL, "pos.epochs": 3, "neg.epochs": 4}.items() for a in ("-S", f"{k}={v}")]
    dvc(work, "exp", "run", *sets)
    return work


@pytest.mark.slow
def test_official_protocol_selects_the_arg_max_of_the_logged_curve(official):
    work = official
    for run, key, model in (
        ("pos_seed1", "test/id_acc", "models/pos/seed1.safetensors"),
        ("neg_seed1", "test/texture/auroc", "models/neg/seed1.safetensors"),
    ):
        values = curve(work, run, key)
        meta = load_tensors(work / model)[1]
        assert meta["epoch"] - 1 == int(np.argmax(values)), (run, values)
        assert meta["select"] == "test" and meta["schedule"] == "official" and meta["select_note"] == TEST_LABEL
        summary = json.loads((work / f"reports/train/{run}/metrics.json").read_text())
        assert summary["kept"]["epoch"] == meta["epoch"] and summary["step"] == len(values) - 1
    assert load_tensors(work / "models/neg/seed1.safetensors")[1]["select_set"] == "texture"
    texture = curve(work, "neg_seed1", "test/texture/auroc")
    kept = load_tensors(work / "models/neg/seed1.safetensors")[1]["epoch"] - 1
    assert texture[kept] >= texture[-1]  # by construction: the selection set's AUROC is never below the last epoch's
    metrics = json.loads((work / "reports/metrics.json").read_text())["openmoji"]
    # the scored checkpoint is the selected one: the score stage's AUROC equals the curve's at the kept epoch
    for s in ("near", "plant", "place", "texture"):
        assert metrics["ood"][s]["negprompt"]["auroc"] == pytest.approx(
            curve(work, "neg_seed1", f"test/{s}/auroc")[kept], abs=1e-3
        )
    assert metrics["protocol"]["neg"]["select"] == "test" and metrics["protocol"]["pos"]["schedule"] == "official"
    assert metrics["protocol"]["neg"]["kept_minus_last"]["auroc"] == pytest.approx(
        metrics["average"]["negprompt"]["auroc"]
        - np.mean([curve(work, "neg_seed1", f"test/{s}/auroc")[-1] for s in metrics["ood"]]),
        abs=1e-3,
    )
    report = (work / "reports/report.md").read_text()
    assert "## Protocol: which epoch is kept" in report and report.count(TEST_LABEL) >= 4
    assert "schedule official, select test" in report and "`test` (kept): best test AUROC on texture" in report
    assert "Δ test − last" in report and "epochs kept (per seed)" in report


@pytest.mark.slow
def test_exp_show_lists_the_per_epoch_metrics_and_plots_draw_offline(official, tmp_path):
    shown = dvc(official, "exp", "show", "--json").stdout
    assert "reports/train/neg_seed1/metrics.json" in shown and "reports/train/pos_seed1/metrics.json" in shown
    exps = json.loads(shown)
    runs = [r for e in exps for x in e.get("experiments") or [] for r in x["revs"]]  # the experiment, as committed
    assert len(runs) == 1
    files = runs[0]["data"]["metrics"]
    neg = files["reports/train/neg_seed1/metrics.json"]["data"]
    assert {"train", "calib", "test", "kept"} <= set(neg) and "auroc" in neg["test"]["texture"]
    out = tmp_path / "plots"
    dvc(official, "plots", "show", "-o", str(out))
    page = (out / "index.html").read_text()
    assert "cdn.jsdelivr" not in page and 'src="http' not in page
    for path in (
        "neg_seed1/plots/metrics/test/texture/auroc.tsv",
        "pos_seed1/plots/metrics/test/near/auroc.tsv",
        "neg_seed1/plots/metrics/train/loss.tsv",
        "pos_seed1/plots/metrics/train/lr.tsv",
    ):
        assert path in page, path


def test_bad_select_inputs_are_one_line_errors_and_write_nothing(world):
    write_params(world, pos={"select": "best"})
    one_line_error(stage(world, "subset"), "pos.select = 'best'", "'last', 'id_val' or 'test'")
    write_params(world, neg={"schedule": "step"})
    one_line_error(stage(world, "subset"), "neg.schedule = 'step'", "'cosine' or 'official'")
    for name in ("pos", "neg"):
        write_params(world, subset={"seeds": [1], "shots": 2, "calib_per_class": 0}, **{name: {"select": "id_val"}})
        one_line_error(
            stage(world, f"train_{name}", "--seed", "1"), f"{name}.select = 'id_val'", "subset.calib_per_class = 0"
        )
    assert stage(world, "features").returncode == 0  # the world's test set has ID images only: no OOD set to select on
    write_params(world, neg={"select": "test"})
    one_line_error(stage(world, "train_neg", "--seed", "1"), "neg.select_set 'texture'", "not an OOD set", "sets: none")
    write_params(world, neg={"select": "test", "select_set": "near"})
    one_line_error(stage(world, "train_neg", "--seed", "1"), "neg.select_set 'near'")
    assert (
        not (world / "models/pos").exists() and not (world / "models/neg").exists() and not (world / "reports").exists()
    )
