"""Stage `subset`: per seed, 16 shots per ID class (+ held-out calibration images), and the
open-vocabulary class list (first 10% of ID classes)."""

import pandas as pd

from negprompt.benchmarks import tables as data
from negprompt.io import atomic_path, read_table, write_table
from negprompt.workspace import BENCHMARK, SUBSETS, load_params
from pipeline.common import run


def main():
    subset_params = load_params().subset
    classes = data.read_classes(BENCHMARK / "classes.tsv")
    pool, _, _ = read_table(BENCHMARK / "pool.parquet")
    with atomic_path(SUBSETS, directory=True) as out:
        for seed in subset_params.seeds:
            table = data.sample_fewshot(pool, classes, subset_params.shots, subset_params.calib_per_class, seed)
            write_table(table, out / f"seed{seed}.parquet")
        ov = data.open_vocab_classes(len(classes), subset_params.open_vocab_fraction)
        pd.DataFrame({"label": ov, "class_id": classes.class_id[ov], "name": classes.name[ov]}).to_csv(
            out / "open_vocab_classes.tsv", sep="\t", index=False
        )
    print(
        f"{len(subset_params.seeds)} seeds x {subset_params.shots} shots x {len(classes)} classes; "
        f"open vocabulary: {len(ov)} classes"
    )


if __name__ == "__main__":
    run(main, uses_torch=False)
