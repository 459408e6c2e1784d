"""Stage `report`: metrics.json (mean ± std over seeds), report.md, figures and DVC plot data."""

from pathlib import Path

import numpy as np

from negprompt.benchmarks import openmoji
from negprompt.io import atomic_path, load_tensors, read_json, read_table, write_json
from negprompt.methods import protocol, registry
from negprompt.report import narrative
from negprompt.report import tables as report
from negprompt.report.results import Results
from negprompt.workspace import (
    BENCHMARK,
    NEGLABEL,
    REPORTS,
    SCORES,
    SHEETS,
    backbone_manifest,
    load_params,
    read_features,
)
from pipeline.common import run

FIGURES = REPORTS / "figures"


def neglabel_part(params, results: Results, table) -> str:
    """NegLabel's settings, mined labels and winners; on OpenMoji, which mined labels the stand-in was pretrained on."""
    import pandas as pd

    neglabel_params = params.neglabel
    labels = pd.read_csv(NEGLABEL / "labels.tsv", sep="\t", keep_default_na=False)
    meta = load_tensors(NEGLABEL / "features.safetensors")[1]
    known = None
    if params.data.benchmark == "openmoji":
        trained = openmoji.trained_on_vocabulary(Path(backbone_manifest()["checkpoint"]).with_suffix(".json"))
        known = {name for _, name, role in openmoji.read_vocabulary() if trained or role != "vocabulary"}
    pool = "ID names removed" if neglabel_params.exclude_id_names else "ID names kept, as the official code"
    return (
        f"Zero-shot, nothing trained (Jiang et al., ICLR 2024): from {meta.get('corpus_size', '?')} candidate words of "
        f"{meta.get('corpus', '?')} ({pool}), "
        f"NegMining keeps the M = min({neglabel_params.num_labels}, {neglabel_params.max_fraction:.0%} of the corpus) "
        f"farthest from the ID labels by the {neglabel_params.percentile:g}th percentile of their cosines; "
        f'prompts "{meta.get("template", neglabel_params.template)}", τ = {neglabel_params.temperature}, '
        f"{neglabel_params.groups} groups"
        f"{' (the last M mod G labels dropped, as the official code)' if neglabel_params.drop_remainder else ''}. "
        f"Seed-independent (the ± over seeds is 0).\n\n" + report.neglabel_section(labels, table, results, known)
    )


def protocol_runs(params, sets: list[str]) -> dict:
    """Per training stage, the DVCLive curves of every seed (reports/train/{pos,neg}_seed{N}/), the
    kept epoch (its metrics.json) and the selection settings it ran with (its params.yaml)."""
    import pandas as pd
    import yaml

    stages = {}
    for stage in ("pos", "neg"):
        curves, kept, logged = [], [], {}
        for seed in params.subset.seeds:
            run_dir = REPORTS / "train" / f"{stage}_seed{seed}"
            columns = {}
            for tsv in sorted((run_dir / "plots" / "metrics").rglob("*.tsv")):
                df = pd.read_csv(tsv, sep="\t")
                columns[tsv.relative_to(run_dir / "plots" / "metrics").with_suffix("").as_posix()] = df.set_index(
                    "step"
                ).iloc[:, 0]
            logged = yaml.safe_load((run_dir / "params.yaml").read_text())
            curves.append(pd.DataFrame(columns).sort_index().reset_index(drop=True))
            kept.append(int(read_json(run_dir / "metrics.json")["kept"]["epoch"]) - 1)
        stages[stage] = protocol.StageRuns(
            logged["select"], logged["schedule"], curves, kept, logged.get("select_set", "")
        )
    return stages


def protocol_part(params, stages: dict, sets: list[str]) -> str:
    """The Protocol section (negprompt.methods.protocol) of the runs `protocol_runs` read."""
    paper = report.PAPER.get(params.data.benchmark, {}).get("average", {}).get("negprompt")
    return protocol.section(stages, sets, paper)


def text_space_part(params, tables, text: dict) -> str:
    """Where the trained negatives went in text space (nearest concept names, distance from the names'
    manifold) against the positives and the negatives' initialisation, and the paper's Fig. 3 claim. The names and
    their features are the neglabel stage's (encoded once per backbone)."""
    reference, meta = load_tensors(NEGLABEL / "reference_names.safetensors")
    names, source, name_feats = meta["names"], meta["source"], reference["names"]
    prompts = {"positive (CoOp context)": text["pos"]}
    for j in range(text["neg"].shape[1]):
        prompts[f"negative {j + 1}, initialisation"] = text["neg_init"][:, j]
        prompts[f"negative {j + 1}, trained"] = text["neg"][:, j]
    rows = report.text_space_rows(prompts, name_feats, names)
    means, not_closer = report.fig3_check(tables)
    verdict = (
        "**holds on every set**"
        if not not_closer
        else f"**does not hold** for {', '.join(not_closer)}"
        + (" (it holds for the others)" if len(not_closer) < len(means) - 1 else "")
    )
    return (
        f"Seed {params.subset.seeds[0]}'s prompts among the {len(names)} names of {source} "
        f'("{params.score.zero_shot_template}" '
        "features); a cosine near the positives' is on the manifold of real captions, a much lower one is off it:\n\n"
        + rows.to_markdown(floatfmt=".3f")
        + "\n\nThe paper's Fig. 3 claim, OOD images more similar to the negative prompts "
        "than ID images are (mean over images of the highest cosine to any negative, over seeds): "
        + ", ".join(f"{s} {v:.3f}" for s, v in means.items())
        + f". It {verdict}."
    )


def main():
    params = load_params()
    registry.load_plugins(params.family.plugins)  # their labels, in the report and the leaderboard
    seeds = params.subset.seeds
    tables = [read_table(SCORES / f"seed{s}.parquet")[0] for s in seeds]
    bench = read_json(BENCHMARK / "manifest.json")
    name = params.data.benchmark + (f"_{params.data.hard_split}" if params.data.benchmark == "imagenet_hard" else "")
    results = report.aggregate(tables)
    sets = list(results.ood)
    stages = protocol_runs(params, sets)
    protocol_summary = protocol.summary(stages, sets)  # select, schedule, kept epochs
    metrics = report.metrics_json(name, results, protocol_summary)
    write_json(metrics, REPORTS / "metrics.json")

    FIGURES.mkdir(parents=True, exist_ok=True)
    curves = report.plot_roc(tables, FIGURES / "roc.png")
    # not DVCLive's log_sklearn_plot("roc"): it writes one curve per JSON file, a figure here has every method of a set
    for s, df in curves.items():
        with atomic_path(REPORTS / "plots" / "roc" / f"{s.replace('/', '_')}.csv") as tmp:
            df.to_csv(tmp, index=False, float_format="%.6g")
    report.plot_histograms(tables, FIGURES / "score_histograms.png")
    report.plot_similarity(tables, FIGURES / "similarity.png")
    text = load_tensors(SCORES / f"seed{seeds[0]}.text.safetensors")[0]
    test, img = read_features("test")
    pick = np.random.default_rng(0).choice(len(test), size=min(params.report.tsne_images, len(test)), replace=False)
    report.plot_tsne(
        text["pos"].numpy(), text["neg"].numpy(), img[pick], test.set.to_numpy()[pick], FIGURES / "tsne.png"
    )

    sim = report.similarity_summary(tables)
    md = narrative.report_markdown(
        name,
        bench,
        backbone_manifest(),
        params,
        results,
        sim,
        read_json(REPORTS / "backbone.json"),
        protocol_summary=protocol_summary,
        protocol_md=protocol_part(params, stages, sets),
        neglabel_md=neglabel_part(params, results, tables[0]),
        text_space_md=text_space_part(params, tables, text),
        sheets=(SHEETS / "sheets.md").read_text(),
    )
    with atomic_path(REPORTS / "report.md") as tmp:
        tmp.write_text(md)
    avg = results.average
    for m in ("mcm", "coop", "negprompt"):
        print(
            f"{report.label(m):>10}: AUROC {report.fmt(avg[m]['auroc'], avg[m]['auroc_std'])}  "
            f"FPR95 {report.fmt(avg[m]['fpr95'], avg[m]['fpr95_std'])}  "
            f"FPR95 OpenOOD {report.fmt(avg[m]['fpr95_openood'], avg[m]['fpr95_openood_std'])}"
        )


if __name__ == "__main__":
    run(main)
