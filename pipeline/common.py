"""What every stage shares: one-line user errors, the same threads and determinism everywhere."""

from __future__ import annotations

import functools
import os
import sys

import torch
import typer

from negprompt import NegPromptError, commands


def deterministic() -> None:
    """torch's deterministic kernels (warn where none exists). `torch.use_deterministic_algorithms` also imports
    torch._inductor to set its compiler's flag, 1.8 s of every stage's start; no stage compiles, so the switch
    itself is set where torch has it."""
    switch = getattr(torch._C, "_set_deterministic_algorithms", None)
    if switch is None:
        torch.use_deterministic_algorithms(True, warn_only=True)
    else:
        switch(True, warn_only=True)


def stage(fn):
    """Run `fn` as a Typer command; a NegPromptError becomes one line on stderr and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        deterministic()
        torch.set_num_threads(int(os.environ.get("NEGPROMPT_THREADS", os.cpu_count() or 1)))
        torch.backends.mkldnn.enabled = os.environ.get("NEGPROMPT_ONEDNN", "1") != "0"  # pipeline/__init__.py
        try:
            return fn(*args, **kwargs)
        except NegPromptError as e:
            print(f"error: {e}", file=sys.stderr)
            raise typer.Exit(2) from None

    return wrapper


def run(fn) -> None:
    app = commands.app()
    app.command()(stage(fn))
    app()
