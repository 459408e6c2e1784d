"""The family's leaderboard: every method on every set, ours beside the published ImageNet-1K ViT-B/16 figures, and
how faithfully the stand-in ranks the methods (Kendall's τ between our average AUROC and the published one)."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
from scipy.stats import kendalltau

from negprompt import metrics
from negprompt.methods import registry
from negprompt.report import markdown
from negprompt.report.results import Results


def published(m: str) -> registry.Published:
    """The method's published ImageNet-1K ViT-B/16 average (negprompt.methods.builtin); a plugin has none."""
    spec = registry.methods().get(m)
    return (spec and spec.published) or registry.Published(None, None, "your method (registry)")


def cost(m: str) -> str:
    spec = registry.methods().get(m)
    return spec.cost if spec else "—"


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
        per[s][o] = metrics.detection_figures(i, x)

    def stats(v):
        v = np.asarray(v, dtype=np.float64)
        return round(float(v.mean()), 4), round(float(v.std(ddof=0)), 4)

    ood, average = {}, {}
    for s in sets:
        ood[s] = {}
        for metric in metrics.FIGURES:
            ood[s][metric], ood[s][f"{metric}_std"] = stats([per[s][o][metric] for o in orders])
    for metric in metrics.FIGURES:
        average[metric], average[f"{metric}_std"] = stats([np.mean([per[s][o][metric] for s in sets]) for o in orders])
    return {"ood": ood, "average": average, "orders": [int(o[1:]) for o in orders]}


def add_stream_methods(results: Results, table: pd.DataFrame) -> None:
    """Put the test-time methods into `results`, in place (`table`: any seed's; they do not depend on the seed). The
    ± of these entries is over stream orders, not seeds; results.stream_orders records them."""
    for m in registry.methods(kind="stream"):
        e = stream_entries(table, m)
        if e is None:
            continue
        for s, v in e["ood"].items():
            results.ood[s][m] = v
        results.average[m] = e["average"]
        results.stream_orders = e["orders"]


def rank_agreement(average: dict) -> dict:
    """Kendall's τ between our average AUROC and the published one, over the methods that have both, and the
    pairs ranked the other way round."""
    both = [m for m in average if published(m).auroc is not None]
    ours = [average[m]["auroc"] for m in both]
    theirs = [published(m).auroc for m in both]
    if len(both) < 2:
        return {"methods": both, "tau": None, "p": None, "disagree": []}
    tau, p_value = kendalltau(ours, theirs)
    if not np.isfinite(tau):  # every ours equal: no ranking to compare
        return {"methods": both, "tau": None, "p": None, "disagree": []}
    disagree = [
        (a, b) for (a, x, u), (b, y, v) in itertools.combinations(zip(both, ours, theirs), 2) if (x - y) * (u - v) < 0
    ]
    return {"methods": both, "tau": round(float(tau), 4), "p": round(float(p_value), 4), "disagree": disagree}


# A published FPR95's convention (registry.Published.fpr95_convention) and our metrics.json key to set beside it
CONVENTIONS = {"id95": "ID positive (`fpr95`)", "ood95": "OOD positive (`fpr95_openood`)", "": "not stated"}


def table(results: Results) -> str:
    """Markdown: method, each set and the average (ours, AUROC / FPR95 / FPR95 OpenOOD with ±), the published
    ImageNet average, its FPR95 convention and source, and the scoring cost."""
    sets = list(results.ood)
    columns = ["method", *sets, "**average**", "ImageNet ViT-B/16 (published)", "published FPR95", "source"]
    columns.append("scoring s / 10k images")
    rows = []
    ordered = sorted(results.average, key=lambda m: -results.average[m]["auroc"])
    for m in ordered:
        cells = []
        for e in [results.ood[s][m] for s in sets] + [results.average[m]]:
            spread = any(round(e.get(f"{k}_std", 0), 2) for k in metrics.FIGURES)
            cells.append(
                " / ".join(f"{e[k]:.2f}" for k in metrics.FIGURES)
                + (" (± " + " / ".join(f"{e[f'{k}_std']:.2f}" for k in metrics.FIGURES) + ")" if spread else "")
            )
        record = published(m)
        pub = " / ".join("—" if v is None else f"{v:.2f}" for v in (record.auroc, record.fpr95))
        convention = CONVENTIONS[record.fpr95_convention] if record.fpr95 is not None else "—"
        kind = registry.methods()[m].kind if m in registry.methods() else ""
        name = registry.label(m) + (" (stream)" if kind == "stream" else "")
        rows.append([name, *cells, pub, convention, record.source, cost(m)])
    return markdown.table(rows, columns)


def left_out(results: Results, params=None) -> dict[str, registry.PublishedOnly]:
    """The family methods this run's `family.methods` leaves out (TINS is opt-in) that have a published figure: the
    leaderboard lists them by that figure, with how to run them. None without `params`."""
    if params is None:
        return {}
    out = {}
    for m in registry.family():
        spec = registry.methods()[m]
        record = spec.published
        if m in params.family.methods or m in results.average or record is None:
            continue
        if record.auroc is not None or record.fpr95 is not None:
            out[m] = registry.PublishedOnly(
                spec.label, record, f"nothing: this run's `family.methods` leaves it out (add {m}; docs/methods.md)"
            )
    return out


def published_only_table(extra: dict | None = None) -> str:
    """Markdown: the methods listed by their published figure only, and what each needs that we cannot run (or, for
    `extra`, `left_out`'s: how to run them)."""
    rows = registry.published_only() | (extra or {})
    if not rows:
        return ""
    columns = ["method", "ImageNet ViT-B/16 (published)", "published FPR95", "source", "not run here: it needs"]
    out = []
    for r in sorted(rows.values(), key=lambda r: -(r.published.auroc or 0)):
        record = r.published
        pub = " / ".join("—" if v is None else f"{v:.2f}" for v in (record.auroc, record.fpr95))
        out.append([r.label, pub, CONVENTIONS[record.fpr95_convention], record.source, r.needs])
    return markdown.table(out, columns)


def published_images(methods) -> str:
    """Which images the published figures were measured on (registry.Published.images), one clause per image list."""
    by_images: dict[str, list[str]] = {}
    for m in methods:
        record = published(m)
        if record.auroc is not None or record.fpr95 is not None:
            by_images.setdefault(record.images, []).append(registry.label(m))
    if not by_images:
        return ""
    if len(by_images) == 1:
        return f"Every published figure is on {next(iter(by_images))}."
    return "Published figures are on " + "; ".join(f"{i} ({', '.join(ms)})" for i, ms in by_images.items()) + "."


def section(results: Results, params=None) -> str:
    """The report's leaderboard: the table, the stream's record, and Kendall's τ against ImageNet."""
    agreement = rank_agreement(results.average)
    extra = left_out(results, params)
    images = published_images(results.average) or "No method here has a published figure."
    orders = results.stream_orders
    stream_note = (
        f"Test-time methods (stream) see ID and one OOD set shuffled together (seeds {orders}, batches of "
        f"{params.family.stream_batch_size if params else 256}, memory reset per OOD set, as OpenOOD-VLM's "
        "evaluator); their ± is over these stream orders. Other ± are over training seeds (0 when nothing "
        "is trained). "
        if orders
        else ""
    )
    if agreement["tau"] is None:
        tau = "Kendall's τ needs two methods with published figures."
    else:
        label = registry.label
        pairs = ", ".join(f"{label(a)} / {label(b)}" for a, b in agreement["disagree"]) or "none"
        tau = (
            f"**Kendall's τ = {agreement['tau']:.2f}** (p = {agreement['p']:.3f}) between this run's average AUROC "
            f"and the published ImageNet ViT-B/16 figures, over {len(agreement['methods'])} methods "
            f"({', '.join(label(m) for m in agreement['methods'])}); pairs ranked the other way round: {pairs}. "
            "A measure of the stand-in, not a target: nothing is tuned on the test sets to raise it."
        )
    return (
        "Sorted by our average AUROC; AUROC / FPR95 / FPR95 OpenOOD in % (the conventions above; a published FPR95 "
        f"is comparable with ours in its own convention). {images} {stream_note}"
        "The scoring cost is a fixed record (docs/methods.md, one thread), not this run's timing.\n\n"
        + table(results)
        + "\n\n"
        + tau
        + (
            "\n\nPublished only (not in τ: not scored in this run; most need more than cached features):\n\n"
            + published_only_table(extra)
            if registry.published_only() or extra
            else ""
        )
    )
