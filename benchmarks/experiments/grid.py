"""The paper's experiment grid on DVC's experiment queue, one command per paper table, tabulated beside the paper's
figures.

    python benchmarks/experiments/grid.py --jobs 2 --only ablations          # queue, run 2 at a time, report
    python benchmarks/experiments/grid.py --only table2 --set data.root=/data/imagenet --dry-run   # rows, -S settings
    python benchmarks/experiments/grid.py --only table2 --set data.root=/data/imagenet --jobs 4
    python benchmarks/experiments/grid.py --report-only --only ablations     # re-tabulate finished experiments

`--only` takes a table (table2, table3, table4 = Table 2's runs read for ID top-1, table5, ours), a group of
grid.yaml (ablations, protocol: OpenMoji, offline) or rows. `--set KEY=VALUE` overrides a key in every row; every
row's settings are validated against params.yaml before anything is queued (an ImageNet row needs data.root).

Rows come from `benchmarks/experiments/grid.yaml`. Each is `dvc exp run --queue -n grid-<row> -S ...` from
HEAD's params (overrides never accumulate), run by `dvc queue start --jobs N` workers, after the stages the
rows share (tree to features and NegLabel) ran once per distinct setting, so that the rows restore them from
DVC's run-cache instead of encoding the images again; with several
CUDA devices the rows are assigned round-robin (`-S pos.device=cuda:i ...`), and each worker gets
cores / N threads (NEGPROMPT_THREADS, unless set) so that parallel jobs do not oversubscribe the CPU. A failed
row is reported and the others go on; a killed row resumes its training from the checkpoints kept in
`--checkpoints DIR` (NEGPROMPT_CHECKPOINTS for the workers and jobs). States and results come from DVC's
experiments table (`dvc.api.exp_show`: reports/metrics.json of each experiment) and are written to
reports/grid.md, reports/grid.json and reports/grid.png.

    python benchmarks/experiments/grid.py --executor slurm --only table2 --set data.root=/data/imagenet
    python benchmarks/experiments/grid.py --executor slurm --only table2 --set data.root=/data/imagenet --resume
    python benchmarks/experiments/grid.py --executor local --jobs 2 --only ablations  # the same jobs as local processes

`--resume` after a killed driver. `--executor slurm` / `local` (grid_cluster.py, through submitit) make each row
one job with the resources of grid-cluster.yaml (`--resource KEY=VALUE` overrides), in its own clone of the Git
remote at HEAD, sharing stages through the DVC remote's run-cache; the experiments come back through the Git remote
(docs/cluster.md).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple

import yaml
from tqdm import tqdm

from negprompt import NegPromptError
from negprompt.benchmarks.tables import GENERATED
from negprompt.config import validate
from negprompt.methods import registry
from negprompt.methods.checkpoint import CHECKPOINTS, SHARED_ENV

GRID = Path(__file__).with_name("grid.yaml")
METRICS = "reports/metrics.json"  # the report stage's results, one entry named by the benchmark
PARAMS = Path("params.yaml")  # the rows run from HEAD's params, in the repository the grid is started from
METHODS = {m: s.label for m, s in registry.methods().items() if s.headline}  # the table's and the figure's columns
LOCAL = {m: s.label for m, s in registry.methods().items() if s.local}  # with features.local: an extra line
TOP1 = {m: s.label for m, s in registry.methods().items() if s.prediction}  # methods that classify: ID top-1


def sh(*cmd: str, env: dict | None = None, check: bool = True) -> str:
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if check and out.returncode:
        sys.exit(f"{' '.join(cmd)} failed:\n{out.stderr[-2000:]}")
    return out.stdout


def fail(message: str) -> None:
    """Bad input: one line on stderr and exit status 2, before anything is queued or submitted."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def select(rows: dict, only: list[str], aliases: dict[str, str] | None = None) -> dict:
    """Rows named in `only`, or in a group or table named there (an alias reads another group's rows: table4 is
    table2's runs); all rows of group 'ablations' by default."""
    aliases = aliases or {}
    only = [aliases.get(o, o) for o in only or ["ablations"]]
    groups = {r.get("group") for r in rows.values()} - {None}
    unknown = [o for o in only if o not in rows and o not in groups]
    if unknown:
        fail(
            f"--only (make: ONLY) {','.join(unknown)}: no such table, group or row "
            f"(known tables and groups: {', '.join(sorted(groups | set(aliases)))}; or a row of grid.yaml)"
        )
    return {n: r for n, r in rows.items() if n in only or r.get("group") in only}


def settings(params: dict, extra: list[str]) -> dict[str, str]:
    """A row's `-S` settings with the `--set KEY=VALUE` overrides on top: an overridden key keeps one value, the
    override's (DVC would otherwise see the key twice)."""
    out = {k: json.dumps(v) if isinstance(v, bool) else str(v) for k, v in params.items()}
    for s in extra:
        key, sep, value = s.partition("=")
        if not sep or not key.strip():
            fail(f"--set (make: SET) {s!r}: expected KEY=VALUE, e.g. data.root=/data/imagenet")
        out[key.strip()] = value
    return out


def queue_args(params: dict, extra: list[str], device: str | None) -> list[str]:
    sets = settings(params, extra)
    if device:  # the training stages only: a device in the shared stages' params would make each GPU's rows their own
        sets |= {f"{s}.device": device for s in ("pos", "neg")}  # run of them (run_shared encodes once per grid)
    return [a for k, v in sets.items() for a in ("-S", f"{k}={v}")]


def check_row(name: str, sets: dict[str, str], params: dict) -> None:
    """The params a row's experiment will run with (params.yaml, then its -S values parsed as YAML, as DVC does),
    validated now: a bad value or an ImageNet row without data.root stops the grid before anything is queued, not
    in each row's first stage."""
    raw = copy.deepcopy(params)
    for key, value in sets.items():
        *parents, leaf = key.split(".")
        node = raw
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                fail(f"row {name}: {key}: {part} is not a section of params.yaml")
        node[leaf] = yaml.safe_load(value) if value.strip() else ""
    try:
        p = validate(raw, source=f"row {name}")
    except NegPromptError as e:
        fail(str(e))
    if p.data.benchmark not in GENERATED and not p.data.root:
        fail(
            f"row {name}: data.root is empty: {p.data.benchmark} needs the ImageNet directory "
            '(--set data.root=/data/imagenet; make: SET="data.root=/data/imagenet")'
        )


def dry_run(rows: dict, extra: list[str]) -> None:
    """Each row's experiment and its full -S settings, as they would be queued (nothing is)."""
    for name, row in rows.items():
        args = queue_args(row.get("params", {}), extra, None)
        print(f"grid-{name}: {' '.join(shlex.quote(a) for a in args)}")
    print(f"{len(rows)} row{'' if len(rows) == 1 else 's'} (dry run: nothing queued)")


# dvc.api.exp_show in a child process with a time limit: while queued rows run, it can wait for good (seen in CI, and
# on 2 cores for a whole 300-s limit as two rows ended side by side; treeverse/dvc#8762 reports exp show and the
# queue's workers waiting on each other's lock); a call that hangs or fails is asked again. It answers in about 1.5 s
# on a small repository: the limit starts at 30 s and doubles after each call that ran into it (a large repository's
# table may take minutes)
EXP_SHOW = "import json, sys, dvc.api; print(json.dumps(dvc.api.exp_show(revs=sys.argv[1]), default=str))"


def exp_rows(base: str, timeout: float = 30) -> list[dict]:
    """`dvc exp show`'s table of the experiments queued from commit `base`: one dict per experiment with its name
    (`Experiment`), `rev`, `State` (Queued, Running, Success, Failed; None for one pulled from a remote) and its
    params and metrics, flattened with dots (a name in several files is prefixed `<file>:`)."""
    for attempt in range(10):
        try:
            res = subprocess.run(
                [sys.executable, "-c", EXP_SHOW, base], capture_output=True, text=True, timeout=timeout
            )
            if res.returncode == 0:  # else a worker setting up a row's temporary copy ("Empty git repo")
                return [r for r in json.loads(res.stdout.strip().splitlines()[-1]) if r.get("Experiment")]
            error = res.stderr.strip().splitlines()[-1:] or [f"exit {res.returncode}"]
        except subprocess.TimeoutExpired:
            error = [f"no answer in {timeout:.0f} s"]
            timeout = min(2 * timeout, 600)
        if attempt == 9:
            raise NegPromptError(f"dvc exp show failed 10 times: {error[0]}")
        time.sleep(3)


def _cell(row: dict, path: str, name: str):
    """A column of exp_show's table, by its file and its flattened name (prefixed only where two files share it)."""
    return row.get(f"{path}:{name}", row.get(name))


def exp_metrics(row: dict) -> dict | None:
    """The result reports/metrics.json holds for an experiment (its one top-level entry, named by the benchmark), put
    back together from exp_show's flattened columns; None if it has none (not finished, or failed)."""
    import ast

    bench = _cell(row, "params.yaml", "data.benchmark")
    if bench is None:
        return None
    top = bench + (f"_{_cell(row, 'params.yaml', 'data.hard_split')}" if bench == "imagenet_hard" else "")
    tree: dict = {}
    prefix = f"{METRICS}:"
    for column, value in row.items():
        name = column[len(prefix) :] if column.startswith(prefix) else column
        if value is None or ":" in name or not name.startswith(f"{top}."):
            continue
        if isinstance(value, str) and value[:1] in "[{":  # exp_show writes a list as its repr
            try:
                value = ast.literal_eval(value)
            except (ValueError, SyntaxError):
                pass
        *parents, leaf = name.split(".")[1:]
        node = tree
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return tree or None


def queue_states(names: list[str], earlier: set[str], base: str) -> dict[str, str]:
    """{experiment name: state} of this run's experiments (exp_show also lists earlier runs' failed tasks of the same
    names: their revs are in `earlier`)."""
    return {r["Experiment"]: r["State"] for r in exp_rows(base) if r["Experiment"] in names and r["rev"] not in earlier}


# The stages every row of a backbone and data shares (with their upstream: tree, data, backbone, subset): run once
# per distinct setting before the rows, so that each row's copies are restored from DVC's run-cache, not recomputed
SHARED_TARGETS = ("features", "neglabel")
SHARED_SECTIONS = ("data", "backbone", "subset", "features", "neglabel", "family", "score.zero_shot_template")


def shared_groups(row_args: dict[str, list[str]]) -> dict[str, list[str]]:
    """{first row: its -S arguments} per distinct setting of the params the shared stages read (a key that does not
    matter only costs one more, quick, run-cache hit: DVC decides the reuse)."""
    groups: dict[tuple, str] = {}
    for name, args in row_args.items():
        sets = [a for a in args[1::2] if a.split("=", 1)[0].startswith(SHARED_SECTIONS)]
        groups.setdefault(tuple(sorted(sets)), name)
    return {name: row_args[name] for name in groups.values()}


def run_shared(row_args: dict[str, list[str]], env: dict) -> None:
    """The shared stages of each group, once, in DVC's temporary copy (`dvc exp run --temp`: the workspace is left
    as it is); the experiment is removed, its outputs and run-cache entries stay in the cache."""
    for first, args in shared_groups(row_args).items():
        exp = f"grid-shared-{first}"
        print(f"shared stages ({', '.join(SHARED_TARGETS)}) for the rows like {first}: {exp}", flush=True)
        sh("dvc", "exp", "run", "--temp", "-n", exp, *args, *SHARED_TARGETS, env=env)
        sh("dvc", "exp", "remove", exp, check=False)


def run_queue(rows: dict, jobs: int, extra: list[str], base: str, checkpoints: Path | None = None) -> dict[str, str]:
    try:
        import torch

        gpus = torch.cuda.device_count()
    except ImportError:
        gpus = 0
    names = [f"grid-{n}" for n in rows]
    own = os.environ.get("NEGPROMPT_THREADS")  # a user's own thread count wins
    env = {**os.environ, "NEGPROMPT_THREADS": own or str(max(1, (os.cpu_count() or 1) // jobs))}
    if checkpoints:  # the workers, and through them each row's stages, inherit this environment
        env[SHARED_ENV] = str(checkpoints)
    row_args = {
        name: queue_args(row.get("params", {}), extra, f"cuda:{i % gpus}" if gpus > 1 else None)
        for i, (name, row) in enumerate(rows.items())
    }
    run_shared(row_args, {**env, "NEGPROMPT_THREADS": own or str(os.cpu_count() or 1)})
    earlier = {r["rev"] for r in exp_rows(base)}
    existing = set(sh("dvc", "exp", "list", "--name-only").split())
    for name, args in row_args.items():
        exp = f"grid-{name}"
        if exp in existing:
            sh("dvc", "exp", "remove", exp)
        print(f"queue {exp}: {' '.join(args)}", flush=True)
        sh("dvc", "exp", "run", "--queue", "-n", exp, *args)
    # the workers outlive this call and inherit its pipes: without DEVNULL, waiting for EOF would block until
    # the queue is empty
    subprocess.run(
        ["dvc", "queue", "start", "--jobs", str(jobs)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=True,
    )
    done, bar = {}, tqdm(total=len(names), desc=f"grid ({jobs} jobs)", unit="exp")
    while len(done) < len(names):
        time.sleep(5)
        for name, state in queue_states(names, earlier, base).items():
            if state in ("Success", "Failed") and name not in done:
                done[name] = state
                bar.update(1)
                bar.set_postfix(failed=sum(s == "Failed" for s in done.values()))
    bar.close()
    for _ in range(30):  # a finished task's metrics are collected just after its state turns Success
        shown = {r["Experiment"]: r for r in exp_rows(base)}
        if all(n in shown and exp_metrics(shown[n]) for n, st in done.items() if st == "Success"):
            break
        time.sleep(2)
    # no `dvc queue stop`: the workers exit by themselves once the queue is empty, and a stop sent after they
    # have gone stays in the broker and shuts down the next run's worker after its first experiment
    return done


class Paper(NamedTuple):
    """The paper's figures for one grid row: where they are printed, AUROC / FPR95 averaged over the OOD sets (%)
    per method, and ID top-1 (%) per method."""

    source: str
    ood: dict[str, tuple[float, float]]
    top1: dict[str, float]
    top1_source: str = ""  # where the ID top-1 figures are printed, when not in `source`


# The paper's figures beside the grid's rows (CVPR 2024, /work/shared/spec/negprompt.md): Table 2 (averages over
# iNaturalist, SUN, Places and Textures), Table 3 (per hard split), Table 4 (ID top-1 of Table 2's runs), Table 5
# (10% setting, NegPrompt's average and ID top-1). Rows of `ours` and the OpenMoji groups have none.
PAPER = {
    "table2-conventional": Paper(
        "Table 2 conventional",
        {"mcm": (90.76, 42.74), "coop": (91.78, 51.68), "locoop": (93.52, 28.66), "negprompt": (94.81, 23.01)},
        {"mcm": 67.0, "coop": 72.1, "locoop": 71.7, "negprompt": 72.1},
        "Table 4",
    ),
    "table2-open-vocab": Paper(
        "Table 2 open-vocabulary (10%)",
        {"coop": (89.94, 45.28), "locoop": (90.15, 37.09), "negprompt": (93.76, 25.86)},
        {"negprompt": 71.9},
        "Table 4 (10%)",
    ),
    "table3-split1": Paper("Table 3 split-1", {"negprompt": (99.85, 0.62)}, {}),
    "table3-split2": Paper("Table 3 split-2", {"negprompt": (98.54, 7.60)}, {}),
    "table3-split3": Paper("Table 3 split-3", {"negprompt": (93.89, 22.89)}, {}),
    "table3-split4": Paper("Table 3 split-4", {"negprompt": (99.57, 1.60)}, {}),
    "table3-split1-open-vocab": Paper("Table 3 split-1, 10%", {"negprompt": (99.66, 1.36)}, {}),
    "table3-split2-open-vocab": Paper("Table 3 split-2, 10%", {"negprompt": (96.30, 19.89)}, {}),
    "table3-split3-open-vocab": Paper("Table 3 split-3, 10%", {"negprompt": (91.75, 26.92)}, {}),
    "table3-split4-open-vocab": Paper("Table 3 split-4, 10%", {"negprompt": (98.14, 5.24)}, {}),
    "table5-p1": Paper("Table 5 one negative prompt (10%)", {"negprompt": (92.73, 27.46)}, {"negprompt": 72.1}),
    "table5-one-stage": Paper("Table 5 one-stage training (10%)", {"negprompt": (80.23, 90.07)}, {"negprompt": 62.8}),
    "table5-vit-b-32": Paper("Table 5 ViT-B-32 (10%)", {"negprompt": (93.37, 27.56)}, {}),
    "table5-rn50": Paper("Table 5 RN50 (10%)", {"negprompt": (85.70, 57.19)}, {}),
    "table5-rn101": Paper("Table 5 RN101 (10%)", {"negprompt": (88.04, 50.35)}, {}),
}
# Table 3's averages over the four splits, beside the mean of our four rows' averages (MCM is zero-shot: the same in
# both settings)
PAPER_AVERAGES = {
    tuple(f"table3-split{i}" for i in range(1, 5)): Paper(
        "Table 3 average, splits 1-4",
        {"mcm": (93.77, 25.83), "coop": (93.99, 24.14), "negprompt": (97.96, 8.18)},
        {},
    ),
    tuple(f"table3-split{i}-open-vocab" for i in range(1, 5)): Paper(
        "Table 3 average, splits 1-4, 10%", {"mcm": (93.77, 25.83), "negprompt": (96.46, 13.36)}, {}
    ),
}


def paper_cell(p: Paper | None) -> str:
    """The paper's AUROC / FPR95 of a row, named by table and row ('' where the paper has none)."""
    if p is None:
        return ""
    return f"{p.source}: " + ", ".join(f"{registry.label(m)} {a:.2f} / {f:.2f}" for m, (a, f) in p.ood.items())


TEST_MARK = " ¹"


def test_selected(r: dict) -> bool:
    """Whether an experiment kept a checkpoint chosen on test data (metrics.json's `protocol`)."""
    return any(r.get("protocol", {}).get(s, {}).get("select") == "test" for s in ("pos", "neg"))


def fmt(a: dict, key: str) -> str:
    return f"{a[key]:.2f} ± {a[key + '_std']:.2f}"


def tabulate(rows: dict, results: dict, states: dict[str, str]) -> tuple[list[str], list[str]]:
    """The grid's tables as Markdown lines, each row beside the paper's figures: (the AUROC / FPR95 table, the rest:
    ID top-1, Table 3's averages over the splits, footnotes)."""
    na = lambda name: "failed" if states.get(f"grid-{name}") == "Failed" else "not run"  # noqa: E731
    lines = [
        "| experiment | "
        + " | ".join(f"{m} AUROC ↑ | {m} FPR95 ↓" for m in METHODS.values())
        + " | paper (AUROC / FPR95) |",
        "|---" * (2 + 2 * len(METHODS)) + "|",
    ]
    for name in rows:
        r = results.get(name)
        if r is None:
            cells = [na(name)] * (2 * len(METHODS))
        else:
            cells = [c for m in METHODS for c in (fmt(r["average"][m], "auroc"), fmt(r["average"][m], "fpr95"))]
        mark = TEST_MARK if r is not None and test_selected(r) else ""
        lines.append(f"| {name}{mark} | " + " | ".join(cells) + f" | {paper_cell(PAPER.get(name))} |")
    more = []
    if any(test_selected(r) for r in results.values()):
        more += [
            f"{TEST_MARK} checkpoint selected on test data, as the official code does "
            "(`pos.select` / `neg.select: test`).",
            "",
        ]
    for name, r in results.items():
        if any(m in r["average"] for m in LOCAL):
            more += [
                f"Patch-feature baselines ({name}): "
                + ", ".join(
                    f"{label} {fmt(r['average'][m], 'auroc')} / {fmt(r['average'][m], 'fpr95')}"
                    for m, label in LOCAL.items()
                    if m in r["average"]
                ),
                "",
            ]
    more += [
        "ID top-1 (%, mean ± std over the seeds); Table 2's rows give the paper's Table 4:",
        "",
        "| experiment | " + " | ".join(TOP1.values()) + " | paper (ID top-1) |",
        "|---" * (2 + len(TOP1)) + "|",
    ]
    for name in rows:
        r = results.get(name)
        if r is None:
            cells = [na(name)] * len(TOP1)
        else:
            cells = [fmt(r["id_top1"][m], "top1") if m in r["id_top1"] else "" for m in TOP1]
        p = PAPER.get(name)
        cited = ""
        if p and p.top1:
            cited = f"{p.top1_source or p.source}: " + ", ".join(
                f"{registry.label(m)} {v:.1f}" for m, v in p.top1.items()
            )
        more.append(f"| {name} | " + " | ".join(cells) + f" | {cited} |")
    more.append("")
    for names, p in PAPER_AVERAGES.items():
        if all(n in results for n in names):
            ours = {
                m: [sum(results[n]["average"][m][k] for n in names) / len(names) for k in ("auroc", "fpr95")]
                for m in p.ood
                if all(m in results[n]["average"] for n in names)
            }
            more += [
                f"{p.source} (mean of {', '.join(names)}): "
                + ", ".join(
                    f"{registry.label(m)} {a:.2f} / {f:.2f} (paper {p.ood[m][0]:.2f} / {p.ood[m][1]:.2f})"
                    for m, (a, f) in ours.items()
                ),
                "",
            ]
    return lines, more


def report(rows: dict, states: dict[str, str], out: Path, base: str) -> dict:
    shown = {r["Experiment"]: r for r in exp_rows(base) if r.get("State") not in ("Queued", "Running", "Failed")}
    results = {name: m for name in rows if f"grid-{name}" in shown and (m := exp_metrics(shown[f"grid-{name}"]))}
    lines, more = tabulate(rows, results, states)
    md = [
        "# Experiment grid",
        "",
        "Rows from `benchmarks/experiments/grid.yaml` (or `--grid`), each a DVC experiment `grid-<row>` "
        "from HEAD's params (`python benchmarks/experiments/grid.py`). Average AUROC / FPR95 over the OOD sets, "
        "%, mean ± std over the seeds; the paper's figures beside the rows that have them (its table and row).",
        "",
        *lines,
        "",
        *more,
    ]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(md))
    out.with_suffix(".json").write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
    if results:
        plot(results, out.with_suffix(".png"))
    print("\n".join([*lines, "", *more]))
    return results


def plot(results: dict, path: Path) -> None:
    """Average AUROC per experiment, one bar per method, with the std over seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    names = list(results)
    x = np.arange(len(names))
    width = 0.8 / len(METHODS)
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(names)), 3.5))
    for i, (m, label) in enumerate(METHODS.items()):
        vals = [results[n]["average"][m] for n in names]
        ax.bar(x + i * width, [v["auroc"] for v in vals], width, yerr=[v["auroc_std"] for v in vals], label=label)
    ax.set_xticks(x + width * (len(METHODS) - 1) / 2, names, rotation=30, ha="right", fontsize=8)
    lo = min(results[n]["average"][m]["auroc"] for n in names for m in METHODS)
    ax.set(ylabel="average AUROC (%)", ylim=(max(0, lo - 5), 100), title="experiment grid")
    ax.legend(fontsize=7, ncol=len(METHODS))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run_jobs(args, rows: dict, base: str) -> dict[str, str]:
    """--executor slurm / local (grid_cluster.py); bad input is one line on stderr and exit status 2."""
    import grid_cluster

    row_args = {name: queue_args(row.get("params", {}), args.set, None) for name, row in rows.items()}
    try:
        return grid_cluster.run_cluster(
            args.executor,
            rows,
            row_args,
            base,
            resources_file=args.resources or grid_cluster.RESOURCES,
            resource_overrides=args.resource,
            resume=args.resume,
            jobs=args.jobs or (0 if args.executor == "slurm" else 1),
            git_remote_name=args.git_remote,
            checkpoints=checkpoint_dir(args.checkpoints),
            shared_stages=SHARED_TARGETS,
            shared_groups=shared_groups,
        )
    except grid_cluster.GridError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


def checkpoint_dir(value: str) -> Path | None:
    """--checkpoints as an absolute folder (the rows run elsewhere: in DVC's temporary copies, in a job's clone);
    None for 'none'."""
    return None if value.strip().lower() in ("", "none") else Path(value).expanduser().resolve()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--executor",
        choices=("queue", "local", "slurm"),
        default="queue",
        help="queue: DVC's experiment queue on this machine (default); slurm: one Slurm job per row; "
        "local: the same jobs as local processes",
    )
    ap.add_argument(
        "--jobs",
        type=int,
        default=None,
        help="experiments run in parallel (queue: DVC queue workers, default 1; local: default 1; "
        "slurm: default all, Slurm schedules them)",
    )
    ap.add_argument(
        "--resources",
        type=Path,
        default=None,
        help="slurm/local: the jobs' resources (default benchmarks/experiments/grid-cluster.yaml)",
    )
    ap.add_argument(
        "--resource",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="slurm/local: a resource for every row's job, e.g. partition=gpu, gpus=1",
    )
    ap.add_argument(
        "--resume",
        action="store_true",
        help="slurm/local: skip rows whose experiment is in the Git remote, follow jobs still running",
    )
    ap.add_argument(
        "--git-remote",
        default="origin",
        help="slurm/local: the Git remote the jobs clone from and push to (default origin)",
    )
    ap.add_argument(
        "--only",
        default="",
        help="comma-separated tables (table2, table3, table4, table5, ours), groups (ablations, protocol) or rows of "
        "grid.yaml (default: ablations, offline)",
    )
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an override of every row (replaces the row's own value), e.g. data.root=/data/imagenet; repeatable",
    )
    ap.add_argument(
        "--checkpoints",
        default=str(CHECKPOINTS),
        metavar="DIR",
        help="the folder where the rows' training stages keep their per-epoch checkpoints (NEGPROMPT_CHECKPOINTS, one "
        "sub-folder per run key), so that a killed or requeued row resumes from its last finished epoch; on Slurm a "
        "folder every node sees (default .negprompt/checkpoints of this repository; none: each row's own copy)",
    )
    ap.add_argument("--dry-run", action="store_true", help="list the rows and their full -S settings; queue nothing")
    ap.add_argument("--out", default="reports/grid.md")
    ap.add_argument("--grid", type=Path, default=GRID, help="the rows file (default benchmarks/experiments/grid.yaml)")
    ap.add_argument("--report-only", action="store_true", help="only tabulate experiments that already ran")
    ap.add_argument("--base", default="HEAD", help="--report-only: the commit the experiments were queued from")
    args = ap.parse_args()
    if args.base != "HEAD" and not args.report_only:
        ap.error("--base only goes with --report-only: new experiments are queued from HEAD")
    if args.executor == "queue" and (args.resume or args.resource or args.resources):
        ap.error("--resume, --resource and --resources go with --executor slurm or local")
    spec = yaml.safe_load(args.grid.read_text())
    rows = select(spec["experiments"], [o for o in args.only.split(",") if o], spec.get("aliases"))
    if not args.report_only and PARAMS.is_file():
        params = yaml.safe_load(PARAMS.read_text())
        for name, row in rows.items():
            check_row(name, settings(row.get("params", {}), args.set), params)
    if args.dry_run:
        dry_run(rows, args.set)
        return
    base = sh("git", "rev-parse", args.base).strip()  # commits made while it runs don't hide it
    if args.report_only:
        states = {}
    else:
        if sh("git", "status", "--porcelain", "--untracked-files=no").strip():
            sys.exit("commit or stash your changes first: experiments start from HEAD")
        start = time.time()
        if args.executor == "queue":
            states = run_queue(rows, args.jobs or 1, args.set, base, checkpoint_dir(args.checkpoints))
        else:
            states = run_jobs(args, rows, base)
        print(
            f"{len(rows)} experiments with --executor {args.executor} "
            f"--jobs {args.jobs or ('all' if args.executor == 'slurm' else 1)}: "
            f"{time.time() - start:.0f} s wall",
            flush=True,
        )
        failed = [n for n, s in states.items() if s == "Failed"]
        if failed:
            where = "`dvc queue logs <name>`" if args.executor == "queue" else "the logs named above"
            print(f"failed: {', '.join(failed)} (see {where})", file=sys.stderr)
    report(rows, states, Path(args.out), base)


if __name__ == "__main__":
    main()
