"""Features encoded once per grid: the stages every row of a backbone and data shares (tree, data, backbone, NegLabel,
subset, features) run once before the queued rows (grid.py's run_shared), and each row's copies of them are restored
from DVC's run-cache: the image tower does not run again per row."""

import os
import subprocess
import sys
import time

import pytest

from tests.helpers import REPO, make_repo, tiny_params

GRID = REPO / "benchmarks/experiments/grid.py"
BIN = __import__("pathlib").Path(sys.executable).parent


@pytest.mark.slow
def test_two_queued_rows_sharing_a_backbone_encode_features_once(tmp_path):
    params = tiny_params()
    params["subset"]["seeds"] = [1]
    work = make_repo(tmp_path, params)
    shim = tmp_path / "bin"  # DVC's daemon replaces the workers' PYTHONPATH: this checkout's library in the stages
    shim.mkdir()
    (shim / "python").write_text(
        f'#!/bin/sh\nPYTHONPATH="{REPO / "src"}${{PYTHONPATH:+:$PYTHONPATH}}" exec {sys.executable} "$@"\n'
    )
    (shim / "python").chmod(0o755)
    env = {**os.environ, "PATH": f"{shim}:{BIN}:{os.environ['PATH']}", "PYTHONPATH": f"{REPO / 'src'}:{REPO}"}
    env["NEGPROMPT_THREADS"] = "1"  # a pytest-xdist worker per core: one thread per stage, as tests/helpers.dvc
    start = time.time()
    res = subprocess.run(
        [sys.executable, str(GRID), "--grid", str(REPO / "benchmarks/experiments/grid-tiny.yaml"), "--only", "p1,p2"],
        cwd=work, env=env, capture_output=True, text=True, timeout=1500,
    )  # fmt: skip
    wall = time.time() - start
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert res.stdout.count("shared stages (features, neglabel)") == 1, res.stdout[-3000:]
    for exp in ("grid-p1", "grid-p2"):
        log = subprocess.run(
            [str(BIN / "dvc"), "queue", "logs", exp], cwd=work, env=env, capture_output=True, text=True
        ).stdout
        assert "Stage 'features' is cached - skipping run" in log, (exp, log[-3000:])
        assert "Running stage 'features'" not in log and "Running stage 'backbone'" not in log, (exp, log[-3000:])
        assert "Running stage 'train_neg@1'" in log, (exp, log[-3000:])
    md = (work / "reports/grid.md").read_text()
    assert "| p1 | " in md and "| p1 | not run" not in md and "| p2 | not run" not in md, md
    print(f"\n2 queued rows, shared stages once: {wall:.0f} s")
