"""NegLabel (Jiang et al., ICLR 2024): zero-shot OOD detection with negative labels mined from a corpus.

Nothing is trained. NegMining (paper Sec. 3.2) keeps the corpus words farthest from the ID labels:
a candidate's distance is minus the η-percentile (official code: the 95th, `torch.quantile(q=0.95)`)
of its cosine to the K ID-label features, and the M largest distances win. The score (Eq. 5) is
the share of an image's similarity mass that falls on the ID labels,

    S(x) = Σ_i exp(cos(x, y_i)/τ) / (Σ_i exp(cos(x, y_i)/τ) + Σ_j exp(cos(x, ỹ_j)/τ)),   τ = 0.01,

and the grouping strategy (Sec. 3.4) splits the negatives into groups, scores with each group alone
and averages. Prompts follow the official code: "the nice {}" for ID labels and nouns,
"This is a {} photo" for adjectives.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch

from negprompt import NegPromptError

NOUN_TEMPLATE = "the nice {}"  # official prompt_templates[85], for ID labels and noun negatives
ADJ_TEMPLATE = "This is a {} photo"  # official, for adjective negatives
PAPER = {"num_labels": 10000, "percentile": 95.0, "temperature": 0.01, "groups": 100}
# NegLabel paper Table 1, CLIP ViT-B/16 on ImageNet-1K (AUROC / FPR95 in %)
PAPER_IMAGENET = {
    "iNaturalist": (99.49, 1.91),
    "SUN": (95.49, 20.53),
    "Places": (91.64, 35.59),
    "Textures": (90.22, 43.56),
    "average": (94.21, 25.40),
}


@dataclass(frozen=True)
class Corpus:
    """Candidate negative words by part of speech ({"noun": [...], "adj": [...]}), and where they came from."""

    parts: dict[str, list[str]]
    source: str

    def __len__(self) -> int:
        return sum(len(w) for w in self.parts.values())


def clean(word: str) -> str:
    """Lower case, underscores as spaces, single spaces: how the world tables name concepts."""
    return " ".join(word.replace("_", " ").lower().split())


def dedup(words, exclude=()) -> list[str]:
    """Cleaned words in first-seen order, without repeats, blanks or any of `exclude` (cleaned)."""
    drop, out = {clean(w) for w in exclude}, {}
    for w in words:
        if (c := clean(w)) and c not in drop:
            out.setdefault(c, None)
    return list(out)


def read_word_list(path: str | Path) -> list[str]:
    """A UTF-8 text file, one word or phrase per line; blank lines and '#' comments are skipped."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise NegPromptError(f"{path}: word list not found (neglabel.corpus)") from None
    except UnicodeDecodeError as e:
        raise NegPromptError(
            f"{path}: not UTF-8 text (byte {e.start}); a word list is one UTF-8 word per line"
        ) from None
    except OSError as e:
        raise NegPromptError(f"{path}: cannot read the word list ({e.strerror})") from None
    if "\x00" in text:
        raise NegPromptError(f"{path}: not a text file (NUL bytes); a word list is one UTF-8 word per line")
    return [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]


def wordnet_corpus(data_dir: str = "") -> Corpus:
    """WordNet's noun and adjective lemmas (the paper's corpus) through NLTK's WordNet reader, from NLTK's
    download or Debian's packages (methods/wordnet.py)."""
    from negprompt.methods import wordnet

    reader = wordnet.reader(data_dir)
    return Corpus(
        {"noun": sorted(reader.all_lemma_names(pos="n")), "adj": sorted(reader.all_lemma_names(pos="a"))},
        f"WordNet {reader.get_version()} ({reader.root})",
    )


def make_corpus(
    parts: dict[str, list[str]], id_names: list[str], source: str, groups: int, exclude_id_names: bool = False
) -> Corpus:
    """Cleaned, deduplicated candidates (a word in two parts stays in the first); too few for `groups` is an error.
    The official pool keeps the ID names (NegLabel `multi_modal.py` L87-89 skip them only when `pos_topk` is set,
    default None); `exclude_id_names` removes them first (AdaNeg's and TANL's pool, `clip_for_wordnet_prepare.py`
    L121-122)."""
    seen: set[str] = set()
    out = {}
    for part, words in parts.items():
        out[part] = [w for w in dedup(words, id_names if exclude_id_names else ()) if w not in seen]
        seen.update(out[part])
    corpus = Corpus(out, source)
    after = " (after removing the ID class names)" if exclude_id_names else ""
    if len(corpus) == 0:
        raise NegPromptError(f"{source}: no candidate words{after} (neglabel.corpus)")
    if len(corpus) < groups:
        raise NegPromptError(f"{source}: {len(corpus)} candidate words{after}, fewer than neglabel.groups = {groups}")
    return corpus


def without(corpus: Corpus, names: list[str]) -> Corpus:
    """`corpus` less the cleaned `names` in every part: the pool of the methods whose official code removes the ID
    names (AdaNeg, TANL)."""
    drop = {clean(n) for n in names}
    return Corpus({part: [w for w in words if w not in drop] for part, words in corpus.parts.items()}, corpus.source)


def mine_count(corpus_size: int, num_labels: int, max_fraction: float) -> int:
    """M: the paper's `num_labels` (10,000 of WordNet's ~70k words), but never more than `max_fraction`
    of the corpus (the official code keeps 15% of each part). On a small corpus this keeps the paper's
    selectivity instead of mining every word, near-ID ones included."""
    return max(1, min(num_labels, math.floor(max_fraction * corpus_size)))


def candidate_distance(
    candidates: torch.Tensor,
    id_feats: torch.Tensor,
    percentile: float = 95.0,
    batch: int = 1000,
    interpolate: bool = True,
) -> torch.Tensor:
    """NegMining's distance of each candidate [M, d] to the ID labels [K, d] (L2-normalised): −P_η of its K cosines.
    `interpolate`: the η-th percentile with linear interpolation, `torch.quantile` (NegLabel `multi_modal.py` L144,
    CSP L165); otherwise the sorted cosine at index int(K·η/100), clipped to K − 1 (AdaNeg, OpenOOD-VLM
    `clip_fixed_ood_prompt.py` L569-576). [M]"""
    q = percentile / 100
    at = min(int(id_feats.shape[0] * q), id_feats.shape[0] - 1)

    def pick(cos):
        return torch.quantile(cos, q, dim=1) if interpolate else cos.sort(1).values[:, at]

    return torch.cat(
        [-pick(candidates[i : i + batch].float() @ id_feats.float().T) for i in range(0, len(candidates), batch)]
    )


def mine(distance: torch.Tensor, count: int) -> torch.Tensor:
    """Indices of the `count` largest distances, farthest first (ties: lower index first)."""
    order = torch.sort(-distance, stable=True).indices
    return order[:count]


def group_indices(num: int, groups: int, seed: int = 0, drop_remainder: bool = True) -> list[torch.Tensor]:
    """The negatives' groups. Official (NegLabel / CSP `clip_ood.py` L25-38, OpenOOD-VLM `ttaprompt_postprocessor.py`
    L788-801): drop the last `num mod groups` columns, permute the rest (seed `seed`), split into `groups` equal parts.
    `drop_remainder=False` permutes all `num` columns into parts whose sizes differ by at most one. The official
    permutation is drawn on the GPU (CSP) or by the global generator; ours by a CPU generator seeded `seed`."""
    if not 1 <= groups <= num:
        raise NegPromptError(f"neglabel.groups = {groups}: must be between 1 and the number of mined labels ({num})")
    kept = num - num % groups if drop_remainder else num
    perm = torch.randperm(kept, generator=torch.Generator().manual_seed(seed))
    return list(torch.tensor_split(perm, groups))


def score(
    id_sim: torch.Tensor,
    neg_sim: torch.Tensor,
    temperature: float = 0.01,
    groups: int = 1,
    seed: int = 0,
    drop_remainder: bool = True,
) -> torch.Tensor:
    """Eq. 5 with the grouping strategy: id_sim [N, K], neg_sim [N, M] cosines -> [N]. With one group it
    is Σ_ID softmax over all K + M labels; with g groups, the mean of that score over the g groups
    (`group_indices`: the official code drops the last M mod g negatives)."""
    parts = (
        [torch.arange(neg_sim.shape[1])]
        if groups == 1
        else group_indices(neg_sim.shape[1], groups, seed, drop_remainder)
    )
    k = id_sim.shape[1]
    out = [
        torch.softmax(torch.cat([id_sim, neg_sim[:, idx]], dim=1) / temperature, dim=1)[:, :k].sum(1) for idx in parts
    ]
    return torch.stack(out).mean(0)


@dataclass(frozen=True)
class Mined:
    """The mined negative labels, their text features and what mining saw."""

    id_feats: torch.Tensor  # [K, d] ID labels in the noun template
    neg_feats: torch.Tensor  # [M, d], farthest first within each part
    words: list[str]
    parts: list[str]
    distance: list[float]
    corpus_size: int


def mine_corpus(
    model,
    tokenizer,
    id_names: list[str],
    corpus: Corpus,
    num_labels: int,
    max_fraction: float,
    percentile: float,
    template: str = NOUN_TEMPLATE,
    adj_template: str = ADJ_TEMPLATE,
    interpolate: bool = True,
) -> Mined:
    """Encode the ID labels and every candidate (nouns in `template`, adjectives in `adj_template`) and
    mine each part separately, as the official code does: M = mine_count(|corpus|) spread over the
    parts by their size. `interpolate`: the percentile rule of `candidate_distance`."""
    from negprompt.clip.prompts import encode_texts

    with torch.no_grad():
        id_feats = encode_texts(model, tokenizer, [template.format(n) for n in id_names]).cpu()
        total = mine_count(len(corpus), num_labels, max_fraction)
        feats, words, parts, dist = [], [], [], []
        for part, cands in corpus.parts.items():
            if not cands:
                continue
            part_template = adj_template if part == "adj" else template
            cand = encode_texts(model, tokenizer, [part_template.format(w) for w in cands]).cpu()
            d = candidate_distance(cand, id_feats, percentile, interpolate=interpolate)
            keep = mine(d, max(1, round(total * len(cands) / len(corpus))))
            feats.append(cand[keep])
            words += [cands[i] for i in keep]
            parts += [part] * len(keep)
            dist += d[keep].tolist()
    return Mined(id_feats, torch.cat(feats), words, parts, dist, len(corpus))


def top_winners(neg_sim: torch.Tensor, words: list[str], id_sim: torch.Tensor, top: int = 5) -> list[tuple[str, int]]:
    """The negative labels that most often are an image's highest similarity above every ID label:
    [(word, images won)], most first. What the method relies on, per OOD set."""
    best = neg_sim.max(1)
    wins = best.indices[best.values > id_sim.max(1).values]
    counts = torch.bincount(wins, minlength=len(words))
    order = torch.sort(-counts, stable=True).indices[:top]
    return [(words[i], int(counts[i])) for i in order if counts[i] > 0]


def benchmark_corpus(
    benchmark: str,
    id_names: list[str],
    corpus: str = "",
    wordnet_dir: str = "",
    groups: int = 1,
    seed: int = 0,
    exclude_id_names: bool = False,
) -> Corpus:
    """The candidate words for a benchmark: a word list file when `corpus` names one, else the benchmark's
    own corpus (ImageNet: WordNet's nouns and adjectives; openmoji: every concept the font draws, as WordNet
    holds words for ImageNet's OOD kinds; miniworld: the world's concept names). ID names stay, as in the official
    pool, unless `exclude_id_names` (`make_corpus`)."""
    if corpus:
        parts, source = {"noun": read_word_list(corpus)}, corpus
    elif benchmark == "openmoji":
        from negprompt.benchmarks import openmoji

        parts, source = {"noun": [name for _, name, _ in openmoji.read_vocabulary()]}, "the OpenMoji vocabulary"
    elif benchmark == "miniworld":
        from negprompt.benchmarks import miniworld

        parts, source = (
            {"noun": [c.name for c in miniworld.build_world(seed).all_concepts]},
            "the mini-world's concepts",
        )
    else:
        wn = wordnet_corpus(wordnet_dir)
        parts, source = wn.parts, wn.source
    return make_corpus(parts, id_names, source, groups, exclude_id_names)


def score_features(
    img: torch.Tensor, mined: Mined, temperature: float, groups: int, seed: int = 0, drop_remainder: bool = True
):
    """NegLabel's score of image features [N, d], with the similarities it used: (score [N], id_sim, neg_sim)."""
    id_sim, neg_sim = img @ mined.id_feats.T, img @ mined.neg_feats.T
    return score(id_sim, neg_sim, temperature, groups, seed, drop_remainder), id_sim, neg_sim
