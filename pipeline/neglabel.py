"""Stage `neglabel`: NegLabel's negative labels, mined once per backbone from the corpus (nothing is trained)."""

import pandas as pd

from negprompt.benchmarks.tables import read_classes
from negprompt.io import atomic_path, save_tensors
from negprompt.methods import family, neglabel
from negprompt.workspace import BENCHMARK, NEGLABEL, load_params, stage_backbone
from pipeline.common import run


def family_labels(params, bb, names, corpus, out) -> None:
    """CSP's, AdaNeg's and TANL's text features (docs/methods.md), in the family's templates."""
    fp, d = params.family, params.data
    which = family.resolve_template(fp.template, d.benchmark)
    tpl = family.templates(which, params.score.zero_shot_template)
    pool = family.csp_corpus(
        d.benchmark,
        names,
        corpus,
        fp.csp.adjectives,
        params.neglabel.wordnet_dir,
        params.neglabel.corpus,
        fp.csp.exclude_id_names,
    )
    size = bb.model.visual.image_size
    noise = (
        family.noise_features(
            bb.model, fp.tanl.noise_images, size[0] if isinstance(size, (tuple, list)) else size, fp.seed
        )
        if "tanl" in fp.methods
        else None
    )
    feats, info = family.mine(bb.model, bb.tokenizer, names, corpus, pool, fp, params.neglabel, tpl, noise)
    save_tensors(
        feats,
        out / "family.safetensors",
        {
            "backbone": bb.identity,
            "template": which,
            "csp_pool": pool.source if "csp" in fp.methods else "",
            "csp_adjectives": len(pool.parts.get("adj", [])) if "csp" in fp.methods else 0,
        },
    )
    rows = [{"method": m, "word": w, "part": p} for m, v in info.items() for w, p in zip(v["words"], v["parts"])]
    pd.DataFrame(rows, columns=["method", "word", "part"]).to_csv(out / "family_labels.tsv", sep="\t", index=False)
    print(f"family ({which} templates): " + ", ".join(f"{m} {len(v['words'])} labels" for m, v in info.items()))


def main():
    params = load_params()
    p = params.neglabel
    names = read_classes(BENCHMARK / "classes.tsv").name.tolist()
    corpus = neglabel.benchmark_corpus(
        params.data.benchmark, names, p.corpus, p.wordnet_dir, p.groups, params.data.seed, p.exclude_id_names
    )
    bb = stage_backbone(params.features.device)
    noun, adj = p.prompts(params.data.benchmark, params.score.zero_shot_template)
    mined = neglabel.mine_corpus(
        bb.model, bb.tokenizer, names, corpus, p.num_labels, p.max_fraction, p.percentile, noun, adj
    )
    if len(mined.words) < p.groups:
        raise neglabel.NegPromptError(
            f"neglabel.groups = {p.groups}: more groups than the {len(mined.words)} labels mined from "
            f"{corpus.source} (raise neglabel.num_labels / max_fraction or lower groups)"
        )
    with atomic_path(NEGLABEL, directory=True) as out:
        save_tensors(
            {"id": mined.id_feats, "neg": mined.neg_feats},
            out / "features.safetensors",
            {"backbone": bb.identity, "corpus": corpus.source, "corpus_size": len(corpus), "template": noun},
        )
        pd.DataFrame({"word": mined.words, "part": mined.parts, "distance": mined.distance}).to_csv(
            out / "labels.tsv", sep="\t", index=False
        )
        if params.family.methods:
            family_labels(params, bb, names, corpus, out)
    print(f"NegLabel: {len(mined.words)} negative labels mined from {len(corpus)} candidates ({corpus.source})")


if __name__ == "__main__":
    run(main)
