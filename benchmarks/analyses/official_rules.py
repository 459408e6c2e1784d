"""What each official rule does on the default benchmark: NegLabel and CSP mined and scored on the cached test
features with each rule switched (template, ID names in the pool, the M mod G drop), average AUROC / FPR95 in %.

    python benchmarks/analyses/official_rules.py     # after `make repro` (it reads features/ and models/backbone)
"""

from __future__ import annotations

import numpy as np
import torch

from negprompt import commands, metrics
from negprompt.benchmarks.tables import read_classes
from negprompt.methods import csp, family, neglabel
from negprompt.workspace import BENCHMARK, load_params, stage_backbone, test_images


def average(score: torch.Tensor, sets: np.ndarray, ood) -> tuple[float, float]:
    s = score.numpy()
    ident = s[sets == "id"]
    auroc = np.mean([metrics.auroc(ident, s[sets == o]) for o in ood])
    fpr = np.mean([metrics.fpr_at_95_tpr(ident, s[sets == o]) for o in ood])
    return 100 * auroc, 100 * fpr


def main():
    p = load_params()
    fp, nl = p.family, p.neglabel
    bb = stage_backbone("cpu")
    names = read_classes(BENCHMARK / "classes.tsv").name.tolist()
    test = test_images()
    standin = p.score.zero_shot_template
    print("method | template | ID names | M mod G | M | AUROC / FPR95")
    for label, noun, adj in (("standin", standin, standin), ("the nice {}", "the nice {}", nl.adj_template)):
        for exclude in (False, True):
            corpus = neglabel.benchmark_corpus(p.data.benchmark, names, nl.corpus, nl.wordnet_dir, 1, 0, exclude)
            with torch.no_grad():
                mined = neglabel.mine_corpus(
                    bb.model, bb.tokenizer, names, corpus, nl.num_labels, nl.max_fraction, nl.percentile, noun, adj
                )
            for drop in (True, False):
                score = neglabel.score_features(test.feats, mined, nl.temperature, nl.groups, nl.seed, drop)[0]
                a, f = average(score, test.sets, test.ood)
                kept = "removed" if exclude else "kept"
                rule = "dropped" if drop else "kept"
                print(f"NegLabel | {label} | {kept} | {rule} | {len(mined.words)} | {a:.2f} / {f:.2f}", flush=True)
    tpl = family.templates(family.resolve_template(fp.template, p.data.benchmark), standin)
    corpus = neglabel.benchmark_corpus(p.data.benchmark, names, nl.corpus, nl.wordnet_dir, 1, 0)
    for exclude in (False, True):
        pool = family.csp_corpus(p.data.benchmark, names, corpus, fp.csp.adjectives, nl.wordnet_dir, nl.corpus, exclude)
        with torch.no_grad():
            mined = csp.mine_corpus(
                bb.model, bb.tokenizer, names, pool, fp.csp.fraction, nl.percentile, fp.csp.near, fp.seed,
                tpl["csp_noun"], tpl["csp_adj"],
            )  # fmt: skip
        for drop in (True, False):
            groups = min(fp.csp.groups, len(mined.neg_feats))
            score = csp.score(test.feats, mined, 1 / fp.logit_scale, groups, fp.seed, drop_remainder=drop)
            a, f = average(score, test.sets, test.ood)
            kept, rule = ("removed" if exclude else "kept"), ("dropped" if drop else "kept")
            print(f"CSP | family | {kept} | {rule} | {len(mined.neg_feats)} | {a:.2f} / {f:.2f}", flush=True)


if __name__ == "__main__":
    commands.run(main)
