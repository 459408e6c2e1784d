"""Thin Typer commands, one per DVC stage: read a params section, call the library, write outputs."""

import os
import platform
import sys

# The same bytes on any x86 CPU: torch (ATen), MKL, oneDNN and numpy/scipy's OpenBLAS choose their kernels by the
# CPU's instruction set and vendor, and split their sums by the thread count, so a fresh clone's `dvc repro` would
# rewrite the committed outputs on another machine. Every stage pins, before torch or numpy loads: ATen's and
# OpenBLAS's kernels to AVX2 (every x86-64 CPU since 2013), MKL to its COMPATIBLE branch (the one code path MKL
# runs alike on Intel and AMD; its AVX2 branch is Intel's only), two threads, and no oneDNN (convolutions go
# through MKL's GEMM). A user's own value wins; NEGPROMPT_NATIVE_KERNELS=1 keeps the machine's own kernels and
# threads (faster, not bit-equal to the committed outputs). docs/experiments.md gives the measured cost.
PINNED_KERNELS = {
    "ATEN_CPU_CAPABILITY": "avx2",
    "MKL_CBWR": "COMPATIBLE",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "OPENBLAS_CORETYPE": "Haswell",
    "OPENBLAS_NUM_THREADS": "2",
    "NEGPROMPT_THREADS": "2",
    "NEGPROMPT_ONEDNN": "0",
}
if platform.machine().lower() in ("x86_64", "amd64") and os.environ.get("NEGPROMPT_NATIVE_KERNELS", "") in ("", "0"):
    for _name, _value in PINNED_KERNELS.items():
        os.environ.setdefault(_name, _value)

from importlib.util import find_spec  # noqa: E402

# DVC runs `python -m pipeline.<stage>` with whatever `python` is first on PATH. Found, not imported:
# a stage that needs no open_clip does not pay for importing it.
_missing = [name for name in ("negprompt", "open_clip", "torch") if find_spec(name) is None]
if _missing:
    print(
        f"error: {sys.executable} lacks the project's dependencies (no module {_missing[0]!r}): "
        "run `source .venv/bin/activate` (after `make install`) and then `dvc ...`, or use the make targets",
        file=sys.stderr,
    )
    raise SystemExit(2)
