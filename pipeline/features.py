"""Stage `features`: encode every image the later stages use, once, with the frozen image encoder.

train.parquet: the union over seeds of few-shot (all views) and calibration images (view 0).
test.parquet: the ID test set and every OOD set.
With features.local: train_local.npy / test_local.npy, the projected patch features [N, P, d]
in float16, row-aligned with the parquet files (GL-MCM and LoCoOp need them). Plain .npy so they
are written and read memory-mapped: ImageNet's ~90k test images x 196 patches x 512 are ~18 GB.
An unreadable image stops the stage naming it (features.on_bad_image: error), or is dropped from
the cache and counted (skip): every later stage reads its rows from these tables, so none sees it.
"""

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from negprompt import NegPromptError
from negprompt.clip.backbone import resolve_device
from negprompt.clip.features import augmented_view, encode_images, patch_shape
from negprompt.io import atomic_path, read_json, read_table, write_table
from negprompt.workspace import BENCHMARK, FEATURES, SUBSETS, load_params, stage_backbone
from pipeline.common import run


def main():
    params = load_params()
    feature_params = params.features
    device = resolve_device(feature_params.device)
    backbone = stage_backbone(feature_params.device)
    root = Path(read_json(BENCHMARK / "manifest.json")["root"])
    subsets = [read_table(SUBSETS / f"seed{s}.parquet")[0] for s in params.subset.seeds]
    train = pd.concat(subsets).drop_duplicates("path").sort_values("path").reset_index(drop=True)
    test, _, _ = read_table(BENCHMARK / "test.parquet")
    meta = {"backbone": backbone.identity, "benchmark_root": str(root)}
    dtype = getattr(torch, feature_params.dtype)
    if dtype != torch.float32 and device.type != "cuda":
        raise NegPromptError(
            f"features.dtype {feature_params.dtype} needs a CUDA device (got {device}); use float32 on CPU"
        )
    kw = dict(
        batch_size=feature_params.batch_size,
        num_workers=feature_params.num_workers,
        device=device,
        dtype=dtype,
        strict=feature_params.on_bad_image == "error",
    )
    size = backbone.model.visual.image_size
    size = size[0] if isinstance(size, (tuple, list)) else size
    views = [train if view == 0 else train[train.split == "train"] for view in range(feature_params.train_views)]
    shape = patch_shape(backbone.model, size) if feature_params.local else None  # (P, d)
    with atomic_path(FEATURES, directory=True) as out:
        train_local = patch_map(out / "train_local.npy", sum(len(v) for v in views), shape)
        table, feats, errors = encode_train_views(backbone, root, views, size, train_local, kw)
        train_feats, train_local = drop_unreadable(feats, train_local, errors, out / "train_local.npy")
        readable = [not e for e in errors]
        write_table(
            table[readable].reset_index(drop=True), out / "train.parquet", train_feats, skipped_meta(meta, errors)
        )
        test_local = patch_map(out / "test_local.npy", len(test), shape)
        f, test_errors = encode_images(
            backbone.model,
            backbone.preprocess,
            [root / x for x in test.path],
            desc="encode test",
            local_out=test_local,
            **kw,
        )
        f, test_local = drop_unreadable(f, test_local, test_errors, out / "test_local.npy")
        readable = [not e for e in test_errors]
        write_table(test[readable].reset_index(drop=True), out / "test.parquet", f, skipped_meta(meta, test_errors))
        for mm in (train_local, test_local):
            if mm is not None:
                mm.flush()
        del train_local, test_local  # close the memory maps before the directory is moved into place
    local = f", and {shape[0]} patch features per image (float16)" if shape else ""
    skipped = [e for e in errors + test_errors if e]
    note = f"; skipped {len(skipped)} unreadable images (on_bad_image: skip; first: {skipped[0]})" if skipped else ""
    print(
        f"cached {len(table) - sum(map(bool, errors))} train and {len(f)} test features of dim {f.shape[1]}"
        f"{local}{note}"
    )


def patch_map(path: Path, n: int, shape: tuple | None):
    """A float16 memory map [n, P, d] for the patch features, written in place (None without features.local)."""
    return np.lib.format.open_memmap(path, mode="w+", dtype=np.float16, shape=(n, *shape)) if shape else None


def encode_train_views(backbone, root: Path, views: list[pd.DataFrame], size: int, train_local, kw: dict):
    """Every train view's features, one after another (view 0: the eval transform; others: augmented, seeded by
    the view), their rows and per-image errors; patch features go to `train_local` in the same order."""
    start, tables, feats, errors = 0, [], [], []
    for view, rows in enumerate(views):
        transform = backbone.preprocess if view == 0 else augmented_view(backbone.preprocess, size)
        torch.manual_seed(view)
        rows_local = None if train_local is None else train_local[start : start + len(rows)]
        paths = [root / x for x in rows.path]
        f, errs = encode_images(
            backbone.model, transform, paths, desc=f"encode train view {view}", local_out=rows_local, **kw
        )
        tables.append(rows.assign(view=view)[["path", "label", "split", "view"]])
        feats.append(f)
        errors.extend(errs)
        start += len(rows)
    return pd.concat(tables, ignore_index=True), np.concatenate(feats), errors


def skipped_meta(meta: dict, errors: list[str]) -> dict:
    """The cache's metadata, with the count of skipped images only when there were some (so a clean run's
    files are byte-identical to those written before features.on_bad_image existed)."""
    n = sum(map(bool, errors))
    return {**meta, "skipped_images": n} if n else meta


def drop_unreadable(feats: np.ndarray, local, errors: list[str], local_path: Path):
    """Rows of unreadable images removed from the features [N, d] and, when cached, the patch memory map
    (copied in blocks into a shorter one at the same path, so ImageNet-scale caches never sit in memory)."""
    keep = np.array([not e for e in errors], dtype=bool)
    if keep.all():
        return feats, local
    if local is not None:
        short = np.lib.format.open_memmap(
            local_path.with_suffix(".tmp.npy"), mode="w+", dtype=local.dtype, shape=(int(keep.sum()), *local.shape[1:])
        )
        rows = np.flatnonzero(keep)
        for i in range(0, len(rows), 1024):
            short[i : i + 1024] = local[rows[i : i + 1024]]
        short.flush()
        del local, short
        local_path.with_suffix(".tmp.npy").replace(local_path)
        local = np.load(local_path, mmap_mode="r+")
    return feats[keep], local


if __name__ == "__main__":
    run(main)
