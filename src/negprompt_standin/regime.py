"""Zero-shot diagnostics of a backbone: is it in real CLIP's regime?

Real CLIP ViT-B/16 on ImageNet: ID images have cosine ~0.3 to their own prompt against ~0.2 to the
others, and MCM (softmax of cosines, tau = 1) beats max cosine (MaxLogit's ranking) by ~7 AUROC,
because each image's similarities share a large offset that moves the max with it and that the
softmax cancels. These statistics say whether a stand-in shares that mechanism.
"""

from __future__ import annotations

import numpy as np
import torch

from negprompt import metrics
from negprompt.methods import scores


def _mean_std(x: np.ndarray) -> list[float]:
    return [float(np.mean(x)), float(np.std(x))]


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation from elementwise products and numpy's pairwise sums, not np.corrcoef's BLAS
    dot: the same digits on every CPU, so the committed reports/backbone.json reproduces byte for byte."""
    a, b = a.astype(np.float64) - a.mean(dtype=np.float64), b.astype(np.float64) - b.mean(dtype=np.float64)
    return float(np.mean(a * b) / np.sqrt(np.mean(a * a) * np.mean(b * b)))


def set_statistics(cos: np.ndarray) -> dict:
    """Per image: max cosine over the ID prompts, mean cosine over them, and their correlation;
    `max_z`: how far the max stands above the image's mean, in the std of its cosines over the
    prompts. That margin is what a softmax score sees; the max of k unrelated prompts already
    stands ~2.7 std above the mean for k = 200, so an ID image must stand well beyond it."""
    mx, mean = cos.max(1), cos.mean(1)
    return {
        "n": int(len(cos)),
        "max_cos": _mean_std(mx),
        "mean_cos": _mean_std(mean),
        "corr_max_mean": _corr(mx, mean) if len(cos) > 1 else float("nan"),
        "max_z": _mean_std((mx - mean) / (cos.std(1) + 1e-12)),
    }


def zero_shot_scores(cos: np.ndarray, logit_scale: float) -> dict[str, np.ndarray]:
    c = torch.from_numpy(np.asarray(cos, dtype=np.float32))
    logits = logit_scale * c
    return {
        "mcm": scores.mcm(c).numpy(),
        "maxlogit": scores.max_logit(logits).numpy(),
        "energy": scores.energy(logits).numpy(),
    }


def diagnose(
    cos_id: np.ndarray,
    labels: np.ndarray,
    cos_ood: dict[str, np.ndarray],
    logit_scale: float,
    extra: dict[str, dict[str, np.ndarray]] | None = None,
) -> dict:
    """cos_id [N, k] cosines of ID images to the k ID prompts, labels [N]; cos_ood {set: [M, k]};
    `extra` {method: {"id": scores, set: scores}} adds scores computed elsewhere (NegLabel).
    Returns top-1, own/other cosines, per-set statistics and zero-shot MCM / MaxLogit / Energy
    AUROC and FPR95 (%), per set and averaged over the sets."""
    n = np.arange(len(labels))
    own = cos_id[n, labels]
    other = (cos_id.sum(1) - own) / (cos_id.shape[1] - 1)
    out = {
        "logit_scale": float(logit_scale),
        "zero_shot_top1": float((cos_id.argmax(1) == labels).mean()),
        "cos_own": _mean_std(own),
        "cos_other": _mean_std(other),
        "sets": {"id": set_statistics(cos_id)},
        "ood": {},
    }
    extra = extra or {}
    id_scores = zero_shot_scores(cos_id, logit_scale) | {m: v["id"] for m, v in extra.items()}
    for name, cos in cos_ood.items():
        out["sets"][name] = set_statistics(cos)
        ood_scores = zero_shot_scores(cos, logit_scale) | {m: v[name] for m, v in extra.items()}
        out["ood"][name] = {
            m: {
                "auroc": 100 * metrics.auroc(id_scores[m], ood_scores[m]),
                "fpr95": 100 * metrics.fpr_at_95_tpr(id_scores[m], ood_scores[m]),
            }
            for m in id_scores
        }
    out["average"] = {
        m: {k: float(np.mean([v[m][k] for v in out["ood"].values()])) for k in ("auroc", "fpr95")} for m in id_scores
    }
    return out


def summary_line(d: dict) -> str:
    a = d["average"]
    return (
        f"top-1 {100 * d['zero_shot_top1']:.1f}%  cos own {d['cos_own'][0]:.3f} other {d['cos_other'][0]:.3f}  "
        + "  ".join(
            f"{m} {a[m]['auroc']:.1f}/{a[m]['fpr95']:.1f}" for m in ("neglabel", "mcm", "maxlogit", "energy") if m in a
        )
    )


def image_features(model, image_sets: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """{set: L2-normalised image features} of uint8 image sets."""
    from negprompt.clip.backbone import encode_arrays

    model = model.eval()
    return {name: encode_arrays(model, imgs) for name, imgs in image_sets.items()}


def cosines(
    model,
    tokenizer,
    classnames: list[str],
    image_sets: dict[str, np.ndarray],
    template: str = "a photo of a {}.",
    feats: dict[str, torch.Tensor] | None = None,
) -> dict[str, np.ndarray]:
    """{set: cosines [N, k]} of uint8 image sets (or their `feats`, already encoded) to `template` prompts of
    `classnames`."""
    from negprompt.clip.prompts import encode_texts

    feats = feats or image_features(model, image_sets)
    text = encode_texts(model.eval(), tokenizer, [template.format(c) for c in classnames]).cpu()
    return {name: (f @ text.T).numpy() for name, f in feats.items()}


def diagnose_model(
    model,
    tokenizer,
    classnames: list[str],
    ids: np.ndarray,
    labels: np.ndarray,
    ood: dict[str, np.ndarray],
    template: str = "a photo of a {}.",
    neglabel=None,
) -> dict:
    """`diagnose` for uint8 image sets encoded by `model` against `template` prompts of `classnames`;
    `neglabel` (a callable: image features [N, d] -> scores [N]) adds NegLabel's zero-shot row."""
    feats = image_features(model, {"id": ids, **ood})
    cos = cosines(model, tokenizer, classnames, {}, template, feats)
    id_cos = cos.pop("id")
    extra = {"neglabel": {name: neglabel(f).numpy() for name, f in feats.items()}} if neglabel else None
    return diagnose(id_cos, labels, cos, float(model.logit_scale.exp()), extra)


def world_renders(benchmark: str, seed: int, size: int, font: str = ""):
    """A generated world's ID names and its fresh held-out renders: (names, ID images, labels, {OOD set: images})."""
    from negprompt.benchmarks import miniworld, openmoji
    from negprompt_standin import openmoji_render

    if benchmark == "openmoji":
        world = openmoji.build_world(seed)
        ids, labels, ood = openmoji_render.validation_renders(world, seed + 1000, size, font=font or None)
    else:
        world = miniworld.build_world(seed)
        ids, labels, ood = miniworld.validation_renders(world, seed + 1000, size)
    return [c.name for c in world.id_classes], ids, labels, ood


def world_diagnostics(
    model,
    model_name: str,
    benchmark: str,
    seed: int,
    size: int,
    font: str,
    template: str,
    neglabel_params,
    renders=None,
) -> dict:
    """The backbone stage's diagnostics for a generated world (openmoji, miniworld) on fresh renders (or the given
    `world_renders`): zero-shot MCM / MaxLogit / Energy, and NegLabel with `neglabel_params` (a NegLabelParams), mined
    here on the world's ID names."""
    import open_clip

    from negprompt.methods import neglabel

    names, ids, labels, ood = renders or world_renders(benchmark, seed, size, font)
    tokenizer = open_clip.get_tokenizer(model_name)
    corpus = neglabel.benchmark_corpus(
        benchmark, names, neglabel_params.corpus, neglabel_params.wordnet_dir, neglabel_params.groups, seed
    )
    mined = neglabel.mine_corpus(
        model,
        tokenizer,
        names,
        corpus,
        neglabel_params.num_labels,
        neglabel_params.max_fraction,
        neglabel_params.percentile,
        *neglabel_params.prompts(benchmark, template),
    )

    def score(feats):
        return neglabel.score_features(
            feats, mined, neglabel_params.temperature, neglabel_params.groups, neglabel_params.seed
        )[0]

    return diagnose_model(model, tokenizer, names, ids, labels, ood, template, neglabel=score)


CLIP_LIKE = (
    "NegLabel ahead of MCM ahead of MaxLogit in average AUROC and FPR95, top-1 over ID >= 60%, own-prompt cosine <= .5"
)


def clip_like(d: dict) -> dict[str, bool]:
    """Real CLIP's zero-shot order on a backbone's diagnostics (`world_diagnostics`): each condition of CLIP_LIKE,
    the stand-in's shipping rule. NegLabel ahead of MCM is the property negative labels and prompts rely on."""
    a = d["average"]

    def ahead(x, y):
        return a[x]["auroc"] > a[y]["auroc"] and a[x]["fpr95"] < a[y]["fpr95"]

    return {
        "neglabel > mcm": ahead("neglabel", "mcm"),
        "mcm > maxlogit": ahead("mcm", "maxlogit"),
        "top-1 >= 60%": d["zero_shot_top1"] >= 0.60,
        "own cosine <= .5": d["cos_own"][0] <= 0.5,
    }
