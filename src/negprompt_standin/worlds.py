"""The generated worlds (OpenMoji, the colour x shape mini-world) written to disk as image folders and
read back as a `Benchmark`: the only benchmark code that draws images (the data stage)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from negprompt import NegPromptError
from negprompt.benchmarks import miniworld, openmoji
from negprompt.benchmarks.tables import Benchmark, class_folders, ood_table, read_classes
from negprompt_standin import openmoji_render

WORLDS = {"miniworld": miniworld, "openmoji": openmoji}  # module with build_world and OOD_SETS
RENDER = {"miniworld": miniworld.render, "openmoji": openmoji_render.render}  # render(concept, rng, size)


def world_sets(root: Path, benchmark: str) -> tuple[str, ...]:
    """The world's OOD sets, as `world.json` recorded them when it was written."""
    try:
        return tuple(json.loads((root / "world.json").read_text())["ood"])
    except (OSError, ValueError, KeyError):
        raise NegPromptError(f"{root / 'world.json'}: missing or unreadable (re-run the data stage)") from None


def write_world(
    out: Path,
    benchmark: str,
    seed: int,
    train_per_class: int,
    test_per_class: int,
    ood_per_set: int,
    size: int,
    render=None,
    progress=None,
) -> None:
    """Render a generated world as PNG image folders plus `classes.tsv` and `world.json` under `out`;
    each OOD set has `ood_per_set` images spread evenly over its concepts. `render(world, concept,
    rng, size)` defaults to the world module's own `render(concept, rng, size)`."""
    module = WORLDS[benchmark]
    world = module.build_world(seed)
    draw = render or (lambda w, c, rng, size: RENDER[benchmark](c, rng, size))
    jobs = [("train", c, train_per_class) for c in world.id_classes] + [
        ("test", c, test_per_class) for c in world.id_classes
    ]
    jobs += [(f"ood/{s}", c, -(-ood_per_set // len(world.ood[s]))) for s in module.OOD_SETS for c in world.ood[s]]
    for i, (split, concept, n) in enumerate(progress(jobs) if progress else jobs):
        rng = np.random.default_rng([seed, i])
        folder = out / split / concept.id
        folder.mkdir(parents=True, exist_ok=True)
        for j in range(n):
            Image.fromarray(draw(world, concept, rng, size)).save(folder / f"{concept.id}_{j:04d}.png", optimize=False)
    pd.DataFrame({"class_id": [c.id for c in world.id_classes], "name": [c.name for c in world.id_classes]}).to_csv(
        out / "classes.tsv", sep="\t", index=False
    )
    (out / "world.json").write_text(
        json.dumps(
            {"benchmark": benchmark, "seed": seed, "ood": {s: [c.id for c in world.ood[s]] for s in module.OOD_SETS}},
            indent=1,
        )
    )


def read_world(root: Path, benchmark: str = "miniworld") -> Benchmark:
    if not root.is_dir():
        raise NegPromptError(f"{root}: {benchmark} root does not exist (run the data stage)")
    classes = read_classes(root / "classes.tsv")
    pool = class_folders(root / "train", classes.class_id.tolist(), root, "train")
    test = class_folders(root / "test", classes.class_id.tolist(), root, "test").assign(set="id")
    ood, names = ood_table(root, {s: f"ood/{s}" for s in world_sets(root, benchmark)})
    return Benchmark(root, classes, pool, pd.concat([test, ood], ignore_index=True), names)
