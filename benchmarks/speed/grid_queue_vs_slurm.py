"""The tiny grid's wall time on DVC's queue (`grid.py --executor queue --jobs 2`) against a single-node Slurm with two
job slots (`--executor slurm`, one CPU per job), each from its own fresh clone of this repository's HEAD with its own
DVC cache and, for Slurm, its own empty DVC remote (so neither run reuses the other's stages).

    python benchmarks/speed/grid_queue_vs_slurm.py [--only tiny] [--json benchmarks/results/grid_queue_vs_slurm.json]

Slurm is started on this machine for the measurement (benchmarks/experiments/slurm_localhost.py: needs root and
Debian's slurm-wlm and munge) and stopped after it. Rows: benchmarks/experiments/grid-tiny.yaml, with the tiny
configuration of benchmarks/RESULTS.md's queue measurement.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import typer

from negprompt import commands

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks/experiments"))
import slurm_localhost  # noqa: E402

TINY = [
    "data.train_per_class=4",
    "data.test_per_class=2",
    "data.ood_per_set=24",
    "subset.seeds=[1]",
    "subset.shots=2",
    "subset.calib_per_class=1",
    "pos.epochs=2",
    "neg.epochs=1",
    "report.tsne_images=40",
]


def sh(*cmd, cwd=None, env=None):
    subprocess.run(cmd, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL)


def fresh_clone(tmp: Path, name: str) -> Path:
    """A bare copy of HEAD as `origin`, a clone of it with an empty DVC remote of its own."""
    origin, work = tmp / f"{name}-origin.git", tmp / name
    sh("git", "clone", "--quiet", "--bare", str(REPO), str(origin))
    sh("git", "clone", "--quiet", str(origin), str(work))
    sh(
        str(Path(sys.executable).parent / "dvc"),
        "remote",
        "add",
        "--local",
        "-d",
        "store",
        str(tmp / f"{name}-dvc-store"),
        cwd=work,
    )
    return work


def timed_grid(work: Path, only: str, args: list[str], env: dict) -> tuple[float, str]:
    cmd = [
        sys.executable,
        str(REPO / "benchmarks/experiments/grid.py"),
        "--grid",
        str(REPO / "benchmarks/experiments/grid-tiny.yaml"),
        "--only",
        only,
        *args,
        *[a for s in TINY for a in ("--set", s)],
    ]
    start = time.time()
    res = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True)
    wall = time.time() - start
    if res.returncode:
        sys.exit(f"{' '.join(args)} failed:\n{res.stderr[-3000:]}")
    return wall, (work / "reports/grid.md").read_text()


def rows_of(md: str) -> dict[str, str]:
    return {
        line.split("|")[1].strip(): line
        for line in md.splitlines()
        if line.startswith("| ") and not line.startswith("| experiment")
    }


def main(
    only: str = typer.Option("tiny", help="the rows of grid-tiny.yaml to run (grid.py --only)"),
    json_out: Path = typer.Option(REPO / "benchmarks/results/grid_queue_vs_slurm.json", "--json", help="the result"),
) -> None:
    """The tiny grid's wall time on DVC's queue against a single-node Slurm with two job slots."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    load_before = os.getloadavg()
    # ignore_cleanup_errors: the queue's workers may still be finishing in their clone when it is removed
    with tempfile.TemporaryDirectory(prefix="grid-bench-", ignore_cleanup_errors=True) as tmp:
        tmp = Path(tmp)
        tmp.chmod(0o755)  # munged runs as user munge, under tmp/slurm-daemons
        queue_wall, queue_md = timed_grid(fresh_clone(tmp, "queue"), only, ["--executor", "queue", "--jobs", "2"], env)
        print(f"queue --jobs 2: {queue_wall:.0f} s", flush=True)
        load_between = os.getloadavg()
        try:
            slurm_env = {**env, **slurm_localhost.start(tmp / "slurm-daemons", cpus=2)}
            slurm_wall, slurm_md = timed_grid(
                fresh_clone(tmp, "slurm"),
                only,
                ["--executor", "slurm", "--resource", "cpus=1", "--resource", "mem_gb=1"],
                slurm_env,
            )
        finally:
            slurm_localhost.stop(tmp / "slurm-daemons")
    q, s = rows_of(queue_md), rows_of(slurm_md)
    result = {
        "what": f"benchmarks/experiments/grid-tiny.yaml --only {only} ({len(q)} rows, "
        "`fails` failing on purpose), tiny configuration, "
        "each executor from its own fresh clone with its own DVC cache (Slurm: its own empty DVC remote)",
        "queue_jobs2_wall_s": round(queue_wall, 1),
        "slurm_2slots_wall_s": round(slurm_wall, 1),
        "slurm_over_queue": round(slurm_wall / queue_wall, 2),
        "same_table": q == s,
        "rows": list(q),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "load_average_1_5_15": {
            "before": [round(x, 2) for x in load_before],
            "between": [round(x, 2) for x in load_between],
            "after": [round(x, 2) for x in os.getloadavg()],
        },
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    json_out.parent.mkdir(parents=True, exist_ok=True)
    json_out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    commands.run(main)
