"""TINS (Yang et al., arXiv 2605.10756, 2026): InterNeg's negatives, grown at test time by a textual inversion that
starts from the closest negative word and is kept apart from the ID class prototypes.

Official code: zxk1212/tins, `eval_tins_w_init.py` (ImageNet four-OOD; the README's command: `--inversion-steps 30
--inversion-reg-lambda 0.3 --ood-threshold 0.3 --group-num 5 --ood-number 2000 --extra-text-length 2000`, the rest
the argparse defaults L139-309).

- Fixed texts (L746-954): InterNeg's, by the same rule. p_c = the normalised mean of class c's 16-shot image
  features (L818-834); T_c = "The nice {}." (L30, L1457); a candidate t stays iff cos(t, p_c) < cos(T_c, p_c) for
  every c (L729-733); 2,000 kept by mean margin, adjectives int(2000 n_adj / n) and nouns the rest (L914-932).
  `interneg.class_prototypes`, `interneg.select_negatives`.
- Init candidates (L1012-1076): each selected word w in "a photo of a {w}." (L32): its normalised text feature f_w,
  the token embedding e_w of its last token (L980-995), and r_w = mean_c(1 + cos(f_w, p_c)) (L1055). `candidates`.
- Per batch of the stream (L1303-1357): S = TINS's grouped score (`grouped_score`, L1107-1140) against
  [T_id; negatives; bank]. Images with S < 0.3 (L1171) are inverted (`invert`, L1079-1104, L1176-1214): each starts
  from the word minimising 1 - cos(x, f_w) + 0.3 r_w, its last token replaced by a free vector initialised at e_w,
  30 AdamW steps (lr 2e-2, weight decay 0.01) on mean(1 - cos(t, x)) + 0.3 mean_{b,c}(1 + cos(t_b, p_c)).
  The final text features that pass the inter-modal test join the bank, ranked by margin; it keeps 2,000 and the
  rest overflow into a buffer; once the buffer holds 2,000, its better half and the bank are pooled and 2,000 drawn
  at random form the new bank, the buffer emptied (`update`, L1216-1270). The batch is then scored again (L1346).

Departures, all from precision or order: fp32 throughout (official: CLIP in fp16 on the GPU, the bank and buffer
stored in fp16, L1224); the grouping permutation is drawn by a CPU generator seeded `seed` (official:
`torch.manual_seed(0); torch.randperm(n, device='cuda')` L1119-1121, another permutation); the inversion's
ID-separation term is t @ p.T (official: `F.cosine_similarity` over a [B, C, d] broadcast, L1200-1204; the same
cosines, both sides unit vectors); the selected negatives are in the candidates' part order (official: adjectives
first, L938; the permutation mixes them either way); ties in the bank's ranking keep the older entry first
(official: `torch.sort`, not stable).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from negprompt import NegPromptError
from negprompt.methods import interneg

PAPER = {
    "num_labels": 2000,  # --ood-number
    "thres": 0.3,  # --ood-threshold
    "bank_size": 2000,  # --extra-text-length
    "buffer": True,  # --use-buffer (set_defaults L309)
    "buffer_size": 2000,  # --bank-buffer-size
    "groups": 5,  # --group-num
    "steps": 30,  # --inversion-steps
    "lr": 2e-2,  # --inversion-lr
    "weight_decay": 1e-2,  # --inversion-weight-decay
    "reg_lambda": 0.3,  # --inversion-reg-lambda (the CIFAR commands: 0.5)
    "logit_scale": 100.0,  # model.logit_scale.exp() (L1288)
}
# README / abstract: ImageNet-1K four-OOD average FPR95 (ID positive: utils/detection_util.py get_measures, L108-119,
# called with the ID scores first, eval_tins_w_init.py L1529); no AUROC stated
PAPER_IMAGENET = {"average_fpr95": 6.72}
TEMPLATE = "a photo of a {}."  # INVERSION_PROMPT_TEMPLATE (L32)
TEMPLATE_NO_PERIOD = "a photo of a {}"  # L33: locates the word's last token (L980-989)


def _name(key: str) -> str:
    return f"family.tins.{key}"


def _positive_int(key: str, value) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise NegPromptError(f"{_name(key)} = {value!r}: must be a positive integer (official: {PAPER[key]})")
    return value


def _number(key: str, value, positive: bool) -> float:
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and (value > 0 if positive else value >= 0)
    if not ok:
        need = "a positive number" if positive else "a number >= 0"
        raise NegPromptError(f"{_name(key)} = {value!r}: must be {need} (official: {PAPER[key]})")
    return float(value)


def check(
    thres=0.3,
    bank_size=2000,
    buffer_size=2000,
    groups=5,
    steps=30,
    lr=2e-2,
    weight_decay=1e-2,
    reg_lambda=0.3,
    num_negatives: int | None = None,
) -> None:
    """Every parameter's range, each error naming its `family.tins` key (the config checks the same on load, and
    `thres` in [0, 1]; above 1 every image is inverted)."""
    if isinstance(thres, bool) or not isinstance(thres, (int, float)) or not math.isfinite(thres):
        raise NegPromptError(f"{_name('thres')} = {thres!r}: must be a number (official: 0.3)")
    _positive_int("bank_size", bank_size)
    _positive_int("buffer_size", buffer_size)
    _positive_int("groups", groups)
    _positive_int("steps", steps)
    _number("lr", lr, positive=True)
    _number("weight_decay", weight_decay, positive=False)
    _number("reg_lambda", reg_lambda, positive=False)
    if num_negatives is not None and groups > num_negatives:
        raise NegPromptError(
            f"{_name('groups')} = {groups}: more groups than selected negatives ({num_negatives}) (official: 5)"
        )


def grouped_score(
    img: torch.Tensor,
    id_feats: torch.Tensor,
    negs: torch.Tensor,
    groups: int = 5,
    logit_scale: float = 100.0,
    seed: int = 0,
) -> torch.Tensor:
    """TINS's grouped score (official `compute_grouped_positive_score`, L1107-1140). [B]

    The last M mod G negative columns are dropped, the rest permuted (seed `seed`) and cut into G equal groups of n;
    per group, the ID mass against the group's **mean** negative mass scaled to C classes:
    Σ_c e^{s x·T_c} / (Σ_c e^{s x·T_c} + (C / n) Σ_{j in g} e^{s x·N_j}); the mean over groups. NegLabel's score is
    the same with C / n = 1."""
    _positive_int("groups", groups)
    kept = len(negs) - len(negs) % groups
    if kept == 0:
        raise NegPromptError(f"{_name('groups')} = {groups}: more groups than negatives ({len(negs)}) (official: 5)")
    pos = logit_scale * (img.float() @ id_feats.float().T)  # [B, C]
    neg = logit_scale * (img.float() @ negs[:kept].float().T)  # [B, kept]
    perm = torch.randperm(kept, generator=torch.Generator().manual_seed(seed))
    neg = neg[:, perm].reshape(len(img), groups, -1)
    log_pos = torch.logsumexp(pos, dim=-1, keepdim=True)  # [B, 1]
    log_neg = torch.logsumexp(neg, dim=-1) - math.log(kept // groups) + math.log(pos.shape[1])  # [B, G]
    return torch.exp(log_pos - torch.logaddexp(log_pos, log_neg)).mean(-1)


def tokenize(tokenizer, words: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Each word in "a photo of a {w}." (L1035-1038) and the position of its last token (L980-989: the token count
    of "a photo of a {w}" less 2; a multi-token word keeps its other tokens). Cut to the longest text: the causal
    mask makes the EOT feature independent of the padding. (tokens [M, L], slot [M])"""
    tokens = tokenizer([TEMPLATE.format(w) for w in words])
    count_no_period = (tokenizer([TEMPLATE_NO_PERIOD.format(w) for w in words]) != 0).sum(1)
    count = (tokens != 0).sum(1)
    slot = count_no_period - 2
    bad = (slot < 1) | (slot >= count - 1)
    if bad.any():
        word = words[int(bad.nonzero()[0])]
        raise NegPromptError(f"TINS: cannot place the word {word!r} in {TEMPLATE!r} (its last token is not found)")
    return tokens[:, : int(count.max())].contiguous(), slot.long()


@dataclass(frozen=True)
class Candidates:
    """The init candidates: one per selected negative word (official `build_inversion_init_candidates`)."""

    tokens: torch.Tensor  # [M, L] "a photo of a {w}."
    slot: torch.Tensor  # [M] position of w's last token
    vectors: torch.Tensor  # [M, w] that token's embedding: where the pseudo-token starts
    feats: torch.Tensor  # [M, d] L2-normalised text features
    reg: torch.Tensor  # [M] mean_c(1 + cos(f_w, p_c))


def candidates(model, tokens: torch.Tensor, slot: torch.Tensor, protos: torch.Tensor, batch: int = 1000) -> Candidates:
    """Encode the init candidates through the frozen text tower (L1041-1055)."""
    from negprompt.clip.prompts import TextTower

    tower = TextTower(model)
    device = tower.token_embedding.weight.device
    tokens, slot = tokens.long().cpu(), slot.long().cpu()
    if len(tokens) != len(slot) or not len(tokens):
        raise NegPromptError(f"TINS: {len(tokens)} candidate texts for {len(slot)} word positions (need >= 1)")
    vectors, feats = [], []
    with torch.no_grad():
        for i in range(0, len(tokens), batch):
            t = tokens[i : i + batch].to(device)
            emb = tower.embed_tokens(t)
            vectors.append(emb[torch.arange(len(t), device=device), slot[i : i + batch].to(device)].float().cpu())
            feats.append(tower.encode_embeddings(emb, tower.eot_index(t)).float().cpu())
    feats = F.normalize(torch.cat(feats), dim=-1)
    reg = (1 + feats @ protos.float().cpu().T).mean(1)
    return Candidates(tokens, slot, torch.cat(vectors), feats, reg)


@dataclass(frozen=True)
class Inversion:
    feats: torch.Tensor  # [B, d] L2-normalised text features after the last step
    init: torch.Tensor  # [B] index of each image's init candidate (`start`)
    losses: tuple[float, ...]  # the loss before each AdamW step


def start(img: torch.Tensor, cand: Candidates, reg_lambda: float = 0.3) -> torch.Tensor:
    """Each image's init candidate: argmin_w 1 - cos(x, f_w) + λ r_w (official L1097-1099). [B]"""
    return torch.argmin(1.0 - img.float() @ cand.feats.T + reg_lambda * cand.reg[None], dim=1)


def invert(
    model,
    img: torch.Tensor,
    cand: Candidates,
    protos: torch.Tensor,
    steps: int = 30,
    lr: float = 2e-2,
    weight_decay: float = 1e-2,
    reg_lambda: float = 0.3,
) -> Inversion:
    """Textual inversion of image features [B, d] from their closest negative word (official L1176-1214).

    Each image's text is its init candidate's, the word's last token a free vector starting at that token's
    embedding; `steps` AdamW steps on mean_b(1 - cos(t_b, x_b)) + λ mean_{b,c}(1 + cos(t_b, p_c)); the features are
    read once more after the last step. CLIP stays frozen: gradients flow to the pseudo-tokens only."""
    from negprompt.clip.prompts import TextTower

    steps = _positive_int("steps", steps)
    lr = _number("lr", lr, positive=True)
    weight_decay = _number("weight_decay", weight_decay, positive=False)
    reg_lambda = _number("reg_lambda", reg_lambda, positive=False)
    tower = TextTower(model)
    device = tower.token_embedding.weight.device
    img = F.normalize(img.float(), dim=-1)
    best = start(img, cand, reg_lambda)
    tokens = cand.tokens[best].to(device)
    slot, eot = cand.slot[best].to(device), tower.eot_index(tokens)
    tokens = tokens[:, : int(eot.max()) + 1]
    with torch.no_grad():
        emb = tower.embed_tokens(tokens).float()
    pseudo = cand.vectors[best].clone().to(device).requires_grad_()
    opt = torch.optim.AdamW([pseudo], lr=lr, weight_decay=weight_decay)
    rows = torch.arange(len(img), device=device)
    target, protos = img.to(device), protos.float().to(device)

    def encode() -> torch.Tensor:
        return F.normalize(tower.encode_embeddings(emb.index_put((rows, slot), pseudo), eot).float(), dim=-1)

    losses = []
    with torch.enable_grad():  # the score stage scores under no_grad; only the pseudo-tokens get gradients
        for _ in range(steps):
            text = encode()
            align = (1.0 - F.cosine_similarity(text, target, dim=-1)).mean()
            loss = align + reg_lambda * (1 + text @ protos.T).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward(inputs=[pseudo])
            opt.step()
            losses.append(float(loss.detach()))
    with torch.no_grad():
        feats = encode().cpu()
    return Inversion(feats, best, tuple(losses))


@dataclass
class Memory:
    """The bank (best inter-modal margin first, until a buffer flush shuffles it) and its overflow buffer (official
    `bank_features`, `bank_scores`, `buffer_features`, `buffer_scores`; empty at each stream's start, L1296-1299)."""

    feats: torch.Tensor  # [n, d]
    margin: torch.Tensor  # [n]
    buffer: torch.Tensor  # [m, d]
    buffer_margin: torch.Tensor  # [m]


def empty_memory(dim: int) -> Memory:
    return Memory(torch.zeros(0, dim), torch.zeros(0), torch.zeros(0, dim), torch.zeros(0))


def update(
    mem: Memory,
    feats: torch.Tensor,
    protos: torch.Tensor,
    base: torch.Tensor,
    bank_size: int = 2000,
    buffer: bool = True,
    buffer_size: int = 2000,
    seed: int = 0,
) -> Memory | None:
    """Inverted text features [B, d] into the memory (official L1216-1270); None when none passes the inter-modal
    test (the official returns without touching the memory, and the batch keeps its first score).

    The passing ones join the bank, all ranked by margin; the best `bank_size` stay, the rest go to the buffer (or
    are dropped without `buffer`). When the buffer holds `buffer_size` or more: its better half (by margin) and the
    bank are pooled, and a random `bank_size` of the pool (`torch.randperm` seeded `seed`: the official global
    generator, reseeded to 0 by each grouped score L1119 whose own draw goes to the GPU generator) become the bank;
    the buffer is emptied."""
    bank_size, buffer_size = _positive_int("bank_size", bank_size), _positive_int("buffer_size", buffer_size)
    keep, margin = interneg.inter_modal_margin(feats, protos, base)
    if not keep.any():
        return None
    all_feats = torch.cat([mem.feats, feats.float()[keep]])
    all_margin = torch.cat([mem.margin, margin[keep]])
    order = torch.sort(-all_margin, stable=True).indices
    all_feats, all_margin = all_feats[order], all_margin[order]
    bank, bank_margin = all_feats[:bank_size], all_margin[:bank_size]
    buf, buf_margin = mem.buffer, mem.buffer_margin
    if buffer and len(all_feats) > bank_size:
        buf, buf_margin = torch.cat([buf, all_feats[bank_size:]]), torch.cat([buf_margin, all_margin[bank_size:]])
    if buffer and len(buf) >= buffer_size:
        top = torch.sort(-buf_margin, stable=True).indices[: len(buf) // 2]
        pool, pool_margin = torch.cat([bank, buf[top]]), torch.cat([bank_margin, buf_margin[top]])
        pick = torch.randperm(len(pool), generator=torch.Generator().manual_seed(seed))[:bank_size]
        bank, bank_margin = pool[pick], pool_margin[pick]
        buf, buf_margin = buf[:0], buf_margin[:0]
    return Memory(bank, bank_margin, buf, buf_margin)


@dataclass
class State:
    """TINS's memory for one ID-OOD stream: the fixed texts, the init candidates and the bank (reset per OOD set)."""

    id_feats: torch.Tensor  # [C, d] "the nice {}" class features
    neg_feats: torch.Tensor  # [M, d] the selected negatives
    protos: torch.Tensor  # [C, d] 16-shot class prototypes
    base: torch.Tensor  # [C] cos(T_c, p_c)
    cand: Candidates
    memory: Memory


def new_state(id_feats, neg_feats, protos, cand: Candidates) -> State:
    id_feats, neg_feats, protos = interneg.stream_texts(id_feats, neg_feats, protos, "TINS")
    if cand.feats.shape[1] != id_feats.shape[1]:
        raise NegPromptError(
            f"TINS: init candidates of dimension {cand.feats.shape[1]}, text features of {id_feats.shape[1]}"
        )
    base = interneg.base_distance(id_feats, protos)
    return State(id_feats, neg_feats, protos, base, cand, empty_memory(id_feats.shape[1]))


def step(
    state: State,
    img: torch.Tensor,
    model,
    thres: float = 0.3,
    bank_size: int = 2000,
    buffer: bool = True,
    buffer_size: int = 2000,
    groups: int = 5,
    logit_scale: float = 100.0,
    seed: int = 0,
    **inversion,
) -> torch.Tensor:
    """Score one test batch [B, d] (official L1303-1357). [B]

    S = `grouped_score` against [negatives; bank]; images with S < thres are inverted (`invert`) and the memory
    updated (`update`); if it changed, the whole batch is scored again. A batch with no such image keeps S."""
    img = F.normalize(img.float().cpu(), dim=-1)

    def score():
        negs = torch.cat([state.neg_feats, state.memory.feats])
        return grouped_score(img, state.id_feats, negs, groups, logit_scale, seed)

    s = score()
    ood = s < thres
    if not ood.any():
        return s
    inv = invert(model, img[ood], state.cand, state.protos, **inversion)
    mem = update(state.memory, inv.feats, state.protos, state.base, bank_size, buffer, buffer_size, seed)
    if mem is None:
        return s
    state.memory = mem
    return score()


def stepper(
    model,
    id_feats: torch.Tensor,
    neg_feats: torch.Tensor,
    protos: torch.Tensor,
    cand: Candidates,
    thres: float = 0.3,
    bank_size: int = 2000,
    buffer: bool = True,
    buffer_size: int = 2000,
    groups: int = 5,
    steps: int = 30,
    lr: float = 2e-2,
    weight_decay: float = 1e-2,
    reg_lambda: float = 0.3,
    logit_scale: float = 100.0,
    seed: int = 0,
):
    """A fresh state and the function that scores the stream's batches with it (`negprompt.methods.stream.run`).
    The parameters are checked here, before the first batch."""
    check(thres, bank_size, buffer_size, groups, steps, lr, weight_decay, reg_lambda, len(neg_feats))
    state = new_state(id_feats, neg_feats, protos, cand)
    inversion = {"steps": steps, "lr": lr, "weight_decay": weight_decay, "reg_lambda": reg_lambda}
    return lambda img: step(
        state, img, model, thres, bank_size, buffer, buffer_size, groups, logit_scale, seed, **inversion
    )
