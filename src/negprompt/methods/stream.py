"""The test stream that test-time methods (AdaNeg, TANL) see, fixed and recorded.

OpenOOD-VLM's evaluator (`openood/evaluators/fsood_evaluator_clip.py` L363-394) resets the method's memory for each
OOD set, concatenates that set with the ID test set, and scores them in shuffled batches of 256
(`DataLoader(shuffle=True)`, unseeded, last batch kept). A test-time score depends on that order, so here the
order is a seeded permutation (recorded by its seed) and the spread over several orders is reported.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from negprompt import NegPromptError
from negprompt.metrics import auroc, fpr_at_95_tpr

BATCH_SIZE = 256  # OpenOOD-VLM scripts: --dataset.test.batch_size 256
ORDER_SEEDS = (0, 1, 2)

Stepper = Callable[[torch.Tensor], torch.Tensor]  # scores one batch [B, d] -> [B], updating its own memory


def check_batch_size(batch_size: int) -> int:
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size <= 0:
        raise NegPromptError(f"stream.batch_size = {batch_size!r}: must be a positive integer (official: 256)")
    return batch_size


def order(num_id: int, num_ood: int, seed: int) -> torch.Tensor:
    """The stream's order: a permutation of the rows of cat([ID, OOD]) drawn by `seed`. [num_id + num_ood]"""
    return torch.randperm(num_id + num_ood, generator=torch.Generator().manual_seed(seed))


def run(
    id_feats: torch.Tensor,
    ood_feats: torch.Tensor,
    make_stepper: Callable[[], Stepper],
    seed: int,
    batch_size: int = BATCH_SIZE,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Score ID [n, d] and one OOD set [m, d] as one shuffled stream with a fresh memory (`make_stepper()` is
    called once: the memory reset of L366). Returns (ID scores [n], OOD scores [m]) in their input order."""
    check_batch_size(batch_size)
    feats = torch.cat([id_feats, ood_feats])
    perm = order(len(id_feats), len(ood_feats), seed)
    step, out = make_stepper(), torch.empty(len(feats))
    for start in range(0, len(perm), batch_size):
        rows = perm[start : start + batch_size]
        out[rows] = step(feats[rows]).float().cpu()
    return out[: len(id_feats)], out[len(id_feats) :]


@dataclass(frozen=True)
class Spread:
    """AUROC / FPR95 (%) of one OOD set over several stream orders."""

    seeds: tuple[int, ...]
    auroc: tuple[float, ...]
    fpr95: tuple[float, ...]

    def mean_std(self) -> dict[str, float]:
        a, f = torch.tensor(self.auroc, dtype=torch.float64), torch.tensor(self.fpr95, dtype=torch.float64)
        sd = (lambda t: float(t.std(unbiased=False))) if len(a) > 1 else (lambda t: 0.0)
        return {"auroc": float(a.mean()), "auroc_std": sd(a), "fpr95": float(f.mean()), "fpr95_std": sd(f)}


def spread(
    id_feats: torch.Tensor,
    ood_feats: torch.Tensor,
    make_stepper: Callable[[], Stepper],
    seeds=ORDER_SEEDS,
    batch_size: int = BATCH_SIZE,
) -> Spread:
    """The figures of one OOD set under each stream order in `seeds` (population std over orders)."""
    a, f = [], []
    for s in seeds:
        id_s, ood_s = run(id_feats, ood_feats, make_stepper, s, batch_size)
        a.append(100 * auroc(id_s.numpy(), ood_s.numpy()))
        f.append(100 * fpr_at_95_tpr(id_s.numpy(), ood_s.numpy()))
    return Spread(tuple(seeds), tuple(a), tuple(f))
