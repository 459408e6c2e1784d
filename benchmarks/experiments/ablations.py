"""The README's ablations: the `ablations` group of the experiment grid (benchmarks/experiments/grid.yaml).

    python benchmarks/experiments/ablations.py [--jobs N]     # writes reports/ablations.md, .json and .png

Each row is a DVC experiment queued from HEAD's params (`grid.py`); this is only a view of it.
"""

import subprocess
import sys
from pathlib import Path

if __name__ == "__main__":
    grid = Path(__file__).with_name("grid.py")
    sys.exit(
        subprocess.call(
            [sys.executable, str(grid), "--only", "ablations", "--out", "reports/ablations.md", *sys.argv[1:]]
        )
    )
