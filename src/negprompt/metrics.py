"""Detection metrics, ID = positive class (MCM / LoCoOp / NegPrompt convention)."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve


def _labels_scores(id_scores, ood_scores):
    id_scores, ood_scores = np.asarray(id_scores, dtype=np.float64), np.asarray(ood_scores, dtype=np.float64)
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


def roc(id_scores, ood_scores) -> tuple[np.ndarray, np.ndarray]:
    fpr, tpr, _ = roc_curve(*_labels_scores(id_scores, ood_scores))
    return fpr, tpr


def id_threshold(id_scores, keep: float = 0.95) -> float:
    """The score threshold that keeps `keep` of the given ID scores (detector calibration)."""
    s = np.sort(np.asarray(id_scores, dtype=np.float64))[::-1]
    return float(s[max(0, int(np.ceil(keep * len(s))) - 1)])
