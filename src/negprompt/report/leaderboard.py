"""The family's leaderboard: every method on every set, ours beside the published ImageNet-1K ViT-B/16 figures, and
how faithfully the stand-in ranks the methods (Kendall's τ between our average AUROC and the published one)."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
from scipy.stats import kendalltau

from negprompt import metrics
from negprompt.methods.registry import STREAM

# ImageNet-1K as ID, CLIP ViT-B/16, average over iNaturalist / SUN / Places / Textures: (AUROC, FPR95, source).
# None where no figure was published. ../shared/spec/family.md and negprompt.md list where each was read.
PUBLISHED = {
    "mcm": (90.77, 42.74, "NegLabel paper, Table 1 (MCM row)"),
    "msp": (None, None, "no zero-shot figure (NegPrompt's MSP row is CLIPN's fine-tuned head)"),
    "maxlogit": (84.17, 67.72, "Meza De la Jara et al., App. K Table 7 (max cosine, MaxLogit's ranking)"),
    "energy": (None, None, "none on scaled logits (36.17 on raw cosines, 80.30 in CoVer: conventions differ)"),
    "neglabel": (94.21, 25.40, "NegLabel paper, Table 1"),
    "csp": (95.76, 17.51, "CSP paper, abstract / Table 1"),
    "adaneg": (96.66, 18.92, "AdaNeg paper (OpenOOD-VLM log 96.70 / 17.95)"),
    "tanl": (None, 9.8, "TANL abstract (FPR95 only)"),
    "glmcm": (90.8, 35.5, "GL-MCM as listed in ../shared/spec/negprompt.md (≈)"),
    "coop": (91.78, 51.68, "NegPrompt paper, Table 2"),
    "locoop": (93.52, 28.66, "NegPrompt paper, Table 2"),
    "negprompt": (94.81, 23.01, "NegPrompt paper, Table 2"),
}
# Seconds to score 10,000 cached test features, text features ready, one thread (docs/methods.md: measured with
# `python benchmarks/analyses/family_choices.py timing` on OpenMoji, 2-core Intel Xeon); a fixed record, so the report
# stays the same from run to run. Methods not timed say what they cost relative to one that was.
COST = {
    "mcm": "0.013",
    "msp": "as MCM",
    "maxlogit": "as MCM",
    "energy": "as MCM",
    "coop": "as MCM",
    "negprompt": "as MCM × (1 + p)",
    "glmcm": "as MCM × (1 + patches)",
    "locoop": "as MCM × (1 + patches)",
    "neglabel": "0.67",
    "csp": "0.59",
    "adaneg": "0.15 per stream image",
    "tanl": "0.26 per stream image",
}


def stream_entries(table: pd.DataFrame, method: str) -> dict | None:
    """metrics of a test-time method from its `method@set@oR` columns: per set and on average, mean ± population std
    over the stream orders. None when the table has no such column."""
    cols = [c for c in table.columns if c.startswith(f"{method}@")]
    if not cols:
        return None
    sets = list(dict.fromkeys(c.split("@")[1] for c in cols))
    orders = sorted({c.split("@")[2] for c in cols})
    ident = table.set == "id"
    per = {s: {o: {} for o in orders} for s in sets}
    for c in cols:
        _, s, o = c.split("@")
        i, x = table.loc[ident, c].to_numpy(), table.loc[table.set == s, c].to_numpy()
        per[s][o] = {"auroc": 100 * metrics.auroc(i, x), "fpr95": 100 * metrics.fpr_at_95_tpr(i, x)}

    def stats(v):
        v = np.asarray(v, dtype=np.float64)
        return round(float(v.mean()), 4), round(float(v.std(ddof=0)), 4)

    ood, average = {}, {}
    for s in sets:
        ood[s] = {}
        for metric in ("auroc", "fpr95"):
            ood[s][metric], ood[s][f"{metric}_std"] = stats([per[s][o][metric] for o in orders])
    for metric in ("auroc", "fpr95"):
        average[metric], average[f"{metric}_std"] = stats([np.mean([per[s][o][metric] for s in sets]) for o in orders])
    return {"ood": ood, "average": average, "orders": [int(o[1:]) for o in orders]}


def add_stream_methods(agg: dict, table: pd.DataFrame) -> dict:
    """Put the test-time methods into the aggregate (`table`: any seed's; they do not depend on the seed). The ±
    of these entries is over stream orders, not seeds; agg["stream_orders"] records them."""
    for m in STREAM:
        e = stream_entries(table, m)
        if e is None:
            continue
        for s, v in e["ood"].items():
            agg["ood"][s][m] = v
        agg["average"][m] = e["average"]
        agg["stream_orders"] = e["orders"]
    return agg


def rank_agreement(average: dict) -> dict:
    """Kendall's τ between our average AUROC and the published one, over the methods that have both, and the
    pairs ranked the other way round."""
    both = [m for m in average if PUBLISHED.get(m, (None,))[0] is not None]
    ours = [average[m]["auroc"] for m in both]
    theirs = [PUBLISHED[m][0] for m in both]
    if len(both) < 2:
        return {"methods": both, "tau": None, "p": None, "disagree": []}
    tau, p = kendalltau(ours, theirs)
    if not np.isfinite(tau):  # every ours equal: no ranking to compare
        return {"methods": both, "tau": None, "p": None, "disagree": []}
    disagree = [
        (a, b) for (a, x, u), (b, y, v) in itertools.combinations(zip(both, ours, theirs), 2) if (x - y) * (u - v) < 0
    ]
    return {"methods": both, "tau": round(float(tau), 4), "p": round(float(p), 4), "disagree": disagree}


def table(agg: dict, labels: dict) -> str:
    """Markdown: method, each set and the average (ours, AUROC / FPR95 with ±), the published ImageNet average and
    its source, and the scoring cost."""
    sets = list(agg["ood"])
    head = (
        "| method | " + " | ".join(sets) + " | **average** | ImageNet ViT-B/16 (published) | source | "
        "scoring s / 10k images |"
    )
    lines = [head, "|---" * (len(sets) + 5) + "|"]
    ordered = sorted(agg["average"], key=lambda m: -agg["average"][m]["auroc"])
    for m in ordered:
        cells = []
        for e in [agg["ood"][s][m] for s in sets] + [agg["average"][m]]:
            spread = round(e.get("auroc_std", 0), 2) or round(e.get("fpr95_std", 0), 2)
            cells.append(
                f"{e['auroc']:.2f} / {e['fpr95']:.2f}"
                + (f" (± {e['auroc_std']:.2f} / {e['fpr95_std']:.2f})" if spread else "")
            )
        a, f, src = PUBLISHED.get(m, (None, None, "your method (registry)"))
        pub = " / ".join("—" if v is None else f"{v:.2f}" for v in (a, f))
        name = labels.get(m, m) + (" (stream)" if m in STREAM else "")
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {pub} | {src} | {COST.get(m, '—')} |")
    return "\n".join(lines)


def section(agg: dict, labels: dict, params=None) -> str:
    """The report's leaderboard: the table, the stream's record, and Kendall's τ against ImageNet."""
    r = rank_agreement(agg["average"])
    orders = agg.get("stream_orders")
    stream_note = (
        f"Test-time methods (stream) see ID and one OOD set shuffled together (seeds {orders}, batches of "
        f"{params.family.stream_batch_size if params else 256}, memory reset per OOD set, as OpenOOD-VLM's "
        "evaluator); their ± is over these stream orders. Other ± are over training seeds (0 when nothing "
        "is trained). "
        if orders
        else ""
    )
    if r["tau"] is None:
        tau = "Kendall's τ needs two methods with published figures."
    else:
        pairs = ", ".join(f"{labels.get(a, a)} / {labels.get(b, b)}" for a, b in r["disagree"]) or "none"
        tau = (
            f"**Kendall's τ = {r['tau']:.2f}** (p = {r['p']:.3f}) between this run's average AUROC and the "
            f"published ImageNet ViT-B/16 figures, over {len(r['methods'])} methods "
            f"({', '.join(labels.get(m, m) for m in r['methods'])}); pairs ranked the other way round: {pairs}. "
            "A measure of the stand-in, not a target: nothing is tuned on the test sets to raise it."
        )
    return (
        f"Sorted by our average AUROC; AUROC / FPR95 in %. {stream_note}The scoring cost is a fixed record "
        "(docs/methods.md, one thread), not this run's timing.\n\n" + table(agg, labels) + "\n\n" + tau
    )
