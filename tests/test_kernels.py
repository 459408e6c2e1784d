"""Every stage runs the same CPU kernels on any x86-64 machine (pipeline/__init__.py pins them)."""

import os
import platform
import subprocess
import sys

import pytest

from tests.helpers import REPO

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


def test_the_stages_declared_torch_free_do_not_import_torch():
    """`run(main, uses_torch=False)` skips torch's thread and determinism set-up, so such a stage must not load torch
    (nor what loads it: open_clip, or sklearn's 1.3 s); they are the stages every `dvc repro` runs first."""
    free = sorted(p.stem for p in (REPO / "pipeline").glob("*.py") if "run(main, uses_torch=False)" in p.read_text())
    assert {"params", "tree", "data", "subset", "sheets"} <= set(free), free
    probe = (
        f"import importlib, sys; [importlib.import_module('pipeline.' + s) for s in {free!r}]; "
        "print(*[m for m in ('torch', 'open_clip', 'sklearn') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.split() == [], f"imported by {free}: {out.stdout}"
