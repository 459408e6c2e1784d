"""Stage `report`: metrics.json (mean ± std over seeds), report.md, figures and DVC plot data."""
from pathlib import Path

import numpy as np
from PIL import Image

from negprompt import openmoji, report
from negprompt.data import WORLDS
from negprompt.io import atomic_path, load_tensors, read_json, read_table, write_json
from pipeline.common import BENCHMARK, FEATURES, NEGLABEL, REPORTS, SCORES, backbone_manifest, load_params, run

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
            "`benchmarks/negatives_decomposition.py` separates the negatives' constant weight from their per-image part).")


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


def main():
    params = load_params()
    seeds = params.subset.seeds
    tables = [read_table(SCORES / f"seed{s}.parquet")[0] for s in seeds]
    bench = read_json(BENCHMARK / "manifest.json")
    name = params.data.benchmark + (f"_{params.data.hard_split}" if params.data.benchmark == "imagenet_hard" else "")
    agg = report.aggregate(tables)
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
- Positive prompts (CoOp): ctx init "{p.pos.ctx_init or f'random, n = {p.pos.n_ctx}'}", {p.pos.epochs} epochs, {p.pos.optimizer} lr {p.pos.lr}.
- Negative prompts: p = {p.neg.num_prompts}, loss **{p.neg.loss_variant}**, β = {p.neg.beta}, γ = {p.neg.gamma}, init {p.neg.init}, {p.neg.epochs} epochs{', **one-stage** (positive and negative trained together)' if p.neg.one_stage else ''}.
- Scores: τ = {p.score.temperature} on cosine similarities. The last epoch is kept: unlike the official code, nothing is selected on test data.

## OOD detection (%, mean ± std over {len(seeds)} seeds)
{report.metrics_table(agg)}

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
{paper_section(params.data.benchmark, agg, p.open_vocab)}

## Where the negative prompts went ({p.neg.loss_variant} loss)
Mean cosine similarity of test images to the prompts, per set, over seeds. Each negative adds about exp(cosine) to the score's denominator, so, by this mean offset, a set whose images are *closer* to the trained negatives than ID images are is pushed down by NegPrompt's score (easier to detect) and a set *farther* from them is lifted (harder to detect):

{sim.to_markdown(floatfmt='.4f')}

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
