"""The real ImageNet benchmarks, offline: ImageNet-layout folders with the real 1,000 wnids (tiny
generated JPEGs), fake OOD folders and a locally saved open_clip checkpoint."""

import json

import numpy as np
import open_clip
import pandas as pd
import pytest
from PIL import Image
from safetensors.torch import save_file

from negprompt import NegPromptError
from negprompt.benchmarks.imagenet import CONVENTIONAL_OOD, hard_splits, imagenet_classes, read_imagenet
from negprompt.benchmarks.inventory import COUNTS_FILE
from negprompt.clip.backbone import TINY_MODEL
from negprompt.io import load_tensors
from negprompt.methods import neglabel, wordnet
from tests.helpers import DEBIAN_WORDNET, TINY, dvc, make_repo, tiny_params, write_wordnet_slice


def _jpeg(path, seed):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(path, quality=50)


def write_tree(root):
    """The 1,000 real wnids with 2 train and 1 val image each, 3 images per conventional OOD folder, and
    the sizes this tiny tree declares (the data stage checks every set's count against them)."""
    wnids = imagenet_classes().class_id.tolist()
    for i, w in enumerate(wnids):
        for j in range(2):
            _jpeg(root / "train" / w / f"{w}_{j}.JPEG", i * 10 + j)
        _jpeg(root / "val" / w / f"ILSVRC2012_val_{i:08d}.JPEG", 100000 + i)
    for k, rel in enumerate(CONVENTIONAL_OOD.values()):
        for j in range(3):
            _jpeg(root / rel / f"ood_{j}.jpg", 200000 + 10 * k + j)
    sizes = {"train_per_class": 2, "val_per_class": 1, **{rel: 3 for rel in CONVENTIONAL_OOD.values()}}
    (root / COUNTS_FILE).write_text(json.dumps(sizes))
    return root


@pytest.fixture(scope="module")
def imagenet_root(tmp_path_factory):
    return write_tree(tmp_path_factory.mktemp("imagenet"))


def test_conventional_tables(imagenet_root):
    b = read_imagenet(imagenet_root, "imagenet_conventional")
    assert len(b.classes) == 1000 and b.classes.name.iloc[0] == open_clip.IMAGENET_CLASSNAMES[0]
    assert len(b.pool) == 2000 and (b.test.set == "id").sum() == 1000
    assert b.ood_sets == ["iNaturalist", "SUN", "Places", "Textures"]
    assert (b.test.label[b.test.set == "id"] == np.arange(1000)).all()


@pytest.mark.parametrize("split", ["split1", "split2", "split3", "split4"])
def test_hard_split_class_counts(imagenet_root, split):
    spec = hard_splits()[split]
    b = read_imagenet(imagenet_root, "imagenet_hard", split)
    assert len(b.classes) == len(spec["id"]) and b.classes.class_id.tolist() == spec["id"]
    assert (b.test.set == "id").sum() == len(spec["id"])
    assert (b.test.set == "ood").sum() == len(spec["ood_known_unknown"]) + len(spec["ood_unknown_unknown"])


def test_bad_imagenet_inputs(imagenet_root, tmp_path):
    with pytest.raises(NegPromptError, match="data.root .* does not exist"):
        read_imagenet(tmp_path / "nope", "imagenet_conventional")
    (tmp_path / "val").mkdir()
    with pytest.raises(NegPromptError, match="val_labels.txt are missing"):
        read_imagenet(tmp_path, "imagenet_conventional")
    with pytest.warns(UserWarning, match="optional OOD set 'near/SSB-hard' not found"):
        b = read_imagenet(imagenet_root, "imagenet_openood")
    assert b.ood_sets == ["far/iNaturalist", "far/Textures"]


@pytest.mark.slow
def test_dvc_repro_imagenet_open_vocab_official_protocol_then_a_hard_split(imagenet_root, tmp_path):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    ckpt = tmp_path / "clip.safetensors"
    save_file({k: v.contiguous() for k, v in open_clip.create_model(TINY_MODEL).state_dict().items()}, str(ckpt))
    if not (DEBIAN_WORDNET / "index.sense").is_file():
        pytest.skip("Debian's wordnet-base and wordnet-sense-index are not installed (.ci/run installs them)")
    # NegLabel's and the family's corpus: WordNet 3.0 itself, cut to every 200th noun and adjective synset
    # (~900 words; the whole of it takes ~30 min to encode on 2 CPU cores), the ID names tench and goldfish kept
    wordnet_dir = tmp_path / "nltk"
    write_wordnet_slice(wordnet_dir, 200, keep=("tench", "goldfish"))
    params = tiny_params(
        {
            **TINY,
            "neglabel": {"corpus": "", "wordnet_dir": str(wordnet_dir), "groups": 2, "max_fraction": 0.5},
            "data": {"benchmark": "imagenet_conventional", "root": str(imagenet_root)},
            "backbone": {"model": TINY_MODEL, "pretrained": str(ckpt)},
            "subset": {"seeds": [1], "shots": 1, "calib_per_class": 1},
            "features": {"batch_size": 128, "local": True},  # + the GL-MCM and LoCoOp baselines
            # the official protocol's settings (tiny epochs): stage 2 is selected on Textures
            "pos": {"epochs": 2, "amp": True, "schedule": "official", "select": "test"},
            "neg": {"epochs": 2, "amp": True, "chunk": 64, "schedule": "official", "select": "test"},
        }
    )
    params["open_vocab"] = True
    work = make_repo(tmp_path, params)
    dvc(work, "repro")
    metrics = json.loads((work / "reports/metrics.json").read_text())["imagenet_conventional"]
    assert set(metrics["ood"]) == {"iNaturalist", "SUN", "Places", "Textures"}
    scores = pd.read_parquet(work / "scores/seed1.parquet")
    assert (scores.set == "id").sum() == 1000
    manifest = json.loads((work / "data/benchmark/manifest.json").read_text())
    assert manifest["counts"]["classes"] == 1000 and len(manifest["file_list_sha256"]) == 64
    ov = pd.read_csv(work / "data/subsets/open_vocab_classes.tsv", sep="\t")
    assert len(ov) == 100
    report = (work / "reports/report.md").read_text()
    assert (
        "| NegPrompt | 93.76 |" in report and "| LoCoOp | 90.15 |" in report
    )  # paper's open-vocabulary rows beside ours
    assert {"glmcm", "locoop", "negprompt", "neglabel"} <= set(metrics["average"]) and "locoop" in metrics["id_top1"]
    # NegLabel and the family mined from WordNet: M = 50% of its words less the ID names; CSP's pool without the
    # person, quantity and group nouns and the relational adjectives; AdaNeg's, TANL's and InterNeg's streams on the
    # four sets (InterNeg's prototypes from every class's shot, also in open vocabulary)
    assert {"csp", "adaneg", "tanl", "interneg"} <= set(metrics["average"]) and "Leaderboard" in report
    assert all({"adaneg", "tanl", "interneg", "csp"} <= set(metrics["ood"][s]) for s in metrics["ood"])
    assert "| InterNeg |" in report and "InterNeg, CVPR 2026" in report
    assert scores.filter(like="interneg@").shape[1] == 4 * 3  # 4 sets x 3 stream orders
    meta = load_tensors(work / "models/neglabel/features.safetensors")[1]
    family_feats, family_meta = load_tensors(work / "models/neglabel/family.safetensors")
    mined = pd.read_csv(work / "models/neglabel/labels.tsv", sep="\t", keep_default_na=False)
    wn = wordnet.reader(str(wordnet_dir))
    assert meta["corpus"].startswith("WordNet 3.0") and meta["corpus_size"] > 700
    id_names = {neglabel.clean(n) for n in pd.read_csv(work / "data/benchmark/classes.tsv", sep="\t").name}
    assert {"tench", "goldfish"} <= id_names & set(wn.all_lemma_names("n"))
    assert len(mined) == neglabel.mine_count(meta["corpus_size"], 10000, 0.5)
    # NegLabel's official pool keeps the ID names (neglabel.exclude_id_names: false); TANL's and InterNeg's drop them
    pool = neglabel.make_corpus(neglabel.wordnet_corpus(str(wordnet_dir)).parts, sorted(id_names), "WordNet", 1)
    kept = id_names & {w for words in pool.parts.values() for w in words}
    assert {"tench", "goldfish"} <= kept and meta["corpus_size"] == len(pool)
    assert family_feats["cand"].shape[0] == len(pool) - len(kept)
    part = family_feats["cand_part"]  # InterNeg's selection shares its count between WordNet's nouns and adjectives
    assert len(part) == len(family_feats["cand"]) and part.unique().tolist() == [0, 1] and (part.diff() >= 0).all()
    assert family_meta["csp_pool"].startswith("WordNet 3.0 less noun.person, noun.quantity, noun.group, adj.pert")

    def lemmas(pos, keep):
        return {neglabel.clean(w) for s in wn.all_synsets(pos) if keep(s.lexname()) for w in s.lemma_names()}

    excluded = {"noun": ("noun.person", "noun.quantity", "noun.group"), "adj": ("adj.pert",)}
    only_excluded = {  # words of the excluded lexicographer files found in no other file
        part: lemmas(pos, lambda x, e=e: x in e) - lemmas(pos, lambda x, e=e: x not in e)
        for (part, e), pos in zip(excluded.items(), ("n", "a"))
    }
    assert len(only_excluded["noun"]) > 50 and len(only_excluded["adj"]) > 10
    csp_rows = pd.read_csv(work / "models/neglabel/family_labels.tsv", sep="\t", keep_default_na=False).query(
        "method == 'csp'"
    )
    csp_nouns = set(csp_rows.word[csp_rows.part == "noun"])
    csp_adjs = {w.rsplit(" ", 1)[0] for w in csp_rows.word[csp_rows.part == "adj"]}  # "{adj} {conjugate}"
    assert csp_nouns and csp_adjs and not csp_nouns & only_excluded["noun"] and not csp_adjs & only_excluded["adj"]
    patches = np.load(work / "features/test_local.npy", mmap_mode="r")
    assert patches.dtype == np.float16 and patches.shape == (len(scores), 16, 128)  # 32 px / patch 8, embed 128

    meta = load_tensors(work / "models/neg/seed1.safetensors")[1]
    auroc = pd.read_csv(
        work / "reports/train/neg_seed1/plots/metrics/test/Textures/auroc.tsv", sep="\t"
    ).auroc.to_numpy()
    assert (
        meta["select_set"] == "Textures"
        and meta["epoch"] - 1 == int(np.argmax(auroc))
        and auroc[meta["epoch"] - 1] >= auroc[-1]
    )
    assert "checkpoint selected on test data, as the official code does" in report and "94.81 / 23.01" in report

    # a hard split through every stage, under the default protocol (all four splits' classes:
    # test_hard_split_class_counts)
    split = "split3"
    default_protocol = ["pos.schedule=cosine", "neg.schedule=cosine", "pos.select=last", "neg.select=last"]
    dvc(
        work,
        "exp",
        "run",
        "-S",
        "data.benchmark=imagenet_hard",
        "-S",
        f"data.hard_split={split}",
        "-S",
        "open_vocab=false",
        *[a for s in default_protocol for a in ("-S", s)],
    )
    spec = hard_splits()[split]
    hard = json.loads((work / "reports/metrics.json").read_text())[f"imagenet_hard_{split}"]
    assert list(hard["ood"]) == ["ood"] and "locoop" in hard["average"]
    classes = pd.read_csv(work / "data/benchmark/classes.tsv", sep="\t")
    assert classes.class_id.tolist() == spec["id"]
    ood = (pd.read_parquet(work / "scores/seed1.parquet").set == "ood").sum()
    assert ood == len(spec["ood_known_unknown"]) + len(spec["ood_unknown_unknown"])  # one val image per OOD class
    assert load_tensors(work / "models/neg/seed1.safetensors")[1]["select"] == "last"
