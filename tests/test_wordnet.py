"""WordNet for NegLabel and CSP: Debian's files laid out for NLTK with the lexnames table, and the errors a missing
WordNet or a missing file gives."""

import gzip
import os
import re

import pytest

from negprompt import NegPromptError
from negprompt.methods import csp, neglabel, wordnet
from tests.helpers import DEBIAN_WORDNET
from tests.test_neglabel import write_wordnet

LEXNAMES_MAN = "/usr/share/man/man5/lexnames.5WN.gz"
needs_debian = pytest.mark.skipif(
    not (DEBIAN_WORDNET / "index.sense").is_file(),
    reason="Debian's wordnet-base and wordnet-sense-index are not installed (.ci/run installs them)",
)


def debian_like(root):
    """The small database of test_neglabel in Debian's layout: the files flat, no lexnames."""
    write_wordnet(root)
    src = root / "corpora" / "wordnet"
    (src / "lexnames").unlink()
    return src


def test_lexnames_table_is_wordnet_30s():
    text = wordnet.lexnames_text().splitlines()
    assert len(text) == 45 and text[0] == "00\tadj.all\t3" and text[44] == "44\tadj.ppl\t3"
    assert "05\tnoun.animal\t1" in text and "18\tnoun.person\t1" in text and "43\tverb.weather\t2" in text


@pytest.mark.skipif(not os.path.exists(LEXNAMES_MAN), reason="lexnames(5WN) man page not installed")
def test_lexnames_table_equals_the_man_page():
    page = gzip.decompress(open(LEXNAMES_MAN, "rb").read()).decode()
    rows = re.findall(r"^(\d\d)\t(\w+\.\w+)\s*\t", page, flags=re.M)
    assert [(f"{i:02d}", n) for i, n in enumerate(wordnet.LEXNAMES)] == rows


def test_prepare_lays_out_nltks_folder_and_writes_lexnames(tmp_path):
    src = debian_like(tmp_path / "debian")
    out = wordnet.prepare(tmp_path / "nltk", src)
    assert out == tmp_path / "nltk" / "corpora" / "wordnet"
    assert (out / "lexnames").read_text() == wordnet.lexnames_text() and not (out / "lexnames").is_symlink()
    assert (out / "data.noun").read_bytes() == (src / "data.noun").read_bytes()
    (src / "index.adj").write_text("  1 header\nmisty a 1 0 1 0 00000003\nsunny a 1 0 1 0 00000004\n")
    wordnet.prepare(tmp_path / "nltk", src)  # a rerun replaces the files
    wn = neglabel.wordnet_corpus(str(tmp_path / "nltk"))
    assert wn.parts == {"noun": ["harbour", "snow_globe"], "adj": ["misty", "sunny"]} and "WordNet 3.0" in wn.source
    assert sorted(p.name for p in out.iterdir()) == sorted(wordnet.REQUIRED)  # no cntlist.rev here, no temp files
    (src / "lexnames").write_text("00\tadj.all\t3\n")  # a source's own lexnames wins
    assert (wordnet.prepare(tmp_path / "nltk", src) / "lexnames").read_text() == "00\tadj.all\t3\n"


def test_prepare_errors_name_the_source_and_the_package(tmp_path):
    with pytest.raises(NegPromptError, match=r"WordNet source '.*nope' does not exist .*wordnet-base"):
        wordnet.prepare(tmp_path / "nltk", tmp_path / "nope")
    src = debian_like(tmp_path / "debian")
    (src / "index.sense").unlink()
    with pytest.raises(NegPromptError, match=r"has no index.sense \(Debian package wordnet-sense-index\)"):
        wordnet.prepare(tmp_path / "nltk", src)
    (src / "data.noun").unlink()
    with pytest.raises(NegPromptError, match=r"has no data.noun \(Debian package wordnet-base\)"):
        wordnet.prepare(tmp_path / "nltk", src)


@pytest.mark.parametrize("load", [neglabel.wordnet_corpus, csp.wordnet_pools], ids=["neglabel", "csp"])
def test_missing_wordnet_names_both_routes(tmp_path, load):
    with pytest.raises(NegPromptError) as e:
        load(str(tmp_path))
    msg = str(e.value)
    assert "\n" not in msg and "WordNet not found in" in msg and "neglabel.wordnet_dir" in msg
    assert f"nltk.downloader -d {tmp_path} wordnet" in msg and "wordnet-sense-index" in msg and "make wordnet" in msg


@pytest.mark.parametrize("load", [neglabel.wordnet_corpus, csp.wordnet_pools], ids=["neglabel", "csp"])
@pytest.mark.parametrize("missing", ["lexnames", "index.sense"])
def test_wordnet_without_a_file_names_it(tmp_path, load, missing):
    write_wordnet(tmp_path)
    (tmp_path / "corpora" / "wordnet" / missing).unlink()
    with pytest.raises(NegPromptError) as e:
        load(str(tmp_path))
    msg = str(e.value)
    assert "\n" not in msg and f"has no {missing} (neglabel.wordnet_dir)" in msg
    assert ("make wordnet" if missing == "lexnames" else "install wordnet-sense-index") in msg


def test_debians_folder_given_directly_says_to_lay_it_out(tmp_path):
    src = debian_like(tmp_path / "debian")
    with pytest.raises(NegPromptError, match=r"is a WordNet database folder, not NLTK's data folder: .*make wordnet"):
        neglabel.wordnet_corpus(str(src))


@needs_debian
def test_debians_wordnet_30_through_nltk(tmp_path):
    wordnet.prepare(tmp_path / "nltk", DEBIAN_WORDNET)
    corpus = neglabel.wordnet_corpus(str(tmp_path / "nltk"))
    assert {k: len(v) for k, v in corpus.parts.items()} == {"noun": 117798, "adj": 21479}
    assert corpus.source.startswith("WordNet 3.0 (")
    wn = wordnet.reader(str(tmp_path / "nltk"))
    assert wn.synset("dog.n.01").lexname() == "noun.animal" and wn.synset("carpenter.n.01").lexname() == "noun.person"
    assert wn.lemma_from_key("dog%1:05:00::").synset().name() == "dog.n.01"  # index.sense
