"""How every script a user runs takes its command line: a Typer app with the house settings (no shell completion,
plain tracebacks), a NegPromptError as one line on stderr and exit code 2, and options that take several values
as `--classes 10 100` (what the scripts' argparse `nargs` took, and what the docs show), not only Typer's
`--classes 10 --classes 100`."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

import typer

from negprompt import NegPromptError


def app(help: str | None = None, **kwargs) -> typer.Typer:
    """A Typer app as the `negprompt` command and the pipeline stages build it."""
    return typer.Typer(add_completion=False, pretty_exceptions_enable=False, help=help, **kwargs)


def spread_lists(argv: Sequence[str], names: set[str]) -> list[str]:
    """`--opt a b c` → `--opt a --opt b --opt c` for the options in `names`: a multi-value option takes every word
    after it up to the next word that starts with '-' (argparse's nargs), e.g. `--workers 0 1 15`."""
    out, current = [], None
    for word in argv:
        if word == "--":
            current = None
            out.append(word)
        elif word.startswith("-") and not _is_number(word):
            name = word.split("=", 1)[0]
            current = name if name in names and "=" not in word else None
            out.append(word)
        elif current is not None and out[-1] != current:
            out += [current, word]
        else:
            out.append(word)
    return out


def _is_number(word: str) -> bool:
    try:
        float(word)
    except ValueError:
        return False
    return True


def list_options(command) -> set[str]:
    """Every flag of a Typer-built click command (and of its subcommands) that takes a `list[...]` of values.
    Duck-typed: Typer ships its own copy of click, whose classes are not `click.Option`."""
    names = {
        opt
        for param in command.params
        if param.param_type_name == "option" and getattr(param, "multiple", False)
        for opt in (*param.opts, *param.secondary_opts)
    }
    for sub in getattr(command, "commands", {}).values():
        names |= list_options(sub)
    return names


def run(target: typer.Typer | Callable, argv: Sequence[str] | None = None) -> None:
    """Run a script: a Typer app as it is, or one function as its single command. A NegPromptError becomes
    `error: <message>` on stderr and exit code 2 (click's code for a usage error)."""
    if not isinstance(target, typer.Typer):
        fn, target = target, app()
        target.command()(fn)
    command = typer.main.get_command(target)
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        command.main(spread_lists(argv, list_options(command)), prog_name=sys.argv[0].rsplit("/", 1)[-1])
    except NegPromptError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
