"""Thin Typer commands, one per DVC stage: read a params section, call the library, write outputs."""

import os
import platform
import sys

# The same results on any x86 CPU: torch (ATen), MKL, oneDNN and numpy/scipy's OpenBLAS choose their kernels by
# the CPU's instruction set, so an AVX-512 machine and an AVX2 one differ from the 7th digit on and a fresh
# clone's `dvc repro` would rewrite the committed outputs (OpenBLAS: an Intel AVX-512 CPU runs its SkylakeX
# kernels, an AMD EPYC its Haswell ones, and t-SNE's PCA start and gradients follow them). Every stage pins them
# to AVX2 (Haswell), which every x86-64 CPU since 2013 has, before torch or numpy loads. A user's own value wins
# (e.g. ATEN_CPU_CAPABILITY=default);
# NEGPROMPT_NATIVE_KERNELS=1 keeps the machine's own (faster on AVX-512, not bit-equal to the committed outputs).
PINNED_KERNELS = {
    "ATEN_CPU_CAPABILITY": "avx2",
    "MKL_CBWR": "AVX2",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "OPENBLAS_CORETYPE": "Haswell",
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
