"""TANL (CVPR 2026): negative labels activated per test batch, from all corpus candidates.

Official code: YBZh/OpenOOD-VLM `openood/postprocessors/activated_neg_postprocessor.py` (class
`ActivatedNegPostprocessor`, L136-185 and L403-683), run by `scripts/ood/TANL/official.sh` (β = 1000, gap 0.5,
memory 300, α = 0, γ ∈ {2, 1, 0}); the noise images are made in `openood/networks/clip_fixed_ood_prompt.py`
L735-748. Two queues hold the candidates' softmax activations: on ID-like inputs (first the ID text features)
and on OOD-like inputs (first 15 noise images). The β candidates most activated by OOD minus ID are the
negatives; a batch's confident images (thresholds around an Otsu split of a queue of scores) re-pick them for
that batch and then join the queues. The paper leaves the threshold and the noise out; this follows the script.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from negprompt import NegPromptError

PAPER = {
    "beta": 1000,
    "gap": 0.5,
    "memory": 300,
    "score_queue": 20000,
    "alpha": 0.0,
    "gamma": 0,
    "noise_images": 15,
    "logit_scale": 100.0,
}
PAPER_IMAGENET = {"average": (None, 9.8)}  # TANL abstract: FPR95 9.8 on ImageNet-1K; AUROC not stated
NOISE_KINDS = ("gaussian", "uniform", "poisson", "gamma", "salt_and_pepper")


def check_noise_count(count: int) -> int:
    if not isinstance(count, int) or isinstance(count, bool) or count <= 0:
        raise NegPromptError(f"tanl.noise_images = {count!r}: must be a positive integer (official: 15, 3 per kind)")
    return count


def noise_images(count: int = 15, size: int = 224, seed: int = 0) -> torch.Tensor:
    """The noise images whose features seed the OOD queue (official L735-745): Gaussian, uniform, Poisson(5),
    Gamma(2, 1) and salt-and-pepper, each block min-max scaled to [0, 1], `count` spread over the five kinds in
    that order. Official: 3 per kind, unseeded, fed to `encode_image` without CLIP's mean/std. [count, 3, size, size]"""
    check_noise_count(count)
    g = torch.Generator().manual_seed(seed)
    out = []
    for k, kind in enumerate(NOISE_KINDS):
        n = count // len(NOISE_KINDS) + (k < count % len(NOISE_KINDS))
        if n == 0:
            continue
        shape = (n, 3, size, size)
        if kind == "gaussian":
            x = torch.randn(shape, generator=g)
        elif kind == "uniform":
            x = torch.rand(shape, generator=g)
        elif kind == "poisson":
            x = torch.poisson(torch.full(shape, 5.0), generator=g)
        elif kind == "gamma":  # Gamma(2, 1) as the sum of two Exp(1) draws: seeded, unlike torch.distributions
            x = -torch.log1p(-torch.rand(shape, generator=g)) - torch.log1p(-torch.rand(shape, generator=g))
        else:
            x = (torch.rand(shape, generator=g) >= 0.5).float()
        if kind != "uniform":
            x = (x - x.min()) / (x.max() - x.min()).clamp_min(1e-12)
        out.append(x)
    return torch.cat(out)


def activation_aware(logits: torch.Tensor, num_id: int, gamma: int = 0, span: int | None = None) -> torch.Tensor:
    """aa(z; γ) (official `activation_aware_score`, L136-185): γ = 0, the ID mass Σ_{i<C} softmax(z)_i; γ > 0, the
    mean over j = γ, 2γ, ... < span + γ of the ID mass among z[:, :C + j], a prefix clipped to the columns present.
    `span`: the official loop bound `ood_num`, which every call sets to β (L462, L472, L550, L676) even when fewer
    than β negatives were selected; the extra steps then repeat the full softmax. None: the negatives present. [N]"""
    if gamma == 0:
        return torch.softmax(logits, dim=1)[:, :num_id].sum(1)
    span = logits.shape[1] - num_id if span is None else span
    parts = [torch.softmax(logits[:, : num_id + j + gamma], dim=1)[:, :num_id].sum(1) for j in range(0, span, gamma)]
    return torch.stack(parts, dim=1).mean(1)


def otsu_threshold(scores: torch.Tensor) -> float:
    """Otsu's split of a score queue (official `find_best_threshold`, L15-80): over th = 0, 0.01, ..., 0.99 the
    smallest within-class variance w0·var0 + w1·var1 (classes score < th and >= th, population variances,
    infinite when one is empty); among equal minima the middle one. All thresholds at once: [100, n] masks."""
    ths = torch.arange(0, 1, 0.01, device=scores.device)
    x = scores.float()[None]  # [1, n]
    hi = (x >= ths[:, None]).float()  # [100, n]
    lo = 1 - hi
    n1, n0 = hi.sum(1), lo.sum(1)

    def var(mask, n):
        mean = (x * mask).sum(1) / n.clamp_min(1)
        return (((x - mean[:, None]) ** 2) * mask).sum(1) / n.clamp_min(1)

    w1 = n1 / x.shape[1]
    crit = (1 - w1) * var(lo, n0) + w1 * var(hi, n1)
    crit = torch.where((n1 == 0) | (n0 == 0), torch.full_like(crit, float("inf")), crit)
    best = torch.where(crit == crit.min())[0]
    return float(ths[best[len(best) // 2]])


def top_negatives(activation_gap: torch.Tensor, beta: int) -> torch.Tensor:
    """Indices of the β candidates with the largest OOD-minus-ID activation, largest first (ties: lower index)."""
    return torch.sort(-activation_gap, stable=True).indices[:beta]


def _keep_last(queue: torch.Tensor, n: int) -> torch.Tensor:
    """Official `update_queue` (L127-134): only the newest n rows stay."""
    return queue[-n:] if len(queue) > n else queue


@dataclass
class State:
    """TANL's memory for one ID-OOD stream (official reset, L411-478)."""

    id_feats: torch.Tensor  # [C, d]
    cand: torch.Tensor  # [M, d] every candidate word
    q_pos: torch.Tensor  # [<= memory, M] candidate activations on ID-like inputs
    q_neg: torch.Tensor  # [<= memory, M] ... on OOD-like inputs
    scores: torch.Tensor  # [<= score_queue] the queue the Otsu threshold is taken over


def new_state(
    id_feats: torch.Tensor,
    cand: torch.Tensor,
    noise_feats: torch.Tensor,
    beta: int = 1000,
    memory: int = 300,
    gamma: int = 0,
    logit_scale: float = 100.0,
    seed: int = 0,
    loop_to_beta: bool = True,
) -> State:
    """The reset (L411-478): q_pos = the candidates' activations by the ID text features, q_neg = by the noise
    images' features (rows shuffled by `seed`, the newest `memory` kept); the score queue starts with the scores of
    the ID text features and of the noise images against the initial β negatives. `loop_to_beta`: aa's loop runs to β
    as the official code's (`activation_aware`'s span); False: to the number of negatives selected."""
    if len(noise_feats) == 0:
        raise NegPromptError("tanl.noise_images = 0: TANL's OOD queue starts from the noise images' features")
    id_feats, cand, noise_feats = id_feats.float(), cand.float(), noise_feats.float()
    g, c = torch.Generator().manual_seed(seed), len(id_feats)
    labels = torch.cat([id_feats, cand])

    def acts(x):
        a = torch.softmax(logit_scale * x @ labels.T, dim=1)[:, c:]
        return _keep_last(a[torch.randperm(len(a), generator=g)], memory)

    q_pos, q_neg = acts(id_feats), acts(noise_feats)
    chosen = cand[top_negatives(q_neg.mean(0) - q_pos.mean(0), beta)]
    sel = torch.cat([id_feats, chosen])
    span = beta if loop_to_beta else None
    scores = torch.cat([activation_aware(logit_scale * x @ sel.T, c, gamma, span) for x in (id_feats, noise_feats)])
    return State(id_feats, cand, q_pos, q_neg, scores)


def step(
    state: State,
    img: torch.Tensor,
    beta: int = 1000,
    gap: float = 0.5,
    memory: int = 300,
    score_queue: int = 20000,
    alpha: float = 0.0,
    gamma: int = 0,
    logit_scale: float = 100.0,
    loop_to_beta: bool = True,
) -> torch.Tensor:
    """Score one test batch [B, d] (L479-683). [B]

    r = aa with the queue's β negatives; r joins the score queue, θ = Otsu(queue); images with
    r > θ + gap(1 - θ) are ID-like, r < θ - gap·θ OOD-like. The batch's own negatives are the top β of
    [α·mean(q_neg) + (1-α)·mean(A[OOD-like])] - [α·mean(q_pos) + (1-α)·mean(A[ID-like])] (a side with no image
    uses its queue's mean), A the candidates' softmax activations by the batch; score = aa with those. A[ID-like]
    and A[OOD-like] then join the queues. aa's loop runs to β (official) or, `loop_to_beta=False`, to the count."""
    img, c = img.float(), len(state.id_feats)
    act = torch.softmax(logit_scale * img @ torch.cat([state.id_feats, state.cand]).T, dim=1)[:, c:]  # [B, M]

    def aa(negatives):
        z = logit_scale * img @ torch.cat([state.id_feats, state.cand[negatives]]).T
        return activation_aware(z, c, gamma, beta if loop_to_beta else None)

    r = aa(top_negatives(state.q_neg.mean(0) - state.q_pos.mean(0), beta))
    state.scores = _keep_last(torch.cat([state.scores, r]), score_queue)
    th = otsu_threshold(state.scores)
    is_id, is_ood = r > th + gap * (1 - th), r < th - gap * th
    pos = alpha * state.q_pos.mean(0) + (1 - alpha) * act[is_id].mean(0) if is_id.any() else state.q_pos.mean(0)
    neg = alpha * state.q_neg.mean(0) + (1 - alpha) * act[is_ood].mean(0) if is_ood.any() else state.q_neg.mean(0)
    out = aa(top_negatives(neg - pos, beta))
    state.q_pos = _keep_last(torch.cat([state.q_pos, act[is_id]]), memory)
    state.q_neg = _keep_last(torch.cat([state.q_neg, act[is_ood]]), memory)
    return out


def stepper(
    id_feats: torch.Tensor,
    cand: torch.Tensor,
    noise_feats: torch.Tensor,
    beta: int = 1000,
    memory: int = 300,
    gamma: int = 0,
    logit_scale: float = 100.0,
    seed: int = 0,
    loop_to_beta: bool = True,
    **params,
):
    """A fresh state and the function that scores the stream's batches with it (`negprompt.methods.stream.run`)."""
    state = new_state(id_feats, cand, noise_feats, beta, memory, gamma, logit_scale, seed, loop_to_beta)
    return lambda img: step(
        state, img, beta=beta, memory=memory, gamma=gamma, logit_scale=logit_scale, loop_to_beta=loop_to_beta, **params
    )
