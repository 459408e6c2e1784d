"""Stage `data`: the benchmark as tables of image files (and, for the mini-world, the images)."""
from pathlib import Path

from tqdm import tqdm

from negprompt.benchmarks import tables as data
from negprompt.benchmarks import openmoji
from negprompt.io import atomic_path, write_json, write_table
from negprompt.workspace import BENCHMARK, load_params
from pipeline.common import run


def main():
    p = load_params().data
    with atomic_path(BENCHMARK, directory=True) as out:
        if p.benchmark in data.WORLDS:
            render = None
            if p.benchmark == "openmoji":
                font = str(openmoji.load_font(p.font or str(openmoji.default_font())).path)  # fails here, before any image
                render = lambda world, c, rng, size: openmoji.render(c, rng, size, others=world.all_concepts, font=font)  # noqa: E731
            data.write_world(out / "images", p.benchmark, p.seed, p.train_per_class, p.test_per_class, p.ood_per_set, p.image_size,
                             render=render, progress=lambda jobs: tqdm(jobs, desc=f"render {p.benchmark}", unit="concept"))
            bench = data.read_world(out / "images", p.benchmark)
            bench.root = BENCHMARK / "images"
        else:
            if not p.root:
                raise data.NegPromptError(f"data.root is empty: {p.benchmark} needs the directory holding train/ and val/")
            bench = data.read_benchmark(p.benchmark, Path(p.root).expanduser().resolve(), p.hard_split)
        bench.classes.to_csv(out / "classes.tsv", sep="\t", index=False)
        write_table(bench.pool, out / "pool.parquet")
        write_table(bench.test, out / "test.parquet")
        write_json(bench.manifest(benchmark=p.benchmark, hard_split=p.hard_split if p.benchmark == "imagenet_hard" else None), out / "manifest.json")
    print(f"{p.benchmark}: {len(bench.classes)} ID classes, pool {len(bench.pool)}, test {len(bench.test)} ({', '.join(bench.ood_sets)})")


if __name__ == "__main__":
    run(main)
