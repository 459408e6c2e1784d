import json

import numpy as np
import open_clip
import pandas as pd
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file
from typer.testing import CliRunner

from negprompt.benchmarks import miniworld as mw
from negprompt.cli import app
from negprompt.clip.backbone import TINY_MODEL, sha256
from negprompt.detector import export_bundle


def _checkpoint(path, seed):
    torch.manual_seed(seed)
    model = open_clip.create_model(TINY_MODEL)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bundle")
    ckpt = _checkpoint(tmp / "tiny.safetensors", 0)
    manifest = {"model": TINY_MODEL, "pretrained": "", "checkpoint": str(ckpt), "weights_sha256": sha256(ckpt)}
    g = torch.Generator().manual_seed(0)
    export_bundle(
        tmp / "detector",
        manifest,
        ["crimson star", "teal ring", "gold heart"],
        torch.randn(4, 128, generator=g) * 0.02,
        torch.randn(2, 4, 128, generator=g) * 0.02,
        temperature=1.0,
        threshold=0.34,
    )
    return tmp / "detector"


@pytest.fixture()
def images(tmp_path):
    folder = tmp_path / "imgs"
    (folder / "sub").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i, c in enumerate([mw.Concept("crimson", "star"), mw.Concept("teal", "ring"), mw.Concept("gold", "crescent")]):
        Image.fromarray(mw.render(c, rng)).save(folder / ("sub" if i == 2 else ".") / f"img{i}.{'jpg' if i else 'png'}")
    (folder / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    (folder / "notes.txt").write_text("not an image")
    (folder / "empty.png").write_bytes(b"")
    jpeg = folder / "img1.jpg"
    (folder / "truncated.jpg").write_bytes(jpeg.read_bytes()[: len(jpeg.read_bytes()) // 3])
    return folder


UNREADABLE = ["corrupt.png", "empty.png", "notes.txt", "truncated.jpg"]
VERDICT = ["predicted_class", "id_score", "is_ood", "top_negative_similarity"]


@pytest.mark.parametrize("fmt", ["csv", "json", "parquet"])
def test_unreadable_files_get_no_verdict(bundle, images, tmp_path, fmt):
    """An unreadable file's row has null verdict columns in every format, so keeping the
    in-distribution images with is_ood == False never passes an unreadable file on."""
    out = tmp_path / f"res.{fmt}"
    res = CliRunner().invoke(
        app, ["detect", str(bundle), str(images), "--out", str(out), "--format", fmt, "--threshold", "2"]
    )
    assert res.exit_code == 0, res.output
    assert "3 images scored: 3 flagged OOD" in res.output and "4 unreadable" in res.output
    if fmt == "csv":
        df = pd.read_csv(out, keep_default_na=False, dtype=str)
        bad = df[df.path.map(lambda p: p.split("/")[-1]).isin(UNREADABLE)]
        assert (bad[VERDICT] == "").all().all()
        assert (df[df.error == ""].is_ood == "True").all()
        df = pd.read_csv(out)
    elif fmt == "json":
        rows = json.loads(out.read_text())
        bad = [r for r in rows if r["path"].split("/")[-1] in UNREADABLE]
        assert len(bad) == 4 and all(r[c] is None for r in bad for c in VERDICT)
        df = pd.DataFrame(rows)
    else:
        import pyarrow.parquet as pq

        schema = pq.read_schema(out)
        assert str(schema.field("is_ood").type) == "bool" and str(schema.field("id_score").type) == "double"
        df = pd.read_parquet(out)
        assert str(df.is_ood.dtype) == "boolean"
    names = df.path.map(lambda p: p.split("/")[-1])
    assert df[names.isin(UNREADABLE)][VERDICT].isna().all().all()
    # with threshold 2 every readable image is OOD: filtering for ID keeps nothing, never an unreadable file
    assert len(df[df.is_ood == False]) == 0  # noqa: E712
    res = CliRunner().invoke(
        app, ["detect", str(bundle), str(images), "--out", str(out), "--format", fmt, "--threshold", "0"]
    )
    df = (
        pd.read_parquet(out)
        if fmt == "parquet"
        else pd.read_csv(out)
        if fmt == "csv"
        else pd.DataFrame(json.loads(out.read_text()))
    )
    kept = df[df.is_ood == False].path.map(lambda p: p.split("/")[-1])  # noqa: E712
    assert sorted(kept) == ["img0.png", "img1.jpg", "img2.jpg"]


def test_detect_scores_images_and_reports_bad_files(bundle, images, tmp_path):
    out = tmp_path / "res.csv"
    res = CliRunner().invoke(app, ["detect", str(bundle), str(images), "--out", str(out)])
    assert res.exit_code == 0, res.output
    df = pd.read_csv(out, keep_default_na=False)
    assert {"path", "predicted_class", "id_score", "is_ood", "top_negative_similarity", "error"} <= set(df.columns)
    assert len(df) == 7
    bad = df[df.error != ""]
    assert sorted(p.split("/")[-1] for p in bad.path) == UNREADABLE
    good = df[df.error == ""]
    assert set(good.predicted_class) <= {"crimson star", "teal ring", "gold heart"}
    scores = good.id_score.astype(float)
    assert ((scores > 0) & (scores <= 1)).all()
    assert (good.is_ood.astype(str) == (scores < 0.34).astype(str)).all()


def test_detect_strict_and_formats(bundle, images, tmp_path):
    res = CliRunner().invoke(
        app, ["detect", str(bundle), str(images), "--out", str(tmp_path / "r.json"), "--format", "json", "--strict"]
    )
    assert res.exit_code == 1
    rows = json.loads((tmp_path / "r.json").read_text())
    assert len(rows) == 7
    res = CliRunner().invoke(
        app,
        [
            "detect",
            str(bundle),
            str(images / "img0.png"),
            "-o",
            str(tmp_path / "r.parquet"),
            "--format",
            "parquet",
            "--threshold",
            "2",
        ],
    )
    assert res.exit_code == 0 and pd.read_parquet(tmp_path / "r.parquet").is_ood.all()


def test_detect_refuses_other_backbone_and_broken_bundle(bundle, images, tmp_path):
    other = _checkpoint(tmp_path / "other.safetensors", 1)
    out = tmp_path / "res.csv"
    res = CliRunner().invoke(app, ["detect", str(bundle), str(images), "--out", str(out), "--checkpoint", str(other)])
    assert res.exit_code == 2 and "learned on another backbone" in res.output and not out.exists()
    broken = tmp_path / "broken"
    broken.mkdir()
    for f in bundle.iterdir():
        broken.joinpath(f.name).write_bytes(f.read_bytes())
    data = (broken / "prompts.safetensors").read_bytes()
    (broken / "prompts.safetensors").write_bytes(data[:100])
    res = CliRunner().invoke(app, ["detect", str(broken), str(images), "--out", str(out)])
    assert res.exit_code == 2 and "prompts.safetensors: not a valid safetensors file" in res.output and not out.exists()
