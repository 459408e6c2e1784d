"""The report's words: each section of reports/report.md from the figures it states, pure
functions of their inputs (the report stage reads the files and writes the result)."""

from __future__ import annotations

from negprompt.methods import protocol
from negprompt.report import leaderboard, markdown
from negprompt.report import tables as report
from negprompt.report.results import Results

FPR95_CONVENTIONS = (
    "FPR95 is the share of OOD images accepted at the threshold that keeps 95% of ID images (ID positive, `fpr95` in "
    "metrics.json: the convention of MCM, LoCoOp, NegLabel and NegPrompt's papers) and FPR95 OpenOOD the share of ID "
    "images rejected at the threshold that catches 95% of OOD images (OOD positive, `fpr95_openood`: OpenOOD v1.5's "
    "evaluator, on which OpenOOD-VLM, AdaNeg, TANL and InterNeg report), both on the same scores; AUROC is the same "
    "in both."
)


def paper_section(benchmark: str, results: Results, open_vocab: bool) -> str:
    paper = report.PAPER.get(benchmark)
    if not paper:
        return (
            f"{benchmark} is this project's own benchmark: the paper has no numbers for it. "
            "For the paper's tables run an ImageNet benchmark (docs/imagenet.md)."
        )
    key = "average_open_vocab" if open_vocab and "average_open_vocab" in paper else "average"
    rows = [
        [report.label(m), f"{a:.2f}", f"{o['auroc']:.2f}", f"{o['auroc'] - a:+.2f}"]
        + [f"{f:.2f}", f"{o['fpr95']:.2f}", f"{o['fpr95'] - f:+.2f}"]
        for m, (a, f) in paper[key].items()
        if (o := results.average.get(m)) is not None
    ]
    columns = ["method", "paper AUROC", "ours AUROC", "Δ", "paper FPR95", "ours FPR95", "Δ"]
    return f"Average over the OOD sets ({key}):\n\n" + markdown.table(rows, columns)


def backbone_section(diag: dict) -> str:
    if not diag:
        return "Zero-shot diagnostics are computed for the generated worlds only (`reports/backbone.json`)."
    return (
        f"Zero-shot, on fresh held-out renders (not the test files): top-1 over ID **{100 * diag['zero_shot_top1']:.1f}%**, "
        f"cosine of ID images to their own prompt **{diag['cos_own'][0]:.3f}** ± {diag['cos_own'][1]:.3f} and to the other prompts "
        f"{diag['cos_other'][0]:.3f} (real CLIP ViT-B/16 on ImageNet: ≈ 0.3 and ≈ 0.2), logit scale {diag['logit_scale']:.0f}. "
        "Real CLIP's regime is MCM ahead of MaxLogit (90.8 / 42.7 against 84.2 / 67.7 for max cosine on ImageNet), because an "
        "image's similarities share an offset that moves its max and that MCM's softmax cancels (a positive corr(max, mean)).\n\n"
        + report.regime_table(diag)
    )


def ranking_note(avg: dict, diag: dict) -> str:
    """Says in words which methods beat NegPrompt on average AUROC, and why where the backbone explains it."""
    ours = avg["negprompt"]["auroc"]
    above = [m for m in avg if m != "negprompt" and avg[m]["auroc"] > ours]
    if not above:
        return f"**NegPrompt has the best average AUROC** ({ours:.2f})."
    text = (
        f"**NegPrompt ({ours:.2f} average AUROC) is beaten by "
        + ", ".join(f"{report.label(m)} ({avg[m]['auroc']:.2f})" for m in above)
        + "** and beats "
        + (", ".join(report.label(m) for m in avg if m not in above and m != "negprompt") or "no other method")
        + "."
    )
    a = diag.get("average", {})
    if (
        {"maxlogit", "mcm"} <= set(a)
        and a["maxlogit"]["auroc"] > a["mcm"]["auroc"]
        and set(above) & {"maxlogit", "energy", "msp"}
    ):
        text += (
            f" Why: this backbone is not in real CLIP's regime. Zero-shot, before any prompt is learned, MaxLogit already beats MCM "
            f"({a['maxlogit']['auroc']:.1f} vs {a['mcm']['auroc']:.1f} AUROC on held-out renders, see ‘The backbone’s zero-shot regime’ below), where real CLIP has "
            "MCM ≈ 7 points ahead; NegPrompt's score is an MCM-style softmax and inherits that handicap."
        )
    return text


def negatives_note(results: Results, sim) -> str:
    """Per OOD set, what the negative prompts did: NegPrompt's AUROC minus CoOp's (the same positive
    prompts, no negatives) beside how close the set's images are to the trained negatives, against ID."""
    if "coop" not in results.average or "ID" not in sim.index:
        return ""
    col = "negative after training (mean)"
    id_cos = sim.loc["ID", col]
    cells = [
        f"{s} {results.ood[s]['negprompt']['auroc'] - results.ood[s]['coop']['auroc']:+.1f} (cosine {sim.loc[s, col]:.3f})"
        for s in results.ood
        if s in sim.index
    ]
    return (
        f"What the negative prompts add over CoOp's positives, per set (AUROC points; mean cosine of the set's images to the "
        f"trained negatives, ID's is {id_cos:.3f}): "
        + ", ".join(cells)
        + ". By that mean offset alone, a set closer to the "
        "negatives than ID is pushed down and one farther away lifted; where a set's gain has the other sign, the rest of the "
        "score (the per-image spread of its negative similarities) outweighs it (section 'Where the negative prompts went'; "
        "`benchmarks/analyses/negatives_decomposition.py` separates the negatives' constant weight from their per-image part)."
    )


def scale_test_note(backbone_manifest: dict) -> str:
    """The report's first lines when the backbone had random weights (`backbone.pretrained: random`):
    such a run measures time and memory at the architecture's size, and its figures mean nothing."""
    if backbone_manifest.get("pretrained") != "random":
        return ""
    return (
        f"\n> **Scale test, not results.** The backbone is `{backbone_manifest['model']}` with random weights "
        "(`backbone.pretrained: random`): this run measures time and memory, and every figure below is noise "
        "from an untrained model.\n"
    )


def partial_data_note(bench: dict) -> str:
    """The report's first lines when a set's image count differs from its size (run with
    `data.allow_partial: true`), or when the tree declared its own sizes: read from the data stage's manifest."""
    check = bench.get("check")
    if not check:
        return ""
    lines = []
    sets = {c["name"]: c for c in check["sets"]}
    if check["partial"]:
        found = ", ".join(
            f"{n} holds {sets[n]['found']:,} of {'at least ' if sets[n]['at_least'] else ''}{sets[n]['expected']:,}"
            for n in check["partial"]
        )
        lines.append(
            f"> **Partial data.** {found} images (`data.allow_partial: true`): "
            "these sets' figures are not the benchmark's."
        )
    if check["declared"]:
        lines.append(f"> Expected set sizes {check['expected_from']}, not ImageNet's as distributed.")
    return "".join(f"\n{line}\n" for line in lines)


def report_markdown(
    name: str,
    bench: dict,
    backbone_manifest: dict,
    params,
    results: Results,
    sim,
    diag: dict,
    *,
    protocol_summary: dict,
    protocol_md: str,
    neglabel_md: str,
    text_space_md: str,
    sheets: str,
) -> str:
    """reports/report.md: what ran, every method's table, the notes that say who wins and why, and the
    sections the stage built from its files (protocol, NegLabel, text space, contact sheets). `results` and
    `protocol_summary` are what metrics.json records (tables.metrics_json)."""
    id_top1 = results.id_top1
    return markdown.render(
        "report.md.j2",
        name=name,
        bench=bench,
        backbone_manifest=backbone_manifest,
        params=params,
        scale_test=scale_test_note(backbone_manifest),
        partial_data=partial_data_note(bench),
        kept=protocol.kept_sentence(
            params.pos.select, params.neg.select, protocol_summary["neg"].get("select_set", "")
        ),
        fpr95_conventions=FPR95_CONVENTIONS,
        test_label=protocol.test_label(params.pos.select, params.neg.select),
        metrics_table=report.metrics_table(results),
        ranking=ranking_note(results.average, diag),
        negatives=negatives_note(results, sim),
        local="locoop" in results.average,
        leaderboard=leaderboard.section(results, params),
        top1_table=markdown.table(
            [[report.fmt(a["top1"], a["top1_std"]) for a in id_top1.values()]], [report.label(m) for m in id_top1]
        ),
        backbone=backbone_section(diag),
        neglabel_md=neglabel_md,
        paper=paper_section(params.data.benchmark, results, params.open_vocab),
        protocol_md=protocol_md,
        similarity_table=sim.to_markdown(floatfmt=".4f"),
        text_space_md=text_space_md,
        sheets=sheets,
    )
