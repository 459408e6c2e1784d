"""Stage `data`: the benchmark as tables of image files (and, for the mini-world, the images)."""
from pathlib import Path

from tqdm import tqdm

from negprompt import data
from negprompt.io import atomic_path, write_json, write_table
from pipeline.common import BENCHMARK, load_params, run


def main():
    p = load_params().data
    with atomic_path(BENCHMARK, directory=True) as out:
        if p.benchmark == "miniworld":
            data.write_miniworld(out / "images", p.seed, p.train_per_class, p.test_per_class, p.ood_per_set, p.image_size,
                                 progress=lambda jobs: tqdm(jobs, desc="render mini-world", unit="class"))
            bench = data.read_miniworld(out / "images")
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
