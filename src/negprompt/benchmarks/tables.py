"""Benchmarks as tables of image files: the mini-world on disk, ImageNet-1K and its OOD sets.

Every benchmark is a class list (id, name) in class-index order, a train pool (path, label) from
which few-shot subsets are drawn, and a test table (path, label, set) where set is "id" or the
name of an OOD set (label -1). Paths are relative to the benchmark root.
"""
from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from negprompt import NegPromptError
from negprompt.benchmarks import miniworld as mw
from negprompt.benchmarks import openmoji as om

WORLDS = {"miniworld": mw, "openmoji": om}  # generated benchmarks: module with build_world, render, OOD_SETS

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
        for p in sorted(self.pool.path.tolist() + self.test.path.tolist()):
            h.update(p.encode() + b"\n")
        return h.hexdigest()

    def manifest(self, **extra) -> dict:
        counts = {"classes": len(self.classes), "pool": len(self.pool), "test_id": int((self.test.set == "id").sum())}
        counts.update({f"test_{s}": int((self.test.set == s).sum()) for s in self.ood_sets})
        return {"root": str(self.root), "counts": counts, "ood_sets": self.ood_sets, "file_list_sha256": self.fingerprint(), **extra}


def list_images(folder: Path, what: str) -> list[Path]:
    """All image files under `folder` (recursive, sorted); an error if it is missing or has none."""
    if not folder.is_dir():
        raise NegPromptError(f"{folder}: {what} folder does not exist")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
    if not files:
        raise NegPromptError(f"{folder}: {what} folder has no images (expected {', '.join(sorted(IMAGE_EXTENSIONS))} files)")
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
            warnings.warn(f"optional OOD set {name!r} not found at {folder}; skipped")
            continue
        files = list_images(folder, f"OOD set {name!r}")
        frames.append(pd.DataFrame({"path": [f.relative_to(root).as_posix() for f in files], "label": -1, "set": name}))
        names.append(name)
    return (pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["path", "label", "set"])), names


def check_class_names(names: list[str], source: str) -> None:
    """Two classes with one name get identical prompts. The exception is CLIP's cleaned ImageNet list,
    which repeats 'missile' and 'sunglasses' (kept, as the paper and the official code use it)."""
    import open_clip

    seen = pd.Series(names)
    clip_names = pd.Series(open_clip.IMAGENET_CLASSNAMES)
    allowed = set(clip_names[clip_names.duplicated()]) if set(names) <= set(clip_names) else set()
    dup = [d for d in seen[seen.duplicated()].unique().tolist() if d not in allowed]
    if dup:
        raise NegPromptError(f"{source}: duplicate class names {dup[:5]} (prompts need one name per class)")


# --- generated worlds (OpenMoji, the colour x shape mini-world) ----------------------------------

def write_world(out: Path, benchmark: str, seed: int, train_per_class: int, test_per_class: int, ood_per_set: int, size: int,
                render=None, progress=None) -> None:
    """Render a generated world as PNG image folders plus `classes.tsv` and `world.json` under `out`;
    each OOD set has `ood_per_set` images spread evenly over its concepts. `render(world, concept,
    rng, size)` defaults to the world module's own `render(concept, rng, size)`."""
    module = WORLDS[benchmark]
    world = module.build_world(seed)
    draw = render or (lambda w, c, rng, size: module.render(c, rng, size))
    jobs = [("train", c, train_per_class) for c in world.id_classes] + [("test", c, test_per_class) for c in world.id_classes]
    jobs += [(f"ood/{s}", c, -(-ood_per_set // len(world.ood[s]))) for s in module.OOD_SETS for c in world.ood[s]]
    for i, (split, concept, n) in enumerate(progress(jobs) if progress else jobs):
        rng = np.random.default_rng([seed, i])
        folder = out / split / concept.id
        folder.mkdir(parents=True, exist_ok=True)
        for j in range(n):
            Image.fromarray(draw(world, concept, rng, size)).save(folder / f"{concept.id}_{j:04d}.png", optimize=False)
    pd.DataFrame({"class_id": [c.id for c in world.id_classes], "name": [c.name for c in world.id_classes]}).to_csv(out / "classes.tsv", sep="\t", index=False)
    (out / "world.json").write_text(json.dumps({"benchmark": benchmark, "seed": seed, "ood": {s: [c.id for c in world.ood[s]] for s in module.OOD_SETS}}, indent=1))


def write_miniworld(out: Path, seed: int, train_per_class: int, test_per_class: int, ood_per_set: int, size: int, progress=None) -> None:
    write_world(out, "miniworld", seed, train_per_class, test_per_class, ood_per_set, size, progress=progress)


def read_world(root: Path, benchmark: str = "miniworld") -> Benchmark:
    if not root.is_dir():
        raise NegPromptError(f"{root}: {benchmark} root does not exist (run the data stage)")
    classes = read_classes(root / "classes.tsv")
    pool = class_folders(root / "train", classes.class_id.tolist(), root, "train")
    test = class_folders(root / "test", classes.class_id.tolist(), root, "test").assign(set="id")
    ood, names = ood_table(root, {s: f"ood/{s}" for s in WORLDS[benchmark].OOD_SETS})
    return Benchmark(root, classes, pool, pd.concat([test, ood], ignore_index=True), names)


read_miniworld = read_world


def read_classes(path: Path) -> pd.DataFrame:
    try:
        classes = pd.read_csv(path, sep="\t", dtype=str)
    except FileNotFoundError:
        raise NegPromptError(f"{path}: class list not found") from None
    if list(classes.columns) != ["class_id", "name"] or classes.isna().any().any():
        raise NegPromptError(f"{path}: expected two tab-separated columns class_id, name with no empty cells")
    check_class_names(classes.name.tolist(), str(path))
    return classes


# --- ImageNet-1K ---------------------------------------------------------------------------------

CONVENTIONAL_OOD = {"iNaturalist": "iNaturalist", "SUN": "SUN", "Places": "Places", "Textures": "dtd/images"}
OPENOOD_OOD = {"near/SSB-hard": "ssb_hard", "near/NINCO": "ninco", "far/iNaturalist": "iNaturalist",
               "far/Textures": "dtd/images", "far/OpenImage-O": "openimage_o"}


def resource_text(name: str) -> str:
    return resources.files("negprompt").joinpath("resources", name).read_text()


def imagenet_classes() -> pd.DataFrame:
    import open_clip

    wnids = resource_text("wnids.txt").split()
    return pd.DataFrame({"class_id": wnids, "name": list(open_clip.IMAGENET_CLASSNAMES)})


def hard_splits() -> dict:
    return json.loads(resource_text("hard_splits.json"))


def imagenet_val(root: Path, wnids: list[str]) -> pd.DataFrame:
    """(path, label) of val/, laid out per synset or flat with `val_labels.txt` (package data)."""
    val = root / "val"
    if not val.is_dir():
        raise NegPromptError(f"{val}: ImageNet val folder does not exist (expected val/<wnid>/*.JPEG or a flat val/)")
    if (val / wnids[0]).is_dir():
        return class_folders(val, wnids, root, "val")
    labels = [line.split() for line in resource_text("val_labels.txt").splitlines() if line.strip()]
    missing = [f for f, _ in labels if not (val / f).is_file()]
    if missing:
        raise NegPromptError(f"{val}: {len(missing)} of the 50,000 val images listed in val_labels.txt are missing (first: {missing[0]})")
    return pd.DataFrame({"path": [f"val/{f}" for f, _ in labels], "label": [int(c) for _, c in labels]})


def read_imagenet(root: Path, benchmark: str, hard_split: str = "split1") -> Benchmark:
    if not root.is_dir():
        raise NegPromptError(f"data.root {str(root)!r} does not exist or is not a directory (expected ImageNet train/ and val/)")
    allc = imagenet_classes()
    wnids = allc.class_id.tolist()
    if benchmark == "imagenet_hard":
        split = hard_splits()[hard_split]
        id_ids, ood_ids = split["id"], split["ood_known_unknown"] + split["ood_unknown_unknown"]
        index = {w: i for i, w in enumerate(wnids)}
        classes = allc.iloc[[index[w] for w in id_ids]].reset_index(drop=True)
        val = imagenet_val(root, wnids)
        val_wnid = val.label.map(lambda i: wnids[i])
        id_map = {w: i for i, w in enumerate(id_ids)}
        test_id = val[val_wnid.isin(id_map)].assign(label=lambda d: val_wnid[d.index].map(id_map), set="id")
        test_ood = val[val_wnid.isin(set(ood_ids))].assign(label=-1, set="ood")
        test, names = pd.concat([test_id, test_ood], ignore_index=True), ["ood"]
    else:
        classes = allc
        test_id = imagenet_val(root, wnids).assign(set="id")
        sets, required = (CONVENTIONAL_OOD, True) if benchmark == "imagenet_conventional" else (OPENOOD_OOD, False)
        ood, names = ood_table(root, sets, required=required)
        if not names:
            raise NegPromptError(f"{root}: none of the OpenOOD sets {list(sets.values())} exist")
        test = pd.concat([test_id, ood], ignore_index=True)
    pool = class_folders(root / "train", classes.class_id.tolist(), root, "train")
    return Benchmark(root, classes, pool, test, names)


def read_benchmark(benchmark: str, root: Path, hard_split: str = "split1") -> Benchmark:
    if benchmark in WORLDS:
        return read_world(root, benchmark)
    return read_imagenet(root, benchmark, hard_split)


# --- few-shot subsets ----------------------------------------------------------------------------

def sample_fewshot(pool: pd.DataFrame, classes: pd.DataFrame, shots: int, calib_per_class: int, seed: int) -> pd.DataFrame:
    """`shots` training images per class and up to `calib_per_class` disjoint held-out calibration
    images (for the detector's threshold), drawn with `seed`. Columns: path, label, split."""
    rng = np.random.default_rng(seed)
    frames = []
    for label, group in pool.groupby("label", sort=True):
        if len(group) < shots:
            raise NegPromptError(f"class {classes.class_id[label]!r} ({classes.name[label]}) has {len(group)} train images, fewer than subset.shots = {shots}")
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
