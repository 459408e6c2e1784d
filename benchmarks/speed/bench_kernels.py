"""What pinning the CPU kernels costs: stages run pinned, with the earlier pin and native, side by side in one run.

    python benchmarks/speed/bench_kernels.py [--stages features train_pos train_neg score] [--repeats 2] [--json FILE]

Run after `make repro` (it copies the reproduced inputs of each stage into a temporary directory and
runs the stage there, so the repository's outputs are never touched). "pinned" is what every stage
does (pipeline/__init__.py: AVX2 kernels, MKL_CBWR=COMPATIBLE, two threads, no oneDNN); "avx2" is the earlier
pin (MKL_CBWR=AVX2, oneDNN on, as many threads as CPUs: Intel's MKL and AMD's then differ in the last bits);
"native" is NEGPROMPT_NATIVE_KERNELS=1, the machine's own kernels. Prints the median seconds of each, their
ratios, and whether the stage's outputs are byte-equal to the repository's (the committed ones after `make repro`).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from enum import Enum
from pathlib import Path

import typer

from negprompt import NegPromptError, commands

REPO = Path(__file__).resolve().parents[2]
STAGES = {  # stage -> (command, inputs to copy, outputs to compare with the repository's)
    "features": (
        ["-m", "pipeline.features"],
        ["params.yaml", "data", "models/backbone", "weights"],
        ["features/train.parquet", "features/test.parquet"],
    ),
    "train_pos": (
        ["-m", "pipeline.train_pos", "--seed", "1"],
        ["params.yaml", "data", "models/backbone", "weights", "features"],
        ["models/pos/seed1.safetensors"],
    ),
    "train_neg": (
        ["-m", "pipeline.train_neg", "--seed", "1"],
        ["params.yaml", "data", "models/backbone", "weights", "features", "models/pos"],
        ["models/neg/seed1.safetensors"],
    ),
    "score": (
        ["-m", "pipeline.score", "--seed", "1"],
        ["params.yaml", "data", "models", "weights", "features"],
        ["scores/seed1.parquet"],
    ),
    "backbone": (["-m", "pipeline.backbone"], ["params.yaml", "data", "weights"], ["reports/backbone.json"]),
}
PINS = ("ATEN_CPU_CAPABILITY", "MKL_CBWR", "ONEDNN_MAX_CPU_ISA", "NEGPROMPT_THREADS", "NEGPROMPT_ONEDNN")
MODES = {
    "pinned": {"NEGPROMPT_NATIVE_KERNELS": "0"},
    "avx2": {
        "NEGPROMPT_NATIVE_KERNELS": "0",
        "MKL_CBWR": "AVX2",
        "NEGPROMPT_ONEDNN": "1",
        "NEGPROMPT_THREADS": str(os.cpu_count() or 1),
    },
    "native": {"NEGPROMPT_NATIVE_KERNELS": "1"},
}


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def run_stage(stage: str, mode: str) -> tuple[float, dict[str, str]]:
    cmd, inputs, outputs = STAGES[stage]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for rel in ["pipeline", *inputs]:
            src = REPO / rel
            (shutil.copytree(src, work / rel) if src.is_dir() else shutil.copy(src, work / rel))
        env = {k: v for k, v in os.environ.items() if k not in PINS} | MODES[mode]
        t0 = time.perf_counter()
        subprocess.run([sys.executable, *cmd], cwd=work, env=env, check=True, capture_output=True)
        seconds = time.perf_counter() - t0
        return seconds, {o: md5(work / o) if (work / o).is_file() else None for o in outputs}


def cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    names = (
        [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if line.startswith("model name")]
        if cpuinfo.exists()
        else []
    )
    return names[0] if names else platform.processor() or platform.machine()


Stage = Enum("Stage", {s: s for s in STAGES}, type=str)


def main(
    stages: list[Stage] = typer.Option(
        ["features", "train_pos", "train_neg", "score"], help="stages to time: " + ", ".join(STAGES)
    ),
    repeats: int = typer.Option(2, help="runs of each stage per mode (median)"),
    json_out: str = typer.Option("", "--json", help="also write the figures to this JSON file"),
) -> None:
    """What pinning the CPU kernels costs: stages run pinned, with the earlier pin and native, side by side."""
    if not (REPO / "features/test.parquet").is_file():
        raise NegPromptError(
            f"{REPO / 'features/test.parquet'} not found: run `make repro` first "
            "(it needs the reproduced data, backbone and features)"
        )
    rows = {}
    for stage in (s.value for s in stages):
        times = {m: [] for m in MODES}
        equal = {}
        for _ in range(repeats):
            for mode in MODES:  # alternated, so drift in the machine's load hits every mode
                seconds, outs = run_stage(stage, mode)
                times[mode].append(seconds)
                equal[mode] = all(md5(REPO / o) == h for o, h in outs.items())
        med = {m: statistics.median(t) for m, t in times.items()}
        rows[stage] = {
            "seconds": times,
            "median": med,
            "pinned_over_avx2": med["pinned"] / med["avx2"],
            "pinned_over_native": med["pinned"] / med["native"],
            "equal_to_committed": equal,
        }
        print(
            f"{stage:>10}: pinned {med['pinned']:.1f} s, avx2 {med['avx2']:.1f} s, native {med['native']:.1f} s; "
            f"pinned/avx2 {med['pinned'] / med['avx2']:.2f}, pinned/native {med['pinned'] / med['native']:.2f}; "
            "equal to the committed outputs: " + ", ".join(f"{m} {e}" for m, e in equal.items())
        )
    info = {"machine": cpu_model(), "cpus": os.cpu_count(), "repeats": repeats, "stages": rows}
    if json_out:
        Path(json_out).write_text(json.dumps(info, indent=1) + "\n")


if __name__ == "__main__":
    commands.run(main)
