"""Run the README's ablations as DVC experiments and tabulate them (mean ± std over the seeds).

    python benchmarks/ablations.py            # writes reports/ablations.md and reports/ablations.json

Each row is `dvc exp run --temp -n ablation-<i> -S ...` on the committed params: every experiment
starts from HEAD's params.yaml (overrides never accumulate) and runs in a temporary copy, so the
workspace, params.yaml and HEAD are never touched; results are read back from the experiment's ref.
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
    "local features: + GL-MCM, LoCoOp": ["features.local=true"],
}
METHODS = {"mcm": "MCM", "coop": "CoOp", "negprompt": "NegPrompt"}
LOCAL = {"glmcm": "GL-MCM", "locoop": "LoCoOp"}


def sh(*cmd: str) -> str:
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode:
        sys.exit(f"{' '.join(cmd)} failed:\n{out.stderr[-2000:]}")
    return out.stdout


def exp_file(exp: str, path: str) -> str:
    """A file as the named experiment (on the current HEAD) committed it."""
    head = sh("git", "rev-parse", "HEAD").strip()
    return sh("git", "show", f"refs/exps/{head[:2]}/{head[2:]}/{exp}:{path}")


def main():
    if sh("git", "status", "--porcelain", "--untracked-files=no").strip():
        sys.exit("commit or stash your changes first: experiments start from HEAD")
    results, sims, local = {}, {}, {}
    for i, (name, sets) in enumerate(EXPERIMENTS.items()):
        exp = f"ablation-{i}"
        print(f"== {name}: dvc exp run --temp -n {exp} {' '.join('-S ' + s for s in sets)}", flush=True)
        if exp in sh("dvc", "exp", "list", "--name-only").split():
            sh("dvc", "exp", "remove", exp)
        sh("dvc", "exp", "run", "--temp", "-n", exp, *[a for s in sets for a in ("-S", s)])
        results[name] = next(iter(json.loads(exp_file(exp, "reports/metrics.json")).values()))
        sims[name] = exp_file(exp, "reports/report.md").split("## Where the negative prompts went")[1].split("\n\n")[2]
        if "locoop" in results[name]["average"]:
            local[name] = results[name]

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
    md = ["# Ablations on the default benchmark", "", "Command: `python benchmarks/ablations.py` (each row is `dvc exp run --temp -S ...` from HEAD's params).",
          "Average AUROC / FPR95 over the OOD sets, %, mean ± std over the seeds.", "", *lines, "",
          "NegPrompt per OOD set (AUROC / FPR95):", "", "| experiment | " + " | ".join(sets) + " |", "|---" * (1 + len(sets)) + "|", *per_set,
          ""]
    for name, r in local.items():
        md += [f"Baselines on patch features ({name}), average AUROC / FPR95 and ID top-1:", "",
               "| method | AUROC ↑ | FPR95 ↓ | ID top-1 |", "|---|---|---|---|"]
        for m, label in {**LOCAL, **METHODS}.items():
            a, acc = r["average"][m], r["id_top1"].get(m)
            md.append(f"| {label} | {a['auroc']:.2f} ± {a['auroc_std']:.2f} | {a['fpr95']:.2f} ± {a['fpr95_std']:.2f} | "
                      + (f"{acc['top1']:.2f} ± {acc['top1_std']:.2f}" if acc else "–") + " |")
        md.append("")
    md += ["## Where the negative prompts went", ""]
    for name, table in sims.items():
        md += [f"### {name}", "", table, ""]
    Path("reports/ablations.md").write_text("\n".join(md))
    Path("reports/ablations.json").write_text(json.dumps(results, indent=1, sort_keys=True))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
