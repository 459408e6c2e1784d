"""Tables and figures of a run: metrics (mean ± std over seeds), ROC curves, score histograms,
the similarity bars of the paper's Fig. 3 and a t-SNE like its Fig. 4."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from negprompt import metrics  # noqa: E402
from negprompt.methods import registry  # noqa: E402
from negprompt.report import leaderboard, markdown  # noqa: E402
from negprompt.report.results import Results  # noqa: E402

ZERO_SHOT = ("neglabel", "mcm", "maxlogit", "energy")  # the backbone stage's zero-shot methods, in real CLIP's order


def methods_in(table: pd.DataFrame) -> list[str]:
    """The methods a score table has, in the registry's order (GL-MCM and LoCoOp only when local features were
    cached; plugins from their `method:<name>` columns). The stream methods are added by `aggregate`."""
    specs = registry.methods()
    builtin = [m for m, s in specs.items() if s.kind != "stream" and s.fn is None and m in table.columns]
    plugin = registry.PLUGIN
    return builtin + [c[len(plugin) :] for c in table.columns if c.startswith(plugin)]


def column(table: pd.DataFrame, m: str) -> pd.Series:
    return table[m] if m in table.columns else table[registry.PLUGIN + m]


def label(m: str) -> str:
    return registry.label(m)


# Paper Tables 2-4 (AUROC / FPR95 in %, ID top-1) for the ImageNet benchmarks; NegLabel's rows from its own paper
# (Table 1).
PAPER = {
    "imagenet_conventional": {
        "average": {
            "mcm": (90.76, 42.74),
            "neglabel": (94.21, 25.40),
            "coop": (91.78, 51.68),
            "locoop": (93.52, 28.66),
            "negprompt": (94.81, 23.01),
        },
        "Textures": {"mcm": (86.11, 57.77), "neglabel": (90.22, 43.56), "negprompt": (91.60, 35.21)},
        "iNaturalist": {"mcm": (94.61, 30.91), "neglabel": (99.49, 1.91), "negprompt": (98.73, 6.32)},
        "Places": {"mcm": (89.77, 44.69), "neglabel": (91.64, 35.59), "negprompt": (93.34, 27.60)},
        "SUN": {"mcm": (92.57, 34.59), "neglabel": (95.49, 20.53), "negprompt": (95.55, 22.89)},
        "average_open_vocab": {"coop": (89.94, 45.28), "locoop": (90.15, 37.09), "negprompt": (93.76, 25.86)},
        "id_top1": {"coop": 72.1, "locoop": 71.7, "mcm": 67.0, "negprompt": 72.1, "negprompt_open_vocab": 71.9},
    },
    "imagenet_hard": {
        "split1": {"negprompt": (99.85, 0.62)},
        "split2": {"negprompt": (98.54, 7.60)},
        "split3": {"negprompt": (93.89, 22.89)},
        "split4": {"negprompt": (99.57, 1.60)},
        "average": {"mcm": (93.77, 25.83), "coop": (93.99, 24.14), "negprompt": (97.96, 8.18)},
    },
}


def seed_metrics(table: pd.DataFrame) -> dict:
    """{ood_set: {method: {auroc, fpr95, fpr95_openood}}} and {method: top1} for one seed's score table (in %)."""
    ident = table[table.set == "id"]
    out = {}
    for name in [s for s in table.set.unique() if s != "id"]:
        ood = table[table.set == name]
        out[name] = {m: metrics.detection_figures(column(ident, m), column(ood, m)) for m in methods_in(table)}
    predictions = {m: s.prediction for m, s in registry.methods().items() if s.prediction}
    acc = {m: 100 * float((ident[col] == ident.label).mean()) for m, col in predictions.items() if col in table.columns}
    return {"ood": out, "acc": acc}


def aggregate(tables: list[pd.DataFrame]) -> Results:
    """Mean and std over seeds of every method's figures (metrics.FIGURES) on each OOD set, on average (mean over
    OOD sets per seed, then over seeds) and of ID top-1; the stream methods' and Kendall's τ added (Results)."""
    per_seed = [seed_metrics(t) for t in tables]
    sets = list(per_seed[0]["ood"])
    methods = methods_in(tables[0])

    def stats(values):
        values = np.asarray(values, dtype=np.float64)
        return round(float(values.mean()), 4), round(float(values.std(ddof=0)), 4)

    ood, average = {}, {}
    for s in sets:
        ood[s] = {}
        for m in methods:
            entry = {}
            for metric in metrics.FIGURES:
                entry[metric], entry[f"{metric}_std"] = stats([r["ood"][s][m][metric] for r in per_seed])
            ood[s][m] = entry
    for m in methods:
        entry = {}
        for metric in metrics.FIGURES:
            entry[metric], entry[f"{metric}_std"] = stats(
                [np.mean([r["ood"][s][m][metric] for s in sets]) for r in per_seed]
            )
        average[m] = entry
    id_top1 = {}
    for m in per_seed[0]["acc"]:
        id_top1[m] = dict(zip(("top1", "top1_std"), stats([r["acc"][m] for r in per_seed])))
    results = Results(ood=ood, average=average, id_top1=id_top1)
    leaderboard.add_stream_methods(results, tables[0])
    agreement = leaderboard.rank_agreement(results.average)
    results.rank_agreement = {
        "kendall_tau": agreement["tau"],
        "methods": len(agreement["methods"]),
        "disagreeing_pairs": len(agreement["disagree"]),
    }
    return results


def metrics_json(name: str, results: Results, protocol_summary: dict) -> dict:
    """reports/metrics.json from the aggregated figures (`aggregate`) and the protocol's record of which epochs
    were kept (negprompt.methods.protocol.summary), under the run's benchmark name; the report's text reads
    the same figures and summary, so they are the ones DVC tracks."""
    return {name: {**results.to_dict(), "protocol": protocol_summary}}


def similarity_summary(tables: list[pd.DataFrame]) -> pd.DataFrame:
    """Mean cosine similarity of each set's images to positive and negative prompts (mean over seeds):
    where the negatives ended up, before (their initialisation) and after training. Per set, because a
    set closer to the negatives than ID is pushed down by NegPrompt's score and a farther one lifted."""
    rows = []
    for t in tables:
        for group, part in t.groupby("set", sort=False):
            rows.append(
                {
                    "images": "ID" if group == "id" else group,
                    "positive (max)": part.pos_sim_max.mean(),
                    "negative (max)": part.neg_sim_max.mean(),
                    "negative before training (mean)": part.neg_init_sim_mean.mean(),
                    "negative after training (mean)": part.neg_sim_mean.mean(),
                }
            )
    return pd.DataFrame(rows).groupby("images", sort=False).mean()


def fmt(mean: float, std: float) -> str:
    return f"{mean:.2f} ± {std:.2f}"


def metrics_table(results: Results) -> str:
    sets = list(results.ood) + ["average"]
    columns = ["method"] + [f"{s} {k}" for s in sets for k in ("AUROC ↑", "FPR95 ↓", "FPR95 OpenOOD ↓")]
    rows = []
    for m in results.average:
        cells = []
        for s in sets:
            e = results.average[m] if s == "average" else results.ood[s][m]
            cells += [fmt(e[k], e[f"{k}_std"]) for k in metrics.FIGURES]
        rows.append([f"**{label(m)}**" if m == "negprompt" else label(m)] + cells)
    return markdown.table(rows, columns)


def plot_roc(tables: list[pd.DataFrame], path: Path) -> dict[str, pd.DataFrame]:
    """ROC curves of every method per OOD set (first seed); returns, per set, the curves of the
    headline methods (registry) in one long table (method, fpr, tpr) for DVC plots."""
    t = tables[0]
    sets = [s for s in t.set.unique() if s != "id"]
    fig, axes = plt.subplots(1, len(sets), figsize=(4 * len(sets), 4), squeeze=False)
    ident, curves = t[t.set == "id"], {}
    roc = [m for m, spec in registry.methods().items() if spec.headline]
    for ax, s in zip(axes[0], sets):
        ood = t[t.set == s]
        for m in methods_in(t):
            fpr, tpr = metrics.roc(column(ident, m), column(ood, m))
            auroc = 100 * metrics.auroc(column(ident, m), column(ood, m))
            ax.plot(fpr, tpr, label=f"{label(m)} ({auroc:.1f})", lw=2.2 if m == "negprompt" else 1.2)
            if m in roc:
                curves.setdefault(s, []).append(pd.DataFrame({"method": label(m), "fpr": fpr, "tpr": tpr}))
        ax.plot([0, 1], [0, 1], "k:", lw=0.8)
        ax.axhline(0.95, color="gray", lw=0.6, ls="--")
        ax.set(title=f"ID vs {s}", xlabel="FPR (OOD kept as ID)", ylabel="TPR (ID kept)")
        ax.legend(fontsize=7, loc="lower right", title="AUROC %", title_fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return {s: pd.concat(c, ignore_index=True) for s, c in curves.items()}


def plot_histograms(tables: list[pd.DataFrame], path: Path) -> None:
    t = tables[0]
    sets = [s for s in t.set.unique() if s != "id"]
    fig, axes = plt.subplots(2, len(sets), figsize=(4 * len(sets), 6), squeeze=False)
    for row, m in enumerate(("mcm", "negprompt")):
        for ax, s in zip(axes[row], sets):
            bins = np.histogram_bin_edges(np.concatenate([t[m][t.set == "id"], t[m][t.set == s]]), bins=40)
            ax.hist(t[m][t.set == "id"], bins=bins, alpha=0.6, density=True, label="ID")
            ax.hist(t[m][t.set == s], bins=bins, alpha=0.6, density=True, label=s)
            ax.set(title=f"{label(m)} score: ID vs {s}", xlabel="score (higher = more ID)")
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_similarity(tables: list[pd.DataFrame], path: Path) -> None:
    """Fig. 3: image-to-positive vs image-to-negative similarity for ID and each OOD set."""
    t = tables[0]
    groups = ["id"] + [s for s in t.set.unique() if s != "id"]
    pos_sim = [t.pos_sim_max[t.set == g].mean() for g in groups]
    neg_sim = [t.neg_sim_max[t.set == g].mean() for g in groups]
    x = np.arange(len(groups))
    fig, ax = plt.subplots(figsize=(1.6 * len(groups) + 2, 3.5))
    ax.bar(x - 0.2, pos_sim, 0.4, label="max sim to positive prompts")
    ax.bar(x + 0.2, neg_sim, 0.4, label="max sim to negative prompts")
    ax.set_xticks(x, ["ID" if g == "id" else g for g in groups])
    ax.set(ylabel="cosine similarity", title="Where images sit between positive and negative prompts")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_tsne(
    pos: np.ndarray, neg: np.ndarray, images: np.ndarray, image_sets: np.ndarray, path: Path, seed: int = 0
) -> None:
    """Fig. 4: t-SNE of positive prompts [k, d], negative prompts [k, p, d] and image features."""
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    neg = neg.reshape(-1, neg.shape[-1])
    x = np.concatenate([pos, neg, images])
    with threadpool_limits(1):  # Barnes-Hut sums in thread order: one thread, the same picture on any core count
        emb = TSNE(n_components=2, perplexity=min(30, len(x) - 1), init="pca", random_state=seed).fit_transform(x)
    fig, ax = plt.subplots(figsize=(6, 5))
    k, kp = len(pos), len(neg)
    for name in np.unique(image_sets):
        sel = np.where(image_sets == name)[0] + k + kp
        ax.scatter(*emb[sel].T, s=5, alpha=0.4, label=f"{'ID' if name == 'id' else name} images")
    ax.scatter(*emb[:k].T, marker="^", s=30, c="tab:green", edgecolors="k", lw=0.4, label="positive prompts")
    ax.scatter(*emb[k : k + kp].T, marker="x", s=30, c="tab:red", label="negative prompts")
    ax.set(xticks=[], yticks=[], title="t-SNE of prompt and image features")
    ax.legend(fontsize=7, markerscale=1.5)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def regime_table(diag: dict) -> str:
    """The backbone's zero-shot statistics per set (markdown): max and mean cosine over the ID
    prompts, their correlation, the max's margin over the mean in std, and zero-shot MCM /
    MaxLogit / Energy (and NegLabel, when measured) AUROC / FPR95."""
    zs = [m for m in ZERO_SHOT if m in diag["average"]]
    columns = ["set", "n", "max cosine", "mean cosine", "corr(max, mean)", "max − mean (std)"] + [label(m) for m in zs]
    rows = []
    for name, st in diag["sets"].items():
        cells = [
            name,
            str(st["n"]),
            f"{st['max_cos'][0]:.3f} ± {st['max_cos'][1]:.3f}",
            f"{st['mean_cos'][0]:.3f} ± {st['mean_cos'][1]:.3f}",
            f"{st['corr_max_mean']:+.2f}",
            f"{st['max_z'][0]:.2f} ± {st['max_z'][1]:.2f}",
        ]
        ood = diag["ood"].get(name)
        cells += [f"{ood[m]['auroc']:.1f} / {ood[m]['fpr95']:.1f}" for m in zs] if ood else [""] * len(zs)
        rows.append(cells)
    a = diag["average"]
    rows.append(["**average**"] + [None] * 5 + [f"**{a[m]['auroc']:.1f} / {a[m]['fpr95']:.1f}**" for m in zs])
    return markdown.table(rows, columns)


def neglabel_section(
    labels: pd.DataFrame, table: pd.DataFrame, results: Results, known: set[str] | None = None, sample: int = 30
) -> str:
    """What NegLabel relies on (markdown): how many labels were mined (and how many are names the backbone
    was pretrained on, where that is known), a sample of them, and per OOD set the mined labels that most
    often win an image's highest similarity over every ID label. `table`: one seed's score table."""
    if "neglabel" not in results.average or "neglabel_top" not in table.columns:
        return ""
    words = labels.word.tolist()
    head = f"{len(words)} negative labels mined"
    if known is not None:
        head += f", {sum(w in known for w in words)} of them names the backbone was pretrained on"
    step = max(1, len(words) // sample)
    intro = (
        head
        + f". A sample ({'every label' if step == 1 else f'one in {step}'}, farthest from the ID labels first): "
        + ", ".join(words[::step][:sample])
        + "."
    )
    rows = []
    for name, group in table.groupby("set", sort=False):
        won = group[group.neglabel_wins.astype(bool)]
        counts = won.neglabel_top.value_counts().head(5)
        top = ", ".join(f"{words[i]} ({n})" for i, n in counts.items())
        ood = results.ood.get(name, {})
        cells = [
            " / ".join(f"{ood[m][k]:.2f}" for k in metrics.FIGURES) if m in ood else "" for m in ("neglabel", "mcm")
        ]
        rows.append([name, f"{len(won) / len(group):.1%}", top] + cells)
    columns = [
        "set",
        "images won by a negative label",
        "most frequent winners (images)",
        "NegLabel AUROC / FPR95 / FPR95 OpenOOD",
        "MCM AUROC / FPR95 / FPR95 OpenOOD",
    ]
    return intro + "\n\n" + markdown.table(rows, columns)


def text_space_rows(
    prompts: dict[str, torch.Tensor], name_feats: torch.Tensor, names: list[str], top: int = 4
) -> pd.DataFrame:
    """Where prompt features sit among the concept names' "a photo of a {}." features. prompts:
    {label: [k, d]} (one feature per ID class, e.g. one negative context over the k class names);
    per label, the mean over classes of the highest cosine to any name (near 1: on the text
    manifold, where real captions lie) and the names most often nearest."""
    rows = []
    for label, feats in prompts.items():
        cos = feats.float() @ name_feats.float().T  # [k, V]
        best = cos.max(1)
        counts = pd.Series(best.indices.numpy()).value_counts().head(top)
        rows.append(
            {
                "prompts": label,
                "highest cosine to a name (mean over classes)": float(best.values.mean()),
                "nearest names (classes)": ", ".join(f"{names[i]} ({n})" for i, n in counts.items()),
            }
        )
    return pd.DataFrame(rows).set_index("prompts")


def fig3_check(tables: list[pd.DataFrame]) -> tuple[pd.Series, list[str]]:
    """The paper's Fig. 3 claim, per set: the mean over images of the highest similarity to any negative
    prompt (mean over seeds), and the OOD sets whose images are *not* closer to the negatives than ID's."""
    means = pd.concat([t.groupby("set", sort=False).neg_sim_max.mean() for t in tables], axis=1).mean(1)
    return means, [s for s in means.index if s != "id" and means[s] <= means["id"]]
