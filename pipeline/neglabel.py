"""Stage `neglabel`: NegLabel's negative labels, mined once per backbone from the corpus (nothing is trained)."""
import pandas as pd

from negprompt.methods import neglabel
from negprompt.benchmarks.tables import read_classes
from negprompt.io import atomic_path, save_tensors
from negprompt.workspace import BENCHMARK, NEGLABEL, load_backbone, load_params
from pipeline.common import run


def main():
    params = load_params()
    p = params.neglabel
    names = read_classes(BENCHMARK / "classes.tsv").name.tolist()
    corpus = neglabel.benchmark_corpus(params.data.benchmark, names, p.corpus, p.wordnet_dir, p.groups, params.data.seed)
    bb = load_backbone(params.features.device)
    mined = neglabel.mine_corpus(bb.model, bb.tokenizer, names, corpus, p.num_labels, p.max_fraction, p.percentile, p.template,
                                 p.adj_template)
    if len(mined.words) < p.groups:
        raise neglabel.NegPromptError(f"neglabel.groups = {p.groups}: more groups than the {len(mined.words)} labels mined from "
                                      f"{corpus.source} (raise neglabel.num_labels / max_fraction or lower groups)")
    with atomic_path(NEGLABEL, directory=True) as out:
        save_tensors({"id": mined.id_feats, "neg": mined.neg_feats}, out / "features.safetensors",
                     {"backbone": bb.identity, "corpus": corpus.source, "corpus_size": len(corpus), "template": p.template})
        pd.DataFrame({"word": mined.words, "part": mined.parts, "distance": mined.distance}).to_csv(out / "labels.tsv", sep="\t", index=False)
    print(f"NegLabel: {len(mined.words)} negative labels mined from {len(corpus)} candidates ({corpus.source})")


if __name__ == "__main__":
    run(main)
