"""Stage `neglabel`: NegLabel's negative labels, mined once per backbone from the corpus (nothing is trained)."""

import pandas as pd

from negprompt.benchmarks import openmoji
from negprompt.benchmarks.tables import read_classes
from negprompt.io import atomic_path, save_tensors
from negprompt.methods import family, neglabel
from negprompt.workspace import BENCHMARK, NEGLABEL, load_params, stage_backbone
from pipeline.common import run


def family_labels(params, backbone, names, corpus, out) -> None:
    """CSP's, AdaNeg's and TANL's text features (docs/methods.md), in the family's templates."""
    family_params, data_params = params.family, params.data
    which = family.resolve_template(family_params.template, data_params.benchmark)
    prompt_templates = family.templates(which, params.score.zero_shot_template)
    pool = family.csp_corpus(
        data_params.benchmark,
        names,
        corpus,
        family_params.csp.adjectives,
        params.neglabel.wordnet_dir,
        params.neglabel.corpus,
        family_params.csp.exclude_id_names,
    )
    size = backbone.model.visual.image_size
    noise = (
        family.noise_features(
            backbone.model,
            family_params.tanl.noise_images,
            size[0] if isinstance(size, (tuple, list)) else size,
            family_params.seed,
        )
        if "tanl" in family_params.methods
        else None
    )
    feats, info = family.mine(
        backbone.model, backbone.tokenizer, names, corpus, pool, family_params, params.neglabel, prompt_templates, noise
    )
    save_tensors(
        feats,
        out / "family.safetensors",
        {
            "backbone": backbone.identity,
            "template": which,
            "csp_pool": pool.source if "csp" in family_params.methods else "",
            "csp_adjectives": len(pool.parts.get("adj", [])) if "csp" in family_params.methods else 0,
        },
    )
    rows = [{"method": m, "word": w, "part": part} for m, v in info.items() for w, part in zip(v["words"], v["parts"])]
    pd.DataFrame(rows, columns=["method", "word", "part"]).to_csv(out / "family_labels.tsv", sep="\t", index=False)
    print(f"family ({which} templates): " + ", ".join(f"{m} {len(v['words'])} labels" for m, v in info.items()))


def reference_names(params, backbone, names, mined_words, out) -> None:
    """The names the report places the trained prompts among (its text-space section), encoded here once per
    backbone in the zero-shot template rather than by every report: on OpenMoji every concept the stand-in's world
    names, pretraining-only ones included; elsewhere the ID class names and NegLabel's mined words."""
    import torch

    from negprompt.clip.prompts import encode_texts

    if params.data.benchmark == "openmoji":
        words, source = [n for _, n, _ in openmoji.read_vocabulary()], "the OpenMoji vocabulary"
    else:
        words, source = names + mined_words, "the ID class names and NegLabel's mined words"
    with torch.no_grad():
        feats = encode_texts(
            backbone.model, backbone.tokenizer, [params.score.zero_shot_template.format(n) for n in words]
        ).cpu()
    save_tensors({"names": feats}, out / "reference_names.safetensors", {"source": source, "names": words})


def main():
    params = load_params()
    neglabel_params = params.neglabel
    names = read_classes(BENCHMARK / "classes.tsv").name.tolist()
    corpus = neglabel.benchmark_corpus(
        params.data.benchmark,
        names,
        neglabel_params.corpus,
        neglabel_params.wordnet_dir,
        neglabel_params.groups,
        params.data.seed,
        neglabel_params.exclude_id_names,
    )
    backbone = stage_backbone(params.features.device)
    noun, adj = neglabel_params.prompts(params.data.benchmark, params.score.zero_shot_template)
    mined = neglabel.mine_corpus(
        backbone.model,
        backbone.tokenizer,
        names,
        corpus,
        neglabel_params.num_labels,
        neglabel_params.max_fraction,
        neglabel_params.percentile,
        noun,
        adj,
    )
    if len(mined.words) < neglabel_params.groups:
        raise neglabel.NegPromptError(
            f"neglabel.groups = {neglabel_params.groups}: more groups than the {len(mined.words)} labels mined from "
            f"{corpus.source} (raise neglabel.num_labels / max_fraction or lower groups)"
        )
    with atomic_path(NEGLABEL, directory=True) as out:
        save_tensors(
            {"id": mined.id_feats, "neg": mined.neg_feats},
            out / "features.safetensors",
            {"backbone": backbone.identity, "corpus": corpus.source, "corpus_size": len(corpus), "template": noun},
        )
        pd.DataFrame({"word": mined.words, "part": mined.parts, "distance": mined.distance}).to_csv(
            out / "labels.tsv", sep="\t", index=False
        )
        if params.family.methods:
            family_labels(params, backbone, names, corpus, out)
        reference_names(params, backbone, names, list(mined.words), out)
    print(f"NegLabel: {len(mined.words)} negative labels mined from {len(corpus)} candidates ({corpus.source})")


if __name__ == "__main__":
    run(main)
