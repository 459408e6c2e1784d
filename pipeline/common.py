"""What every stage shares: one-line user errors, the same threads and determinism everywhere."""

from __future__ import annotations

import functools
import os
import sys

import typer

from negprompt import NegPromptError, commands


def configure_torch() -> None:
    """The same threads and deterministic kernels (warn where none exists) in every stage that uses torch.
    `torch.use_deterministic_algorithms` also imports torch._inductor to set its compiler's flag, 1.8 s of every
    stage's start; no stage compiles, so the switch itself is set where torch has it."""
    import torch

    torch.set_num_threads(int(os.environ.get("NEGPROMPT_THREADS", os.cpu_count() or 1)))
    torch.backends.mkldnn.enabled = os.environ.get("NEGPROMPT_ONEDNN", "1") != "0"  # pipeline/__init__.py
    switch = getattr(torch._C, "_set_deterministic_algorithms", None)
    if switch is None:
        torch.use_deterministic_algorithms(True, warn_only=True)
    else:
        switch(True, warn_only=True)


def stage(fn, uses_torch: bool = True):
    """Run `fn` as a Typer command; a NegPromptError becomes one line on stderr and exit code 2. A stage that
    uses no torch (params, tree, data, subset, sheets) does not import it: 2 s of each of its runs."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if uses_torch:
            configure_torch()
        try:
            return fn(*args, **kwargs)
        except NegPromptError as e:
            print(f"error: {e}", file=sys.stderr)
            raise typer.Exit(2) from None

    return wrapper


def run(fn, uses_torch: bool = True) -> None:
    app = commands.app()
    app.command()(stage(fn, uses_torch))
    app()
