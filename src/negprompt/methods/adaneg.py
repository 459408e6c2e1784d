"""AdaNeg (Zhang et al., NeurIPS 2024): NegLabel's negatives plus a memory of test features, read from the test stream.

Official code: YBZh/OpenOOD-VLM `openood/postprocessors/ttaprompt_postprocessor.py`, class
`TTAPromptPostprocessor_noadagap` (L664-958, "the adopted one in NIPS submission"), run by
`scripts/ood/adaneg/imagenet.sh`. Each ID class and each negative label k has a memory: its text feature, then L
slots. A batch's confident images (NegLabel score S above 0.75: ID, below 0.25: OOD) are written to the memory of
their best label; when full, an image replaces the slot of highest entropy if its own entropy is lower. Each
label's proxy is the normalised mean of its memory, and the score is NegLabel's grouped score on the proxies plus
λ · S. Nothing is trained; the memory is reset for each OOD set (`negprompt.methods.stream`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from negprompt import NegPromptError
from negprompt.methods import neglabel

PAPER = {"slots": 10, "thres": 0.5, "gap": 0.5, "lam": 0.1, "groups": 5, "beta": 5, "logit_scale": 100.0}
# AdaNeg paper abstract / InterNeg's table, CLIP ViT-B/16 on ImageNet-1K, average of the four OOD sets (AUROC / FPR95)
PAPER_IMAGENET = {"average": (96.66, 18.92)}
OFFICIAL_LOG_IMAGENET = {
    "iNaturalist": (99.71, 0.55),
    "SUN": (97.35, 10.62),
    "Places": (94.17, 33.92),
    "Textures": (95.56, 26.70),
    "average": (96.70, 17.95),
}  # imagenet.sh, end of its first run


@dataclass
class Memory:
    """Per-label memory (L324 of the official code's reset): ID labels first, then negatives."""

    feats: torch.Tensor  # [K, 1 + L, d]: the label's text feature, then L slots (zeros while empty)
    entropy: torch.Tensor  # [K, 1 + L]
    count: torch.Tensor  # [K] next slot to fill; starts at 1 (slot 0 is the text feature)
    num_id: int

    @property
    def slots(self) -> int:
        return self.feats.shape[1] - 1


def mine_corpus(
    model,
    tokenizer,
    id_names: list[str],
    corpus: neglabel.Corpus,
    num_labels: int,
    max_fraction: float,
    percentile: float = 95.0,
    template: str = neglabel.NOUN_TEMPLATE,
    adj_template: str = neglabel.ADJ_TEMPLATE,
    index_percentile: bool = True,
    exclude_id_names: bool = True,
) -> neglabel.Mined:
    """AdaNeg's negatives: NegLabel's mining as OpenOOD-VLM runs it. The pool is without the ID names
    (`clip_for_wordnet_prepare.py` L121-122; `exclude_id_names=False` keeps them) and a candidate's closeness is its
    sorted cosine at index int(K·0.95) (`clip_fixed_ood_prompt.py` L569-576; `index_percentile=False`: NegLabel's
    interpolated `torch.quantile`)."""
    pool = neglabel.without(corpus, id_names) if exclude_id_names else corpus
    return neglabel.mine_corpus(
        model,
        tokenizer,
        id_names,
        pool,
        num_labels,
        max_fraction,
        percentile,
        template,
        adj_template,
        interpolate=not index_percentile,
    )


def new_memory(id_feats: torch.Tensor, neg_feats: torch.Tensor, slots: int = 10) -> Memory:
    """A fresh memory (official L772-779): text features in slot 0, L empty slots, entropies 0, counts 1."""
    if slots < 1:
        raise NegPromptError(f"adaneg.slots = {slots}: must be at least 1 (paper: 10)")
    text = torch.cat([id_feats, neg_feats]).float().cpu()
    feats = torch.cat([text[:, None], text.new_zeros(len(text), slots, text.shape[1])], dim=1)
    return Memory(feats, text.new_zeros(len(text), slots + 1), torch.ones(len(text), dtype=torch.long), len(id_feats))


def entropy(logits: torch.Tensor) -> torch.Tensor:
    """H(softmax(logits)) per row, with the official code's log(p + 1e-8) (L822). [N]"""
    p = torch.softmax(logits, dim=1)
    return -(p * torch.log(p + 1e-8)).sum(1)


def write(memory: Memory, label: int, feat, ent: float) -> None:
    """Store one image in `label`'s memory (official L825-837). While `count < L` the next slot is filled. Once
    `count == L` the image replaces the slot of highest entropy, only if its own entropy is lower than some slot's.
    So L = 10 holds 9 test images: the last slot is never written (the official code's bound, kept)."""
    _write(memory.feats.numpy(), memory.entropy.numpy(), memory.count.numpy(), memory.slots, label, feat, ent)


def _write(feats, ents, count, slots: int, label: int, feat, ent: float) -> None:
    """`write` on numpy views of the memory's CPU tensors: the per-image loop of a batch stays cheap."""
    if count[label] == slots:
        row = ents[label]
        if (ent < row).any():
            at = int(row.argmax())
            feats[label, at], row[at] = feat, ent
    else:
        at = int(count[label])
        feats[label, at], ents[label, at] = feat, ent
        count[label] += 1


def proxies(memory: Memory) -> torch.Tensor:
    """Task-adaptive proxies (L893-894): the normalised mean over each label's memory (empty slots are zero). [K, d]"""
    return F.normalize(memory.feats.mean(1), dim=-1)


def sample_adaptive_logits(img: torch.Tensor, memory: Memory, beta: float, logit_scale: float) -> torch.Tensor:
    """Sample-adaptive proxies (`samada`, L877-891): slot j of label k weighted by exp(-β(1 - cos(x, m_kj))), summed,
    normalised; returns s · x · P_x,k. The norm is read from each label's Gram matrix instead of building the
    [N, K, d] proxies. [N, K]"""
    cos = torch.einsum("nd,kjd->nkj", img, memory.feats)  # [N, K, 1+L]
    w = torch.exp(-beta * (1 - cos))
    gram = torch.einsum("kid,kjd->kij", memory.feats, memory.feats)  # [K, 1+L, 1+L]
    norm = torch.einsum("nki,kij,nkj->nk", w, gram, w).clamp_min(1e-24).sqrt()
    return logit_scale * (w * cos).sum(-1) / norm


def step(
    memory: Memory,
    img: torch.Tensor,
    thres: float = 0.5,
    gap: float = 0.5,
    lam: float = 0.1,
    groups: int = 5,
    sample_adaptive: bool = False,
    beta: float = 5,
    logit_scale: float = 100.0,
    seed: int = 0,
    drop_remainder: bool = True,
) -> torch.Tensor:
    """Score one test batch [B, d] and update the memory with it first, as L783-950 do. [B]

    S = NegLabel's grouped score on the text features; images with S > thres + gap(1 - thres) go to their top ID
    label (entropy of the ID softmax), then images with S < thres - gap·thres to their top negative (entropy of the
    negative softmax), each in batch order. The score is NL(s · x · proxiesᵀ) + λ · S (`in_score: combine`). Both NL
    drop the last M mod G negatives (L788-790, L909-911) unless `drop_remainder=False`."""
    img = img.float().cpu()
    c, t = memory.num_id, 1.0 / logit_scale
    sim = img @ memory.feats[:, 0].T  # [B, K] cosines to the text features
    vanilla = neglabel.score(sim[:, :c], sim[:, c:], t, groups, seed, drop_remainder)
    for mask, part, offset in (
        (vanilla > thres + gap * (1 - thres), sim[:, :c], 0),
        (vanilla < thres - gap * thres, sim[:, c:], c),
    ):
        if not mask.any():
            continue
        label, ent = part[mask].argmax(1) + offset, entropy(logit_scale * part[mask])
        views = memory.feats.numpy(), memory.entropy.numpy(), memory.count.numpy(), memory.slots
        for f, k, e in zip(img[mask].numpy(), label.tolist(), ent.numpy()):  # float32 entropies, as official
            _write(*views, k, f, e)
    if sample_adaptive:
        logits = sample_adaptive_logits(img, memory, beta, logit_scale)
    else:
        logits = logit_scale * img @ proxies(memory).T
    adaptive = neglabel.score(logits[:, :c], logits[:, c:], 1.0, groups, seed, drop_remainder)
    return adaptive + lam * vanilla


def stepper(id_feats: torch.Tensor, neg_feats: torch.Tensor, slots: int = 10, **params):
    """A fresh memory and the function that scores the stream's batches with it (`negprompt.methods.stream.run`)."""
    memory = new_memory(id_feats, neg_feats, slots)
    return lambda img: step(memory, img, **params)
