"""Stage `features`: encode every image the later stages use, once, with the frozen image encoder.

train.parquet: the union over seeds of few-shot (all views) and calibration images (view 0).
test.parquet: the ID test set and every OOD set.
With features.local: train_local.npy / test_local.npy, the projected patch features [N, P, d]
in float16, row-aligned with the parquet files (GL-MCM and LoCoOp need them). Plain .npy so they
are written and read memory-mapped: ImageNet's ~90k test images x 196 patches x 512 are ~18 GB.
"""
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from negprompt import NegPromptError
from negprompt.clip.backbone import resolve_device
from negprompt.clip.features import augmented_view, encode_images, patch_shape
from negprompt.io import atomic_path, read_json, read_table, write_table
from negprompt.workspace import BENCHMARK, FEATURES, SUBSETS, load_backbone, load_params
from pipeline.common import run


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
    views = [train if view == 0 else train[train.split == "train"] for view in range(p.train_views)]
    shape = patch_shape(bb.model, size) if p.local else None  # (P, d)
    with atomic_path(FEATURES, directory=True) as out:
        def patches(name: str, n: int):
            return np.lib.format.open_memmap(out / name, mode="w+", dtype=np.float16, shape=(n, *shape)) if shape else None

        train_local, start, tables, feats = patches("train_local.npy", sum(len(v) for v in views)), 0, [], []
        for view, rows in enumerate(views):
            transform = bb.preprocess if view == 0 else augmented_view(bb.preprocess, size)
            torch.manual_seed(view)
            rows_local = None if train_local is None else train_local[start : start + len(rows)]
            f, _ = encode_images(bb.model, transform, [root / x for x in rows.path], desc=f"encode train view {view}", local_out=rows_local, **kw)
            tables.append(rows.assign(view=view)[["path", "label", "split", "view"]])
            feats.append(f)
            start += len(rows)
        table = pd.concat(tables, ignore_index=True)
        write_table(table, out / "train.parquet", np.concatenate(feats), meta)
        test_local = patches("test_local.npy", len(test))
        f, _ = encode_images(bb.model, bb.preprocess, [root / x for x in test.path], desc="encode test", local_out=test_local, **kw)
        write_table(test, out / "test.parquet", f, meta)
        for mm in (train_local, test_local):
            if mm is not None:
                mm.flush()
        del train_local, test_local, rows_local  # close the memory maps before the directory is moved into place
    local = f", and {shape[0]} patch features per image (float16)" if shape else ""
    print(f"cached {len(table)} train and {len(test)} test features of dim {f.shape[1]}{local}")


if __name__ == "__main__":
    run(main)
