"""InterNeg's test-time inversion, measured side by side in one run: each template's words before "$" cached
(their keys and values computed once; each step runs "$" to EOT) against the whole template run every step.

One call of `interneg.invert` on a batch of images (10 AdamW steps, CLIP's 80 templates), best of `--repeats`,
and the largest difference between the two ways' text features (they compute the same function).

    python benchmarks/speed/bench_inversion.py                                  # the stand-in, 256 images
    python benchmarks/speed/bench_inversion.py --model ViT-B-16 --checkpoint "" --images 64
"""

from __future__ import annotations

import time
from unittest import mock

import open_clip
import torch
import torch.nn.functional as F
import typer

import negprompt.clip.backbone  # noqa: F401  (registers the stand-in model configs)
from negprompt import commands
from negprompt.clip.prompts import TextTower
from negprompt.io import write_json
from negprompt.methods import interneg


def best_of(repeats: int, fn) -> tuple[float, interneg.Inversion]:
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return min(times), out


def main(
    model_name: str = typer.Option("openmoji-tiny", "--model", help="open_clip architecture"),
    checkpoint: str = typer.Option("weights/openmoji-tiny.safetensors", help='"" = random init (no download)'),
    images: int = typer.Option(256, help="images inverted in one call (a stream batch)"),
    threads: int = typer.Option(1, help="torch threads (the score stage's streams run on one)"),
    repeats: int = typer.Option(3, help="timed calls per way (best of)"),
    json_out: str = typer.Option("", "--json", help="also write the figures to this file"),
):
    """InterNeg's inversion: cached template prefixes against the whole template each step."""
    torch.manual_seed(0)
    torch.set_num_threads(threads)
    model = open_clip.create_model(model_name, pretrained=checkpoint or None).eval().requires_grad_(False)
    tokenizer = open_clip.get_tokenizer(model_name)
    dim = model.text_projection.shape[1] if model.text_projection is not None else TextTower(model).width
    img = F.normalize(torch.randn(images, dim, generator=torch.Generator().manual_seed(0)), dim=-1)

    def invert():
        return interneg.invert(model, tokenizer, img, generator=torch.Generator().manual_seed(0))

    cached_s, cached = best_of(repeats, invert)
    with mock.patch.object(TextTower, "supports_shared_prefix", lambda self: False):
        whole_s, whole = best_of(repeats, invert)
    diff = float((cached.feats - whole.feats).abs().max())
    print(
        f"{model_name}, {images} images, 10 steps, {threads} thread(s), best of {repeats}: cached prefixes "
        f"{cached_s:.2f} s, whole templates {whole_s:.2f} s ({whole_s / cached_s:.2f}x); per 10,000 images "
        f"{cached_s / images * 1e4:.0f} s against {whole_s / images * 1e4:.0f} s; features differ by at most {diff:.1e}"
    )
    if json_out:
        write_json(
            {
                "model": model_name,
                "images": images,
                "threads": threads,
                "cached_s": cached_s,
                "whole_s": whole_s,
                "speedup": whole_s / cached_s,
                "max_abs_feature_diff": diff,
            },
            json_out,
        )


if __name__ == "__main__":
    commands.run(main)
