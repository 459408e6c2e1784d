"""ImageNet at scale without ImageNet (issue 37): the synthetic tree's layout, the real ViT-B-16
architecture (random weights) through every stage on CPU, and the bad inputs a user meets first
(an unknown architecture, a missing folder, a corrupt JPEG, exporting from random weights)."""

import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from negprompt import NegPromptError
from negprompt.benchmarks.imagenet import read_imagenet
from negprompt.cli import app
from negprompt.clip.backbone import TINY_MODEL
from tests.helpers import REPO, one_line_error, stage

SCRIPT = REPO / "benchmarks/speed/imagenet_scale.py"
SMALL_TREE = [
    "--train-per-class",
    "2",
    "--val",
    "1000",
    "--ood",
    "2",
    "--textures",
    "47",
    "--width",
    "64",
    "--height",
    "48",
    "--workers",
    "2",
]


def scale(*args, threads="1"):
    """The scale script, one thread per stage (`make test` runs a pytest-xdist worker per core), on the machine's own
    kernels: random weights make no bytes to compare, and ViT-B-16 encodes twice as fast without the pin."""
    env = {**os.environ, "NEGPROMPT_THREADS": threads, "NEGPROMPT_NATIVE_KERNELS": "1"}
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True, env=env)


def script():
    """The scale script as a module (it lives beside the other benchmarks, outside the package)."""
    spec = importlib.util.spec_from_file_location("imagenet_scale", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("imagenet_scale")
    res = scale("make-tree", root, *SMALL_TREE)
    assert res.returncode == 0, res.stderr[-2000:]
    return root


def test_make_tree_writes_imagenets_layout(tree):
    """1,000 wnid train folders, val per synset below 50,000, the four conventional OOD folders
    (Textures in DTD's category folders), all read by the data stage's reader."""
    b = read_imagenet(tree, "imagenet_conventional")
    assert len(b.classes) == 1000 and len(b.pool) == 2000 and (b.test.set == "id").sum() == 1000
    assert b.test.set.value_counts().to_dict() == {"id": 1000, "iNaturalist": 2, "SUN": 2, "Places": 2, "Textures": 47}
    assert len(list((tree / "dtd/images").iterdir())) == 47
    again = scale("make-tree", tree, *SMALL_TREE)  # existing files are kept: a killed run resumes
    assert "(0 written)" in again.stdout
    # the sizes it holds, declared for the data stage's count check (`negprompt check-data` reads the same)
    checked = CliRunner().invoke(app, ["check-data", str(tree)])
    assert checked.exit_code == 0 and "declared by" in checked.stdout, checked.output


def test_flat_val_at_the_real_count_follows_val_labels(tmp_path):
    files = script().tree_files(tmp_path, 1, 50_000, 0, 0)
    val = [f for f in files if f.parent == tmp_path / "val"]
    assert len(val) == 50_000 and val[0].name == "ILSVRC2012_val_00000001.JPEG"


def test_variants_rerun_only_the_stages_they_change():
    """A side-by-side variant reruns from the first stage its keys feed (features, train_pos or
    train_neg) through score; fp16 features are compared on CUDA only (the stage refuses them on CPU)."""
    affected, compare_variants, dvc_stages, parse_sets = (
        getattr(script(), n) for n in ("affected", "compare_variants", "dvc_stages", "parse_sets")
    )
    assert affected(["features.dtype"]) == "features" and affected(["pos.amp", "neg.amp"]) == "train_pos"
    assert affected(["neg.chunk"]) == "train_neg"
    assert set(compare_variants("cpu")) == {"amp", "chunk250", "chunk500"}
    assert compare_variants("cuda")["features_float16"] == {"features.dtype": "float16"}
    assert parse_sets(["neg.chunk=250", "pos.amp=true"]) == {"neg.chunk": 250, "pos.amp": True}
    stages = dvc_stages(REPO / "dvc.yaml", [1, 2])
    names = [name for name, _ in stages]
    assert names.index("features") < names.index("train_pos@1") < names.index("train_pos@2") < names.index("report")
    assert dict(stages)["train_neg@2"] == ["pipeline.train_neg", "--seed", "2"]


def test_missing_folders_are_named_with_their_expected_count(tree, tmp_path):
    root = tmp_path / "partial"  # a half-copied tree: SUN/ and the first train class not there yet
    (root / "train").mkdir(parents=True)
    for rel in ("val", "iNaturalist", "Places", "dtd"):
        (root / rel).symlink_to(tree / rel)
    for wnid in sorted(p.name for p in (tree / "train").iterdir())[1:]:
        (root / "train" / wnid).symlink_to(tree / "train" / wnid)
    with pytest.raises(NegPromptError, match=r"1 of the 1,000 train class folders are missing \(first: train/n0144"):
        read_imagenet(root, "imagenet_conventional")
    (root / "train/n01440764").symlink_to(tree / "train/n01440764")
    with pytest.raises(NegPromptError, match=r"folder SUN/ is missing \(expected 10,000 images"):
        read_imagenet(root, "imagenet_conventional")


def test_unknown_architecture_fails_with_the_params(tmp_path):
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["backbone"]["model"] = "ViT-B-17"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    res = stage(tmp_path, "data")
    one_line_error(res, "backbone.model = 'ViT-B-17'", "is not an open_clip model", "ViT-B-16")
    assert not (tmp_path / "data").exists()


@pytest.mark.slow
def test_random_backbone_export_and_a_corrupt_jpeg(tree, tmp_path):
    """The tiny architecture with random weights on hard split 2 (30 classes): export refuses it;
    a corrupt test JPEG stops the features stage naming it (nothing written), or is skipped and counted."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["data"].update(benchmark="imagenet_hard", hard_split="split2", root=str(tree))
    params["backbone"].update(model=TINY_MODEL, pretrained="random")
    params["subset"].update(seeds=[1], shots=1, calib_per_class=0)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    for name in ("tree", "data", "backbone", "subset"):
        assert stage(tmp_path, name).returncode == 0, name
    assert json.loads((tmp_path / "models/backbone/manifest.json").read_text())["pretrained"] == "random"
    one_line_error(stage(tmp_path, "export"), "random weights", "scale test")
    assert not (tmp_path / "models/detector").exists()

    test = pd.read_parquet(tmp_path / "data/benchmark/test.parquet")
    bad = tree / test.path.iloc[0]
    original = bad.read_bytes()
    try:
        bad.write_bytes(original[: len(original) // 3])  # truncated: PIL cannot decode it
        one_line_error(stage(tmp_path, "features"), str(bad), "not a readable image")
        assert not (tmp_path / "features").exists() and not list(tmp_path.glob(".features.*"))
        params["features"]["on_bad_image"] = "skip"
        (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
        res = stage(tmp_path, "features")
        assert res.returncode == 0, res.stderr[-2000:]
        assert "skipped 1 unreadable images" in res.stdout and str(bad) in res.stdout
        cached = pd.read_parquet(tmp_path / "features/test.parquet")
        assert len(cached) == len(test) - 1 and test.path.iloc[0] not in set(cached.path)
    finally:
        bad.write_bytes(original)


@pytest.mark.slow
def test_vit_b16_random_through_every_stage_on_cpu(tree, tmp_path):
    """The real architecture's shapes (77-token context, 196 patches, widths 512/768, features.local)
    through the real stages via the scale script at their smallest counts: hard split 2 (30 ID classes, 116 test
    images), 1 shot, 1 epoch each, one seed, one thread (a pytest-xdist worker per core)."""
    out = tmp_path / "scale.json"
    res = scale(
        "run",
        tree,
        "--device",
        "cpu",
        "--benchmark",
        "imagenet_hard",
        "--hard-split",
        "split2",
        "--seeds",
        "1",
        "--shots",
        "1",
        "--calib",
        "0",
        "--pos-epochs",
        "1",
        "--neg-epochs",
        "1",
        "--local",
        "--corpus-words",
        "100",
        "--num-workers",
        "0",
        "--feature-batch",
        "64",
        "--set",
        "neglabel.groups=2",
        "--set",
        "family.methods=[adaneg]",  # one family member: CSP's template ensemble and TANL's noise images are 60 s here
        "--set",
        "report.tsne_images=10",
        "--no-flops",
        "--work",
        tmp_path / "work",
        "--out",
        out,
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    result = json.loads(out.read_text())
    stages = result["stages"]
    core = [
        "data",
        "backbone",
        "neglabel",
        "subset",
        "features",
        "train_pos@1",
        "train_neg@1",
        "score@1",
        "report",
        "export",
    ]
    assert [name for name in stages if name in core] == core  # dvc.yaml's order (other stages may sit between)
    assert all(row["exit"] == 0 for name, row in stages.items() if name != "export")
    assert stages["export"]["refused_as_expected"]
    assert stages["features"]["images"] == 1 * 30 + 116 and stages["train_pos@1"]["prompts_per_step"] == 30
    pos = result["extrapolated"]["stages"]["train_pos@1"]
    assert (pos["ran_epochs"], pos["paper_epochs"], pos["ran_shots"], pos["measured"]) == (1, 100, 1, False)
    work = tmp_path / "work"
    patches = np.load(work / "features/test_local.npy", mmap_mode="r")
    assert patches.shape == (116, 196, 512) and patches.dtype == np.float16  # 224 / 16 = 14 x 14 patches, embed 512
    report = (work / "reports/report.md").read_text().splitlines()
    assert report[2].startswith("> **Scale test, not results.**")
    import open_clip

    cfg = open_clip.get_model_config("ViT-B-16")
    assert (cfg["text_cfg"]["context_length"], cfg["text_cfg"]["width"], cfg["vision_cfg"]["width"]) == (77, 512, 768)


def test_a_random_backbone_report_opens_with_scale_test_not_results():
    from negprompt.report.narrative import scale_test_note

    assert scale_test_note({"model": "ViT-B-16", "pretrained": "random"}).startswith("\n> **Scale test, not results.**")
    assert scale_test_note({"model": "ViT-B-16", "pretrained": "laion2b_s34b_b88k"}) == ""
