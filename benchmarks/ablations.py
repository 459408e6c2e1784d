"""Run the README's ablations as DVC experiments and tabulate them (mean ± std over the seeds).

    python benchmarks/ablations.py            # writes reports/ablations.md and reports/ablations.json

Each row is `dvc exp run -S ...` on the current params; the workspace is put back to the default
run at the end (every stage is cached, so that is a checkout, not a rerun).
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

EXPERIMENTS = {
    "official loss, p = 2 (default)": [],
    "paper loss (Eq. 7)": ["neg.loss_variant=paper"],
    "p = 1": ["neg.num_prompts=1"],
    "p = 3": ["neg.num_prompts=3"],
    "one-stage (Table 5)": ["neg.one_stage=true"],
    "open vocabulary, 10% of classes": ["open_vocab=true"],
    "open vocabulary, paper loss": ["open_vocab=true", "neg.loss_variant=paper"],
}
METHODS = {"mcm": "MCM", "coop": "CoOp", "negprompt": "NegPrompt"}


def sh(*cmd: str) -> str:
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode:
        sys.exit(f"{' '.join(cmd)} failed:\n{out.stderr[-2000:]}")
    return out.stdout


def main():
    results, sims = {}, {}
    for name, sets in EXPERIMENTS.items():
        print(f"== {name}: dvc exp run {' '.join('-S ' + s for s in sets)}", flush=True)
        sh("dvc", "exp", "run", *[a for s in sets for a in ("-S", s)])
        metrics = json.loads(Path("reports/metrics.json").read_text())
        results[name] = next(iter(metrics.values()))
        report = Path("reports/report.md").read_text()
        sims[name] = report.split("## Where the negative prompts went")[1].split("\n\n")[2]
    sh("git", "checkout", "params.yaml")
    sh("dvc", "repro")

    lines = ["| experiment | " + " | ".join(f"{m} AUROC ↑ | {m} FPR95 ↓" for m in METHODS.values()) + " | NegPrompt ID top-1 |",
             "|---" * (2 + 2 * len(METHODS)) + "|"]
    for name, r in results.items():
        cells = []
        for m in METHODS:
            a = r["average"][m]
            cells += [f"{a['auroc']:.2f} ± {a['auroc_std']:.2f}", f"{a['fpr95']:.2f} ± {a['fpr95_std']:.2f}"]
        acc = r["id_top1"]["negprompt"]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {acc['top1']:.2f} ± {acc['top1_std']:.2f} |")
    per_set = []
    for name, r in results.items():
        per_set.append(f"| {name} | " + " | ".join(f"{r['ood'][s]['negprompt']['auroc']:.2f} / {r['ood'][s]['negprompt']['fpr95']:.2f}" for s in r["ood"]) + " |")
    sets = list(next(iter(results.values()))["ood"])
    md = ["# Ablations on the default benchmark", "", "Command: `python benchmarks/ablations.py` (each row is `dvc exp run -S ...`).",
          "Average AUROC / FPR95 over the OOD sets, %, mean ± std over the seeds.", "", *lines, "",
          "NegPrompt per OOD set (AUROC / FPR95):", "", "| experiment | " + " | ".join(sets) + " |", "|---" * (1 + len(sets)) + "|", *per_set,
          "", "## Where the negative prompts went", ""]
    for name, table in sims.items():
        md += [f"### {name}", "", table, ""]
    Path("reports/ablations.md").write_text("\n".join(md))
    Path("reports/ablations.json").write_text(json.dumps(results, indent=1, sort_keys=True))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
