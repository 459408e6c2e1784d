"""Bad input to the pipeline stages: one line naming the file or key, exit code 2, nothing written."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
from PIL import Image

from negprompt.io import write_table
from tests.helpers import REPO, one_line_error, stage, write_params


def test_unknown_key_and_bad_values(world):
    write_params(world, neg={"num_prompts": 0})
    one_line_error(stage(world, "subset"), "neg.num_prompts = 0", "greater than or equal to 1")
    write_params(world, neg={"loss_variant": "mine"})
    one_line_error(stage(world, "subset"), "neg.loss_variant = 'mine'")
    write_params(world, neg={"num_prompt": 2})
    one_line_error(stage(world, "subset"), "neg.num_prompt", "Extra inputs are not permitted")
    write_params(world, subset={"shots": "many"})
    one_line_error(stage(world, "subset"), "subset.shots = 'many'")


def test_shots_larger_than_a_class_and_duplicate_names(world):
    write_params(world, subset={"seeds": [1], "shots": 5})
    before = (world / "data/subsets/seed1.parquet").read_bytes()
    one_line_error(stage(world, "subset"), "class 'c0'", "fewer than subset.shots = 5")
    assert (world / "data/subsets/seed1.parquet").read_bytes() == before  # the previous output is untouched
    assert not [p for p in (world / "data").iterdir() if p.name.startswith(".")]
    (world / "data/benchmark/classes.tsv").write_text("class_id\tname\nc0\tred star\nc1\tred star\nc2\tgold heart\n")
    one_line_error(stage(world, "subset"), "classes.tsv", "duplicate class names ['red star']")


def test_missing_root_and_unknown_backbone(world):
    write_params(world, data={"benchmark": "imagenet_conventional", "root": str(world / "nowhere")})
    one_line_error(stage(world, "data"), "data.root", "nowhere", "does not exist")
    assert (world / "data/benchmark/pool.parquet").exists()  # the previous benchmark is kept
    write_params(world, backbone={"model": "ViT-Q-99", "pretrained": "openai"})
    one_line_error(stage(world, "backbone"), "backbone.model 'ViT-Q-99' is not an open_clip model")
    write_params(world, backbone={"model": "RN50", "pretrained": "no_such_tag"})
    one_line_error(stage(world, "backbone"), "backbone.pretrained 'no_such_tag'", "tags:")


def test_corrupt_image_and_nan_features(world):
    bad = world / "data/benchmark/images/train/c1/1.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    one_line_error(stage(world, "features"), "train/c1/1.png", "not a readable image")
    assert not (world / "features").exists()
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(bad)
    assert stage(world, "features").returncode == 0
    table = pd.read_parquet(world / "features/train.parquet")
    feats = np.stack(table.pop("feature").to_numpy()).astype(np.float32)
    feats[0, 0] = np.inf
    meta = json.loads(
        __import__("pyarrow.parquet", fromlist=["x"])
        .read_schema(world / "features/train.parquet")
        .metadata[b"negprompt"]
    )
    write_table(table, world / "features/train.parquet", feats, meta)
    one_line_error(stage(world, "train_pos", "--seed", "1"), "train.parquet", "NaN or Inf")
    assert not (world / "models/pos").exists()


def test_sigkill_during_features_then_rerun(world):
    write_params(world, features={"batch_size": 1}, subset={"seeds": [1], "shots": 2, "calib_per_class": 1})
    env = {**os.environ, "PYTHONPATH": str(REPO), "NEGPROMPT_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline.features"], cwd=world, env=env, stderr=subprocess.PIPE, text=True
    )
    for _ in range(2000):  # kill it as soon as it starts writing
        time.sleep(0.01)
        if any(p.name.startswith(".features") for p in world.iterdir()):
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    if (world / "features").exists():  # it finished first: then the output must be the complete one
        assert len(pd.read_parquet(world / "features/train.parquet")) == 9  # 3 classes x (2 shots + 1 calibration)
    assert not (world / "features").exists() or (world / "features/test.parquet").exists()
    assert stage(world, "features").returncode == 0
    assert not [p.name for p in world.iterdir() if p.name.startswith(".features")]  # the killed run's debris is gone
    first = (world / "features/train.parquet").read_bytes()
    assert stage(world, "features").returncode == 0
    assert (world / "features/train.parquet").read_bytes() == first  # byte-identical rerun


def test_neglabel_bad_corpus(world):
    """An empty word list, one too small for the groups, a binary file: one line naming it, nothing written."""
    words = world / "words.txt"
    cases = [
        ("", ["words.txt", "no candidate words"]),
        ("red star\nteapot\nmoon\n", ["words.txt", "3 candidate words", "neglabel.groups = 5"]),  # ID name kept
        (b"teapot\n\xff\xfe\x00moon\n", ["words.txt", "not UTF-8"]),
    ]
    for content, needles in cases:
        words.write_bytes(content if isinstance(content, bytes) else content.encode())
        write_params(
            world,
            data={"benchmark": "imagenet_conventional"},
            neglabel={"corpus": str(words), "groups": 5},
            subset={"seeds": [1], "shots": 2, "calib_per_class": 1},
        )
        one_line_error(stage(world, "neglabel"), *needles)
        assert not (world / "models/neglabel").exists()
    write_params(
        world, data={"benchmark": "imagenet_conventional"}, neglabel={"corpus": "", "wordnet_dir": str(world / "nltk")}
    )
    one_line_error(stage(world, "neglabel"), "WordNet not found", "nltk.downloader")


def test_every_stage_runs_torchs_deterministic_kernels_without_loading_its_compiler():
    """pipeline.common.stage switches torch to its deterministic kernels (warning where an op has none), as
    torch.use_deterministic_algorithms(True, warn_only=True) does, without importing torch._inductor."""
    code = (
        "import sys, torch; from pipeline.common import stage\n"
        "stage(lambda: None)()\n"
        "print(torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),"
        " 'torch._inductor' in sys.modules)"
    )
    env = {**os.environ, "PYTHONPATH": f"{REPO / 'src'}{os.pathsep}{REPO}"}
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True)
    assert out.stdout.split() == ["True", "True", "False"], out.stderr[-2000:]
