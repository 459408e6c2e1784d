"""Stage `features`: encode every image the later stages use, once, with the frozen image encoder.

train.parquet: the union over seeds of few-shot (all views) and calibration images (view 0).
test.parquet: the ID test set and every OOD set.
"""
from pathlib import Path

import pandas as pd
import torch

from negprompt import NegPromptError
from negprompt.backbone import resolve_device
from negprompt.features import augmented_view, encode_images
from negprompt.io import atomic_path, read_json, read_table, write_table
from pipeline.common import BENCHMARK, FEATURES, SUBSETS, load_backbone, load_params, run


def main():
    params = load_params()
    p = params.features
    device = resolve_device(p.device)
    bb = load_backbone(p.device)
    root = Path(read_json(BENCHMARK / "manifest.json")["root"])
    subsets = [read_table(SUBSETS / f"seed{s}.parquet")[0] for s in params.subset.seeds]
    train = pd.concat(subsets).drop_duplicates("path").sort_values("path").reset_index(drop=True)
    test, _, _ = read_table(BENCHMARK / "test.parquet")
    meta = {"backbone": bb.identity, "benchmark_root": str(root)}
    dtype = getattr(torch, p.dtype)
    if dtype != torch.float32 and device.type != "cuda":
        raise NegPromptError(f"features.dtype {p.dtype} needs a CUDA device (got {device}); use float32 on CPU")
    kw = dict(batch_size=p.batch_size, num_workers=p.num_workers, device=device, dtype=dtype)
    size = bb.model.visual.image_size
    size = size[0] if isinstance(size, (tuple, list)) else size
    with atomic_path(FEATURES, directory=True) as out:
        views = []
        for view in range(p.train_views):
            rows = train if view == 0 else train[train.split == "train"]
            transform = bb.preprocess if view == 0 else augmented_view(bb.preprocess, size)
            torch.manual_seed(view)
            feats, _ = encode_images(bb.model, transform, [root / x for x in rows.path], desc=f"encode train view {view}", **kw)
            views.append((rows.assign(view=view)[["path", "label", "split", "view"]], feats))
        table = pd.concat([v[0] for v in views], ignore_index=True)
        write_table(table, out / "train.parquet", torch.cat([torch.from_numpy(v[1]) for v in views]).numpy(), meta)
        feats, _ = encode_images(bb.model, bb.preprocess, [root / x for x in test.path], desc="encode test", **kw)
        write_table(test, out / "test.parquet", feats, meta)
    print(f"cached {len(table)} train and {len(test)} test features of dim {feats.shape[1]}")


if __name__ == "__main__":
    run(main)
