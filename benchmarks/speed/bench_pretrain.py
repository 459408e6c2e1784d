"""Where a web-phase pretraining step's time goes, side by side in one run: rendering a batch (in 0..N worker
processes), tokenizing its captions, and the training step itself with torch's deterministic algorithms on (as
every stage runs) and off.

    python benchmarks/speed/bench_pretrain.py [--device cuda] [--workers 0 1 15] [--batches 40] [--json FILE]

The step rate `make pretrain` can reach is bounded by the slowest of the three that run one after another in the
training process (tokenize + step) and the rendering that runs beside it in the workers.
"""

from __future__ import annotations

import functools
import json
import os
import time

import numpy as np
import open_clip
import torch
import typer

from negprompt import commands
from negprompt.benchmarks import openmoji
from negprompt.clip import backbone
from negprompt.clip.prompts import TextTower
from negprompt_standin import captions as cap
from negprompt_standin import contrastive, openmoji_render, pretraining


def per_second(fn, n: int, sync=lambda: None) -> float:
    fn()  # warm-up (glyph caches, CUDA kernels)
    sync()
    t = time.perf_counter()
    for _ in range(n):
        fn()
    sync()
    return n / (time.perf_counter() - t)


def main(
    device: str = typer.Option("auto", help="auto, cpu, cuda, cuda:N"),
    workers: list[int] = typer.Option([0, 1], help="rendering worker processes, one figure each: --workers 0 4 15"),
    batches: int = typer.Option(20, help="timed batches (and steps) per figure"),
    batch_size: int = typer.Option(256, help="images per web batch"),
    font: str = typer.Option("", help="OpenMoji font file ('' = the shipped one)"),
    json_out: str = typer.Option("", "--json", help="also write the rates to this JSON file"),
) -> None:
    """Where a web-phase pretraining step's time goes: rendering, tokenizing, the training step."""
    dev = backbone.resolve_device(device)
    font = font or str(openmoji_render.default_font())
    world = openmoji.build_world(0, vocabulary=openmoji.VOCABULARY_TABLE)
    sample = functools.partial(
        cap.web_batch,
        world.captioned,
        batch_size=batch_size,
        clutter_from=world.all_concepts,
        noise=0.2,
        font=font,
        scenes=world.scenes_from(("place", "texture", "plant")),
        scene=0.3,
    )
    rows = {}
    for w in workers:  # a fresh stream each, timed from its start (workers forked, caches cold) to its last batch
        n = batches * max(1, w)
        t = time.perf_counter()
        stream = pretraining.step_batches(sample, n, 0, w)
        for _ in range(n):
            stream(None)
        rows[f"render, {w} workers (batches/s)"] = n / (time.perf_counter() - t)
    images, captions = sample(np.random.default_rng(0))
    tokenizer = open_clip.get_tokenizer(backbone.STANDIN_MODEL)
    rows["tokenize (batches/s)"] = per_second(lambda: tokenizer(captions), batches)
    tokens = tokenizer(captions)
    model = backbone.create_untrained(backbone.STANDIN_MODEL, dev).train()
    model.logit_scale.requires_grad_(False)
    opt, sched = contrastive.clip_optimizer(model, 1e-4, 10**6)
    step = functools.partial(
        contrastive.contrastive_step, model, TextTower(model), open_clip.ClipLoss(), opt, sched, images, tokens, dev
    )
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    for deterministic in (False, True):
        torch.use_deterministic_algorithms(deterministic, warn_only=True)
        rows[f"training step, deterministic {'on' if deterministic else 'off'} (steps/s)"] = per_second(
            step, batches, sync
        )
    base = rows[f"render, {workers[0]} workers (batches/s)"]
    print(
        f"device {torch.cuda.get_device_name(dev) if dev.type == 'cuda' else 'cpu'}, {os.cpu_count()} CPUs, "
        f"{torch.get_num_threads()} torch threads, batch {batch_size}"
    )
    for name, rate in rows.items():
        print(
            f"{name:52s} {rate:8.1f}/s  {1e3 / rate:7.1f} ms  "
            f"x{rate / base:5.2f} of rendering with {workers[0]} workers"
        )
    if json_out:
        with open(json_out, "w") as f:
            json.dump(
                {"device": str(dev), "cpus": os.cpu_count(), "batch_size": batch_size, "per_second": rows},
                f,
                indent=1,
            )


if __name__ == "__main__":
    commands.run(main)
