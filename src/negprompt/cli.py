"""`negprompt detect`: apply a trained detector bundle to your own images; `negprompt check-data`: count a
real benchmark's sets before a run."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path

import typer

from negprompt import NegPromptError, commands

app = commands.app(help="NegPrompt OOD detection.")


class Format(str, Enum):
    csv = "csv"
    json = "json"
    parquet = "parquet"


@app.callback()
def main():
    """NegPrompt: learned negative prompts for out-of-distribution detection."""


@app.command()
def detect(
    bundle: Path = typer.Argument(..., help="detector bundle directory (e.g. models/detector from `make repro`)"),
    images: list[Path] = typer.Argument(..., help="image files or folders (recursive)"),
    out: Path = typer.Option(..., "--out", "-o", help="where to write one row per image"),
    fmt: Format = typer.Option(Format.csv, "--format", help="csv, json or parquet"),
    threshold: float = typer.Option(None, help="ID-score threshold (default: the bundle's, 95% of held-out ID kept)"),
    checkpoint: Path = typer.Option(None, help="local backbone weights, instead of the bundle's or open_clip's cache"),
    batch_size: int = typer.Option(64, min=1),
    device: str = typer.Option("auto"),
    strict: bool = typer.Option(False, help="exit non-zero if any file could not be read as an image"),
):
    """Score images: predicted ID class, ID score, OOD flag, top negative-prompt similarity."""
    from negprompt.clip.backbone import resolve_device
    from negprompt.detector import Detector, find_images
    from negprompt.io import atomic_path

    try:
        files = find_images(images)
        if not files:
            raise NegPromptError(f"no files found in {', '.join(map(str, images))}")
        det = Detector(bundle, checkpoint, resolve_device(device))
        table = det.score_files(files, batch_size, threshold)
        with atomic_path(out) as tmp:
            if fmt is Format.csv:
                table.to_csv(tmp, index=False)
            elif fmt is Format.json:
                table.to_json(tmp, orient="records", indent=1)
            else:
                table.to_parquet(tmp, index=False)
    except NegPromptError as e:
        print(f"error: {e}", file=sys.stderr)
        raise typer.Exit(2) from None
    bad = int((table.error != "").sum())
    n_ood = int(table.is_ood.sum())  # unreadable rows are <NA>: neither ID nor OOD
    print(
        f"{len(table) - bad} images scored: {n_ood} flagged OOD "
        f"at threshold {threshold if threshold is not None else det.threshold:.4f}; "
        f"{bad} unreadable (no verdict); wrote {out}"
    )
    if bad:
        for e in table.error[table.error != ""][:5]:
            print(f"skipped: {e}", file=sys.stderr)
        if strict:
            raise typer.Exit(1)


@app.command("check-data")
def check_data(
    root: Path = typer.Argument(..., help="the directory holding train/, val/ and the OOD folders (data.root)"),
    benchmark: str = typer.Option("imagenet_conventional", help="imagenet_conventional | _hard | _openood"),
    hard_split: str = typer.Option("split1", help="imagenet_hard: split1..split4"),
    expect: list[str] = typer.Option([], help="KEY=COUNT (repeatable): your own size (SUN=3000)"),
):
    """Count every set of a real benchmark against its size as distributed (what the `data` stage checks
    before any feature is encoded); exit 1 if a set's count differs."""
    from negprompt.benchmarks import imagenet, inventory

    try:
        if benchmark not in inventory.REAL:
            raise NegPromptError(
                f"--benchmark {benchmark!r} is not read from a tree (expected one of {', '.join(inventory.REAL)})"
            )
        if hard_split not in imagenet.hard_splits():
            raise NegPromptError(f"--hard-split {hard_split!r}: expected one of {', '.join(imagenet.hard_splits())}")
        overrides = {}
        for item in expect:
            key, sep, value = item.partition("=")
            try:
                overrides[key] = int(value) if sep else None
            except ValueError:
                overrides[key] = value
        overrides = inventory.parse_counts(overrides, "--expect")
        root = root.expanduser().resolve()
        bench = imagenet.read_imagenet(root, benchmark, hard_split)
        counts, source = inventory.count_sets(root, bench, benchmark, hard_split, overrides)
    except NegPromptError as e:
        print(f"error: {e}", file=sys.stderr)
        raise typer.Exit(2) from None
    print(f"{root}: {benchmark}{f' ({hard_split})' if benchmark == 'imagenet_hard' else ''}; expected sizes: {source}")
    width = max(len(c.name) for c in counts)
    print(f"{'set':<{width}}  {'found':>10}  {'expected':>18}  status")
    for c in counts:
        status = "ok" if c.ok and c.expected is not None else ("not checked" if c.ok else "MISMATCH")
        print(f"{c.name:<{width}}  {c.found:>10,}  {c.expected_text():>18}  {status}")
    bad = [c for c in counts if not c.ok]
    if bad:
        print(f"error: {inventory.mismatch_message(root, counts)}", file=sys.stderr)
        raise typer.Exit(1)
