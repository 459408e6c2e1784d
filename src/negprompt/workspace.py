"""The pipeline's workspace on disk: where each stage writes (relative to the repository root, as
DVC runs stages there), and reading those outputs back: validated params, the shipped backbone by
its manifest, and the feature cache (one reader, one backbone check), per-epoch curves."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import yaml

from negprompt import NegPromptError
from negprompt.benchmarks.tables import open_vocab_classes, read_classes
from negprompt.config import Params, validate
from negprompt.io import read_json, read_table

if TYPE_CHECKING:  # the feature readers import torch themselves: the stages that use no torch need none
    import torch

TREE = Path("data/tree.tsv")  # the real benchmark tree's listing (paths, sizes): what `data` depends on
BENCHMARK = Path("data/benchmark")  # tables + manifest (+ images for the mini-world)
SUBSETS = Path("data/subsets")
BACKBONE = Path("models/backbone")
FEATURES = Path("features")
POS = Path("models/pos")
NEG = Path("models/neg")
NEGLABEL = Path("models/neglabel")
SCORES = Path("scores")
REPORTS = Path("reports")
SHEETS = REPORTS / "sheets"  # stage sheets: contact_<role>.png and sheets.md, the report's section on the roles


def load_params(path: str | Path = "params.yaml") -> Params:
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError:
        raise NegPromptError(f"{path}: not found (run stages from the repository root)") from None
    except yaml.YAMLError as e:
        raise NegPromptError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
    return validate(raw, str(path))


def backbone_manifest() -> dict:
    return read_json(BACKBONE / "manifest.json")


def stage_backbone(device: str = "auto"):
    """The backbone the backbone stage resolved (models/backbone/manifest.json), loaded and sha256-checked."""
    from negprompt.clip.backbone import load_backbone as load
    from negprompt.clip.backbone import resolve_device

    m = backbone_manifest()
    return load(m["model"], m["checkpoint"], resolve_device(device), m["weights_sha256"])


@dataclass
class Images:
    """Cached image features of one split, with their labels (and, for the test split, their sets)."""

    feats: torch.Tensor  # [N, d] L2-normalised
    labels: torch.Tensor  # [N], -1 for OOD
    sets: np.ndarray | None = None  # [N] "id" or an OOD set name (test only)
    ood: tuple[str, ...] = ()  # the OOD set names, in order

    def to(self, device) -> Images:
        return Images(self.feats.to(device), self.labels.to(device), self.sets, self.ood)


def read_features(split: str) -> tuple[pd.DataFrame, np.ndarray]:
    """The one reader of the feature cache: `features/<split>.parquet` ("train" or "test") as its rows and
    features [N, d], refused when the backbone that encoded them is not the workspace's."""
    path = FEATURES / f"{split}.parquet"
    table, feats, meta = read_table(path)
    check_backbone(meta, path, "features were encoded with another backbone; re-run the features stage")
    return table, feats


def check_backbone(meta: dict, path: Path, what: str) -> None:
    """An artefact's recorded backbone (its metadata's `backbone.weights_sha256`) must be the workspace's."""
    if meta.get("backbone", {}).get("weights_sha256") != backbone_manifest()["weights_sha256"]:
        raise NegPromptError(f"{path}: {what}")


def fewshot_features(seed: int, open_vocab: bool, fraction: float, local: bool = False):
    """The cached features of seed `seed`'s few-shot images (all views): (feats [N, d], labels [N],
    class names trained on, patch features [N, P, d] float16 or None). Open vocabulary keeps the
    first `fraction` of classes only."""
    import torch

    classes = read_classes(BENCHMARK / "classes.tsv")
    subset, _, _ = read_table(SUBSETS / f"seed{seed}.parquet")
    table, feats = read_features("train")
    keep = table.path.isin(subset.path[subset.split == "train"]).to_numpy()
    names = classes.name.tolist()
    if open_vocab:
        ov = open_vocab_classes(len(classes), fraction)
        keep = keep & table.label.isin(ov).to_numpy()
        names = [names[i] for i in ov]
    labels = table.label.to_numpy()[keep]
    patches = torch.from_numpy(local_features("train")[keep]) if local else None  # reads only the kept rows
    return torch.from_numpy(np.ascontiguousarray(feats[keep])), torch.from_numpy(labels).long(), names, patches


def heldout_images(seed: int, calib_per_class: int, open_vocab: bool, fraction: float) -> Images | None:
    """Seed `seed`'s held-out ID images (the subset's `calib` split, view 0; open vocabulary: of
    the trained classes only), or None when subset.calib_per_class is 0."""
    import torch

    if not calib_per_class:
        return None
    subset, _, _ = read_table(SUBSETS / f"seed{seed}.parquet")
    table, feats = read_features("train")
    keep = (table.path.isin(subset.path[subset.split == "calib"]) & (table.view == 0)).to_numpy()
    if open_vocab:
        keep = (
            keep
            & table.label.isin(open_vocab_classes(len(read_classes(BENCHMARK / "classes.tsv")), fraction)).to_numpy()
        )
    return Images(
        torch.from_numpy(np.ascontiguousarray(feats[keep])), torch.from_numpy(table.label.to_numpy()[keep]).long()
    )


def test_images() -> Images:
    """Every test image's features: ID then each OOD set, as the features stage cached them."""
    import torch

    table, feats = read_features("test")
    ood = tuple(s for s in dict.fromkeys(table.set) if s != "id")
    # Arrow's buffers are read-only, which torch warns of in every stage: writable copies
    feats, labels = np.require(feats, requirements="W"), torch.tensor(table.label.to_numpy(), dtype=torch.long)
    return Images(torch.from_numpy(feats), labels, table.set.to_numpy(), ood)


def local_features(split: str):
    """Patch features [N, P, d] float16 of `split` ("train"/"test") as a read-only memory map
    (cached with features.local)."""
    path = FEATURES / f"{split}_local.npy"
    if not path.is_file():
        raise NegPromptError(
            f"{path}: not found; GL-MCM and LoCoOp need features.local: true (re-run the features stage)"
        )
    try:
        return np.load(path, mmap_mode="r")
    except (ValueError, OSError) as e:
        raise NegPromptError(f"{path}: not a readable .npy file ({e}); re-run the features stage") from None
