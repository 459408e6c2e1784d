"""Thin Typer commands, one per DVC stage: read a params section, call the library, write outputs."""
import sys

try:  # DVC runs `python -m pipeline.<stage>` with whatever `python` is first on PATH
    import negprompt  # noqa: F401
    import open_clip  # noqa: F401
    import torch  # noqa: F401
except ImportError as e:
    print(f"error: {sys.executable} lacks the project's dependencies (no module {e.name!r}): "
          "run `source .venv/bin/activate` (after `make install`) and then `dvc ...`, or use the make targets", file=sys.stderr)
    raise SystemExit(2) from None
