"""Fixtures shared by the test modules; plain helpers are in tests/helpers.py."""

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import open_clip
import pandas as pd
import pytest
import torch
from filelock import FileLock
from PIL import Image
from safetensors.torch import save_file

from negprompt.clip.backbone import TINY_MODEL, sha256
from negprompt.io import write_json, write_table
from tests.helpers import ONE_SEED, dvc, make_repo, stage, tiny_params, write_params


@pytest.fixture(scope="session")
def tiny_clip():
    """The mini-world architecture at random init, and its tokenizer (no download)."""
    torch.manual_seed(0)
    model = open_clip.create_model(TINY_MODEL).eval()
    return model, open_clip.get_tokenizer(TINY_MODEL)


@pytest.fixture()
def world(tmp_path):
    """A minimal benchmark (3 classes, 3 images each, one OOD set), a tiny checkpoint and subsets."""
    root = tmp_path / "data/benchmark/images"
    rng = np.random.default_rng(0)
    rows = []
    for c in range(3):
        for i in range(3):
            p = root / "train" / f"c{c}" / f"{i}.png"
            p.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(p)
            rows.append((p.relative_to(root).as_posix(), c))
    bench = tmp_path / "data/benchmark"
    pool = pd.DataFrame(rows, columns=["path", "label"])
    write_table(pool, bench / "pool.parquet")
    write_table(pool.assign(set="id"), bench / "test.parquet")
    pd.DataFrame({"class_id": ["c0", "c1", "c2"], "name": ["red star", "blue ring", "gold heart"]}).to_csv(
        bench / "classes.tsv", sep="\t", index=False
    )
    write_json({"root": "data/benchmark/images"}, bench / "manifest.json")
    ckpt = tmp_path / "models/backbone/tiny.safetensors"
    ckpt.parent.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in open_clip.create_model(TINY_MODEL).state_dict().items()}, str(ckpt))
    write_json(
        {"model": TINY_MODEL, "pretrained": "", "checkpoint": str(ckpt), "weights_sha256": sha256(ckpt)},
        tmp_path / "models/backbone/manifest.json",
    )
    write_params(tmp_path, subset={"seeds": [1], "shots": 2, "calib_per_class": 1})
    assert stage(tmp_path, "subset").returncode == 0
    return tmp_path


@pytest.fixture(scope="session")
def reproduced_one_seed(tmp_path_factory, worker_id) -> Path:
    """The tiny pipeline with one seed (ONE_SEED) reproduced and committed, as a user's clone after `make repro`.
    Built once per test run, shared by the pytest-xdist workers through a file lock; a test takes its own copy
    (tests.helpers.copy_reproduced) and changes only that. Tests that watch stages run from nothing make their own."""
    root = tmp_path_factory.getbasetemp()
    root = root if worker_id == "master" else root.parent  # the run's folder, above each worker's own
    template = root / "reproduced-one-seed"
    with FileLock(f"{template}.lock"):
        if not (template / "done").is_file():
            shutil.rmtree(template, ignore_errors=True)
            work = make_repo(template, tiny_params(ONE_SEED))
            dvc(work, "repro")
            for cmd in (["add", "-A"], ["commit", "-qm", "dvc repro"]):
                subprocess.run(["git", *cmd], cwd=work, check=True, capture_output=True)
            (template / "done").touch()
    return template / "repo"


DURATIONS = Path(__file__).with_name("durations.json")  # seconds per test file, measured (benchmarks/RESULTS.md)


def pytest_collection_modifyitems(items):
    """Longest files first: under `make test` each pytest-xdist worker takes whole files in this order, so the
    longest work starts first and the short files fill in at the end (longest-processing-time-first). A file not in
    tests/durations.json goes after the measured ones, its end-to-end tests before the unit tests."""
    seconds = json.loads(DURATIONS.read_text()) if DURATIONS.is_file() else {}
    slow = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: (-seconds.get(item.path.name, 0.0), item.path not in slow))  # stable: files stay whole
