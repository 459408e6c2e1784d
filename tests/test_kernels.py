"""Every stage runs the same CPU kernels on any x86-64 machine (pipeline/__init__.py pins them)."""

import json
import os
import platform
import subprocess
import sys

import pytest
import yaml

from tests.helpers import REPO, TINY, write_params

PROBE = (
    "import pipeline, os, torch, numpy, threadpoolctl; "
    "print(torch.backends.cpu.get_cpu_capability(), os.environ['MKL_CBWR'], os.environ['ONEDNN_MAX_CPU_ISA'], "
    "os.environ['NEGPROMPT_THREADS'], os.environ['NEGPROMPT_ONEDNN'], "
    "*{i['architecture'] for i in threadpoolctl.threadpool_info() if i['internal_api'] == 'openblas'})"
)


@pytest.mark.skipif(
    platform.machine().lower() not in ("x86_64", "amd64"), reason="the kernels are pinned on x86-64 only"
)
def test_a_stage_process_runs_vendor_independent_kernels_and_a_user_setting_wins():
    pinned = ("ATEN_CPU_CAPABILITY", "MKL_CBWR", "ONEDNN_MAX_CPU_ISA", "OPENBLAS_CORETYPE", "NEGPROMPT_THREADS")
    pinned += ("NEGPROMPT_ONEDNN", "OPENBLAS_NUM_THREADS")
    env = {k: v for k, v in os.environ.items() if k not in pinned}
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=REPO, env=env, capture_output=True, text=True, check=True)
    # MKL's COMPATIBLE branch (its AVX2 one is Intel's only), a fixed thread count (sums are split by it), no oneDNN
    assert out.stdout.split() == ["AVX2", "COMPATIBLE", "AVX2", "2", "0", "Haswell"]  # and numpy's OpenBLAS (t-SNE)
    out = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=REPO,
        env=env | {"ATEN_CPU_CAPABILITY": "default"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.split()[0] == "DEFAULT"


def test_a_stage_run_by_a_python_without_the_dependencies_says_so():
    # -S: no site-packages, so neither negprompt (installed editable) nor torch can be found
    out = subprocess.run([sys.executable, "-S", "-m", "pipeline.subset"], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 2
    assert "lacks the project's dependencies (no module 'negprompt')" in out.stderr and "make install" in out.stderr


# runs the stage named by its argument in this interpreter as `python -m` would, then names the heavy modules it loaded
RUN_AND_LIST = (
    "import runpy, sys; name = sys.argv.pop(1)\n"
    "try:\n    runpy.run_module('pipeline.' + name, run_name='__main__')\nexcept SystemExit as e:\n"
    "    assert not e.code, e.code\n"
    "print(*[m for m in ('torch', 'open_clip', 'sklearn') if m in sys.modules])"
)


@pytest.mark.slow
def test_the_stages_declared_torch_free_run_without_importing_torch(tmp_path):
    """`run(main, uses_torch=False)` skips torch's thread and determinism set-up, so such a stage must not load torch
    (nor what loads it: open_clip, or sklearn's 1.3 s), neither on import nor while it runs: they are the stages every
    `dvc repro` runs first. Each runs here, in dvc.yaml's order, on the tiny OpenMoji world."""
    free = [p.stem for p in (REPO / "pipeline").glob("*.py") if "run(main, uses_torch=False)" in p.read_text()]
    assert {"params", "tree", "data", "subset", "sheets"} <= set(free), free
    order = list(yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"])
    write_params(tmp_path, **{k: TINY[k] for k in ("data", "subset")})
    (tmp_path / "models/backbone").mkdir(parents=True)  # what the sheets stage reads of the (torch) backbone stage
    checkpoint = REPO / "weights/openmoji-tiny.safetensors"
    (tmp_path / "models/backbone/manifest.json").write_text(json.dumps({"checkpoint": str(checkpoint)}))
    env = {**os.environ, "PYTHONPATH": f"{REPO / 'src'}{os.pathsep}{REPO}"}
    for name in sorted(free, key=order.index):
        out = subprocess.run(
            [sys.executable, "-c", RUN_AND_LIST, name], cwd=tmp_path, env=env, capture_output=True, text=True
        )
        assert out.returncode == 0, f"{name}: {out.stderr[-2000:]}"
        assert out.stdout.splitlines()[-1].split() == [], f"the {name} stage loaded {out.stdout.splitlines()[-1]}"
