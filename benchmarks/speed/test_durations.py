"""Seconds per test file from a pytest `--durations=0` log, for tests/durations.json (the order `make test` runs the
files in: longest first, tests/conftest.py) and the durations table in benchmarks/RESULTS.md.

    PYTEST_ADDOPTS=--durations=0 make test 2>&1 | tee /tmp/test.log
    python benchmarks/speed/test_durations.py /tmp/test.log --json tests/durations.json
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path

import typer

from negprompt import NegPromptError, commands

LINE = re.compile(r"^\s*([0-9.]+)s (?:call|setup|teardown)\s+(tests/[^:\s]+\.py)::")


def per_file(log: str) -> dict[str, float]:
    """{file name: seconds of its tests' setup, call and teardown}, longest first."""
    seconds: dict[str, float] = defaultdict(float)
    for line in log.splitlines():
        if match := LINE.match(line):
            seconds[Path(match.group(2)).name] += float(match.group(1))
    return dict(sorted(((k, round(v, 1)) for k, v in seconds.items()), key=lambda kv: -kv[1]))


def main(
    log: Path = typer.Argument(..., help="a pytest log with the --durations=0 table"),
    json_out: Path = typer.Option(None, "--json", help="also write {file: seconds} to this file"),
) -> None:
    seconds = per_file(log.read_text())
    if not seconds:
        raise NegPromptError(f"{log}: no `--durations` lines (run pytest with --durations=0)")
    for name, sec in seconds.items():
        print(f"{sec:>8.1f} s  {name}")
    print(f"{sum(seconds.values()):>8.1f} s  in all ({len(seconds)} files)")
    if json_out:
        json_out.write_text(json.dumps(seconds, indent=1) + "\n")


if __name__ == "__main__":
    commands.run(main)
