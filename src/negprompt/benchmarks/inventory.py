"""What a real benchmark tree holds against what it should hold.

A half-extracted set (SUN/ with 3,000 of its 10,000 images) reads like a whole one, so every set's
image count is compared with its size as distributed before any feature is encoded. The tree's
listing (relative path and size of every image the `data` stage reads, sorted) is what DVC watches
in place of the images: an unchanged tree gives the same bytes, and nothing is hashed.

A tree that is not ImageNet as distributed (a test's tiny tree, `imagenet_scale.py make-tree`)
declares its own sizes in `ROOT/expected_counts.json`; the data stage records that it did, and the
report says so.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from negprompt import NegPromptError
from negprompt.benchmarks.imagenet import CONVENTIONAL_OOD, EXPECTED_COUNTS, OPENOOD_OOD, hard_splits
from negprompt.benchmarks.tables import IMAGE_EXTENSIONS, Benchmark

REAL = ("imagenet_conventional", "imagenet_hard", "imagenet_openood")
COUNTS_FILE = "expected_counts.json"
TRAIN_IMAGES = 1_281_167  # ImageNet-1K train as distributed
TRAIN_MIN_PER_CLASS = 732  # ... its classes hold 732 to 1,300 images each
VAL_PER_CLASS = 50
# what a tree may declare: per-class train and val counts, and each OOD folder's size
DECLARABLE = ("train_per_class", "val_per_class", *dict.fromkeys([*CONVENTIONAL_OOD.values(), *OPENOOD_OOD.values()]))
DISTRIBUTED = "ImageNet-1K and the OOD sets as distributed"


@dataclass(frozen=True)
class SetCount:
    name: str
    found: int
    expected: int | None  # None: the size is not known here (shown, not checked)
    at_least: bool = False  # expected is a lower bound (a hard split's train classes: 732 to 1,300 each)

    @property
    def ok(self) -> bool:
        if self.expected is None:
            return True
        return self.found >= self.expected if self.at_least else self.found == self.expected

    def expected_text(self) -> str:
        if self.expected is None:
            return "not known"
        return f"{'at least ' if self.at_least else ''}{self.expected:,}"


def parse_counts(raw, source: str) -> dict[str, int]:
    """Declared sizes: known keys (DECLARABLE), each a count >= 0."""
    if not isinstance(raw, dict):
        raise NegPromptError(f"{source}: expected a mapping of {', '.join(DECLARABLE)} to image counts")
    for key, value in raw.items():
        if key not in DECLARABLE:
            raise NegPromptError(f"{source}: unknown key {key!r} (expected one of {', '.join(DECLARABLE)})")
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise NegPromptError(f"{source}: {key} = {value!r} (expected a count >= 0)")
    return dict(raw)


def declared_counts(root: Path) -> tuple[dict[str, int], str]:
    """The sizes `ROOT/expected_counts.json` declares (none if absent), and where they come from."""
    path = root / COUNTS_FILE
    if not path.is_file():
        return {}, DISTRIBUTED
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise NegPromptError(f"{path}: not valid JSON ({e.msg} at line {e.lineno})") from None
    return parse_counts(raw, str(path)), f"declared by {path}"


def count_sets(
    root: Path, bench: Benchmark, benchmark: str, hard_split: str, overrides: dict[str, int] | None = None
) -> tuple[list[SetCount], str]:
    """`bench`'s sets against the sizes the tree declares (or ImageNet's), `overrides` (check-data's
    --expect) last; and where the expected sizes came from."""
    declared, source = declared_counts(root)
    if overrides:
        declared = {**declared, **overrides}
        source += ", with --expect " + ", ".join(f"{k}={v}" for k, v in overrides.items())
    return set_counts(bench, benchmark, hard_split, declared), source


def set_counts(bench: Benchmark, benchmark: str, hard_split: str, declared: dict[str, int]) -> list[SetCount]:
    """Every set of `bench` (read by negprompt.benchmarks.imagenet) against its expected size."""
    n_classes = len(bench.classes)
    per_train = declared.get("train_per_class")
    if per_train is not None:
        train = SetCount("train", len(bench.pool), per_train * n_classes)
    elif benchmark == "imagenet_hard":
        train = SetCount("train", len(bench.pool), TRAIN_MIN_PER_CLASS * n_classes, at_least=True)
    else:
        train = SetCount("train", len(bench.pool), TRAIN_IMAGES)
    per_val = declared.get("val_per_class", VAL_PER_CLASS)
    n_set = bench.test.set.value_counts().to_dict()
    counts = [SetCount("train classes", int(bench.pool.label.nunique()), n_classes), train]
    if benchmark == "imagenet_hard":
        split = hard_splits()[hard_split]
        n_ood = len(split["ood_known_unknown"]) + len(split["ood_unknown_unknown"])
        counts += [
            SetCount("val: ID classes", n_set.get("id", 0), per_val * n_classes),
            SetCount("val: OOD classes", n_set.get("ood", 0), per_val * n_ood),
        ]
        return counts
    counts.append(SetCount("val", n_set.get("id", 0), per_val * n_classes))
    folders = CONVENTIONAL_OOD if benchmark == "imagenet_conventional" else OPENOOD_OOD
    for name in bench.ood_sets:
        folder = folders[name]
        counts.append(SetCount(name, n_set.get(name, 0), declared.get(folder, EXPECTED_COUNTS.get(folder))))
    return counts


def mismatch_message(root: Path, counts: list[SetCount]) -> str:
    partial = "; ".join(f"{c.name} holds {c.found:,} images, expected {c.expected_text()}" for c in counts if not c.ok)
    return (
        f"data.root {str(root)!r}: {partial} (set data.allow_partial: true to run on partial sets; "
        "the report then names them)"
    )


def check_summary(counts: list[SetCount], source: str, listing_sha256: str) -> dict:
    """What the data stage records in its manifest (and the report's first lines read)."""
    return {
        "expected_from": source,
        "declared": source != DISTRIBUTED,  # the tree (or --expect) declared its own sizes
        "sets": [asdict(c) for c in counts],
        "partial": [c.name for c in counts if not c.ok],
        "tree_listing_sha256": listing_sha256,
    }


def listed_folders(benchmark: str) -> list[str]:
    """The folders under data.root the `data` stage reads for `benchmark`."""
    if benchmark == "imagenet_conventional":
        return ["train", "val", *CONVENTIONAL_OOD.values()]
    if benchmark == "imagenet_openood":
        return ["train", "val", *OPENOOD_OOD.values()]
    return ["train", "val"]


def tree_listing(root: Path, folders: list[str]) -> str:
    """`path<TAB>size` of every image under `folders`, sorted, and the counts file's sha256: byte-identical
    for an unchanged tree. Sizes, not contents: hashing ImageNet's 1.3 M JPEGs on every run is not
    affordable. Symlinked folders are followed (users link dataset folders in), each real folder once."""
    rows, seen = [], set()
    tops = [root / f for f in folders if (root / f).is_dir()]
    while tops:
        folder = tops.pop()
        key = (st := folder.stat()).st_dev, st.st_ino
        if key in seen:
            continue
        seen.add(key)
        with os.scandir(folder) as entries:
            for e in entries:
                if e.is_dir():
                    tops.append(Path(e.path))
                elif e.is_file() and os.path.splitext(e.name)[1].lower() in IMAGE_EXTENSIONS:
                    rows.append((Path(e.path).relative_to(root).as_posix(), e.stat().st_size))
    counts = root / COUNTS_FILE
    if counts.is_file():
        rows.append((COUNTS_FILE, hashlib.sha256(counts.read_bytes()).hexdigest()))
    return "".join(f"{p}\t{s}\n" for p, s in sorted(rows))
