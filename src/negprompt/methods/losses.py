"""Stage-1 and stage-2 losses (paper Eqs. 2, 4-7, and what the official code computes).

Shapes: k ID classes, p negative prompts per class, d feature size, B images.
Text features are L2-normalised; logits are already multiplied by CLIP's `logit_scale`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def nis(neg_logits: torch.Tensor) -> torch.Tensor:
    """Eq. 4, negative-image separation: mean over images of H(uniform, softmax) over the k·p
    negative logits `neg_logits` [B, k, p]. Invariant to adding a constant to all of an image's
    negative logits: it makes negatives equally similar to an ID image, not far from it."""
    flat = neg_logits.flatten(1)
    return -F.log_softmax(flat, dim=1).mean(dim=1).mean()


def npd(pos_feats: torch.Tensor, neg_feats: torch.Tensor) -> torch.Tensor:
    """Eq. 5, negative-positive distance: -(1/kp) Σ_j Σ_i sim(T^neg_{i,j}, T^pos_j).
    pos_feats [k, d], neg_feats [k, p, d]. Minimising it pulls negatives toward their positive."""
    return -(neg_feats * pos_feats.unsqueeze(1)).sum(-1).mean()


def nnd(neg_feats: torch.Tensor) -> torch.Tensor:
    """Eq. 6, negative-negative distance: mean similarity between distinct negatives of a class.
    neg_feats [k, p, d]; exactly 0 (still in the graph) when p = 1."""
    k, p, _ = neg_feats.shape
    if p < 2:
        return neg_feats.sum() * 0.0
    gram = neg_feats @ neg_feats.transpose(1, 2)  # [k, p, p]
    off_diag = gram.sum() - gram.diagonal(dim1=1, dim2=2).sum()
    return off_diag / (k * p * (p - 1))


def paper_stage2(neg_logits, pos_feats, neg_feats, beta: float = 0.1, gamma: float = 0.05) -> torch.Tensor:
    """Eq. 7: L_NIS + β L_NPD + γ L_NND."""
    return nis(neg_logits) + beta * npd(pos_feats, neg_feats) + gamma * nnd(neg_feats)


def official_stage2(
    logits: torch.Tensor,
    labels: torch.Tensor,
    pos_feats: torch.Tensor,
    neg_feats: torch.Tensor,
    beta: float = 0.1,
    gamma: float = 0.05,
) -> torch.Tensor:
    """The official code's stage-2 loss (official-code.md), without its 1e-8 positive-CE term.

    logits [B, k, 1+p] (index 0 = positive), scaled by logit_scale.
    - "NIS": MultiLabelSoftMarginLoss over all k(1+p) logits, target 1 on the true class's positive
      and its p negatives, 0 elsewhere.
    - "NPD": -(1/k) Σ_j mean_l (1 - cos(T+_j, T-_{l,j})): pushes negatives away from their positive.
    - "NND": (1/k) Σ_j mean_l -(1 - ‖T-_{l,j}‖·‖mean_l T-_{l,j}‖): shrinks the mean of a class's negatives.
    """
    B, k, m = logits.shape
    target = torch.zeros_like(logits)
    target[torch.arange(B, device=logits.device), labels] = 1.0
    nis_term = F.multilabel_soft_margin_loss(logits.reshape(B, -1), target.reshape(B, -1))
    cos = (neg_feats * pos_feats.unsqueeze(1)).sum(-1)  # [k, p]
    npd_term = -(1 - cos).mean(dim=1).mean()
    mean_norm = neg_feats.mean(dim=1).norm(dim=-1, keepdim=True)  # [k, 1]
    nnd_term = (-(1 - neg_feats.norm(dim=-1) * mean_norm)).mean(dim=1).mean()
    return nis_term + beta * npd_term + gamma * nnd_term


def locoop_entropy(local_logits: torch.Tensor, labels: torch.Tensor, top_k: int) -> torch.Tensor:
    """LoCoOp's OOD regulariser (to be added with weight λ): minus the mean entropy of the class
    distribution of the patches whose top-`top_k` classes miss the image's label (treated as OOD
    regions, pushed towards uniform). local_logits [B, P, k] scaled logits, labels [B]."""
    b, n, k = local_logits.shape
    probs = torch.softmax(local_logits.reshape(b * n, k).float(), dim=1)
    top = probs.topk(min(top_k, k), dim=1).indices
    ood = ~(top == labels.repeat_interleave(n).unsqueeze(1)).any(dim=1)
    if not ood.any():
        return local_logits.sum() * 0.0
    sel = probs[ood]
    return (sel * torch.log(sel + 1e-5)).sum(dim=1).mean()
