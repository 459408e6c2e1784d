"""Stage `data`: the benchmark as tables of image files (and, for the mini-world, the images)."""

from pathlib import Path

from tqdm import tqdm

from negprompt import NegPromptError
from negprompt.benchmarks import imagenet, openmoji_render, worlds
from negprompt.benchmarks.tables import GENERATED
from negprompt.io import atomic_path, write_json, write_table
from negprompt.workspace import BENCHMARK, load_params
from pipeline.common import run


def main():
    p = load_params().data
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
                progress=lambda jobs: tqdm(jobs, desc=f"render {p.benchmark}", unit="concept"),
            )
            bench = worlds.read_world(out / "images", p.benchmark)
            bench.root = BENCHMARK / "images"
        else:
            if not p.root:
                raise NegPromptError(f"data.root is empty: {p.benchmark} needs the directory holding train/ and val/")
            bench = imagenet.read_imagenet(Path(p.root).expanduser().resolve(), p.benchmark, p.hard_split)
        bench.classes.to_csv(out / "classes.tsv", sep="\t", index=False)
        write_table(bench.pool, out / "pool.parquet")
        write_table(bench.test, out / "test.parquet")
        write_json(
            bench.manifest(benchmark=p.benchmark, hard_split=p.hard_split if p.benchmark == "imagenet_hard" else None),
            out / "manifest.json",
        )
    print(
        f"{p.benchmark}: {len(bench.classes)} ID classes, pool {len(bench.pool)}, test {len(bench.test)} "
        f"({', '.join(bench.ood_sets)})"
    )


if __name__ == "__main__":
    run(main)
