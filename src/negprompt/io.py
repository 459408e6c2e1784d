"""The edges: parquet, safetensors and JSON on disk, always written atomically.

Every writer goes through `atomic_path`: write to a temporary sibling, then `os.replace`, so a
process killed at any point leaves either no file or the previous complete one.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from negprompt import NegPromptError

if TYPE_CHECKING:  # torch is imported by the functions that read or write tensors: the params check needs none
    import torch


@contextlib.contextmanager
def atomic_path(path: str | Path, directory: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to `path`; on success move it into place, on error remove it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f".{path.name}.*"):  # left by a killed run of the same stage
        shutil.rmtree(stale, ignore_errors=True) if stale.is_dir() else stale.unlink(missing_ok=True)
    tmp = (
        Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
        if directory
        else Path(tempfile.mktemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    )
    try:
        yield tmp
        if directory and path.is_dir():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old.", dir=path.parent))
            os.replace(path, old / "x")
            os.replace(tmp, path)
            shutil.rmtree(old)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True) if tmp.is_dir() else tmp.unlink(missing_ok=True)
        raise


def write_json(obj, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def read_json(path: str | Path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise NegPromptError(f"{path}: file not found") from None
    except json.JSONDecodeError as e:
        raise NegPromptError(f"{path}: not valid JSON ({e.msg} at line {e.lineno})") from None


def write_table(
    df: pd.DataFrame, path: str | Path, features: np.ndarray | None = None, metadata: dict | None = None
) -> None:
    """Parquet with an optional fixed-size-list float32 `feature` column and JSON file metadata.

    No timestamps are written, so equal inputs give byte-identical files.
    """
    table = pa.Table.from_pandas(df.reset_index(drop=True), preserve_index=False)
    if features is not None:
        features = np.ascontiguousarray(features, dtype=np.float32)
        flat = pa.array(features.reshape(-1), type=pa.float32())
        table = table.append_column("feature", pa.FixedSizeListArray.from_arrays(flat, features.shape[1]))
    meta = {b"negprompt": json.dumps(metadata or {}, sort_keys=True).encode()}
    table = table.replace_schema_metadata(meta)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")


def read_table(path: str | Path) -> tuple[pd.DataFrame, np.ndarray | None, dict]:
    """Inverse of `write_table`: (columns without the feature, features [N, d] or None, metadata)."""
    try:
        table = pq.read_table(path)
    except FileNotFoundError:
        raise NegPromptError(f"{path}: file not found") from None
    except (pa.ArrowInvalid, OSError) as e:
        raise NegPromptError(f"{path}: not a readable parquet file ({e})") from None
    meta = json.loads((table.schema.metadata or {}).get(b"negprompt", b"{}"))
    features = None
    if "feature" in table.column_names:
        col = table.column("feature").combine_chunks()
        features = col.values.to_numpy(zero_copy_only=False).reshape(len(col), col.type.list_size).copy()  # writable
        if not np.isfinite(features).all():
            bad = int((~np.isfinite(features)).any(1).sum())
            raise NegPromptError(
                f"{path}: {bad} feature rows contain NaN or Inf "
                "(expected finite CLIP features; re-run the features stage)"
            )
        table = table.drop(["feature"])
    return table.to_pandas(), features, meta


def save_tensors(tensors: dict[str, torch.Tensor], path: str | Path, metadata: dict | None = None) -> None:
    # one metadata key: safetensors stores metadata in a hash map, whose order (and so the file's
    # bytes) would otherwise change from run to run
    from safetensors.torch import save_file

    meta = {"negprompt": json.dumps(metadata or {}, sort_keys=True)}
    with atomic_path(path) as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp), metadata=meta)


def load_tensors(path: str | Path) -> tuple[dict[str, torch.Tensor], dict]:
    """safetensors only (no pickle); a truncated or corrupted file is a NegPromptError naming it."""
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file

    if not Path(path).is_file():
        raise NegPromptError(f"{path}: file not found")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = json.loads((f.metadata() or {}).get("negprompt", "{}"))
        return load_file(str(path)), meta
    except (SafetensorError, OSError, ValueError, json.JSONDecodeError) as e:
        raise NegPromptError(f"{path}: not a valid safetensors file ({e}); it may be truncated or corrupted") from None
