"""Detection metrics. Scores are higher for ID. AUROC is the same whichever class is positive; FPR95 is not, so
both published conventions are here: `fpr_at_95_tpr` (ID positive: MCM, LoCoOp, NegLabel and NegPrompt's papers)
and `fpr95_ood_positive` (OOD positive: OpenOOD v1.5's evaluator, on which OpenOOD-VLM, AdaNeg, TANL and InterNeg
report)."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve

from negprompt import NegPromptError

# The figures computed for every method on every OOD set (metrics.json's keys, in %), and what each one is.
FIGURES = {
    "auroc": "AUROC (either class positive)",
    "fpr95": "OOD images accepted at 95% ID recall (ID positive: MCM, LoCoOp, NegLabel, NegPrompt)",
    "fpr95_openood": "ID images rejected at 95% OOD recall (OOD positive: OpenOOD v1.5; OpenOOD-VLM, AdaNeg, TANL)",
}


def _labels_scores(id_scores, ood_scores):
    id_scores, ood_scores = np.asarray(id_scores, dtype=np.float64), np.asarray(ood_scores, dtype=np.float64)
    for name, s in (("id_scores", id_scores), ("ood_scores", ood_scores)):
        if s.ndim != 1 or len(s) == 0 or not np.isfinite(s).all():
            raise NegPromptError(f"{name}: expected a non-empty 1-d array of finite scores, got shape {s.shape}")
    y = np.concatenate([np.ones(len(id_scores)), np.zeros(len(ood_scores))])
    return y, np.concatenate([id_scores, ood_scores])


def _weights(id_weights, ood_weights):
    """Per-image weights for a mixture of image kinds (None = every image counts once)."""
    if id_weights is None and ood_weights is None:
        return None
    return np.concatenate([np.asarray(id_weights, dtype=np.float64), np.asarray(ood_weights, dtype=np.float64)])


def auroc(id_scores, ood_scores, id_weights=None, ood_weights=None) -> float:
    return float(roc_auc_score(*_labels_scores(id_scores, ood_scores), sample_weight=_weights(id_weights, ood_weights)))


def fpr_at_95_tpr(id_scores, ood_scores, id_weights=None, ood_weights=None) -> float:
    """Fraction (weight) of OOD scores at or above the highest threshold that keeps >= 95% of ID scores."""
    fpr, tpr, _ = roc_curve(
        *_labels_scores(id_scores, ood_scores), sample_weight=_weights(id_weights, ood_weights), drop_intermediate=False
    )
    return float(fpr[np.searchsorted(tpr, 0.95, side="left")])


def fpr95_ood_positive(id_scores, ood_scores, id_weights=None, ood_weights=None) -> float:
    """OpenOOD v1.5's FPR@95 (openood/evaluators/metrics.py:40-49, `auc_and_fpr_recall`, identical in OpenOOD-VLM;
    not the file's unused, ID-positive `fpr_recall`): OOD is the positive class and the scores are negated, so this is
    the fraction (weight) of ID scores at or *below* the lowest threshold under which >= 95% of OOD scores fall (ties
    with the threshold count as rejected ID). As there, sklearn's `roc_curve` keeps its default
    `drop_intermediate=True`: where consecutive thresholds each add ID and OOD images in the same proportions (ties
    across ID and OOD) the point reaching 95% can be dropped and the next corner taken."""
    y, s = _labels_scores(id_scores, ood_scores)
    fpr, tpr, _ = roc_curve(1 - y, -s, sample_weight=_weights(id_weights, ood_weights))
    return float(fpr[np.argmax(tpr >= 0.95)])


def detection_figures(id_scores, ood_scores) -> dict[str, float]:
    """Every figure of FIGURES for one method on one OOD set, in %."""
    return {
        "auroc": 100 * auroc(id_scores, ood_scores),
        "fpr95": 100 * fpr_at_95_tpr(id_scores, ood_scores),
        "fpr95_openood": 100 * fpr95_ood_positive(id_scores, ood_scores),
    }


def roc(id_scores, ood_scores) -> tuple[np.ndarray, np.ndarray]:
    fpr, tpr, _ = roc_curve(*_labels_scores(id_scores, ood_scores))
    return fpr, tpr


def id_threshold(id_scores, keep: float = 0.95) -> float:
    """The score threshold that keeps `keep` of the given ID scores (detector calibration)."""
    s = np.sort(np.asarray(id_scores, dtype=np.float64))[::-1]
    return float(s[max(0, int(np.ceil(keep * len(s))) - 1)])
