"""Detection metrics, ID = positive class (MCM / LoCoOp / NegPrompt convention)."""
from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve


def _labels_scores(id_scores, ood_scores):
    id_scores, ood_scores = np.asarray(id_scores, dtype=np.float64), np.asarray(ood_scores, dtype=np.float64)
    y = np.concatenate([np.ones(len(id_scores)), np.zeros(len(ood_scores))])
    return y, np.concatenate([id_scores, ood_scores])


def auroc(id_scores, ood_scores) -> float:
    return float(roc_auc_score(*_labels_scores(id_scores, ood_scores)))


def fpr_at_95_tpr(id_scores, ood_scores) -> float:
    """Fraction of OOD scores at or above the highest threshold that keeps >= 95% of ID scores."""
    fpr, tpr, _ = roc_curve(*_labels_scores(id_scores, ood_scores), drop_intermediate=False)
    return float(fpr[np.searchsorted(tpr, 0.95, side="left")])


def roc(id_scores, ood_scores) -> tuple[np.ndarray, np.ndarray]:
    fpr, tpr, _ = roc_curve(*_labels_scores(id_scores, ood_scores))
    return fpr, tpr


def id_threshold(id_scores, keep: float = 0.95) -> float:
    """The score threshold that keeps `keep` of the given ID scores (detector calibration)."""
    s = np.sort(np.asarray(id_scores, dtype=np.float64))[::-1]
    return float(s[max(0, int(np.ceil(keep * len(s))) - 1)])
