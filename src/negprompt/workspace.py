"""The pipeline's workspace on disk: where each stage writes (relative to the repository root, as
DVC runs stages there), and reading those outputs back: validated params, the shipped backbone by
its manifest, one seed's cached few-shot features, per-epoch curves."""
from __future__ import annotations

from pathlib import Path

import torch
import yaml

from negprompt import NegPromptError
from negprompt.config import Params, validate

BENCHMARK = Path("data/benchmark")  # tables + manifest (+ images for the mini-world)
SUBSETS = Path("data/subsets")
BACKBONE = Path("models/backbone")
FEATURES = Path("features")
POS = Path("models/pos")
NEG = Path("models/neg")
NEGLABEL = Path("models/neglabel")
SCORES = Path("scores")
REPORTS = Path("reports")


def load_params(path: str | Path = "params.yaml") -> Params:
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError:
        raise NegPromptError(f"{path}: not found (run stages from the repository root)") from None
    except yaml.YAMLError as e:
        raise NegPromptError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
    return validate(raw, str(path))


def backbone_manifest() -> dict:
    from negprompt.io import read_json

    return read_json(BACKBONE / "manifest.json")


def load_backbone(device: str = "auto"):
    from negprompt.clip.backbone import load_backbone as load, resolve_device

    m = backbone_manifest()
    return load(m["model"], m["checkpoint"], resolve_device(device), m["weights_sha256"])


def fewshot_features(seed: int, open_vocab: bool, fraction: float, local: bool = False):
    """The cached features of seed `seed`'s few-shot images (all views): (feats [N, d], labels [N],
    class names trained on, patch features [N, P, d] float16 or None). Open vocabulary keeps the
    first `fraction` of classes only."""
    import numpy as np

    from negprompt.benchmarks.tables import open_vocab_classes, read_classes
    from negprompt.io import read_table

    classes = read_classes(BENCHMARK / "classes.tsv")
    subset, _, _ = read_table(SUBSETS / f"seed{seed}.parquet")
    table, feats, meta = read_table(FEATURES / "train.parquet")
    if meta.get("backbone", {}).get("weights_sha256") != backbone_manifest()["weights_sha256"]:
        raise NegPromptError(f"{FEATURES / 'train.parquet'}: features were encoded with another backbone; re-run the features stage")
    keep = table.path.isin(subset.path[subset.split == "train"]).to_numpy()
    names = classes.name.tolist()
    if open_vocab:
        ov = open_vocab_classes(len(classes), fraction)
        keep = keep & table.label.isin(ov).to_numpy()
        names = [names[i] for i in ov]
    labels = table.label.to_numpy()[keep]
    patches = torch.from_numpy(local_features("train")[keep]) if local else None  # reads only the kept rows
    return torch.from_numpy(np.ascontiguousarray(feats[keep])), torch.from_numpy(labels).long(), names, patches


def local_features(split: str):
    """Patch features [N, P, d] float16 of `split` ("train"/"test") as a read-only memory map
    (cached with features.local)."""
    import numpy as np

    path = FEATURES / f"{split}_local.npy"
    if not path.is_file():
        raise NegPromptError(f"{path}: not found; GL-MCM and LoCoOp need features.local: true (re-run the features stage)")
    try:
        return np.load(path, mmap_mode="r")
    except (ValueError, OSError) as e:
        raise NegPromptError(f"{path}: not a readable .npy file ({e}); re-run the features stage") from None


def write_curve(rows: list[dict], path: Path) -> None:
    """A per-epoch DVC plots file (CSV), written atomically."""
    import pandas as pd

    from negprompt.io import atomic_path

    with atomic_path(path) as tmp:
        pd.DataFrame(rows).to_csv(tmp, index=False)
