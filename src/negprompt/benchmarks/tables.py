"""Benchmarks as tables of image files, and few-shot subsets drawn from them.

Every benchmark is a class list (id, name) in class-index order, a train pool (path, label) from
which few-shot subsets are drawn, and a test table (path, label, set) where set is "id" or the
name of an OOD set (label -1). Paths are relative to the benchmark root. The generated worlds on disk
are `negprompt_standin.worlds`, ImageNet-1K's layouts `imagenet`; the stages that only read tables import neither.
"""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from negprompt import NegPromptError

GENERATED = ("openmoji", "miniworld")  # benchmarks drawn (`negprompt_standin.worlds`), not read from a data.root
IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm"}


@dataclass
class Benchmark:
    root: Path
    classes: pd.DataFrame  # class_id, name
    pool: pd.DataFrame  # path, label
    test: pd.DataFrame  # path, label, set
    ood_sets: list[str]

    def fingerprint(self) -> str:
        """sha256 of the sorted file list: changes when a file is added, removed or renamed."""
        h = hashlib.sha256()
        for path in sorted(self.pool.path.tolist() + self.test.path.tolist()):
            h.update(path.encode() + b"\n")
        return h.hexdigest()

    def manifest(self, **extra) -> dict:
        counts = {"classes": len(self.classes), "pool": len(self.pool), "test_id": int((self.test.set == "id").sum())}
        counts.update({f"test_{s}": int((self.test.set == s).sum()) for s in self.ood_sets})
        return {
            "root": str(self.root),
            "counts": counts,
            "ood_sets": self.ood_sets,
            "file_list_sha256": self.fingerprint(),
            **extra,
        }


def list_images(folder: Path, what: str) -> list[Path]:
    """All image files under `folder` (recursive, sorted); an error if it is missing or has none."""
    if not folder.is_dir():
        raise NegPromptError(f"{folder}: {what} folder does not exist")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
    if not files:
        raise NegPromptError(
            f"{folder}: {what} folder has no images (expected {', '.join(sorted(IMAGE_EXTENSIONS))} files)"
        )
    return files


def class_folders(split_dir: Path, class_ids: list[str], root: Path, what: str) -> pd.DataFrame:
    """(path, label) for `split_dir/<class_id>/*` in class order; every class folder must have images."""
    rows = []
    for label, cid in enumerate(class_ids):
        for f in list_images(split_dir / cid, f"{what} class {cid!r}"):
            rows.append((f.relative_to(root).as_posix(), label))
    return pd.DataFrame(rows, columns=["path", "label"])


def ood_table(root: Path, sets: dict[str, str], required: bool = True) -> tuple[pd.DataFrame, list[str]]:
    """(path, label=-1, set) for OOD image folders {name: relative folder}; missing optional ones are skipped."""
    frames, names = [], []
    for name, rel in sets.items():
        folder = root / rel
        if not folder.is_dir() and not required:
            warnings.warn(f"optional OOD set {name!r} not found at {folder}; skipped", stacklevel=2)
            continue
        files = list_images(folder, f"OOD set {name!r}")
        frames.append(pd.DataFrame({"path": [f.relative_to(root).as_posix() for f in files], "label": -1, "set": name}))
        names.append(name)
    return (pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["path", "label", "set"])), names


def check_class_names(names: list[str], source: str) -> None:
    """Two classes with one name get identical prompts. The exception is CLIP's cleaned ImageNet list,
    which repeats 'missile' and 'sunglasses' (kept, as the paper and the official code use it)."""
    seen = pd.Series(names)
    dup = seen[seen.duplicated()].unique().tolist()
    if not dup:
        return
    import open_clip  # only for its ImageNet list: importing it costs a torch-free stage (subset, data) 3 s

    clip_names = pd.Series(open_clip.IMAGENET_CLASSNAMES)
    allowed = set(clip_names[clip_names.duplicated()]) if set(names) <= set(clip_names) else set()
    dup = [d for d in dup if d not in allowed]
    if dup:
        raise NegPromptError(f"{source}: duplicate class names {dup[:5]} (prompts need one name per class)")


def read_classes(path: Path) -> pd.DataFrame:
    try:
        classes = pd.read_csv(path, sep="\t", dtype=str)
    except FileNotFoundError:
        raise NegPromptError(f"{path}: class list not found") from None
    if list(classes.columns) != ["class_id", "name"] or classes.isna().any().any():
        raise NegPromptError(f"{path}: expected two tab-separated columns class_id, name with no empty cells")
    check_class_names(classes.name.tolist(), str(path))
    return classes


# --- few-shot subsets ----------------------------------------------------------------------------


def sample_fewshot(
    pool: pd.DataFrame, classes: pd.DataFrame, shots: int, calib_per_class: int, seed: int
) -> pd.DataFrame:
    """`shots` training images per class and up to `calib_per_class` disjoint held-out calibration
    images (for the detector's threshold), drawn with `seed`. Columns: path, label, split."""
    rng = np.random.default_rng(seed)
    frames = []
    for label, group in pool.groupby("label", sort=True):
        if len(group) < shots:
            raise NegPromptError(
                f"class {classes.class_id[label]!r} ({classes.name[label]}) has {len(group)} train images, "
                f"fewer than subset.shots = {shots}"
            )
        order = rng.permutation(len(group))
        take = group.iloc[order[: shots + calib_per_class]].copy()
        take["split"] = ["train"] * shots + ["calib"] * (len(take) - shots)
        frames.append(take)
    missing = set(range(len(classes))) - set(pool.label.unique())
    if missing:
        raise NegPromptError(f"class {classes.class_id[min(missing)]!r} has no train images")
    return pd.concat(frames, ignore_index=True)[["path", "label", "split"]]


def open_vocab_classes(num_classes: int, fraction: float) -> list[int]:
    """The first `fraction` of ID classes in class-index order (paper Sec. 3.2.2), at least one."""
    return list(range(max(1, int(round(num_classes * fraction)))))
