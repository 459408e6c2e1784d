"""Where `dvc repro`'s time goes: one real `dvc repro` (or `dvc repro -f`), each stage's wall seconds read off
DVC's own "Running stage" lines as they stream, the total and the peak memory of the largest stage process.

    python benchmarks/speed/repro_timing.py [--force] [--json FILE]

Run it from the repository root with the project's environment first on PATH (`make install`, then
`PATH=.venv/bin:$PATH python benchmarks/speed/repro_timing.py --force`). A stage DVC skips (unchanged) takes no
line; `--force` reruns every stage, as a fresh clone's `make repro` does.
"""

from __future__ import annotations

import json
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

import typer

from negprompt import commands

STAGE_LINE = re.compile(r"^Running stage '([^']+)'")


def time_repro(force: bool) -> tuple[list[tuple[str, float]], float, float]:
    """[(stage, seconds)], total seconds and the largest stage process's peak RSS (GB) of one `dvc repro`."""
    cmd = ["dvc", "repro", *(["-f"] if force else [])]
    start = last = time.monotonic()
    stages: list[tuple[str, float]] = []
    current = None
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1) as proc:
        for line in proc.stdout:
            sys.stdout.write(line)
            match = STAGE_LINE.match(line)
            if match:
                now = time.monotonic()
                if current is not None:
                    stages.append((current, now - last))
                current, last = match.group(1), now
    end = time.monotonic()
    if proc.returncode:
        raise typer.Exit(proc.returncode)
    if current is not None:
        stages.append((current, end - last))
    peak_gb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024**2  # KiB on Linux
    return stages, end - start, peak_gb


def main(
    force: bool = typer.Option(False, "--force", help="rerun every stage (dvc repro -f)"),
    json_out: Path = typer.Option(None, "--json", help="also write the figures to this JSON file"),
):
    stages, total, peak = time_repro(force)
    print(f"\n{'stage':<28} {'seconds':>8} {'share':>6}")
    for name, sec in sorted(stages, key=lambda s: -s[1]):
        print(f"{name:<28} {sec:>8.1f} {sec / total:>6.0%}")
    print(f"{'total':<28} {total:>8.1f}   peak RSS of one stage: {peak:.2f} GB")
    if json_out:
        json_out.write_text(json.dumps({"stages": dict(stages), "total_s": total, "peak_rss_gb": peak}, indent=2))


if __name__ == "__main__":
    commands.run(main)
