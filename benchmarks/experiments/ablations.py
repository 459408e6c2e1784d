"""The README's ablations: the `ablations` group of the experiment grid (benchmarks/experiments/grid.yaml).

    python benchmarks/experiments/ablations.py [--jobs N]     # writes reports/ablations.md, .json and .png

Each row is a DVC experiment queued from HEAD's params (`grid.py`); this is only a view of it. Every option,
`--help` included, is grid.py's.
"""

import subprocess
import sys
from pathlib import Path

import typer

from negprompt import commands

PASS_THROUGH = {"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []}


def main(ctx: typer.Context) -> None:
    """grid.py --only ablations --out reports/ablations.md, with the options given here."""
    grid = Path(__file__).with_name("grid.py")
    cmd = [sys.executable, str(grid), "--only", "ablations", "--out", "reports/ablations.md", *ctx.args]
    raise typer.Exit(subprocess.call(cmd))


if __name__ == "__main__":
    app = commands.app()
    app.command(context_settings=PASS_THROUGH)(main)
    commands.run(app)
