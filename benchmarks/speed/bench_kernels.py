"""What pinning the CPU kernels to AVX2 costs: stages run pinned and native, side by side in one run.

    python benchmarks/speed/bench_kernels.py [--stages features train_pos] [--repeats 2] [--json FILE]

Run after `make repro` (it copies the reproduced inputs of each stage into a temporary directory and
runs the stage there, so the repository's outputs are never touched). "pinned" is what every stage
does (pipeline/__init__.py: ATEN_CPU_CAPABILITY=avx2, MKL_CBWR=AVX2, ONEDNN_MAX_CPU_ISA=AVX2);
"native" is NEGPROMPT_NATIVE_KERNELS=1, the machine's own kernels. Prints the median seconds of each,
their ratio, and whether the stage's outputs are byte-equal to the repository's (the committed ones after `make repro`).
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
    "backbone": (["-m", "pipeline.backbone"], ["params.yaml", "data", "weights"], ["reports/backbone.json"]),
}


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def run_stage(stage: str, native: bool) -> tuple[float, dict[str, str]]:
    cmd, inputs, outputs = STAGES[stage]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for rel in ["pipeline", *inputs]:
            src = REPO / rel
            (shutil.copytree(src, work / rel) if src.is_dir() else shutil.copy(src, work / rel))
        env = {
            k: v for k, v in os.environ.items() if k not in ("ATEN_CPU_CAPABILITY", "MKL_CBWR", "ONEDNN_MAX_CPU_ISA")
        }
        env["NEGPROMPT_NATIVE_KERNELS"] = "1" if native else "0"
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
    stages: list[Stage] = typer.Option(["features", "train_pos"], help="stages to time: " + ", ".join(STAGES)),
    repeats: int = typer.Option(2, help="runs of each stage per mode (median)"),
    json_out: str = typer.Option("", "--json", help="also write the figures to this JSON file"),
) -> None:
    """What pinning the CPU kernels to AVX2 costs: stages run pinned and native, side by side in one run."""
    if not (REPO / "features/test.parquet").is_file():
        raise NegPromptError(
            f"{REPO / 'features/test.parquet'} not found: run `make repro` first "
            "(it needs the reproduced data, backbone and features)"
        )
    rows = {}
    for stage in (s.value for s in stages):
        times = {"pinned": [], "native": []}
        equal = {}
        for _ in range(repeats):
            for mode in ("pinned", "native"):  # alternated, so drift in the machine's load hits both
                seconds, outs = run_stage(stage, native=mode == "native")
                times[mode].append(seconds)
                equal[mode] = all(md5(REPO / o) == h for o, h in outs.items())
        med = {m: statistics.median(t) for m, t in times.items()}
        rows[stage] = {
            "seconds": times,
            "median": med,
            "pinned_over_native": med["pinned"] / med["native"],
            "equal_to_committed": equal,
        }
        print(
            f"{stage:>10}: pinned {med['pinned']:.1f} s, native {med['native']:.1f} s, "
            f"ratio {med['pinned'] / med['native']:.2f}; "
            f"outputs equal to the committed ones: pinned {equal['pinned']}, native {equal['native']}"
        )
    info = {"machine": cpu_model(), "cpus": os.cpu_count(), "repeats": repeats, "stages": rows}
    if json_out:
        Path(json_out).write_text(json.dumps(info, indent=1) + "\n")


if __name__ == "__main__":
    commands.run(main)
