"""Stage `report`: metrics.json (mean ± std over seeds), report.md, figures and DVC plot data."""
from pathlib import Path

import numpy as np
from PIL import Image

from negprompt import openmoji, protocol, report
from negprompt.data import WORLDS, read_classes
from negprompt.io import atomic_path, load_tensors, read_json, read_table, write_json
from pipeline.common import BENCHMARK, FEATURES, NEGLABEL, REPORTS, SCORES, backbone_manifest, load_backbone, load_params, run

FIGURES = REPORTS / "figures"


def paper_section(benchmark: str, agg: dict, open_vocab: bool) -> str:
    paper = report.PAPER.get(benchmark)
    if not paper:
        return (f"{benchmark} is this project's own benchmark: the paper has no numbers for it. "
                "For the paper's tables run an ImageNet benchmark (README, 'Real data').")
    key = "average_open_vocab" if open_vocab and "average_open_vocab" in paper else "average"
    lines = ["| method | paper AUROC | ours AUROC | Δ | paper FPR95 | ours FPR95 | Δ |", "|---|---|---|---|---|---|---|"]
    for m, (a, f) in paper[key].items():
        if m in agg["average"]:
            o = agg["average"][m]
            lines.append(f"| {report.LABELS[m]} | {a:.2f} | {o['auroc']:.2f} | {o['auroc'] - a:+.2f} | {f:.2f} | {o['fpr95']:.2f} | {o['fpr95'] - f:+.2f} |")
    return f"Average over the OOD sets ({key}):\n\n" + "\n".join(lines)


def role_sheets(benchmark: str) -> str:
    """One test image per concept of each role (ID and every OOD set), for review by eye."""
    if benchmark not in WORLDS:
        return ""
    test = read_table(BENCHMARK / "test.parquet")[0]
    test = test.assign(concept=test.path.map(lambda p: Path(p).parent.name)).drop_duplicates("concept")
    lines = []
    for name, group in test.groupby("set", sort=False):
        images = [np.asarray(Image.open(BENCHMARK / "images" / p).convert("RGB")) for p in group.path]
        report.contact_sheet(images, group.concept.str.replace("_", " ").tolist(), FIGURES / f"contact_{name}.png")
        lines.append(f"**{name}** ({len(group)} concepts)\n\n![{name}](figures/contact_{name}.png)\n")
    credit = f"\n{openmoji.ATTRIBUTION}\n" if benchmark == "openmoji" else ""
    return "\n".join(lines) + credit


def backbone_section(diag: dict) -> str:
    if not diag:
        return "Zero-shot diagnostics are computed for the generated worlds only (`reports/backbone.json`)."
    return (f"Zero-shot, on fresh held-out renders (not the test files): top-1 over ID **{100 * diag['zero_shot_top1']:.1f}%**, "
            f"cosine of ID images to their own prompt **{diag['cos_own'][0]:.3f}** ± {diag['cos_own'][1]:.3f} and to the other prompts "
            f"{diag['cos_other'][0]:.3f} (real CLIP ViT-B/16 on ImageNet: ≈ 0.3 and ≈ 0.2), logit scale {diag['logit_scale']:.0f}. "
            "Real CLIP's regime is MCM ahead of MaxLogit (90.8 / 42.7 against 84.2 / 67.7 for max cosine on ImageNet), because an "
            "image's similarities share an offset that moves its max and that MCM's softmax cancels (a positive corr(max, mean)).\n\n"
            + report.regime_table(diag))


def ranking_note(avg: dict, diag: dict) -> str:
    """Says in words which methods beat NegPrompt on average AUROC, and why where the backbone explains it."""
    ours = avg["negprompt"]["auroc"]
    above = [m for m in avg if m != "negprompt" and avg[m]["auroc"] > ours]
    if not above:
        return f"**NegPrompt has the best average AUROC** ({ours:.2f})."
    text = (f"**NegPrompt ({ours:.2f} average AUROC) is beaten by " + ", ".join(f"{report.LABELS[m]} ({avg[m]['auroc']:.2f})" for m in above)
            + "** and beats " + (", ".join(report.LABELS[m] for m in avg if m not in above and m != "negprompt") or "no other method") + ".")
    a = diag.get("average", {})
    if {"maxlogit", "mcm"} <= set(a) and a["maxlogit"]["auroc"] > a["mcm"]["auroc"] and set(above) & {"maxlogit", "energy", "msp"}:
        text += (f" Why: this backbone is not in real CLIP's regime. Zero-shot, before any prompt is learned, MaxLogit already beats MCM "
                 f"({a['maxlogit']['auroc']:.1f} vs {a['mcm']['auroc']:.1f} AUROC on held-out renders, see ‘The backbone’s zero-shot regime’ below), where real CLIP has "
                 "MCM ≈ 7 points ahead; NegPrompt's score is an MCM-style softmax and inherits that handicap.")
    return text


def negatives_note(agg: dict, sim) -> str:
    """Per OOD set, what the negative prompts did: NegPrompt's AUROC minus CoOp's (the same positive
    prompts, no negatives) beside how close the set's images are to the trained negatives, against ID."""
    if "coop" not in agg["average"] or "ID" not in sim.index:
        return ""
    col = "negative after training (mean)"
    id_cos = sim.loc["ID", col]
    cells = [f"{s} {agg['ood'][s]['negprompt']['auroc'] - agg['ood'][s]['coop']['auroc']:+.1f} (cosine {sim.loc[s, col]:.3f})"
             for s in agg["ood"] if s in sim.index]
    return (f"What the negative prompts add over CoOp's positives, per set (AUROC points; mean cosine of the set's images to the "
            f"trained negatives, ID's is {id_cos:.3f}): " + ", ".join(cells) + ". By that mean offset alone, a set closer to the "
            "negatives than ID is pushed down and one farther away lifted; where a set's gain has the other sign, the rest of the "
            "score (the per-image spread of its negative similarities) outweighs it (section 'Where the negative prompts went'; "
            "`benchmarks/analyses/negatives_decomposition.py` separates the negatives' constant weight from their per-image part).")


def neglabel_part(params, agg: dict, table) -> str:
    """NegLabel's settings, mined labels and winners; on OpenMoji, which mined labels the stand-in was pretrained on."""
    import pandas as pd

    p = params.neglabel
    labels = pd.read_csv(NEGLABEL / "labels.tsv", sep="\t", keep_default_na=False)
    meta = load_tensors(NEGLABEL / "features.safetensors")[1]
    known = None
    if params.data.benchmark == "openmoji":
        known = {name for _, name, role in openmoji.read_vocabulary() if role != "vocabulary"}
    return (f"Zero-shot, nothing trained (Jiang et al., ICLR 2024): from {meta.get('corpus_size', '?')} candidate words of "
            f"{meta.get('corpus', '?')} (ID names removed), NegMining keeps the M = min({p.num_labels}, {p.max_fraction:.0%} of the corpus) "
            f"farthest from the ID labels by the {p.percentile:g}th percentile of their cosines; prompts \"{p.template}\", "
            f"τ = {p.temperature}, {p.groups} groups. Seed-independent (the ± over seeds is 0).\n\n"
            + report.neglabel_section(labels, table, agg, known))


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
                columns[tsv.relative_to(run_dir / "plots" / "metrics").with_suffix("").as_posix()] = df.set_index("step").iloc[:, 0]
            logged = yaml.safe_load((run_dir / "params.yaml").read_text())
            curves.append(pd.DataFrame(columns).sort_index().reset_index(drop=True))
            kept.append(int(read_json(run_dir / "metrics.json")["kept"]["epoch"]) - 1)
        stages[stage] = protocol.StageRuns(logged["select"], logged["schedule"], curves, kept, logged.get("select_set", ""))
    return stages


def protocol_part(params, sets: list[str], agg: dict) -> str:
    """The Protocol section (negprompt.protocol); records its summary in `agg` for metrics.json."""
    stages = protocol_runs(params, sets)
    agg["protocol"] = protocol.summary(stages, sets)
    paper = report.PAPER.get(params.data.benchmark, {}).get("average", {}).get("negprompt")
    return protocol.section(stages, sets, paper)


def text_space_part(params, tables, text: dict) -> str:
    """Where the trained negatives went in text space (nearest concept names, distance from the names'
    manifold) against the positives and the negatives' initialisation, and the paper's Fig. 3 claim."""
    import pandas as pd
    import torch

    from negprompt.prompts import encode_texts

    if params.data.benchmark == "openmoji":  # every concept the stand-in's world names, pretraining-only ones included
        names, source = [n for _, n, _ in openmoji.read_vocabulary()], "the OpenMoji vocabulary"
    else:  # the ID class names and NegLabel's mined words (from WordNet on ImageNet)
        mined = pd.read_csv(NEGLABEL / "labels.tsv", sep="\t", keep_default_na=False).word.tolist()
        names, source = read_classes(BENCHMARK / "classes.tsv").name.tolist() + mined, "the ID class names and NegLabel's mined words"
    bb = load_backbone(params.features.device)
    with torch.no_grad():
        name_feats = encode_texts(bb.model, bb.tokenizer, [params.score.zero_shot_template.format(n) for n in names]).cpu()
    prompts = {"positive (CoOp context)": text["pos"]}
    for j in range(text["neg"].shape[1]):
        prompts[f"negative {j + 1}, initialisation"] = text["neg_init"][:, j]
        prompts[f"negative {j + 1}, trained"] = text["neg"][:, j]
    rows = report.text_space_rows(prompts, name_feats, names)
    means, not_closer = report.fig3_check(tables)
    verdict = ("**holds on every set**" if not not_closer else
               f"**does not hold** for {', '.join(not_closer)}" + (" (it holds for the others)" if len(not_closer) < len(means) - 1 else ""))
    return (f"Seed {params.subset.seeds[0]}'s prompts among the {len(names)} names of {source} (\"{params.score.zero_shot_template}\" "
            "features); a cosine near the positives' is on the manifold of real captions, a much lower one is off it:\n\n"
            + rows.to_markdown(floatfmt=".3f") + "\n\nThe paper's Fig. 3 claim, OOD images more similar to the negative prompts "
            "than ID images are (mean over images of the highest cosine to any negative, over seeds): "
            + ", ".join(f"{s} {v:.3f}" for s, v in means.items()) + f". It {verdict}.")


def main():
    params = load_params()
    seeds = params.subset.seeds
    tables = [read_table(SCORES / f"seed{s}.parquet")[0] for s in seeds]
    bench = read_json(BENCHMARK / "manifest.json")
    name = params.data.benchmark + (f"_{params.data.hard_split}" if params.data.benchmark == "imagenet_hard" else "")
    agg = report.aggregate(tables)
    protocol_md = protocol_part(params, list(agg["ood"]), agg)  # + agg["protocol"]: select, schedule, kept epochs
    write_json({name: agg}, REPORTS / "metrics.json")

    FIGURES.mkdir(parents=True, exist_ok=True)
    curves = report.plot_roc(tables, FIGURES / "roc.png")
    for s, df in curves.items():
        with atomic_path(REPORTS / "plots" / "roc" / f"{s.replace('/', '_')}.csv") as tmp:
            df.to_csv(tmp, index=False, float_format="%.6g")
    report.plot_histograms(tables, FIGURES / "score_histograms.png")
    report.plot_similarity(tables, FIGURES / "similarity.png")
    text = load_tensors(SCORES / f"seed{seeds[0]}.text.safetensors")[0]
    test, img, _ = read_table(FEATURES / "test.parquet")
    pick = np.random.default_rng(0).choice(len(test), size=min(params.report.tsne_images, len(test)), replace=False)
    report.plot_tsne(text["pos"].numpy(), text["neg"].numpy(), img[pick], test.set.to_numpy()[pick], FIGURES / "tsne.png")

    sim = report.similarity_summary(tables)
    acc = agg["id_top1"]
    bb = backbone_manifest()
    p = params
    local_note = ("GL-MCM is zero-shot (hand prompts, global + best patch MCM); LoCoOp is CoOp trained with its patch-entropy term "
                  f"(λ = {p.locoop.lam}, top-k = {p.locoop.top_fraction:.0%} of the classes) and scored with GL-MCM, as its paper reports it."
                  if "locoop" in agg["average"] else "GL-MCM and LoCoOp need patch features: run with `features.local: true` (ViT backbones).")
    sheets = role_sheets(params.data.benchmark)
    diag = read_json(REPORTS / "backbone.json")
    md = f"""# NegPrompt report: {name}

## What ran
- Benchmark: **{name}**, {bench['counts']['classes']} ID classes, {bench['counts']['test_id']} ID test images; OOD sets: {', '.join(f"{s} ({bench['counts'].get('test_' + s, '?')})" for s in bench['ood_sets'])}.
- Backbone: `{bb['model']}` ({bb['pretrained'] or 'pretrained in this pipeline'}), weights sha256 `{bb['weights_sha256'][:16]}…`.
- Seeds {seeds}, {p.subset.shots} shots per class{', **open vocabulary**: trained on the first ' + format(p.subset.open_vocab_fraction, '.0%') + ' of the classes, evaluated on all' if p.open_vocab else ''}.
- Positive prompts (CoOp): ctx init "{p.pos.ctx_init or f'random, n = {p.pos.n_ctx}'}", {p.pos.epochs} epochs, {p.pos.optimizer} lr {p.pos.lr}, schedule {p.pos.schedule}, select {p.pos.select}.
- Negative prompts: p = {p.neg.num_prompts}, loss **{p.neg.loss_variant}**, β = {p.neg.beta}, γ = {p.neg.gamma}, init {p.neg.init}, {p.neg.epochs} epochs{', **one-stage** (positive and negative trained together)' if p.neg.one_stage else ''}, schedule {p.neg.schedule}, select {p.neg.select}.
- Scores: τ = {p.score.temperature} on cosine similarities. {protocol.kept_sentence(p.pos.select, p.neg.select, agg['protocol']['neg'].get('select_set', ''))}

## OOD detection (%, mean ± std over {len(seeds)} seeds)
{protocol.test_label(p.pos.select, p.neg.select)}{report.metrics_table(agg)}

{ranking_note(agg["average"], diag)} {negatives_note(agg, sim)}

MSP, MaxLogit and Energy here are zero-shot on CLIP's scaled logits; the paper copies those rows from CLIPN (a fine-tuned head), so they are not like for like. {local_note}

## ID top-1 accuracy (%)
| {' | '.join(report.LABELS[m] for m in acc)} |
|{'---|' * len(acc)}
| {' | '.join(report.fmt(a['top1'], a['top1_std']) for a in acc.values())} |

## The backbone's zero-shot regime
{backbone_section(diag)}

## NegLabel: what the negative labels are
{neglabel_part(params, agg, tables[0])}

## Paper numbers
{protocol.test_label(p.pos.select, p.neg.select)}{paper_section(params.data.benchmark, agg, p.open_vocab)}

## Protocol: which epoch is kept
{protocol_md}

## Where the negative prompts went ({p.neg.loss_variant} loss)
Mean cosine similarity of test images to the prompts, per set, over seeds. Each negative adds about exp(cosine) to the score's denominator, so, by this mean offset, a set whose images are *closer* to the trained negatives than ID images are is pushed down by NegPrompt's score (easier to detect) and a set *farther* from them is lifted (harder to detect):

{sim.to_markdown(floatfmt='.4f')}

In text space: {text_space_part(params, tables, text)}

The `official` loss (MultiLabelSoftMargin with the true class's negatives as targets, NPD pushing negatives *away* from their positive) and the `paper` loss (Eq. 4 is unchanged when all of an image's negative logits shift together: it asks negatives to be *equally* similar to an ID image, and Eq. 5 pulls them *toward* their positive) move the negatives differently; `reports/ablations.md` compares both, measured.

## Figures
![ROC curves](figures/roc.png)

![Score histograms](figures/score_histograms.png)

![Similarity to positive and negative prompts](figures/similarity.png)

![t-SNE](figures/tsne.png)

## The benchmark's roles (one test image per concept)
{sheets or 'ImageNet benchmarks: see the README for their sources.'}
"""
    with atomic_path(REPORTS / "report.md") as tmp:
        tmp.write_text(md)
    avg = agg["average"]
    for m in ("mcm", "coop", "negprompt"):
        print(f"{report.LABELS[m]:>10}: AUROC {report.fmt(avg[m]['auroc'], avg[m]['auroc_std'])}  FPR95 {report.fmt(avg[m]['fpr95'], avg[m]['fpr95_std'])}")


if __name__ == "__main__":
    run(main)
