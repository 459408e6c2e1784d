"""The report's "Protocol" section: what each checkpoint-selection rule would have kept, from the
per-epoch curves of one run, beside the last epoch.

For CoOp (stage 1) and NegPrompt (stage 2), per OOD set and on average (mean over sets, then
over seeds), the figures of the epoch each rule picks (`negprompt.methods.selection`): `last`, `id_val`
(when held-out ID images were logged) and `test`, the official code's choice; the difference
`test − last` is that selection's optimism. The curves of stage 2 start from the context stage 1
kept, so NegPrompt's rules are compared for the run's own `pos.select`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from negprompt.methods import registry
from negprompt.methods.selection import TEST_LABEL, criterion, select_epoch

RULES = ("last", "id_val", "test")
METHODS = {m.params: m.label for m in registry.methods(kind="trained").values() if m.params in ("pos", "neg")}


@dataclass
class StageRuns:
    """One training stage over the seeds: its settings and, per seed, the curves and the kept epoch."""

    select: str
    schedule: str
    curves: list[pd.DataFrame]  # per seed: one row per epoch (in order), columns as logged ("test/near/auroc", ...)
    kept: list[int]  # per seed: index of the kept epoch
    select_set: str = ""  # stage 2's `test` selection set
    epochs: int = field(init=False)

    def __post_init__(self):
        self.epochs = len(self.curves[0]) if self.curves else 0


def rule_epochs(stage: str, runs: StageRuns) -> dict[str, list[int]]:
    """{rule: per-seed epoch index} for every rule the curves allow; the run's own rule is the kept one."""
    out = {}
    for rule in RULES:
        if rule == runs.select:
            out[rule] = list(runs.kept)
            continue
        crit = criterion(stage, rule, runs.select_set)
        if crit is None:
            out[rule] = [len(c) - 1 for c in runs.curves]
        elif all(crit.key in c.columns for c in runs.curves):
            out[rule] = [select_epoch(c.to_dict("records"), *crit) for c in runs.curves]
    return out


def figures(runs: StageRuns, picks: list[int], sets: list[str]) -> dict[str, dict[str, float]]:
    """{set or "average": {"auroc", "fpr95"}} at the picked epoch of each seed, mean over seeds
    (the average is over sets per seed first, as the report's main table)."""
    out = {}
    for metric in ("auroc", "fpr95"):
        per_seed = np.array(
            [[c[f"test/{s}/{metric}"].iloc[i] for s in sets] for c, i in zip(runs.curves, picks)]
        )  # [seeds, sets]
        for j, s in enumerate(sets):
            out.setdefault(s, {})[metric] = float(per_seed[:, j].mean())
        out.setdefault("average", {})[metric] = float(per_seed.mean(1).mean())
    return out


def summary(stages: dict[str, StageRuns], sets: list[str]) -> dict:
    """metrics.json's `protocol`: per stage its settings, kept epochs (1-based) and the kept
    epoch's average minus the last epoch's (0 under `select: last`)."""
    out = {}
    for stage, runs in stages.items():
        kept = figures(runs, runs.kept, sets)["average"]
        last = figures(runs, [len(c) - 1 for c in runs.curves], sets)["average"]
        entry = {
            "select": runs.select,
            "schedule": runs.schedule,
            "epochs": runs.epochs,
            "kept_epochs": [i + 1 for i in runs.kept],
            "kept_minus_last": {m: round(kept[m] - last[m], 4) for m in kept},
        }
        if stage == "neg":
            entry["select_set"] = runs.select_set
        out[stage] = entry
    return out


def _rule_name(stage: str, rule: str, runs: StageRuns) -> str:
    what = {
        "last": "last epoch",
        "id_val": "best held-out ID accuracy" if stage == "pos" else "lowest stage-2 loss on held-out ID images",
        "test": "best test ID accuracy" if stage == "pos" else f"best test AUROC on {runs.select_set}",
    }[rule]
    return f"`{rule}`" + (" (kept)" if rule == runs.select else "") + f": {what}"


def stage_table(stage: str, runs: StageRuns, sets: list[str]) -> str:
    picks = rule_epochs(stage, runs)
    figs = {rule: figures(runs, epochs, sets) for rule, epochs in picks.items()}
    rules = list(picks)
    head = (
        ["OOD set"]
        + [f"AUROC {r}" for r in rules]
        + (["Δ test − last"] if "test" in rules else [])
        + [f"FPR95 {r}" for r in rules]
        + (["Δ test − last"] if "test" in rules else [])
    )
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for s in [*sets, "average"]:
        cells = []
        for metric in ("auroc", "fpr95"):
            cells += [f"{figs[r][s][metric]:.2f}" for r in rules]
            if "test" in rules:
                cells.append(f"{figs['test'][s][metric] - figs['last'][s][metric]:+.2f}")
        name = f"**{s}**" if s == "average" else s
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    epochs = ["epochs kept (per seed)"] + [", ".join(str(i + 1) for i in picks[r]) for r in rules]
    lines.append("| " + " | ".join(epochs + [""] * (len(head) - len(epochs))) + " |")
    legend = "; ".join(_rule_name(stage, r, runs) for r in rules)
    return (
        f"**{METHODS[stage]}** ({stage}.select: `{runs.select}`, schedule `{runs.schedule}`, {runs.epochs} epochs). "
        f"Rules: {legend}.\n\n" + "\n".join(lines)
    )


def kept_sentence(pos_select: str, neg_select: str, select_set: str = "") -> str:
    """The report header's line on which checkpoint is kept; with both `last`, today's sentence."""
    if pos_select == neg_select == "last":
        return "The last epoch is kept: unlike the official code, nothing is selected on test data."
    parts = []
    for stage, select in (("pos", pos_select), ("neg", neg_select)):
        if select == "test":
            on = "test ID accuracy" if stage == "pos" else f"test AUROC on {select_set}"
            parts.append(f"{METHODS[stage]}: **{TEST_LABEL}** ({stage}.select: test, best {on})")
        elif select == "id_val":
            parts.append(f"{METHODS[stage]}: best epoch on held-out ID images ({stage}.select: id_val, no test data)")
        else:
            parts.append(f"{METHODS[stage]}: last epoch")
    return "Kept checkpoints: " + "; ".join(parts) + "."


def test_label(pos_select: str, neg_select: str) -> str:
    """A line to put above any table of this run's figures when a stage selected on test data."""
    which = [METHODS[s] for s, sel in (("pos", pos_select), ("neg", neg_select)) if sel == "test"]
    if not which:
        return ""
    also = " (and NegPrompt, whose positive prompts are CoOp's)" if which == ["CoOp"] else ""
    return f"**{' and '.join(which)}{also}: {TEST_LABEL}.** The `last` figures beside them are in 'Protocol' below.\n"


def section(stages: dict[str, StageRuns], sets: list[str], paper: tuple[float, float] | None = None) -> str:
    """The markdown of the Protocol section. `stages`: {"pos": ..., "neg": ...}; `paper`: the
    paper's NegPrompt average (AUROC, FPR95) when the benchmark has one."""
    parts = [
        "Which epoch each checkpoint-selection rule keeps, from the per-epoch curves of this run "
        "(`reports/train/*_seed*/`, "
        "DVCLive; `dvc plots show` draws them). Mean over seeds, %. `test` is the official code's rule "
        f"({TEST_LABEL}): its Δ over `last` is the optimism of selecting on the data one reports on. "
        "Only the rule named "
        "(kept) produced the checkpoint scored in the tables above; the others are read off the same curves."
    ]
    for stage in ("pos", "neg"):
        if stage in stages and stages[stage].curves:
            parts.append(stage_table(stage, stages[stage], sets))
    if "neg" in stages and stages["neg"].curves:
        neg = stages["neg"]
        picks = rule_epochs("neg", neg)
        if "test" in picks:
            t, last = figures(neg, picks["test"], sets)["average"], figures(neg, picks["last"], sets)["average"]
            parts.append(
                f"Selecting NegPrompt on test data ({neg.select_set} AUROC) moves its average from "
                f"{last['auroc']:.2f} / "
                f"{last['fpr95']:.2f} (last epoch) to {t['auroc']:.2f} / {t['fpr95']:.2f} (AUROC / FPR95)."
            )
        if paper:
            parts.append(
                f"Paper (the official code's protocol: 100 + 100 epochs, checkpoint selected on Textures test AUROC): "
                f"NegPrompt {paper[0]:.2f} / {paper[1]:.2f}."
            )
    return "\n\n".join(parts)
