"""ImageNet-1K's layouts: the conventional benchmark (iNaturalist, SUN, Places, Textures), the hard
splits, and OpenOOD's near/far sets. Class order, wnids and val labels ship as package resources."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import pandas as pd

from negprompt import NegPromptError
from negprompt.benchmarks.tables import Benchmark, class_folders, ood_table

CONVENTIONAL_OOD = {"iNaturalist": "iNaturalist", "SUN": "SUN", "Places": "Places", "Textures": "dtd/images"}
OPENOOD_OOD = {
    "near/SSB-hard": "ssb_hard",
    "near/NINCO": "ninco",
    "far/iNaturalist": "iNaturalist",
    "far/Textures": "dtd/images",
    "far/OpenImage-O": "openimage_o",
}
# images each required OOD folder holds as distributed (MCM's subsets, DTD); named in errors
EXPECTED_COUNTS = {"iNaturalist": 10_000, "SUN": 10_000, "Places": 10_000, "dtd/images": 5_640}


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
        raise NegPromptError(
            f"{val}: ImageNet val folder does not exist (expected 50,000 images: val/<wnid>/*.JPEG or flat)"
        )
    if (val / wnids[0]).is_dir():
        return class_folders(val, wnids, root, "val")
    labels = [line.split() for line in resource_text("val_labels.txt").splitlines() if line.strip()]
    missing = [f for f, _ in labels if not (val / f).is_file()]
    if missing:
        raise NegPromptError(
            f"{val}: {len(missing)} of the 50,000 val images listed in val_labels.txt are missing (first: {missing[0]})"
        )
    return pd.DataFrame({"path": [f"val/{f}" for f, _ in labels], "label": [int(c) for _, c in labels]})


def check_layout(root: Path, train_ids: list[str], ood_folders: list[str]) -> None:
    """Every required folder, checked before any file is listed, so a half-copied tree fails in one
    line naming the folder and what belongs there (docs/imagenet.md says where each comes from).
    val/ is checked by `imagenet_val`, which names missing files too."""
    train = root / "train"
    missing = [w for w in train_ids if not (train / w).is_dir()] if train.is_dir() else train_ids
    if missing:
        raise NegPromptError(
            f"data.root {str(root)!r}: {len(missing)} of the {len(train_ids):,} train class folders "
            f"are missing (first: train/{missing[0]}/; expected train/<wnid>/*.JPEG, ~1,300 each)"
        )
    for rel in ood_folders:
        if not (root / rel).is_dir():
            raise NegPromptError(
                f"data.root {str(root)!r}: folder {rel}/ is missing (expected "
                f"{EXPECTED_COUNTS[rel]:,} images; docs/imagenet.md says where to get it)"
            )


def read_imagenet(root: Path, benchmark: str, hard_split: str = "split1") -> Benchmark:
    if not root.is_dir():
        raise NegPromptError(
            f"data.root {str(root)!r} does not exist or is not a directory (expected ImageNet train/ and val/)"
        )
    allc = imagenet_classes()
    wnids = allc.class_id.tolist()
    if benchmark == "imagenet_hard":
        split = hard_splits()[hard_split]
        id_ids, ood_ids = split["id"], split["ood_known_unknown"] + split["ood_unknown_unknown"]
        index = {w: i for i, w in enumerate(wnids)}
        classes = allc.iloc[[index[w] for w in id_ids]].reset_index(drop=True)
        val = imagenet_val(root, wnids)
        check_layout(root, id_ids, [])
        val_wnid = val.label.map(lambda i: wnids[i])
        id_map = {w: i for i, w in enumerate(id_ids)}
        test_id = val[val_wnid.isin(id_map)].assign(label=lambda d: val_wnid[d.index].map(id_map), set="id")
        test_ood = val[val_wnid.isin(set(ood_ids))].assign(label=-1, set="ood")
        test, names = pd.concat([test_id, test_ood], ignore_index=True), ["ood"]
    else:
        classes = allc
        test_id = imagenet_val(root, wnids).assign(set="id")
        check_layout(root, wnids, list(CONVENTIONAL_OOD.values()) if benchmark == "imagenet_conventional" else [])
        sets, required = (CONVENTIONAL_OOD, True) if benchmark == "imagenet_conventional" else (OPENOOD_OOD, False)
        ood, names = ood_table(root, sets, required=required)
        if not names:
            raise NegPromptError(f"{root}: none of the OpenOOD sets {list(sets.values())} exist")
        test = pd.concat([test_id, ood], ignore_index=True)
    pool = class_folders(root / "train", classes.class_id.tolist(), root, "train")
    return Benchmark(root, classes, pool, test, names)
