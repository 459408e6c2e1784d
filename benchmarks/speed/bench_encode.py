"""Encoding throughput, measured side by side in one run.

text:   prompts/s of the prompt learner's text pass (no grad): the full 77-token context vs
        EOT-truncated vs truncated + length-sorted chunks, on the first k ImageNet class names
images: feature caching from image files (JPEGs the script writes): images/s of the data loader
        alone and of `encode_images` end to end, with 0 and N loader workers

    python benchmarks/speed/bench_encode.py --model ViT-B-16 --classes 1000 --images 256
        [--workers 2] [--device cpu|cuda] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import open_clip
import torch
from bench_step import FullLengthPrompts, median_seconds
from PIL import Image
from torch.utils.data import DataLoader

import negprompt.clip.backbone  # noqa: F401  (registers the mini-world model config)
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


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="ViT-B-16")
    ap.add_argument("--classes", type=int, default=1000, help="prompts in the text pass (first k ImageNet names)")
    ap.add_argument("--images", type=int, default=256, help="generated JPEGs for the caching measurement")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    model, _, preprocess = open_clip.create_model_and_transforms(args.model, device=device)  # random init: no download
    model.eval().requires_grad_(False)
    tokenizer = open_clip.get_tokenizer(args.model)
    info = {
        "model": args.model,
        "device": torch.cuda.get_device_name() if device.type == "cuda" else f"cpu ({os.cpu_count()} cores)",
        "threads": torch.get_num_threads(),
        "text": text_rates(model, tokenizer, args.classes, device, args.repeats),
        "images": image_rates(model, preprocess, args.images, args.workers, args.batch, device, args.repeats),
    }
    if args.json:
        print(json.dumps(info))
    else:
        print(f"{args.model} on {info['device']}")
        for group in ("text", "images"):
            for key, value in info[group].items():
                print(f"  {group:6} {key:<40} {value}")


if __name__ == "__main__":
    main()
