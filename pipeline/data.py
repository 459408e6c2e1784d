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


def read_tree(data_params) -> tuple:
    """A real benchmark's tables and its count check (inventory): a set short of its size stops here,
    before any feature, unless data.allow_partial."""
    if not data_params.root:
        raise NegPromptError(f"data.root is empty: {data_params.benchmark} needs the directory holding train/ and val/")
    root = Path(data_params.root).expanduser().resolve()
    bench = imagenet.read_imagenet(root, data_params.benchmark, data_params.hard_split)
    counts, source = inventory.count_sets(root, bench, data_params.benchmark, data_params.hard_split)
    if not all(c.ok for c in counts) and not data_params.allow_partial:
        raise NegPromptError(inventory.mismatch_message(root, counts))
    if not TREE.is_file():
        raise NegPromptError(f"{TREE}: not found (the `tree` stage lists data.root first: dvc repro tree)")
    return bench, inventory.check_summary(counts, source, hashlib.sha256(TREE.read_bytes()).hexdigest())


def main():
    data_params = load_params().data
    check = None  # generated benchmarks: nothing to count
    with atomic_path(BENCHMARK, directory=True) as out:
        if data_params.benchmark in GENERATED:
            render = None
            if data_params.benchmark == "openmoji":
                # fails here, before any image
                font = str(openmoji_render.load_font(data_params.font or str(openmoji_render.default_font())).path)

                def render(world, c, rng, size):
                    return openmoji_render.render(c, rng, size, others=world.all_concepts, font=font)

            worlds.write_world(
                out / "images",
                data_params.benchmark,
                data_params.seed,
                data_params.train_per_class,
                data_params.test_per_class,
                data_params.ood_per_set,
                data_params.image_size,
                render=render,
                progress=lambda jobs: progress(jobs, f"render {data_params.benchmark}", "concept"),
            )
            bench = worlds.read_world(out / "images", data_params.benchmark)
            bench.root = BENCHMARK / "images"
        else:
            bench, check = read_tree(data_params)
        bench.classes.to_csv(out / "classes.tsv", sep="\t", index=False)
        write_table(bench.pool, out / "pool.parquet")
        write_table(bench.test, out / "test.parquet")
        write_json(
            bench.manifest(
                benchmark=data_params.benchmark,
                hard_split=data_params.hard_split if data_params.benchmark == "imagenet_hard" else None,
                **({"check": check} if check else {}),
            ),
            out / "manifest.json",
        )
    if check and check["partial"]:
        print(f"data.allow_partial: running on partial sets {', '.join(check['partial'])}")
    print(
        f"{data_params.benchmark}: {len(bench.classes)} ID classes, pool {len(bench.pool)}, test {len(bench.test)} "
        f"({', '.join(bench.ood_sets)})"
    )


if __name__ == "__main__":
    run(main, uses_torch=False)
