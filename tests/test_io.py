import numpy as np
import pandas as pd
import pytest
import torch

from negprompt import NegPromptError
from negprompt.io import atomic_path, load_tensors, read_table, save_tensors, write_table


def test_feature_table_round_trip_is_exact_and_deterministic(tmp_path):
    df = pd.DataFrame({"path": ["a.png", "b.png", "c.png"], "label": [0, 1, -1], "set": ["id", "id", "far"]})
    feats = np.random.default_rng(0).normal(size=(3, 8)).astype(np.float32)
    write_table(df, tmp_path / "f.parquet", feats, {"backbone": {"model": "m"}})
    write_table(df, tmp_path / "g.parquet", feats, {"backbone": {"model": "m"}})
    back, f2, meta = read_table(tmp_path / "f.parquet")
    assert back.equals(df) and np.array_equal(f2, feats) and meta["backbone"]["model"] == "m"
    assert (tmp_path / "f.parquet").read_bytes() == (tmp_path / "g.parquet").read_bytes()


def test_nan_features_are_refused(tmp_path):
    feats = np.ones((2, 4), np.float32)
    feats[1, 2] = np.nan
    write_table(pd.DataFrame({"path": ["a", "b"]}), tmp_path / "f.parquet", feats)
    with pytest.raises(NegPromptError, match="f.parquet: 1 feature rows contain NaN or Inf"):
        read_table(tmp_path / "f.parquet")


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("previous")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert target.read_text() == "previous" and [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_truncated_safetensors_is_a_clear_error(tmp_path):
    save_tensors({"ctx": torch.ones(4, 8)}, tmp_path / "c.safetensors", {"classnames": ["a"]})
    tensors, meta = load_tensors(tmp_path / "c.safetensors")
    assert torch.equal(tensors["ctx"], torch.ones(4, 8)) and meta["classnames"] == ["a"]
    data = (tmp_path / "c.safetensors").read_bytes()
    (tmp_path / "c.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(NegPromptError, match="c.safetensors: not a valid safetensors file"):
        load_tensors(tmp_path / "c.safetensors")
