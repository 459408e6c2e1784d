"""OOD scores, higher = more in-distribution. Inputs are cosine similarities or CLIP's scaled logits."""

from __future__ import annotations

import numpy as np
import torch


def extended_mcm(pos_sim: torch.Tensor, neg_sim: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Eq. 3 score: max_i exp(S+_i/τ) / (Σ_j exp(S+_j/τ) + Σ_{l,j} exp(S-_{l,j}/τ)).
    pos_sim [N, k], neg_sim [N, k, p] (p may be 0: then this is MCM)."""
    logits = torch.cat([pos_sim, neg_sim.flatten(1)], dim=1) / temperature
    return torch.softmax(logits, dim=1)[:, : pos_sim.shape[1]].max(dim=1).values


def mcm(pos_sim: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Maximum concept matching (Ming et al. 2022): max softmax of cosine similarities / τ."""
    return torch.softmax(pos_sim / temperature, dim=1).max(dim=1).values


def gl_mcm(global_sim: torch.Tensor, local_sim: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """GL-MCM (Miyai et al. 2023): the global image's MCM plus the largest MCM of any patch.
    global_sim [N, k], local_sim [N, P, k] cosine similarities."""
    return mcm(global_sim, temperature) + torch.softmax(local_sim / temperature, dim=-1).amax(dim=(1, 2))


def negprompt(img: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor, temperature: float = 1.0):
    """NegPrompt's score of images [N, d] against learned prompt features pos [k, d], neg [k, p, d]:
    (Eq. 3 score [N], positive similarities [N, k], negative similarities [N, k, p])."""
    pos_sim = img @ pos.T
    neg_sim = torch.einsum("nd,kpd->nkp", img, neg)
    return extended_mcm(pos_sim, neg_sim, temperature), pos_sim, neg_sim


def local_scores(
    img: torch.Tensor, local, zero_shot: torch.Tensor, locoop: torch.Tensor, temperature: float = 1.0, batch: int = 256
) -> dict[str, torch.Tensor]:
    """GL-MCM (zero-shot prompts) and LoCoOp (its learned prompts, GL-MCM score, as its paper
    reports) from patch features `local` [N, P, d] (a tensor or a memory-mapped array, any float
    dtype), in batches: [N, P, k] does not fit in memory at ImageNet scale."""
    out = {"glmcm": [], "locoop": [], "locoop_pred": []}
    for i in range(0, len(img), batch):
        g, loc = img[i : i + batch], torch.as_tensor(np.asarray(local[i : i + batch], dtype=np.float32))
        out["glmcm"].append(gl_mcm(g @ zero_shot.T, loc @ zero_shot.T, temperature))
        sim = g @ locoop.T
        out["locoop"].append(gl_mcm(sim, loc @ locoop.T, temperature))
        out["locoop_pred"].append(sim.argmax(1))
    return {k: torch.cat(v) for k, v in out.items()}


def msp(logits: torch.Tensor) -> torch.Tensor:
    """Maximum softmax probability of CLIP's scaled logits."""
    return torch.softmax(logits, dim=1).max(dim=1).values


def max_logit(logits: torch.Tensor) -> torch.Tensor:
    return logits.max(dim=1).values


def energy(logits: torch.Tensor) -> torch.Tensor:
    """Negative free energy, logsumexp of the logits (T = 1)."""
    return torch.logsumexp(logits, dim=1)


@torch.no_grad()
def score_images(
    img: torch.Tensor,
    zero_shot: torch.Tensor,
    coop: torch.Tensor,
    pos: torch.Tensor,
    neg: torch.Tensor,
    neg_init: torch.Tensor,
    logit_scale: float,
    temperature: float = 1.0,
) -> dict[str, torch.Tensor]:
    """Every method's per-image score on the same features (higher = more ID), plus predictions and
    the similarity statistics the report plots. img [N, d]; zero_shot, coop, pos [k, d];
    neg, neg_init [k, p, d]; all L2-normalised."""
    zs_sim = img @ zero_shot.T
    coop_sim = img @ coop.T
    score, pos_sim, neg_sim = negprompt(img, pos, neg, temperature)
    init_sim = torch.einsum("nd,kpd->nkp", img, neg_init)
    zs_logits = logit_scale * zs_sim
    return {
        "negprompt": score,
        "negprompt_pred": pos_sim.argmax(1),
        "mcm": mcm(zs_sim, temperature),
        "zero_shot_pred": zs_sim.argmax(1),
        "msp": msp(zs_logits),
        "maxlogit": max_logit(zs_logits),
        "energy": energy(zs_logits),
        "coop": mcm(coop_sim, temperature),
        "coop_pred": coop_sim.argmax(1),
        "pos_sim_max": pos_sim.max(1).values,
        "neg_sim_max": neg_sim.flatten(1).max(1).values,
        "pos_sim_mean": pos_sim.mean(1),
        "neg_sim_mean": neg_sim.flatten(1).mean(1),
        "neg_init_sim_mean": init_sim.flatten(1).mean(1),
    }


def decomposed_scores(pos_sim: torch.Tensor, neg_sim: torch.Tensor, n_const: float) -> dict[str, torch.Tensor]:
    """NegPrompt's Eq. 3 split in two (benchmarks/analyses/negatives_decomposition.py): log-scores
    (higher = ID) from positive similarities [N, k] and negative ones [N, k, p], τ = 1: CoOp's, with
    every image's negative mass N replaced by the constant `n_const`, NegPrompt's, and the max cosine."""
    lse_pos, lse_neg = torch.logsumexp(pos_sim, 1), torch.logsumexp(neg_sim.flatten(1), 1)
    top = pos_sim.max(1).values
    return {
        "coop (positives only)": top - lse_pos,
        "positives + constant N": top - torch.logaddexp(lse_pos, torch.full_like(lse_pos, float(np.log(n_const)))),
        "negprompt (per-image N)": top - torch.logaddexp(lse_pos, lse_neg),
        "max cosine": top,
    }
