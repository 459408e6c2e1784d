"""NegLabel: the score against a hand computation, NegMining's choice, corpora and their errors."""

import math

import pytest
import torch
import torch.nn.functional as F

from negprompt import NegPromptError
from negprompt.benchmarks import openmoji
from negprompt.methods import neglabel


def test_score_one_group_is_the_papers_equation():
    id_sim = torch.tensor([[0.30, 0.20], [0.10, 0.12]])
    neg_sim = torch.tensor([[0.05, 0.25, 0.00], [0.20, 0.22, 0.18]])
    tau = 0.01
    for n in range(2):
        pos = sum(math.exp(v / tau) for v in id_sim[n].tolist())
        neg = sum(math.exp(v / tau) for v in neg_sim[n].tolist())
        assert neglabel.score(id_sim, neg_sim, tau, groups=1)[n].item() == pytest.approx(pos / (pos + neg), rel=1e-5)


def test_score_with_groups_is_the_mean_over_groups():
    g = torch.Generator().manual_seed(0)
    id_sim, neg_sim = torch.rand(4, 3, generator=g) * 0.3, torch.rand(4, 10, generator=g) * 0.3
    groups = neglabel.group_indices(10, 3, seed=5)  # official: the last 10 mod 3 = 1 column is dropped
    assert sorted(torch.cat(groups).tolist()) == list(range(9)) and sorted(len(x) for x in groups) == [3, 3, 3]
    kept = neglabel.group_indices(10, 3, seed=5, drop_remainder=False)
    assert sorted(torch.cat(kept).tolist()) == list(range(10)) and sorted(len(x) for x in kept) == [3, 3, 4]
    expected = torch.stack([neglabel.score(id_sim, neg_sim[:, idx], 0.05, 1) for idx in groups]).mean(0)
    assert torch.allclose(neglabel.score(id_sim, neg_sim, 0.05, groups=3, seed=5), expected)
    assert not torch.allclose(
        neglabel.score(id_sim, neg_sim, 0.05, groups=3, seed=5), neglabel.score(id_sim, neg_sim, 0.05, 1)
    )


def test_mining_keeps_the_candidates_farthest_by_the_percentile():
    id_feats = F.normalize(torch.eye(4)[:3], dim=1)  # three ID labels on axes 0-2
    cands = F.normalize(
        torch.tensor(
            [
                [1.0, 0, 0, 0.1],  # near label 0
                [0, 0, 0, 1.0],  # orthogonal to every ID label
                [0.3, 0.3, 0.3, 1.0],  # a little to all
                [-1.0, -1.0, -1.0, 0.2],
            ]
        ),
        dim=1,
    )  # opposite every ID label: farthest
    d = neglabel.candidate_distance(cands, id_feats, percentile=95)
    expected = -torch.quantile(cands @ id_feats.T, 0.95, dim=1)
    assert torch.allclose(d, expected)
    assert neglabel.mine(d, 2).tolist() == torch.argsort(d, descending=True)[:2].tolist()
    assert neglabel.mine(d, 2).tolist() == [3, 1]  # negative cosines to all, then zero to all
    assert 0 not in neglabel.mine(d, 3).tolist()  # the one near an ID label goes last


def test_id_names_are_never_mined_when_excluded(tiny_clip):
    model, tok = tiny_clip
    ids = ["red circle", "blue square"]
    words = {"noun": ["Red_Circle", "green star", "blue  square", "yellow heart", "green star"]}
    official = neglabel.make_corpus(words, ids, "test", 1)  # the official pool keeps the ID names (pos_topk None)
    assert official.parts["noun"] == ["red circle", "green star", "blue square", "yellow heart"]
    corpus = neglabel.make_corpus(words, ids, "test", 1, exclude_id_names=True)
    assert corpus.parts["noun"] == ["green star", "yellow heart"]
    mined = neglabel.mine_corpus(model, tok, ids, corpus, num_labels=10, max_fraction=1.0, percentile=95)
    assert set(mined.words) <= {"green star", "yellow heart"} and mined.neg_feats.shape == (
        len(mined.words),
        mined.id_feats.shape[1],
    )


def test_mine_count_keeps_the_papers_selectivity_on_small_corpora():
    assert neglabel.mine_count(70000, 10000, 0.15) == 10000
    assert neglabel.mine_count(1827, 10000, 0.15) == 274


def test_corpus_errors(tmp_path):
    with pytest.raises(NegPromptError, match="no candidate words"):
        neglabel.make_corpus({"noun": ["cat", "", " "]}, ["cat"], "words.txt", 1, exclude_id_names=True)
    with pytest.raises(NegPromptError, match="fewer than neglabel.groups = 5"):
        neglabel.make_corpus({"noun": ["a", "b", "c"]}, [], "words.txt", 5)
    binary = tmp_path / "words.bin"
    binary.write_bytes(b"cat\n\xff\xfe dog\n")
    with pytest.raises(NegPromptError, match="words.bin: not UTF-8"):
        neglabel.read_word_list(binary)
    with pytest.raises(NegPromptError, match="missing.txt: word list not found"):
        neglabel.read_word_list(tmp_path / "missing.txt")
    words = tmp_path / "words.txt"
    words.write_text("# comment\nsnow globe\n\nteapot\n", encoding="utf-8")
    assert neglabel.read_word_list(words) == ["snow globe", "teapot"]


def write_wordnet(root):
    """A WordNet database in the layout of NLTK's download (corpora/wordnet/), with two nouns and an adjective."""
    wn = root / "corpora" / "wordnet"
    wn.mkdir(parents=True)
    (wn / "lexnames").write_text("00\tadj.all\t3\n01\tadj.pert\t3\n02\tadv.all\t4\n03\tnoun.Tops\t1\n")
    header = (
        "  1 This database is provided to the LICENSEE by\n  2 WordNet 3.0 Copyright 2006 by Princeton University.\n"
    )
    for pos in ("noun", "verb", "adj", "adv"):
        (wn / f"data.{pos}").write_text(header)
        (wn / f"{pos}.exc").write_text("")
    (wn / "index.noun").write_text("  1 header\nharbour n 1 0 1 0 00000001\nsnow_globe n 1 0 1 0 00000002\n")
    (wn / "index.adj").write_text("  1 header\nmisty a 1 0 1 0 00000003\n")
    (wn / "index.verb").write_text("  1 header\n")
    (wn / "index.adv").write_text("  1 header\n")
    (wn / "index.sense").write_text("")


def test_wordnet_corpus_reads_nouns_and_adjectives(tmp_path):
    write_wordnet(tmp_path)
    wn = neglabel.wordnet_corpus(str(tmp_path))
    assert wn.parts == {"noun": ["harbour", "snow_globe"], "adj": ["misty"]} and "WordNet 3.0" in wn.source
    corpus = neglabel.make_corpus(wn.parts, ["harbour"], wn.source, 1, exclude_id_names=True)
    assert corpus.parts == {"noun": ["snow globe"], "adj": ["misty"]}
    assert neglabel.make_corpus(wn.parts, ["harbour"], wn.source, 1).parts["noun"] == ["harbour", "snow globe"]


def test_missing_wordnet_says_how_to_get_it(tmp_path):
    with pytest.raises(NegPromptError, match=r"nltk\.downloader -d .* wordnet"):
        neglabel.wordnet_corpus(str(tmp_path))


def test_top_winners_counts_images_won_above_every_id_label():
    id_sim = torch.tensor([[0.5, 0.1], [0.1, 0.2], [0.1, 0.1], [0.0, 0.1]])
    neg_sim = torch.tensor([[0.4, 0.0], [0.3, 0.0], [0.0, 0.3], [0.2, 0.0]])
    assert neglabel.top_winners(neg_sim, ["ghost", "moon"], id_sim) == [("ghost", 2), ("moon", 1)]


def test_openmoji_vocabulary_is_the_fonts_concepts():
    rows = openmoji.read_vocabulary()
    names = [n for _, n, _ in rows]
    assert len(names) == len(set(names)) and len(rows) > 2000
    roles = {r for _, _, r in rows}
    assert roles == {"id", "near", "plant", "place", "pretrain", "vocabulary"}
    world = {c.name: c.role for c in openmoji.read_concepts()}
    assert {n: r for _, n, r in rows if r != "vocabulary"} == world  # every world concept, with its table name and role
    assert ("1F469-200D-1F4BB", "woman technologist", "vocabulary") in rows  # a ZWJ sequence; skin tones merged into it
    assert build_matches_shipped(rows)


def build_matches_shipped(rows) -> bool:
    """The shipped table is what `python -m negprompt.benchmarks.openmoji` makes from the pinned packages."""
    return openmoji.build_vocabulary() == rows


def test_openmoji_corpus_keeps_id_names_unless_excluded():
    world = openmoji.build_world(0)
    ids = [c.name for c in world.id_classes]
    official = neglabel.benchmark_corpus("openmoji", ids, groups=100)
    assert set(ids) <= set(official.parts["noun"]) and len(official) == len(openmoji.read_vocabulary())
    corpus = neglabel.benchmark_corpus("openmoji", ids, groups=100, exclude_id_names=True)
    assert not set(corpus.parts["noun"]) & set(ids) and len(corpus) == len(openmoji.read_vocabulary()) - len(ids)
    assert neglabel.without(official, ids) == corpus
