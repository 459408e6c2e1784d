"""CSP, AdaNeg and TANL on one benchmark: their labels (mined once, in the neglabel stage) and their scores on the
cached test features (score stage), with the test-time methods on the fixed stream. docs/methods.md has the rules."""
from __future__ import annotations

import numpy as np
import torch

from negprompt.methods import adaneg, csp, neglabel, stream, tanl

# On OpenMoji the corpus has names only. The stand-in's captions teach style words (openmoji.STYLES' templates):
# CSP's adjective pool is these, or empty (family.csp_adjectives).
CAPTION_ADJECTIVES = ("black and white", "greyscale", "sketch", "line drawing", "blurry", "dark", "pixelated")
PAPER_NOUN, PAPER_ADJ = "The nice {}.", "This is a {} photo."  # OpenOOD-VLM: clip_fixed_ood_prompt.py L416, L646


def resolve_template(which: str, benchmark: str) -> str:
    """family.template `auto`: the papers' on ImageNet, the stand-in's on the generated worlds (held-out renders)."""
    if which != "auto":
        return which
    return "paper" if benchmark.startswith("imagenet") else "standin"


def templates(which: str, standin: str) -> dict:
    """Prompts of every corpus-based family method: the papers' (`paper`) or the stand-in's caption template for all."""
    if which == "paper":
        return {"csp_noun": csp.NOUN_TEMPLATES, "csp_adj": csp.ADJ_TEMPLATES, "noun": PAPER_NOUN, "adj": PAPER_ADJ}
    return {"csp_noun": (standin,), "csp_adj": (standin,), "noun": standin, "adj": standin}


def csp_corpus(benchmark: str, names: list[str], corpus: neglabel.Corpus, adjectives: str, wordnet_dir: str = "",
               corpus_file: str = ""):
    """CSP's pool: on ImageNet without a word list (neglabel.corpus), WordNet less its excluded lexicographer files;
    otherwise NegLabel's corpus with the stand-in's caption words as adjectives (`captions`) or its own (`none`)."""
    if benchmark.startswith("imagenet") and not corpus_file:
        wn = csp.wordnet_pools(wordnet_dir)
        return neglabel.make_corpus(wn.parts, names, wn.source, 1)
    adj = list(CAPTION_ADJECTIVES) if adjectives == "captions" else list(corpus.parts.get("adj", []))
    return neglabel.Corpus({"noun": list(corpus.parts.get("noun", [])), "adj": adj}, corpus.source)


def mine(model, tokenizer, names: list[str], corpus: neglabel.Corpus, csp_pool: neglabel.Corpus, fp, nl,
         tpl: dict, noise_feats: torch.Tensor) -> tuple[dict[str, torch.Tensor], dict]:
    """Every family method's text features: CSP's mined labels, NegLabel's negatives in the family's templates
    (AdaNeg), every candidate (TANL), and the noise images' features (TANL)."""
    from negprompt.clip.prompts import encode_texts

    with torch.no_grad():
        out, info = {}, {}
        if "csp" in fp.methods:
            m = csp.mine_corpus(model, tokenizer, names, csp_pool, fp.csp_fraction, nl.percentile, fp.csp_near,
                                fp.seed, tpl["csp_noun"], tpl["csp_adj"])
            out |= {"csp_id": m.id_feats, "csp_neg": m.neg_feats}
            info["csp"] = {"words": m.words, "parts": m.parts}
        if {"adaneg", "tanl"} & set(fp.methods):
            mined = neglabel.mine_corpus(model, tokenizer, names, corpus, nl.num_labels, nl.max_fraction,
                                         nl.percentile, tpl["noun"], tpl["adj"])
            out |= {"id": mined.id_feats, "neg": mined.neg_feats}
            info["adaneg"] = {"words": mined.words, "parts": mined.parts}
        if "tanl" in fp.methods:
            cand = [encode_texts(model, tokenizer, [(tpl["adj"] if part == "adj" else tpl["noun"]).format(w)
                                                    for w in words]).cpu()
                    for part, words in corpus.parts.items() if words]
            out |= {"cand": torch.cat(cand), "noise": noise_feats}
    return out, info


def noise_features(model, count: int, size: int, seed: int) -> torch.Tensor:
    """TANL's noise images through the image tower, un-normalised as the official code feeds them (L747). [count, d]"""
    device = next(model.parameters()).device
    with torch.no_grad():
        f = model.encode_image(tanl.noise_images(count, size, seed).to(device)).float().cpu()
    return torch.nn.functional.normalize(f, dim=-1)


def static_scores(img: torch.Tensor, feats: dict, fp) -> dict[str, torch.Tensor]:
    """CSP: no memory, one score per image."""
    if "csp_id" not in feats:
        return {}
    m = csp.Mined(feats["csp_id"], feats["csp_neg"], [], [])
    return {"csp": csp.score(img, m, 1 / fp.logit_scale, min(fp.csp_groups, len(m.neg_feats)), fp.seed)}


def steppers(feats: dict, fp) -> dict:
    """The test-time methods' fresh-memory factories (one call per stream)."""
    out = {}
    groups = min(fp.adaneg_groups, len(feats.get("neg", [])) or 1)
    if "adaneg" in fp.methods:
        out["adaneg"] = lambda: adaneg.stepper(
            feats["id"], feats["neg"], fp.adaneg_slots, thres=fp.adaneg_thres, gap=fp.adaneg_gap, lam=fp.adaneg_lambda,
            groups=groups, sample_adaptive=fp.adaneg_sample_adaptive, beta=fp.adaneg_beta,
            logit_scale=fp.logit_scale, seed=fp.seed)
    if "tanl" in fp.methods:
        out["tanl"] = lambda: tanl.stepper(
            feats["id"], feats["cand"], feats["noise"], beta=fp.tanl_beta, memory=fp.tanl_memory, gamma=fp.tanl_gamma,
            logit_scale=fp.logit_scale, seed=fp.seed, gap=fp.tanl_gap, score_queue=fp.tanl_score_queue,
            alpha=fp.tanl_alpha)
    return out


def stream_column(method: str, ood_set: str, order: int) -> str:
    return f"{method}@{ood_set}@o{order}"


def stream_scores(img: torch.Tensor, sets: np.ndarray, feats: dict, fp) -> dict[str, np.ndarray]:
    """Each test-time method on each OOD set's stream (ID + that set), for each order: column
    `method@set@oR` holds the scores of the ID images and of that set's images, NaN elsewhere."""
    out, threads = {}, torch.get_num_threads()
    torch.set_num_threads(1)  # batches of 256 against a few hundred labels: threads cost more than they give
    try:
        _streams(img, sets, feats, fp, out)
    finally:
        torch.set_num_threads(threads)
    return out


def _streams(img, sets, feats, fp, out) -> None:
    is_id = sets == "id"
    for method, make in steppers(feats, fp).items():
        for s in [x for x in dict.fromkeys(sets) if x != "id"]:
            is_s = sets == s
            for r in fp.stream_orders:
                id_s, ood_s = stream.run(img[is_id], img[is_s], make, r, fp.stream_batch_size)
                col = np.full(len(sets), np.nan, dtype=np.float32)
                col[is_id], col[is_s] = id_s.numpy(), ood_s.numpy()
                out[stream_column(method, s, r)] = col


def heldout_choice(params, templates_=("paper", "standin"), adjectives=("none", "captions")) -> dict:
    """Average AUROC of CSP, AdaNeg and TANL on a generated world's fresh held-out renders (never its test sets)
    for each template choice and CSP adjective pool: how family.template and family.csp_adjectives were chosen.
    Stream order 0. `python -m negprompt.methods.family heldout` in a pipeline directory prints it."""
    from negprompt import metrics
    from negprompt.standin import regime
    from negprompt.workspace import load_backbone

    d, nl = params.data, params.neglabel
    bb = load_backbone("cpu")
    names, ids, _, ood = regime.world_renders(d.benchmark, d.seed, d.image_size, d.font)
    feats = regime.image_features(bb.model, {"id": ids, **ood})
    corpus = neglabel.benchmark_corpus(d.benchmark, names, nl.corpus, nl.wordnet_dir, nl.groups, d.seed)
    size = bb.model.visual.image_size
    noise = noise_features(bb.model, params.family.tanl_noise_images, size[0] if isinstance(size, tuple) else size, 0)
    out = {}
    for which in templates_:
        for adj in adjectives:
            fp = params.family.model_copy(update={"template": which, "csp_adjectives": adj,
                                                  "methods": ["csp"] if adj != adjectives[0] else ["csp", "adaneg",
                                                                                                   "tanl"]})
            tpl = templates(which, params.score.zero_shot_template)
            tens, _ = mine(bb.model, bb.tokenizer, names, corpus, csp_corpus(d.benchmark, names, corpus, adj), fp,
                           nl, tpl, noise)
            res = {}
            for s in ood:
                both = torch.cat([feats["id"], feats[s]])
                sc = static_scores(both, tens, fp)["csp"].numpy()
                n = len(feats["id"])
                res.setdefault("csp", []).append(100 * metrics.auroc(sc[:n], sc[n:]))
                for m, make in steppers(tens, fp).items():
                    res.setdefault(m, []).append(stream.spread(feats["id"], feats[s], make, seeds=(0,)).auroc[0])
            out[f"{which}/{adj}"] = {m: round(float(np.mean(v)), 2) for m, v in res.items()}
    return out


def timing(params, reps: int = 3) -> dict:
    """Seconds per 10,000 images to score the cached test features, text features ready (one thread): the
    leaderboard's cost. `python -m negprompt.methods.family timing` in a pipeline directory prints it."""
    import time

    from negprompt.io import load_tensors
    from negprompt.methods import scores
    from negprompt.workspace import NEGLABEL, read_features

    torch.set_num_threads(1)
    test, img = read_features("test")
    img, sets = torch.from_numpy(np.ascontiguousarray(img)), test.set.to_numpy()
    nl, _ = load_tensors(NEGLABEL / "features.safetensors")
    fam, _ = load_tensors(NEGLABEL / "family.safetensors")
    fp, p = params.family, params.neglabel

    def best(fn):
        t = []
        for _ in range(reps):
            start = time.perf_counter()
            fn()
            t.append(time.perf_counter() - start)
        return min(t) / len(img) * 1e4

    out = {"mcm": best(lambda: scores.mcm(img @ nl["id"].T)),
           "neglabel": best(lambda: neglabel.score(img @ nl["id"].T, img @ nl["neg"].T, p.temperature, p.groups)),
           "csp": best(lambda: static_scores(img, fam, fp))}
    is_id = sets == "id"
    for m, make in steppers(fam, fp).items():
        start, n = time.perf_counter(), 0
        for s in [x for x in dict.fromkeys(sets) if x != "id"]:
            stream.run(img[is_id], img[sets == s], make, 0, fp.stream_batch_size)
            n += int(is_id.sum() + (sets == s).sum())
        out[m] = (time.perf_counter() - start) / n * 1e4
    return {m: round(v, 3) for m, v in out.items()}


if __name__ == "__main__":
    import json
    import sys

    from negprompt.workspace import load_params

    what = sys.argv[1] if len(sys.argv) > 1 else "timing"
    print(json.dumps((heldout_choice if what == "heldout" else timing)(load_params()), indent=1))
