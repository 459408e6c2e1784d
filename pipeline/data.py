"""Stage `data`: the benchmark as tables of image files (and, for the mini-world, the images)."""

import hashlib
from pathlib import Path

from negprompt import NegPromptError, progress
from negprompt.benchmarks import imagenet, inventory
from negprompt.benchmarks.tables import GENERATED
from negprompt.io import atomic_path, write_json, write_table
from negprompt.workspace import BENCHMARK, TREE, load_params
from negprompt_standin import openmoji_render, worlds
from pipeline.common import run


def read_tree(p) -> tuple:
    """A real benchmark's tables and its count check (inventory): a set short of its size stops here,
    before any feature, unless data.allow_partial."""
    if not p.root:
        raise NegPromptError(f"data.root is empty: {p.benchmark} needs the directory holding train/ and val/")
    root = Path(p.root).expanduser().resolve()
    bench = imagenet.read_imagenet(root, p.benchmark, p.hard_split)
    counts, source = inventory.count_sets(root, bench, p.benchmark, p.hard_split)
    if not all(c.ok for c in counts) and not p.allow_partial:
        raise NegPromptError(inventory.mismatch_message(root, counts))
    if not TREE.is_file():
        raise NegPromptError(f"{TREE}: not found (the `tree` stage lists data.root first: dvc repro tree)")
    return bench, inventory.check_summary(counts, source, hashlib.sha256(TREE.read_bytes()).hexdigest())


def main():
    p = load_params().data
    check = None  # generated benchmarks: nothing to count
    with atomic_path(BENCHMARK, directory=True) as out:
        if p.benchmark in GENERATED:
            render = None
            if p.benchmark == "openmoji":
                # fails here, before any image
                font = str(openmoji_render.load_font(p.font or str(openmoji_render.default_font())).path)

                def render(world, c, rng, size):
                    return openmoji_render.render(c, rng, size, others=world.all_concepts, font=font)

            worlds.write_world(
                out / "images",
                p.benchmark,
                p.seed,
                p.train_per_class,
                p.test_per_class,
                p.ood_per_set,
                p.image_size,
                render=render,
                progress=lambda jobs: progress(jobs, f"render {p.benchmark}", "concept"),
            )
            bench = worlds.read_world(out / "images", p.benchmark)
            bench.root = BENCHMARK / "images"
        else:
            bench, check = read_tree(p)
        bench.classes.to_csv(out / "classes.tsv", sep="\t", index=False)
        write_table(bench.pool, out / "pool.parquet")
        write_table(bench.test, out / "test.parquet")
        write_json(
            bench.manifest(
                benchmark=p.benchmark,
                hard_split=p.hard_split if p.benchmark == "imagenet_hard" else None,
                **({"check": check} if check else {}),
            ),
            out / "manifest.json",
        )
    if check and check["partial"]:
        print(f"data.allow_partial: running on partial sets {', '.join(check['partial'])}")
    print(
        f"{p.benchmark}: {len(bench.classes)} ID classes, pool {len(bench.pool)}, test {len(bench.test)} "
        f"({', '.join(bench.ood_sets)})"
    )


if __name__ == "__main__":
    run(main)
