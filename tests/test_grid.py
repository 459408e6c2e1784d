"""The experiment grid as a GPU user drives it (benchmarks/experiments/grid.py, grid.yaml, `make grid`): one command per
paper table with the paper's numbering, overrides of every row, a dry run that shows the full `-S` settings, bad
input as one line before anything is queued, and the paper's figures beside the rows. Dry runs only: no DVC queue
(tests/test_grid_cluster.py runs rows end to end)."""

import importlib.util
import os
import subprocess
import sys

import pytest
import yaml

from negprompt import NegPromptError
from negprompt.config import validate
from tests.helpers import REPO, one_line_error

GRID_PY = REPO / "benchmarks/experiments/grid.py"
SPEC = yaml.safe_load((REPO / "benchmarks/experiments/grid.yaml").read_text())
ROWS = SPEC["experiments"]
TINY_MODEL = "openmoji-tiny"

# the paper's tables as rows of grid.yaml (spec: Table 2 conventional and 10%, Table 3 splits 1-4 full and 10%,
# Table 4 = Table 2's runs, Table 5 = the ablations in the 10% setting)
PAPER_ROWS = {
    "table2": ["table2-conventional", "table2-open-vocab"],
    "table3": [f"table3-split{i}" for i in range(1, 5)] + [f"table3-split{i}-open-vocab" for i in range(1, 5)],
    "table4": ["table2-conventional", "table2-open-vocab"],
    "table5": ["table5-p1", "table5-one-stage", "table5-vit-b-32", "table5-rn50", "table5-rn101"],
}


@pytest.fixture(scope="module")
def grid():
    spec = importlib.util.spec_from_file_location("grid", GRID_PY)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_grid(grid, monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    """grid.py's main() in this process, from the repository root; any git or dvc call fails the test (nothing may be
    queued)."""
    monkeypatch.chdir(REPO)
    monkeypatch.setattr(sys, "argv", ["grid.py", *args])
    monkeypatch.setattr(grid, "sh", lambda *cmd, **kw: pytest.fail(f"called {cmd}: a dry run queues nothing"))
    code = 0
    try:
        grid.main()
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    out = capsys.readouterr()
    return code, out.out, out.err


def dry_rows(stdout: str) -> dict[str, dict[str, str]]:
    """{experiment: {key: value}} from a dry run's lines `grid-<row>: -S k=v -S ...`."""
    rows = {}
    for line in stdout.splitlines():
        if line.startswith("grid-"):
            name, args = line.split(": ", 1)
            words = args.split()
            assert words[0::2] == ["-S"] * (len(words) // 2), line
            keys = [w.split("=", 1)[0] for w in words[1::2]]
            assert len(keys) == len(set(keys)), f"a key set twice: {line}"
            rows[name] = dict(w.split("=", 1) for w in words[1::2])
    return rows


@pytest.mark.parametrize("table", ["table2", "table4"])
def test_dry_run_of_a_table_lists_the_papers_rows_with_the_overrides(grid, monkeypatch, capsys, tmp_path, table):
    code, out, err = run_grid(
        grid, monkeypatch, capsys, "--only", table, "--set", f"data.root={tmp_path}",
        "--set", f"backbone.model={TINY_MODEL}", "--dry-run",
    )  # fmt: skip
    assert code == 0, err
    rows = dry_rows(out)
    assert list(rows) == [f"grid-{r}" for r in PAPER_ROWS[table]]
    for name, sets in rows.items():
        assert sets["data.root"] == str(tmp_path) and sets["backbone.model"] == TINY_MODEL, name
        assert sets["data.benchmark"] == "imagenet_conventional" and sets["features.local"] == "true", name
        assert int(sets["features.num_workers"]) >= 1, name
    assert rows["grid-table2-open-vocab"]["open_vocab"] == "true"
    assert "open_vocab" not in rows["grid-table2-conventional"]
    assert "nothing queued" in out.splitlines()[-1]


def test_each_table_is_the_papers_rows(grid, monkeypatch, capsys, tmp_path):
    """Table 3: the four splits, full and 10%; Table 5: every ablation in the 10% setting; every ImageNet row decodes
    with worker processes; every row, with a data.root, validates against params.yaml."""
    for table, expected in PAPER_ROWS.items():
        code, out, err = run_grid(grid, monkeypatch, capsys, "--only", table, "--set", "data.root=/d", "--dry-run")
        assert code == 0, err
        rows = dry_rows(out)
        assert list(rows) == [f"grid-{r}" for r in expected], table
        if table == "table3":
            assert [rows[f"grid-{r}"]["data.hard_split"] for r in expected] == [f"split{i}" for i in range(1, 5)] * 2
            assert [rows[f"grid-{r}"].get("open_vocab") for r in expected] == [None] * 4 + ["true"] * 4
        if table == "table5":
            assert all(s["open_vocab"] == "true" for s in rows.values())
    imagenet = [n for n, r in ROWS.items() if str(r["params"].get("data.benchmark", "")).startswith("imagenet")]
    assert imagenet and all(ROWS[n]["params"].get("features.num_workers", 0) >= 1 for n in imagenet)
    code, out, err = run_grid(grid, monkeypatch, capsys, "--only", ",".join(ROWS), "--set", "data.root=/d", "--dry-run")
    assert code == 0 and len(dry_rows(out)) == len(ROWS), err
    assert set(grid.PAPER) <= set(ROWS), "a paper figure for a row the grid does not have"


def test_an_unknown_table_is_one_line_naming_only_and_the_known_names(grid, monkeypatch, capsys):
    code, out, err = run_grid(grid, monkeypatch, capsys, "--only", "table6", "--set", "data.root=/d")
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: --only"), err
    assert "ONLY" in lines[0] and all(t in lines[0] for t in ("table2", "table3", "table4", "table5", "ours")), lines
    assert "table6" in lines[0] and not out


def test_an_imagenet_row_without_data_root_is_one_line(grid, monkeypatch, capsys):
    code, out, err = run_grid(grid, monkeypatch, capsys, "--only", "table2")
    assert code == 2 and not out and len(err.strip().splitlines()) == 1, err
    assert "data.root is empty" in err and 'SET="data.root=' in err


def test_negative_num_workers_is_one_line(grid, monkeypatch, capsys):
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["features"]["num_workers"] = -1
    with pytest.raises(NegPromptError, match=r"features\.num_workers = -1") as e:
        validate(raw)
    assert "\n" not in str(e.value)
    code, out, err = run_grid(
        grid, monkeypatch, capsys, "--only", "p1", "--set", "features.num_workers=-1", "--dry-run"
    )
    assert code == 2 and not out and err.count("\n") == 1 and "features.num_workers = -1" in err, err


def test_the_report_puts_the_papers_figures_beside_the_rows(grid):
    def result(auroc: float) -> dict:
        avg = {"auroc": auroc, "auroc_std": 0.1, "fpr95": 100 - auroc, "fpr95_std": 0.2}
        top1 = {"top1": 70.0, "top1_std": 0.1}
        return {
            "average": dict.fromkeys(grid.METHODS, avg),
            "id_top1": dict.fromkeys(("mcm", "coop", "negprompt"), top1),
        }

    rows = {n: ROWS[n] for n in PAPER_ROWS["table2"] + PAPER_ROWS["table3"] + ["ours-p4"]}
    results = {n: result(90.0 + i) for i, n in enumerate(rows) if n != "table3-split4-open-vocab"}
    lines, more = grid.tabulate(rows, results, {"grid-table3-split4-open-vocab": "Failed"})
    by_row = {line.split(" | ")[0][2:]: line for line in lines[2:]}
    assert by_row["table2-conventional"].endswith("NegPrompt 94.81 / 23.01 |")
    assert "Table 2 conventional: MCM 90.76 / 42.74" in by_row["table2-conventional"]
    assert (
        "Table 2 open-vocabulary (10%)" in by_row["table2-open-vocab"]
        and "93.76 / 25.86" in by_row["table2-open-vocab"]
    )
    assert "| failed |" in by_row["table3-split4-open-vocab"] and "98.14 / 5.24" in by_row["table3-split4-open-vocab"]
    assert by_row["ours-p4"].endswith("|  |"), "ours has no paper figure"
    top1 = next(line for line in more if line.startswith("| table2-conventional |"))
    assert "Table 4: MCM 67.0, CoOp 72.1, LoCoOp 71.7, NegPrompt 72.1" in top1
    (avg,) = [line for line in more if line.startswith("Table 3 average, splits 1-4 (")]
    assert "NegPrompt 93.50 / 6.50 (paper 97.96 / 8.18)" in avg  # rows 2-5: mean AUROC 93.5
    assert not any(line.startswith("Table 3 average, splits 1-4, 10%") for line in more), "a failed row: no average"


# a make of its own, not a sub-make of `make test` (which would print its directory and pass its flags)
MAKE_ENV = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS", "MAKEOVERRIDES")}


def test_make_grid_passes_only_set_and_dry_run():
    out = subprocess.run(
        ["make", "-s", "--no-print-directory", "-n", "grid", "ONLY=table2",
         "SET=data.root=/data/imagenet backbone.pretrained=/w/x.bin", "DRY_RUN=1"],
        cwd=REPO, capture_output=True, text=True, check=True, env=MAKE_ENV,
    ).stdout.splitlines()[-1]  # fmt: skip
    assert "grid.py " in out and "--only table2 --set 'data.root=/data/imagenet'" in out, out
    assert "--set 'backbone.pretrained=/w/x.bin' --dry-run" in out, out
    default = subprocess.run(
        ["make", "-s", "--no-print-directory", "-n", "grid"], cwd=REPO, capture_output=True, text=True, check=True,
        env=MAKE_ENV,
    ).stdout  # fmt: skip
    assert default.splitlines()[-1].rstrip().endswith("--only ablations"), "make grid's default runs offline"
    assert all(r["group"] in ("ablations", "protocol") or "data.benchmark" in r["params"] for r in ROWS.values())


def test_one_line_error_from_the_command_line(tmp_path):
    """As a shell runs it: status 2 and `error: ...` (helpers.one_line_error), before git or dvc is touched."""
    res = subprocess.run(
        [sys.executable, str(GRID_PY), "--only", "nope"], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    one_line_error(res, "--only", "table5")


def test_every_imagenet_row_gets_a_gpu_and_a_cpu_per_decoding_worker():
    """grid-cluster.yaml's entries follow the tables' groups: a renamed group would silently fall back to the
    defaults (no GPU, 2 CPUs for 8 decoding workers)."""
    spec = importlib.util.spec_from_file_location("grid_cluster", REPO / "benchmarks/experiments/grid_cluster.py")
    gc = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gc)
    imagenet = {n: r for n, r in ROWS.items() if "data.benchmark" in r["params"]}
    per_row = gc.resources(gc.RESOURCES, imagenet, [])
    for name, res in per_row.items():
        assert res["gpus"] >= 1 and res["cpus"] >= ROWS[name]["params"]["features.num_workers"], (name, res)


def test_results_are_put_back_together_from_exp_shows_flattened_table(grid):
    """`dvc.api.exp_show` flattens each metrics file with dots (a name two files share gets `<file>:`) and writes
    values as text read back as floats: the report's nested result comes back exactly, another file's columns and
    another benchmark's are left out."""
    from flatten_dict import flatten

    result = {
        "average": {"mcm": {"auroc": 80.0778, "auroc_std": 0.0, "fpr95": 67.2558, "fpr95_std": 0.1234}},
        "id_top1": {"negprompt": {"top1": 71.25, "top1_std": 0.5}},
        "protocol": {"pos": {"select": "test", "kept": [3, 4]}},
    }
    row = {"Experiment": "grid-p1", "rev": "abc1234", "State": "Success", "params.yaml:data.benchmark": "openmoji"}
    for key, value in flatten({"openmoji": result}, reducer="dot").items():
        row[f"reports/metrics.json:{key}" if key.endswith("auroc") else key] = (
            float(value) if isinstance(value, float) else str(value)
        )
    row |= {"reports/train/pos_seed1/metrics.json:openmoji.average.mcm.auroc": 1.0, "train.loss": 0.5, "x.y": None}
    assert grid.exp_metrics(row) == result
    assert grid.exp_metrics({**row, "params.yaml:data.benchmark": "imagenet_conventional"}) is None
    hard = {"Experiment": "grid-s1", "rev": "d", "data.benchmark": "imagenet_hard", "data.hard_split": "split2"}
    assert grid.exp_metrics({**hard, "imagenet_hard_split2.average.mcm.auroc": 99.5}) == {
        "average": {"mcm": {"auroc": 99.5}}
    }


def test_checkpoints_flag_is_an_absolute_folder_or_none(grid, tmp_path, monkeypatch):
    """The rows run in other directories (DVC's temporary copies, a job's clone): the folder they share is absolute."""
    monkeypatch.chdir(tmp_path)
    assert grid.checkpoint_dir(".negprompt/checkpoints") == tmp_path / ".negprompt/checkpoints"
    assert grid.checkpoint_dir("none") is None and grid.checkpoint_dir("") is None


def test_rows_differing_only_in_training_share_one_run_of_the_shared_stages(grid):
    """grid.shared_groups: one run of tree..features per backbone and data; a device goes to the training stages only
    (in features' or backbone's params it would make each GPU's rows a run of their own)."""
    args = {n: grid.queue_args(ROWS[n]["params"], ["data.root=/d"], None) for n in PAPER_ROWS["table5"]}
    groups = grid.shared_groups(args)
    assert list(groups) == ["table5-p1", "table5-vit-b-32", "table5-rn50", "table5-rn101"], list(groups)
    on_gpu = grid.queue_args({"neg.num_prompts": 1}, [], "cuda:1")
    assert [a for a in on_gpu[1::2] if "device" in a] == ["pos.device=cuda:1", "neg.device=cuda:1"]


def test_an_exp_show_that_hangs_is_asked_again_with_a_longer_limit(grid, monkeypatch):
    """exp_show can wait for good while queued rows run: the call is killed at its limit and asked again, the limit
    doubled up to 10 minutes (a large repository's table may need it); an answer is the experiments' rows."""
    limits, answer_at = [], 3

    def run(cmd, timeout, **kwargs):
        limits.append(timeout)
        if len(limits) < answer_at:
            raise subprocess.TimeoutExpired(cmd, timeout)
        rows = '[{"Experiment": "grid-p1", "rev": "abc", "State": "Success"}, {"Experiment": null}]'
        return subprocess.CompletedProcess(cmd, 0, stdout=f"a progress line\n{rows}\n", stderr="")

    monkeypatch.setattr(grid.subprocess, "run", run)
    monkeypatch.setattr(grid.time, "sleep", lambda s: None)
    assert grid.exp_rows("abc") == [{"Experiment": "grid-p1", "rev": "abc", "State": "Success"}]
    assert limits == [30, 60, 120]
    limits.clear()
    answer_at = 11  # never within the ten calls
    with pytest.raises(NegPromptError, match="dvc exp show failed 10 times: no answer in 600 s"):
        grid.exp_rows("abc")
    assert limits == [30, 60, 120, 240, 480, 600, 600, 600, 600, 600]
