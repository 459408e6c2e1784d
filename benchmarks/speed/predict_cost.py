"""Predicted GPU cost of each paper table before running it: FLOPs counted by torch, divided by a GPU's peak.

One batch of each operation is counted with `torch.utils.flop_counter.FlopCounterMode` on open_clip's ViT-B-16 at
random init (`open_clip.create_model`, no download): the image tower's forward for one 224 px image (features), and
the text tower's forward + backward for one 77-token prompt with gradients to its input only (the prompt learner's
step: the tower is frozen). Those are scaled by ImageNet's counts per stage and the rows of
benchmarks/experiments/grid.yaml, then divided by the card's published dense peak (PEAKS) times an assumed
utilisation (UTILISATION). Peak memory is the weights plus the training step's stored activations (Korthikanti et al.
2022: s*b*h*(34 + 5*a*s/h) bytes per layer at 16 bit, twice at float32). Predicted, not measured: JPEG decoding
(CPU), per-epoch evaluation and start-up are not in the figures.

    python benchmarks/speed/predict_cost.py --table table2 --gpu h200
    python benchmarks/speed/predict_cost.py --model miniworld-tiny --table table2   # seconds on a CPU
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import typer
import yaml

REPO = Path(__file__).resolve().parents[2]
# Dense (no sparsity) tensor-core peaks, TFLOP/s, from NVIDIA's H100 / H200 datasheets (SXM form factor; the
# datasheets print twice these "with sparsity"): BF16/FP16 989.4, TF32 494.7; memory 80 GB HBM3 at 3.35 TB/s (H100
# SXM), 141 GB HBM3e at 4.8 TB/s (H200)
PEAKS = {
    "h100": {"bf16": 989.4e12, "tf32": 494.7e12, "bytes_per_s": 3.35e12, "memory_gb": 80},
    "h200": {"bf16": 989.4e12, "tf32": 494.7e12, "bytes_per_s": 4.8e12, "memory_gb": 141},
}
UTILISATION = 0.4  # assumed fraction of peak reached by these batched transformer matmuls (not measured)
IMAGENET = {
    "train_classes": 1000,
    "val": 50_000,
    "ood": {"iNaturalist": 10_000, "SUN": 10_000, "Places": 10_000, "Textures": 5_640},
}
app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


def count_flops(model_name: str) -> dict:
    """FLOPs of one image forward and of one prompt's text-tower forward + input-only backward, and the shapes."""
    import logging

    import open_clip
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    import negprompt.clip.backbone  # noqa: F401  (registers the project's tiny architectures)

    logging.getLogger().setLevel(logging.ERROR)  # "no pretrained weights": random init is the point
    model = open_clip.create_model(model_name, device="cpu").eval().requires_grad_(False)
    size = model.visual.image_size
    size = size[0] if isinstance(size, (tuple, list)) else size
    with torch.no_grad(), FlopCounterMode(display=False) as image:
        model.encode_image(torch.zeros(1, 3, size, size))
    tokens = open_clip.get_tokenizer(model_name)(["a photo of a dog."])
    x = model.token_embedding(tokens).detach().requires_grad_(True)
    with FlopCounterMode(display=False) as text:
        h = model.transformer(x + model.positional_embedding, attn_mask=model.attn_mask)
        out = model.ln_final(h)[:, -1] @ model.text_projection
        out.sum().backward()
    with torch.no_grad(), FlopCounterMode(display=False) as text_fwd:
        model.encode_text(tokens)
    t = model.transformer
    return {
        "image": image.get_total_flops(),
        "prompt_train": text.get_total_flops(),
        "prompt_forward": text_fwd.get_total_flops(),
        "ctx": tokens.shape[1],
        "width": t.width,
        "layers": t.layers,
        "heads": t.resblocks[0].attn.num_heads,
        "weight_bytes": sum(p.numel() for p in model.parameters()) * 4,
    }


def activation_bytes(prompts: int, f: dict, amp: bool) -> float:
    """Stored activations of a forward kept for backward (Korthikanti et al. 2022, Eq. 2), all layers."""
    s, h, a = f["ctx"], f["width"], f["heads"]
    per_layer = s * prompts * h * (34 + 5 * a * s / h)
    return per_layer * f["layers"] * (1 if amp else 2)


def rows(table: str) -> dict[str, dict]:
    grid = yaml.safe_load((REPO / "benchmarks/experiments/grid.yaml").read_text())
    table = grid.get("aliases", {}).get(table, table)
    out = {name: row["params"] for name, row in grid["experiments"].items() if row["group"] == table}
    if not out:
        raise typer.BadParameter(f"--table {table!r}: no rows of that group in grid.yaml")
    return out


def row_cost(params: dict, base: dict, f: dict, gpu: dict, chunk: int, amp: bool) -> dict:
    """GPU-seconds and peak bytes per stage for one grid row on ImageNet."""
    p = {**base, **params}
    benchmark = p.get("data.benchmark", "imagenet_conventional")
    if benchmark == "imagenet_hard":
        splits = json.loads((REPO / "src/negprompt/resources/hard_splits.json").read_text())
        classes = len(splits[p.get("data.hard_split", "split1")]["id"])
    else:
        classes = IMAGENET["train_classes"]
    if p.get("open_vocab"):
        classes = max(1, int(classes * p["subset.open_vocab_fraction"]))
    seeds, shots, calib = len(p["subset.seeds"]), p["subset.shots"], p["subset.calib_per_class"]
    images = IMAGENET["train_classes"] * (shots + calib) * seeds + IMAGENET["val"] + sum(IMAGENET["ood"].values())
    rate = gpu["bf16" if amp else "tf32"] * UTILISATION
    feat = images * f["image"] / (gpu["tf32"] * UTILISATION)  # features: float32 (TF32 on CUDA)
    steps = math.ceil(classes * shots / p["pos.batch_size"])
    p_neg = p["neg.num_prompts"]
    recompute = (f["prompt_forward"] if chunk else 0) / f["prompt_train"]
    one = f["prompt_train"] * (1 + recompute)
    pos = seeds * p["pos.epochs"] * steps * classes * one / rate
    neg_prompts = classes * (p_neg + (1 if p.get("neg.one_stage") else 0))
    neg = seeds * p["neg.epochs"] * math.ceil(classes * shots / p["neg.batch_size"]) * neg_prompts * one / rate
    mem = {
        k: f["weight_bytes"] + activation_bytes(min(n, chunk or n), f, amp)
        for k, n in (("train_pos", classes), ("train_neg", neg_prompts))
    }
    return {
        "classes": classes,
        "images": images,
        "seconds": {"features": feat, "train_pos": pos, "train_neg": neg},
        "peak_bytes": {"features": f["weight_bytes"], **mem},
    }


@app.command()
def main(
    table: str = typer.Option("table2", help="a group of grid.yaml: table2, table3, table4 (= table2), table5"),
    gpu: str = typer.Option("h200", help="h100 (SXM) or h200"),
    model: str = typer.Option("ViT-B-16", help="open_clip architecture counted (the tiny ones for a quick check)"),
    chunk: int = typer.Option(0, help="pos/neg.chunk: prompts encoded at once, recomputed in backward"),
    amp: bool = typer.Option(True, help="the training stages in fp16/bf16 (amp: auto on CUDA)"),
):
    """Print predicted GPU-minutes and peak memory per stage and per row of TABLE."""
    if gpu not in PEAKS:
        raise typer.BadParameter(f"--gpu {gpu!r}: expected one of {', '.join(PEAKS)}")
    base_yaml = yaml.safe_load((REPO / "params.yaml").read_text())
    base = {f"{s}.{k}": v for s in ("subset", "pos", "neg") for k, v in base_yaml[s].items()}
    base |= {"pos.epochs": 100, "data.benchmark": "imagenet_conventional"}
    f = count_flops(model)
    print(
        f"{model}: {f['image'] / 1e9:.2f} GFLOP per image, {f['prompt_train'] / 1e9:.2f} GFLOP per prompt "
        f"forward+backward; {gpu} dense peak x {UTILISATION:.0%} assumed utilisation; predicted, not measured"
    )
    print("| row | classes | features min | train_pos min | train_neg min | total min | peak GB (train) |")
    print("|---|---|---|---|---|---|---|")
    total, peak, cached = 0.0, 0.0, set()
    for name, params in rows(table).items():
        c = row_cost(params, base, f, PEAKS[gpu], chunk, amp)
        m = {k: v / 60 for k, v in c["seconds"].items()}
        key = (params.get("data.benchmark"), params.get("backbone.model"), params.get("data.hard_split"))
        if key in cached:  # DVC's run-cache: a row with the same features params reuses them
            m["features"] = 0.0
        cached.add(key)
        gb = max(c["peak_bytes"].values()) / 1e9
        total, peak = total + sum(m.values()), max(peak, gb)
        print(
            f"| {name} | {c['classes']} | {m['features']:.1f} | {m['train_pos']:.1f} | {m['train_neg']:.1f} "
            f"| {sum(m.values()):.1f} | {gb:.1f} |"
        )
    print(f"| {table} | | | | | {total:.1f} | {peak:.1f} |")
    return total, peak


if __name__ == "__main__":
    app()
