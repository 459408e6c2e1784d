"""WordNet 3.0 for NLTK's reader, from NLTK's download or from Debian's packages.

NegLabel's and CSP's ImageNet corpora are WordNet's nouns and adjectives, read by NLTK's `WordNetCorpusReader`.
NLTK's downloader (`python -m nltk.downloader wordnet`) needs internet access; Debian's `wordnet-base` and
`wordnet-sense-index` install the same database offline in /usr/share/wordnet, every file NLTK reads but
`lexnames`, the table of lexicographer files (Debian documents it only as the man page lexnames(5WN)).
`prepare` lays those files out as NLTK's data folder (`DEST/corpora/wordnet/`) and writes `lexnames` from the
table below; `find` locates either layout and names any file the reader needs that is missing.
"""

from __future__ import annotations

import os
import shutil
import warnings
from pathlib import Path

from negprompt import NegPromptError

DEBIAN = "/usr/share/wordnet"  # where Debian's wordnet-base and wordnet-sense-index install the database
POS = ("noun", "verb", "adj", "adv")
CATEGORIES = {"noun": 1, "verb": 2, "adj": 3, "adv": 4}  # lexnames' third field: the syntactic category
# The 45 lexicographer files of WordNet 3.0, file number = position: lexnames(5WN), "WordNet 3.0, Dec 2006"
# (Princeton; Debian wordnet-base, /usr/share/man/man5/lexnames.5WN.gz, section "Lexicographer Files").
LEXNAMES = (
    "adj.all",
    "adj.pert",
    "adv.all",
    "noun.Tops",
    "noun.act",
    "noun.animal",
    "noun.artifact",
    "noun.attribute",
    "noun.body",
    "noun.cognition",
    "noun.communication",
    "noun.event",
    "noun.feeling",
    "noun.food",
    "noun.group",
    "noun.location",
    "noun.motive",
    "noun.object",
    "noun.person",
    "noun.phenomenon",
    "noun.plant",
    "noun.possession",
    "noun.process",
    "noun.quantity",
    "noun.relation",
    "noun.shape",
    "noun.state",
    "noun.substance",
    "noun.time",
    "verb.body",
    "verb.change",
    "verb.cognition",
    "verb.communication",
    "verb.competition",
    "verb.consumption",
    "verb.contact",
    "verb.creation",
    "verb.emotion",
    "verb.motion",
    "verb.perception",
    "verb.possession",
    "verb.social",
    "verb.stative",
    "verb.weather",
    "adj.ppl",
)
DATABASE = tuple(f"{kind}.{part}" for kind in ("index", "data") for part in POS) + tuple(f"{part}.exc" for part in POS)
REQUIRED = (*DATABASE, "index.sense", "lexnames")  # what NLTK's reader opens to list lemmas and lexicographer files
OPTIONAL = ("cntlist.rev",)  # sense counts: NLTK opens it only for Lemma.count()
PACKAGE = {"index.sense": "wordnet-sense-index"}  # the Debian package of each file (default wordnet-base)
ROUTES = (
    "fetch it once with `python -m nltk.downloader -d {dir} wordnet`, or install Debian's wordnet-base and "
    "wordnet-sense-index and run `make wordnet` (then neglabel.wordnet_dir=data/nltk)"
)


def lexnames_text() -> str:
    """The `lexnames` file (lexnames(5WN) "File Format"): two-digit file number, name, category, tab separated."""
    return "".join(f"{i:02d}\t{name}\t{CATEGORIES[name.split('.')[0]]}\n" for i, name in enumerate(LEXNAMES))


def prepare(dest: str | Path, source: str | Path = DEBIAN) -> Path:
    """NLTK's WordNet data folder at `dest` (`dest/corpora/wordnet/`): the database files of `source` (Debian's by
    default) and `lexnames`, written from LEXNAMES unless `source` has its own. Files are copied (36 MB): NLTK's
    reader (3.9+) refuses symlinks, hard links and files outside its data path. Rerunning replaces them; returns
    the `corpora/wordnet` folder, which `find(dest)` reads."""
    source = Path(source)
    if not source.is_dir():
        raise NegPromptError(
            f"WordNet source '{source}' does not exist (expected WordNet's database files; on Debian: "
            "apt-get install wordnet-base wordnet-sense-index)"
        )
    for name in (*DATABASE, "index.sense"):
        if not (source / name).is_file():
            raise NegPromptError(
                f"WordNet source '{source}' has no {name} (Debian package {PACKAGE.get(name, 'wordnet-base')})"
            )
    out = Path(dest) / "corpora" / "wordnet"
    out.mkdir(parents=True, exist_ok=True)
    for name in (*DATABASE, "index.sense", *OPTIONAL, "lexnames"):
        tmp = out / f".{name}.tmp"
        tmp.unlink(missing_ok=True)
        if (source / name).is_file():
            shutil.copyfile(source / name, tmp)
        elif name == "lexnames":
            tmp.write_text(lexnames_text(), encoding="ascii")
        else:
            continue
        os.replace(tmp, out / name)
    return out


def find(data_dir: str = ""):
    """WordNet's folder as an NLTK path pointer: `corpora/wordnet/` (or the downloader's `corpora/wordnet.zip`)
    under `data_dir` or NLTK's data path. A missing WordNet names both routes to it; a WordNet lacking a file the
    reader needs names the file (NLTK 3.9+ reads index.sense when it opens WordNet)."""
    import nltk

    where = data_dir or "NLTK's data path"
    if data_dir and data_dir not in nltk.data.path:
        nltk.data.path.insert(0, data_dir)  # NLTK (3.9+) opens corpus files only under its data path
    if data_dir and (Path(data_dir) / "index.noun").is_file():  # NLTK's reader also looks up corpora/wordnet
        raise NegPromptError(
            f"neglabel.wordnet_dir '{data_dir}' is a WordNet database folder, not NLTK's data folder: lay it out "
            f"with `make wordnet WORDNET_SOURCE={data_dir}` and give data/nltk"
        )
    for resource in ("corpora/wordnet", "corpora/wordnet.zip/wordnet/"):
        try:
            root = nltk.data.find(resource, paths=[data_dir] if data_dir else None)
            break
        except LookupError:
            continue
    else:
        raise NegPromptError(
            f"WordNet not found in {where} (neglabel.wordnet_dir); "
            + ROUTES.format(dir=data_dir or "~/nltk_data")
            + ", or give a word list file as neglabel.corpus"
        )
    for name in REQUIRED:
        try:
            root.join(name)
        except OSError:
            raise NegPromptError(f"WordNet in {root} has no {name} (neglabel.wordnet_dir): {_remedy(name)}") from None
    return root


def _remedy(name: str) -> str:
    if name == "lexnames":
        return "Debian's packages lack it; `make wordnet` (negprompt.methods.wordnet.prepare) writes it beside them"
    if name == "index.sense":
        return "on Debian install wordnet-sense-index, then rerun `make wordnet`"
    return "an incomplete WordNet database; " + ROUTES.format(dir="DIR")


def reader(data_dir: str = ""):
    """NLTK's WordNet reader over `find(data_dir)`, without its multilingual (OMW) part."""
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    root = find(data_dir)
    with warnings.catch_warnings():  # "multilingual functions are not available": we read lemma names only
        warnings.simplefilter("ignore", UserWarning)
        return WordNetCorpusReader(root, None)
