import json
import math
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_bench_step_runs_and_reports_every_field():
    out = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks/speed/bench_step.py"),
            "--model",
            "miniworld-tiny",
            "--classes",
            "3",
            "5",
            "--prompts",
            "1",
            "--batch",
            "4",
            "--steps",
            "1",
            "--warmup",
            "0",
            "--json",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    info = json.loads(out.stdout.strip().splitlines()[-1])
    assert [r["k"] for r in info["rows"]] == [3, 5]
    for row in info["rows"]:
        assert {
            "k",
            "p",
            "batch",
            "ours_s",
            "ours_no_prefix_s",
            "prefix_flop_ratio",
            "reference_s",
            "ratio",
            "ours_peak_mb",
            "ours_no_prefix_peak_mb",
            "reference_peak_mb",
        } <= set(row)
        assert row["ours_s"] > 0 and row["reference_s"] > 0 and row["ours_tokens"] < row["reference_tokens"]
        assert row["prefix_flop_ratio"] > 1  # the prefix is computed once, not once per class


def test_bench_step_stage1_with_a_16_token_context():
    out = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks/speed/bench_step.py"),
            "--model",
            "miniworld-tiny",
            "--classes",
            "4",
            "--stage",
            "pos",
            "--n-ctx",
            "16",
            "--batch",
            "4",
            "--steps",
            "1",
            "--warmup",
            "0",
            "--json",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    row = json.loads(out.stdout.strip().splitlines()[-1])["rows"][0]
    assert row["stage"] == "pos" and row["n_ctx"] == 16 and row["ours_no_prefix_s"] > 0
    assert row["prefix_flop_ratio"] > 2  # 17 of ~20 positions are the shared prefix


def test_bench_encode_runs_and_truncation_keeps_fewer_tokens():
    out = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks/speed/bench_encode.py"),
            "--model",
            "miniworld-tiny",
            "--classes",
            "6",
            "--images",
            "4",
            "--batch",
            "2",
            "--workers",
            "0",
            "--repeats",
            "1",
            "--device",
            "cpu",
            "--json",
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO / "benchmarks",
    )
    info = json.loads(out.stdout.strip().splitlines()[-1])
    assert info["text"]["tokens_truncated"] < info["text"]["tokens_full"]
    assert all(v > 0 for v in info["text"].values()) and all(v > 0 for v in info["images"].values())


def test_regime_by_style_reports_every_style_and_set(tmp_path):
    out = tmp_path / "regime.json"
    subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks/analyses/regime_by_style.py"),
            "--per-class",
            "1",
            "--per-set",
            "4",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    )
    info = json.loads(out.read_text())
    assert list(info["styles"]) == ["photo", "greyscale", "sketch", "blurry", "dark", "pixelated"]
    for d in info["styles"].values():
        assert set(d["ood"]) == {"near", "plant", "place", "texture"} and 0 <= d["zero_shot_top1"] <= 1
        assert d["sets"]["id"]["n"] == 200 and d["sets"]["texture"]["n"] == 4


def test_negatives_decomposition_brackets_negprompt_between_coop_and_a_constant():
    """Its per-image row is NegPrompt's Eq. 3 score (log), its constant-N row is CoOp's when the
    constant vanishes and NegPrompt's when every image's N equals the constant."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    from negprompt.methods.scores import decomposed_scores, extended_mcm, mcm

    g = torch.Generator().manual_seed(0)
    img, pos, neg = (F.normalize(torch.randn(*s, generator=g), dim=-1) for s in ((30, 16), (5, 16), (5, 2, 16)))
    pos_sim, neg_sim = img @ pos.T, torch.einsum("nd,kpd->nkp", img, neg)
    s = decomposed_scores(pos_sim, neg_sim, n_const=1e-30)
    assert torch.allclose(s["negprompt (per-image N)"].exp(), extended_mcm(pos_sim, neg_sim), atol=1e-6)
    assert torch.allclose(s["positives + constant N"], s["coop (positives only)"], atol=1e-6)
    assert torch.allclose(s["coop (positives only)"].exp(), mcm(pos_sim), atol=1e-6)
    one = F.normalize(torch.ones(16), dim=0)  # every negative the same direction, every image at cosine .5 to it
    img_const = 0.75**0.5 * F.normalize(img - (img @ one)[:, None] * one, dim=-1) + 0.5 * one
    s = decomposed_scores(
        img_const @ pos.T, torch.einsum("nd,kpd->nkp", img_const, one.expand(5, 2, 16)), n_const=10 * float(np.exp(0.5))
    )
    assert torch.allclose(s["negprompt (per-image N)"], s["positives + constant N"], atol=1e-5)


def test_bench_suffix_times_every_variant_and_they_compute_the_same_features(tmp_path):
    out = tmp_path / "suffix.json"
    subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks/speed/bench_suffix.py"),
            "--model",
            "miniworld-tiny",
            "--checkpoint",
            "",
            "--classes",
            "7",
            "--contexts",
            "2",
            "--steps",
            "1",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    (row,) = json.loads(out.read_text())["rows"]
    assert set(row["seconds"]) == {
        "padded, flash kernel",
        "padded, math kernel",
        "packed, flash kernel",
        "packed, math kernel (ours)",
    }
    assert all(s > 0 for s in row["seconds"].values())
    assert row["max_abs_feature_diff"] < 1e-5


def test_bench_pretrain_times_rendering_tokenizing_and_the_step(tmp_path):
    out = tmp_path / "p.json"
    subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks/speed/bench_pretrain.py"),
            "--device",
            "cpu",
            "--workers",
            "0",
            "1",
            "--batches",
            "1",
            "--batch-size",
            "8",
            "--json",
            str(out),
        ],
        check=True,
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    rates = json.loads(out.read_text())["per_second"]
    assert set(rates) == {
        "render, 0 workers (batches/s)",
        "render, 1 workers (batches/s)",
        "tokenize (batches/s)",
        "training step, deterministic off (steps/s)",
        "training step, deterministic on (steps/s)",
    }
    # rates, not their ratios: how fast each part runs against another depends on what else the machine runs (a test
    # that compared them failed under three pytest-xdist workers); benchmarks/RESULTS.md has the measured figures
    assert all(math.isfinite(rate) and rate > 0 for rate in rates.values()), rates


def test_neglabel_mining_counts_every_mined_name_by_role(tmp_path):
    out = tmp_path / "m.json"
    subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks/analyses/neglabel_mining.py"),
            "weights/openmoji-tiny.safetensors",
            "--json",
            str(out),
        ],
        check=True,
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    (row,) = json.loads(out.read_text())
    assert sum(row["mined_by_role"].values()) == row["mined"] > 0 and set(row["mined_by_role"]) <= set(
        row["corpus_by_role"]
    )
    # the official pool keeps the ID names (neglabel.exclude_id_names: false), and NegMining never keeps one
    assert row["corpus_by_role"].get("id", 0) > 0 and "id" not in row["mined_by_role"]
    assert set(row["ood"]) == {"near", "plant", "place", "texture"} and all(
        0 <= v["won_by_a_negative"] <= 1 for v in row["ood"].values()
    )


def test_test_durations_sums_each_files_setup_call_and_teardown(tmp_path):
    log = tmp_path / "test.log"
    log.write_text(
        "==== slowest durations ====\n"
        "12.50s call     tests/test_a.py::test_x\n"
        "3.00s setup    tests/test_b.py::test_y[1]\n"
        "2.25s call     tests/test_a.py::test_z\n"
        "0.50s teardown tests/test_b.py::test_y[1]\n"
        "(3 durations < 0.005s hidden.)\n"
    )
    out = tmp_path / "durations.json"
    script = REPO / "benchmarks/speed/test_durations.py"
    res = subprocess.run([sys.executable, str(script), str(log), "--json", str(out)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert json.loads(out.read_text()) == {"test_a.py": 14.8, "test_b.py": 3.5}  # longest first
    (tmp_path / "empty.log").write_text("no table here\n")
    res = subprocess.run([sys.executable, str(script), str(tmp_path / "empty.log")], capture_output=True, text=True)
    assert res.returncode == 2 and "no `--durations` lines" in res.stderr
