"""CSP (Chen et al., NeurIPS 2024): NegLabel's mining over a pool enlarged by conjugated semantic labels.

Official code: MengyuanChen21/NeurIPS2024-CSP, `mmcls/models/classifiers/multi_modal.py` (pool, templates,
mining: L58-70, L79-141, L160-181), `mmcls/models/ood/clip_ood.py` (grouped score: L25-65),
`custom_config/clip-ViT-B16.py` (defaults) and `mmcls/models/classifiers/class_names.py` L1074-1107 (templates).
Each adjective becomes a phrase "{adj} {w}", w drawn (Python `random`, seed 0) from 14 words (environment, ...,
creature): labels that stand for a property shared by many objects or scenes. Nouns and phrases are mined
separately by NegLabel's percentile rule, with one change (a candidate with a cosine above 0.95 to some ID
label gets the worst value) and the lowest 15% of each part kept. The score is NegLabel's grouped score.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from negprompt import NegPromptError
from negprompt.methods import neglabel

CONJUGATES = (
    "{} environment",
    "{} space",
    "{} object",
    "{} scene",
    "{} place",
    "{} item",
    "{} area",
    "{} view",
    "{} thing",
    "{} pattern",
    "{} structure",
    "{} landscape",
    "{} vista",
    "{} creature",
)  # csp_templates
NOUN_TEMPLATES = (
    "a close-up photo of the nice {}.",
    "a photo with the nice {}.",
    "a good photo with the nice {}.",
    "a photo of the nice {}.",
    "{}",
    "the {}",
    "the good {}",
    "the nice {}",
)  # ID names and nouns
ADJ_TEMPLATES = ("{}", "a nice photo of {}", "a good photo of {}", "a close-up photo of {}")  # adjective phrases
EXCLUDED_LEXNAMES = ("noun.person", "noun.quantity", "noun.group", "adj.pert")  # config `txt_exclude`
PAPER = {"fraction": 0.15, "percentile": 95.0, "near": 0.95, "temperature": 0.01, "groups": 100, "seed": 0}
# CSP paper Table 1 / abstract, CLIP ViT-B/16 on ImageNet-1K (AUROC / FPR95 in %)
PAPER_IMAGENET = {"average": (95.76, 17.51)}


def conjugate(adjectives: list[str], seed: int = 0) -> list[str]:
    """One phrase per adjective, "{adj} {w}", w drawn in order by Python's `random.choice` seeded `seed` (L88, L111)."""
    rng = random.Random(seed)
    return [rng.choice(CONJUGATES).format(a) for a in adjectives]


def wordnet_pools(data_dir: str = "") -> neglabel.Corpus:
    """CSP's pool from WordNet: nouns outside the lexicographer files person, quantity and group; adjectives outside
    adj.pert (the official `txt_exclude`). A word listed in an allowed file and an excluded one is kept, as the
    official code reads one word list per file."""
    from negprompt.methods import wordnet

    wn = wordnet.reader(data_dir)
    parts = {}
    for part, tag in (("noun", "n"), ("adj", "a")):  # WordNet's part-of-speech tags
        allowed = (s for s in wn.all_synsets(tag) if s.lexname() not in EXCLUDED_LEXNAMES)
        parts[part] = sorted({lemma for s in allowed for lemma in s.lemma_names()})
    return neglabel.Corpus(parts, f"WordNet {wn.get_version()} less {', '.join(EXCLUDED_LEXNAMES)} ({wn.root})")


def ensemble(model, tokenizer, names: list[str], templates, batch_size: int = 1000) -> torch.Tensor:
    """A name's feature: the mean of its raw (unnormalised) text features over `templates`, then L2-normalised,
    as L66-70 and L137-141 do. [len(names), d]"""
    from negprompt.clip.prompts import TextTower

    if not names:
        return torch.empty(0, 0)
    tower = TextTower(model)
    device = tower.token_embedding.weight.device
    texts = [t.format(n) for n in names for t in templates]  # name-major: rows of one name are adjacent
    with torch.no_grad():
        raw = torch.cat(
            [
                tower.encode_tokens(tokenizer(texts[i : i + batch_size]).to(device)).float().cpu()
                for i in range(0, len(texts), batch_size)
            ]
        )
    return F.normalize(raw.view(len(names), len(templates), -1).mean(1), dim=-1)


def closeness(cand: torch.Tensor, id_feats: torch.Tensor, percentile: float = 95.0, near: float = 0.95) -> torch.Tensor:
    """q(c): the percentile of a candidate's cosines to the ID labels (NegLabel's rule), set to 1 when some cosine
    exceeds `near` (L160-168: `sim[maximum > 0.95] = 1.0`, which drops ID names and their synonyms). [M]"""
    if len(cand) == 0:
        return torch.empty(0)
    q = -neglabel.candidate_distance(cand, id_feats, percentile)
    q[(cand.float() @ id_feats.float().T).amax(1) > near] = 1.0
    return q


def lowest(q: torch.Tensor, fraction: float = 0.15) -> torch.Tensor:
    """Indices of the int(len · fraction) lowest q, lowest first (L176-180; ties: lower index first)."""
    return torch.sort(q, stable=True).indices[: int(len(q) * fraction)]


@dataclass(frozen=True)
class Mined:
    id_feats: torch.Tensor  # [C, d]
    neg_feats: torch.Tensor  # [M, d] selected nouns, then selected adjective phrases
    words: list[str]
    parts: list[str]


def mine(
    id_feats: torch.Tensor,
    noun_feats: torch.Tensor,
    adj_feats: torch.Tensor,
    nouns: list[str],
    phrases: list[str],
    fraction: float = 0.15,
    percentile: float = 95.0,
    near: float = 0.95,
) -> Mined:
    """Keep the lowest `fraction` of nouns and, separately, of adjective phrases by `closeness`."""
    feats, words, parts = [], [], []
    for part, f, names in (("noun", noun_feats, nouns), ("adj", adj_feats, phrases)):
        if len(names) == 0:
            continue
        keep = lowest(closeness(f, id_feats, percentile, near), fraction)
        feats.append(f[keep])
        words += [names[i] for i in keep]
        parts += [part] * len(keep)
    if not words:
        raise NegPromptError(
            f"csp: no negative label kept (csp.fraction = {fraction} of {len(nouns)} nouns and "
            f"{len(phrases)} adjective phrases)"
        )
    return Mined(id_feats, torch.cat(feats), words, parts)


def mine_corpus(
    model,
    tokenizer,
    id_names: list[str],
    corpus: neglabel.Corpus,
    fraction: float = 0.15,
    percentile: float = 95.0,
    near: float = 0.95,
    seed: int = 0,
    noun_templates=NOUN_TEMPLATES,
    adj_templates=ADJ_TEMPLATES,
) -> Mined:
    """Encode ID names and nouns with `noun_templates`, adjective phrases with `adj_templates`, and mine."""
    nouns, phrases = corpus.parts.get("noun", []), conjugate(corpus.parts.get("adj", []), seed)
    if not nouns and not phrases:
        raise NegPromptError(f"{corpus.source}: empty corpus for CSP (neglabel.corpus, family.csp.adjectives)")
    id_feats = ensemble(model, tokenizer, id_names, noun_templates)
    noun_feats = ensemble(model, tokenizer, nouns, noun_templates)
    adj_feats = ensemble(model, tokenizer, phrases, adj_templates)
    return mine(id_feats, noun_feats, adj_feats, nouns, phrases, fraction, percentile, near)


def score(
    img: torch.Tensor,
    mined: Mined,
    temperature: float = 0.01,
    groups: int = 100,
    seed: int = 0,
    drop_remainder: bool = True,
) -> torch.Tensor:
    """NegLabel's grouped score (clip_ood.py L25-49: the last M mod G negatives dropped) on CSP's labels. [N]"""
    return neglabel.score(img @ mined.id_feats.T, img @ mined.neg_feats.T, temperature, groups, seed, drop_remainder)
