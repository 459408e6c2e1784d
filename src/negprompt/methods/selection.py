"""Which epoch's context a training stage keeps, and the per-epoch figures it is chosen on.

`select` (params `pos.select`, `neg.select`):
- `last`: the context after the last epoch (the default; nothing is chosen on any evaluation).
- `id_val`: held-out ID images only (the subset's `calib` split, never test data). Stage 1 keeps
  the epoch with the best held-out ID accuracy. Stage 2 keeps the epoch with the *lowest stage-2
  loss on the held-out ID images* (the training loss itself, `train.stage2_loss`, + the positive
  cross-entropy when one-stage): with the positive context frozen the ID accuracy does not move in
  stage 2, so it cannot choose; an ID-only score statistic (e.g. the mean NegPrompt score of ID
  images) is maximised by negatives that leave every image, i.e. by undoing the stage; the
  held-out loss is the one criterion that asks what training asks (ID images far from their
  class's negatives, Eqs. 4-7) of images the negatives were not fitted to, and needs no OOD data.
- `test`: the official code's choice (`osr_nega_prompt.py` L326-332): stage 1 the best test ID
  accuracy, stage 2 the best test AUROC on one OOD set (`select_set`, the texture role by
  default; the official script trains on `OOD_ImageNet_dtd`). Its figures are *checkpoint selected
  on test data, as the official code does* (`TEST_LABEL`), wherever they appear.

Every rule is an arg-max (arg-min for a loss) of one logged per-epoch curve, first epoch on ties
(the official code replaces its checkpoint only on a strict improvement).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from negprompt import NegPromptError, metrics

TEST_LABEL = "checkpoint selected on test data, as the official code does"

# the OOD set `select: test` chooses on when neg.select_set is "": the texture role of each benchmark
SELECT_SETS = {
    "openmoji": "texture",
    "miniworld": "empty",
    "imagenet_conventional": "Textures",
    "imagenet_openood": "far/Textures",
    "imagenet_hard": "ood",
}  # hard: its one OOD set


class Criterion(NamedTuple):
    key: str  # a curve column, e.g. "calib/id_acc", "test/texture/auroc"
    mode: str  # "max" | "min"


def criterion(stage: str, select: str, select_set: str = "") -> Criterion | None:
    """The curve a stage ("pos" or "neg") is selected on under `select`; None for `last`."""
    if select == "last":
        return None
    if stage == "pos":
        return Criterion("calib/id_acc" if select == "id_val" else "test/id_acc", "max")
    return Criterion("calib/loss", "min") if select == "id_val" else Criterion(f"test/{select_set}/auroc", "max")


def select_epoch(curve: list[dict], key: str, mode: str = "max") -> int:
    """Index of the first best value of `key` over the per-epoch records `curve`."""
    values = np.array([record[key] for record in curve], dtype=np.float64)
    if len(values) == 0 or np.isnan(values).any():
        raise NegPromptError(f"selection curve {key!r} is empty or has NaN values")
    return int(np.argmax(values) if mode == "max" else np.argmin(values))


def resolve_select_set(select_set: str, benchmark: str, sets: list[str], needed: bool) -> str:
    """neg.select_set, "" resolved to the benchmark's texture role; an error when `select: test`
    (`needed`) and the test features have no such OOD set."""
    name = select_set or SELECT_SETS.get(benchmark, "")
    if needed and name not in sets:
        raise NegPromptError(
            f"neg.select_set {name!r} (neg.select: test) is not an OOD set of the test features "
            f"(sets: {', '.join(sets) or 'none'}); set neg.select_set to one of them"
        )
    return name


def ood_figures(score: torch.Tensor, sets: np.ndarray, names: list[str]) -> dict[str, float]:
    """Per OOD set and on average, AUROC and FPR95 (%) of `score` [N] (higher = ID) over test images
    whose `sets` entry is "id" or an OOD set name: {"test/<set>/auroc": ..., "test/average/fpr95": ...}."""
    score = score.double().numpy()
    ident = score[sets == "id"]
    out = {}
    for name in names:
        ood = score[sets == name]
        out[f"test/{name}/auroc"] = 100 * metrics.auroc(ident, ood)
        out[f"test/{name}/fpr95"] = 100 * metrics.fpr_at_95_tpr(ident, ood)
    for m in ("auroc", "fpr95"):
        out[f"test/average/{m}"] = float(np.mean([out[f"test/{n}/{m}"] for n in names]))
    return out


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Top-1 (a fraction, as the training accuracy) of logits [N, k] against labels [N]."""
    return float((logits.argmax(1) == labels).double().mean())
