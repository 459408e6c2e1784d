"""GPU settings chosen on CUDA only (amp: auto, TF32), the cost predictor, and gpu_check.sh's smoke test."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from negprompt.config import NegParams, OptimParams, PosParams, resolve_amp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks/speed"))


def test_amp_auto_is_on_for_cuda_only():
    assert resolve_amp("auto", "cuda") is True
    assert resolve_amp("auto", "cpu") is False and resolve_amp("auto", "mps") is False
    assert resolve_amp(True, "cpu") is True and resolve_amp(False, "cuda") is False
    # params keep the user's value: the stage resolves it on the device it runs on (the params check needs no torch)
    assert PosParams().amp == "auto" and NegParams(device="cpu", amp=True).amp is True
    assert OptimParams(device="cuda", amp=False).amp is False


def test_cpu_device_leaves_float32_matmul_untouched():
    from negprompt.clip.backbone import resolve_device

    before = torch.backends.cuda.matmul.fp32_precision
    assert resolve_device("cpu").type == "cpu"
    assert torch.backends.cuda.matmul.fp32_precision == before


def test_flop_count_of_one_linear_layer_equals_the_hand_count():
    from torch.utils.flop_counter import FlopCounterMode

    layer, x = torch.nn.Linear(64, 32, bias=False), torch.zeros(8, 64, requires_grad=True)
    with FlopCounterMode(display=False) as fwd:
        layer(x)
    assert fwd.get_total_flops() == 2 * 8 * 64 * 32
    with FlopCounterMode(display=False) as both:
        layer(x).sum().backward()  # input and weight gradients: two more products of the same size
    assert both.get_total_flops() == 3 * 2 * 8 * 64 * 32


def test_predict_cost_runs_on_the_tiny_model():
    import predict_cost

    f = predict_cost.count_flops("miniworld-tiny")
    assert 0 < f["prompt_forward"] < f["prompt_train"] and f["image"] > 0
    total, peak = predict_cost.main(table="table2", gpu="h200", model="miniworld-tiny", chunk=0, amp=True)
    assert total > 0 and peak > 0
    with pytest.raises(Exception, match="--table"):
        predict_cost.rows("table9")


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("NEGPROMPT_GPU_CHECK_SMOKE"), reason="set NEGPROMPT_GPU_CHECK_SMOKE=1 (~6 min)")
def test_gpu_check_runs_in_a_bare_venv_from_the_wheel_set(tmp_path):
    host = os.environ.get("HOST_PY", str(ROOT / ".venv/bin/python"))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"WORK": str(tmp_path), "HOST_PY": host}
    done = subprocess.run(
        ["bash", "benchmarks/speed/gpu_check_smoke.sh"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
