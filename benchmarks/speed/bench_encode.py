"""Encoding throughput, measured side by side in one run.

text:   prompts/s of the prompt learner's text pass (no grad): the full 77-token context vs
        EOT-truncated vs truncated + length-sorted chunks, on the first k ImageNet class names
images: feature caching from image files (JPEGs the script writes): images/s of the data loader
        alone and of `encode_images` end to end, with 0 and N loader workers

    python benchmarks/speed/bench_encode.py --model ViT-B-16 --classes 1000 --images 256
        [--workers 2] [--device cpu|cuda] [--json]
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np
import open_clip
import torch
import typer
from bench_step import FullLengthPrompts, median_seconds
from PIL import Image
from torch.utils.data import DataLoader

import negprompt.clip.backbone  # noqa: F401  (registers the mini-world model config)
from negprompt import commands
from negprompt.benchmarks.imagenet import imagenet_classes
from negprompt.clip.features import ImageFiles, _collate, encode_images
from negprompt.clip.prompts import PromptEncoder, TextTower, init_context


def rate(fn, n: int, device, repeats: int = 3) -> float:
    """Items per second: n items per call, median of `repeats` calls after one warm-up call."""
    return n / median_seconds(fn, device, repeats, warmup=1)


@torch.no_grad()
def text_rates(model, tokenizer, k: int, device, repeats: int) -> dict:
    names = imagenet_classes().name.tolist()[:k]
    ctx = init_context(TextTower(model), tokenizer, "a photo of a", 16).to(device)
    full = FullLengthPrompts(model, tokenizer, names, len(ctx))
    ours = PromptEncoder(model, tokenizer, names, len(ctx))
    chunk = max(1, k // 8)
    return {
        "prompts": k,
        "tokens_full": int(full.suffix.shape[1] + 1 + len(ctx)),
        "tokens_truncated": int(ours.suffix.shape[1] + 1 + len(ctx)),
        "full_77_per_s": round(rate(lambda: full(ctx), k, device, repeats), 1),
        "truncated_per_s": round(rate(lambda: ours(ctx), k, device, repeats), 1),
        f"truncated_sorted_chunks_{chunk}_per_s": round(rate(lambda: ours(ctx, chunk=chunk), k, device, repeats), 1),
    }


def image_rates(model, preprocess, n: int, workers: int, batch: int, device, repeats: int) -> dict:
    out = {"images": n}
    with tempfile.TemporaryDirectory() as tmp:
        rng = np.random.default_rng(0)
        paths = []
        for i in range(n):  # ImageNet-like files: 500 x 375 JPEGs
            p = Path(tmp) / f"{i:05d}.JPEG"
            Image.fromarray(rng.integers(0, 255, (375, 500, 3), dtype=np.uint8)).save(p, quality=90)
            paths.append(p)
        for w in sorted({0, workers}):

            def load(w=w):
                for _ in DataLoader(
                    ImageFiles(paths, preprocess),
                    batch_size=batch,
                    num_workers=w,
                    collate_fn=_collate,
                    pin_memory=device.type == "cuda",
                ):
                    pass

            out[f"loader_only_workers{w}_per_s"] = round(rate(load, n, device, repeats), 1)
            out[f"encode_images_workers{w}_per_s"] = round(
                rate(lambda w=w: encode_images(model, preprocess, paths, batch, w, device), n, device, 1), 1
            )
    return out


def main(
    model_name: str = typer.Option("ViT-B-16", "--model", help="open_clip architecture (random weights)"),
    classes: int = typer.Option(1000, help="prompts in the text pass (first k ImageNet names)"),
    images: int = typer.Option(256, help="generated JPEGs for the caching measurement"),
    batch: int = typer.Option(64, help="images per batch"),
    workers: int = typer.Option(min(8, os.cpu_count() or 1), help="data loader workers (measured beside 0)"),
    repeats: int = typer.Option(3, help="timed calls per figure (median)"),
    device_name: str = typer.Option("cuda" if torch.cuda.is_available() else "cpu", "--device"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON line instead of the table"),
):
    """Encoding throughput: text prompts/s (77 tokens, EOT-truncated, chunked) and image feature caching."""
    device = torch.device(device_name)
    torch.manual_seed(0)
    model, _, preprocess = open_clip.create_model_and_transforms(model_name, device=device)  # random init: no download
    model.eval().requires_grad_(False)
    tokenizer = open_clip.get_tokenizer(model_name)
    info = {
        "model": model_name,
        "device": torch.cuda.get_device_name() if device.type == "cuda" else f"cpu ({os.cpu_count()} cores)",
        "threads": torch.get_num_threads(),
        "text": text_rates(model, tokenizer, classes, device, repeats),
        "images": image_rates(model, preprocess, images, workers, batch, device, repeats),
    }
    if as_json:
        print(json.dumps(info))
    else:
        print(f"{model_name} on {info['device']}")
        for group in ("text", "images"):
            for key, value in info[group].items():
                print(f"  {group:6} {key:<40} {value}")


if __name__ == "__main__":
    commands.run(main)
