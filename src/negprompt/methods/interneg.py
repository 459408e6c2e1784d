"""InterNeg (Xu et al., CVPR 2026): negatives chosen and grown by inter-modal (image-to-text) distances.

Official code: ZhikangXu0112/InterNeg. Selection: `openood/networks/clip_fixed_ood_prompt.py`
(`get_selected_ood_text_list`, L544-640; class prototypes L785-806) with the cosines of
`openood/networks/clip_for_wordnet_prepare.py` L56-71. Test time: `openood/postprocessors/oneoodprompt_postprocessor.py`
class `OneOodPromptDevelopPostprocessor` (L193-366), run by `scripts/ood/interneg/imagenet_{four,near,far}.sh`
(ood_number 2000, extra_text_length 2000, thres 0.35, group_num 5; 1 for near-OOD).

- Selection: p_c is the normalised mean of class c's 16-shot image features. A corpus word t stays only if
  cos(t, p_c) < cos(T_c, p_c) for every class c (T_c the class's "the nice {}" feature); the survivors rank by
  the mean margin mean_c[cos(T_c, p_c) - cos(t, p_c)] and 2,000 stay, nouns and adjectives in proportion.
- Test time, per batch of the stream: S = NegLabel's grouped score against [T_id; negatives; bank]. Images with
  S < 0.35 are inverted: a pseudo-token word embedding per image, put in place of "$" in a random one of CLIP's 80
  ImageNet templates and run through the frozen text tower, 10 AdamW steps (lr 2e-2, weight decay 0.01) on
  1 - cos(text, image). The resulting text features pass the same inter-modal test and join a bank ranked by
  margin; its best 2,000 are extra negatives. The batch is then scored again with the new bank (L303-355).

Departures, all from precision or state: fp32 throughout (official: CLIP in fp16, the inversion under CUDA autocast
with a GradScaler, the bank stored in fp16); seeded torch generators for the pseudo-token init and the template
draws (official: the global torch and Python RNGs); the bank is capped at `bank_size` (official: it keeps every
entry and reads only its first `extra_text_length`, the same negatives up to ties).
"""

from __future__ import annotations

from dataclasses import dataclass

import open_clip
import torch
import torch.nn.functional as F

from negprompt import NegPromptError
from negprompt.methods import neglabel

PAPER = {
    "num_labels": 2000,  # --network.backbone.ood_number
    "thres": 0.35,
    "bank_size": 2000,  # --postprocessor_args.extra_text_length
    "steps": 10,
    "lr": 2e-2,
    "weight_decay": 0.01,
    "init_std": 0.02,
    "groups": 5,  # four-OOD and far-OOD scripts; near-OOD: 1
    "logit_scale": 100.0,
}
# InterNeg's results table (figures/results.png), CLIP ViT-B/16 on ImageNet-1K, four-OOD average (AUROC / FPR95)
PAPER_IMAGENET = {"average": (97.43, 14.04)}
TEMPLATES = tuple(t("{}") for t in open_clip.OPENAI_IMAGENET_TEMPLATES)  # official get_templates('full'): the same 80
PLACEHOLDER = " $ "  # official L288: templates[i].format(" $ "); the "$" token's embedding is replaced


def _positive_int(name: str, value, official) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise NegPromptError(f"interneg.{name} = {value!r}: must be a positive integer (official: {official})")
    return value


def _positive_float(name: str, value, official) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise NegPromptError(f"interneg.{name} = {value!r}: must be a positive number (official: {official})")
    return float(value)


def class_prototypes(feats: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """p_c: the L2-normalised mean of class c's image features (official L785-806, over the 16-shot train list).
    [C, d]"""
    feats, labels = F.normalize(feats.float(), dim=-1), labels.long()
    counts = torch.bincount(labels, minlength=num_classes)
    if len(counts) > num_classes or (counts == 0).any():
        missing = (counts[:num_classes] == 0).nonzero().flatten().tolist()
        raise NegPromptError(
            f"interneg few-shot features: labels must cover classes 0..{num_classes - 1} "
            f"(no image for {missing[:5]}, or a label >= {num_classes})"
        )
    sums = torch.zeros(num_classes, feats.shape[1]).index_add_(0, labels, feats)
    return F.normalize(sums / counts[:, None], dim=-1)


def base_distance(id_feats: torch.Tensor, protos: torch.Tensor) -> torch.Tensor:
    """cos(T_c, p_c), the inter-modal distance of each class to its own text (official `cos_sim_id`). [C]"""
    return (id_feats.float() * protos.float()).sum(1)


def inter_modal_margin(
    feats: torch.Tensor, protos: torch.Tensor, base: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Which text features [M, d] pass the inter-modal test, cos(t, p_c) < cos(T_c, p_c) for every c, and their
    mean margin mean_c(cos(T_c, p_c) - cos(t, p_c)) (official L567-581 and L309-313): (keep [M], margin [M])."""
    cos = feats.float() @ protos.float().T  # [M, C]
    return (cos < base).all(1), (base - cos).mean(1)


def select_negatives(
    cand: torch.Tensor, protos: torch.Tensor, base: torch.Tensor, count: int = 2000, parts: list[str] | None = None
) -> torch.Tensor:
    """Indices of the chosen negatives among candidates [M, d], largest margin first within each part, parts in
    order of first appearance (official L567-617: adjectives and nouns filtered and ranked separately). The count
    is shared in proportion to each part's survivors: every part but the largest gets floor(count · n_p / n), the
    largest the rest (official: adj_num = int(count · n_adj / n), nouns the rest). [<= count]"""
    count = _positive_int("num_labels", count, 2000)
    parts = list(parts) if parts is not None else ["noun"] * len(cand)
    if len(parts) != len(cand):
        raise NegPromptError(f"interneg parts: {len(parts)} labels for {len(cand)} candidates")
    keep, margin = inter_modal_margin(cand, protos, base)
    names = list(dict.fromkeys(parts))
    part_of = torch.tensor([names.index(p) for p in parts], dtype=torch.long)
    alive = [(keep & (part_of == i)).nonzero().flatten() for i in range(len(names))]
    total = sum(len(a) for a in alive)
    count = min(count, total)
    largest = max(range(len(names)), key=lambda i: len(alive[i])) if names else 0
    quota = [count * len(a) // total if total else 0 for a in alive]
    if names:
        quota[largest] = min(len(alive[largest]), count - sum(q for i, q in enumerate(quota) if i != largest))
    out = [idx[torch.sort(-margin[idx], stable=True).indices[:q]] for idx, q in zip(alive, quota)]
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.long)


def grouped_score(
    img: torch.Tensor, id_feats: torch.Tensor, negs: torch.Tensor, groups: int = 5, logit_scale: float = 100.0
) -> torch.Tensor:
    """NegLabel's grouped score as the official postprocessor computes it (L242-266): the last M mod G negative
    columns are dropped, the rest permuted (seed 0) and cut into G equal groups; the mean over groups of the ID
    softmax mass. With the remainder dropped first, `neglabel.score` is that computation. [B]"""
    n = len(negs) - len(negs) % groups
    id_sim, neg_sim = img @ id_feats.T, img @ negs[:n].T
    return neglabel.score(id_sim, neg_sim, 1.0 / logit_scale, groups, seed=0)


@dataclass(frozen=True)
class Inversion:
    feats: torch.Tensor  # [B, d] L2-normalised pseudo-token text features
    losses: tuple[float, ...]  # mean 1 - cos(text, image) before each AdamW step


def invert(
    model,
    tokenizer,
    img: torch.Tensor,
    steps: int = 10,
    lr: float = 2e-2,
    weight_decay: float = 0.01,
    init_std: float = 0.02,
    templates: tuple[str, ...] = TEMPLATES,
    generator: torch.Generator | None = None,
) -> Inversion:
    """Textual inversion of image features [B, d] (official L269-306): one pseudo-token word embedding per image,
    N(0, init_std²), in place of "$" in a template drawn per image and step; `steps` AdamW steps on the mean of
    1 - cos(text feature, image) (`CosineEmbeddingLoss`, target 1); the features are then read with the last step's
    templates. CLIP stays frozen and untouched: gradients flow to the pseudo-tokens only."""
    from negprompt.clip.prompts import TextTower

    steps = _positive_int("steps", steps, 10)
    lr = _positive_float("lr", lr, 2e-2)
    if isinstance(weight_decay, bool) or not isinstance(weight_decay, (int, float)) or weight_decay < 0:
        raise NegPromptError(f"interneg.weight_decay = {weight_decay!r}: must be a number >= 0 (official: 0.01)")
    if isinstance(init_std, bool) or not isinstance(init_std, (int, float)) or init_std < 0:
        raise NegPromptError(f"interneg.init_std = {init_std!r}: must be a number >= 0 (official: 0.02)")
    if not templates:
        raise NegPromptError("interneg.templates: no template (official: CLIP's 80 ImageNet templates)")
    tower = TextTower(model)
    device = tower.token_embedding.weight.device
    tokens = tokenizer([t.format(PLACEHOLDER) for t in templates])
    mark = int(tokenizer([PLACEHOLDER.strip()])[0, 1])
    has = tokens == mark
    if not has.any(1).all():
        bad = templates[int((~has.any(1)).nonzero()[0])]
        raise NegPromptError(f"interneg template {bad!r}: its placeholder does not fit the text context length")
    slot, eot = has.int().argmax(1), tower.eot_index(tokens)  # first "$" (official L164-166), EOT per template
    tokens = tokens[:, : int(eot.max()) + 1].to(device)
    g = generator if generator is not None else torch.Generator().manual_seed(0)
    target = F.normalize(img.float(), dim=-1).to(device)
    pseudo = (torch.randn(len(img), tower.width, generator=g) * init_std).to(device).requires_grad_()
    opt = torch.optim.AdamW([pseudo], lr=lr, weight_decay=weight_decay)
    encode = template_encoder(tower, tokens, slot.to(device), eot.to(device), pseudo)
    losses = []
    with torch.enable_grad():  # the score stage scores under no_grad; only the pseudo-tokens get gradients
        for _ in range(steps):
            pick = torch.randint(len(templates), (len(img),), generator=g)
            loss = (1 - F.cosine_similarity(encode(pick), target, dim=-1)).mean()
            opt.zero_grad()
            loss.backward(inputs=[pseudo])
            opt.step()
            losses.append(float(loss.detach()))
    with torch.no_grad():
        feats = F.normalize(encode(pick), dim=-1).cpu()
    return Inversion(feats, tuple(losses))


def template_encoder(tower, tokens: torch.Tensor, slot: torch.Tensor, eot: torch.Tensor, pseudo: torch.Tensor):
    """A function from each image's template pick [B] to the text features [B, d] of its template with the image's
    pseudo-token at the template's "$" (`tokens` [T, L], `slot` and `eot` [T]). The mask is causal, so the words
    before "$" never see the pseudo-token: where the text blocks allow it (`TextTower.supports_shared_prefix`),
    their keys and values are computed once per template and each step runs only "$" to EOT (3 of 12 tokens for
    78 of the 80 templates); the features are the full sequence's up to float rounding. Otherwise the whole
    template runs each step."""
    with torch.no_grad():
        emb = tower.embed_tokens(tokens).float()  # [T, L, w]
    if not tower.supports_shared_prefix():
        rows = torch.arange(len(pseudo), device=pseudo.device)
        return lambda pick: tower.encode_embeddings(emb[pick].index_put((rows, slot[pick]), pseudo), eot[pick]).float()
    with torch.no_grad():
        kv = tower.prefix_kv(emb[:, : int(slot.max())])  # a shorter template's extra positions are masked out
    length = eot - slot  # EOT's place after "$"
    at = (slot[:, None] + torch.arange(int(length.max()) + 1, device=slot.device)).clamp(max=emb.shape[1] - 1)
    rest = emb.gather(1, at[..., None].expand(-1, -1, emb.shape[2]))  # [T, S, w] "$" ... EOT (then padding)

    def encode(pick: torch.Tensor) -> torch.Tensor:
        x = torch.cat([pseudo[:, None].to(rest.dtype), rest[pick, 1:]], dim=1)
        return tower.encode_suffix(kv, pick, x, length[pick], prefix_len=slot[pick]).float()

    return encode


@dataclass
class Bank:
    """Inverted negatives, best inter-modal margin first (official `self.bank`, `self.bank_scores`)."""

    feats: torch.Tensor  # [n, d]
    margin: torch.Tensor  # [n]


def empty_bank(dim: int) -> Bank:
    """The bank after the evaluator's memory reset (official L225-229)."""
    return Bank(torch.zeros(0, dim), torch.zeros(0))


def update_bank(bank: Bank, feats: torch.Tensor, protos: torch.Tensor, base: torch.Tensor, size: int = 2000) -> Bank:
    """New text features [B, d] that pass the inter-modal test join the bank; all re-ranked by margin (ties: older
    first) and the best `size` kept (official L308-324 keeps all and reads the first `extra_text_length`)."""
    size = _positive_int("bank_size", size, 2000)
    keep, margin = inter_modal_margin(feats, protos, base)
    all_feats = torch.cat([bank.feats, feats.float()[keep]])
    all_margin = torch.cat([bank.margin, margin[keep]])
    order = torch.sort(-all_margin, stable=True).indices[:size]
    return Bank(all_feats[order], all_margin[order])


@dataclass
class State:
    """InterNeg's memory for one ID-OOD stream: the fixed texts and the bank (reset per OOD set)."""

    id_feats: torch.Tensor  # [C, d] "the nice {}" class features
    neg_feats: torch.Tensor  # [M, d] the selected negatives
    protos: torch.Tensor  # [C, d] 16-shot class prototypes
    base: torch.Tensor  # [C] cos(T_c, p_c)
    bank: Bank
    generator: torch.Generator


def stream_texts(id_feats, neg_feats, protos, method: str = "interneg") -> tuple[torch.Tensor, ...]:
    """The fixed texts and prototypes of a stream (InterNeg's, TINS's) as float32 on the CPU, one prototype per
    class text checked."""
    id_feats, neg_feats, protos = id_feats.float().cpu(), neg_feats.float().cpu(), protos.float().cpu()
    if id_feats.shape != protos.shape:
        raise NegPromptError(
            f"{method}: {tuple(protos.shape)} class prototypes for {tuple(id_feats.shape)} class text features"
        )
    return id_feats, neg_feats, protos


def new_state(id_feats, neg_feats, protos, seed: int = 0) -> State:
    id_feats, neg_feats, protos = stream_texts(id_feats, neg_feats, protos)
    return State(
        id_feats,
        neg_feats,
        protos,
        base_distance(id_feats, protos),
        empty_bank(id_feats.shape[1]),
        torch.Generator().manual_seed(seed),
    )


def step(
    state: State,
    img: torch.Tensor,
    model,
    tokenizer,
    thres: float = 0.35,
    bank_size: int = 2000,
    groups: int = 5,
    logit_scale: float = 100.0,
    **inversion,
) -> torch.Tensor:
    """Score one test batch [B, d] (official L231-366). [B]

    S = grouped_score against [selected negatives; bank]; images with S < thres are inverted (`invert`), their text
    features update the bank, and the whole batch is scored again with it. A batch with no such image keeps S."""
    img = F.normalize(img.float().cpu(), dim=-1)

    def score():
        return grouped_score(img, state.id_feats, torch.cat([state.neg_feats, state.bank.feats]), groups, logit_scale)

    s = score()
    ood = s < thres
    if not ood.any():
        return s
    inv = invert(model, tokenizer, img[ood], generator=state.generator, **inversion)
    state.bank = update_bank(state.bank, inv.feats, state.protos, state.base, bank_size)
    return score()


def stepper(
    model,
    tokenizer,
    id_feats: torch.Tensor,
    neg_feats: torch.Tensor,
    protos: torch.Tensor,
    thres: float = 0.35,
    bank_size: int = 2000,
    groups: int = 5,
    steps: int = 10,
    lr: float = 2e-2,
    seed: int = 0,
    **params,
):
    """A fresh state and the function that scores the stream's batches with it (`negprompt.methods.stream.run`).
    The parameters are checked here, before the first batch."""
    _positive_int("bank_size", bank_size, 2000)
    _positive_int("steps", steps, 10)
    _positive_float("lr", lr, 2e-2)
    _positive_int("groups", groups, 5)
    if groups > len(neg_feats):
        raise NegPromptError(
            f"interneg.groups = {groups}: more groups than selected negatives ({len(neg_feats)}) (official: 5)"
        )
    state = new_state(id_feats, neg_feats, protos, seed)
    return lambda img: step(state, img, model, tokenizer, thres, bank_size, groups, steps=steps, lr=lr, **params)
