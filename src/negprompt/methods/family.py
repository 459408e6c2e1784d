"""CSP, AdaNeg, TANL, InterNeg and TINS (opt-in) on one benchmark: their labels (mined once, in the neglabel stage)
and their scores on the cached test features (score stage), with the test-time methods on the fixed stream.
docs/methods.md has the rules."""

from __future__ import annotations

import numpy as np
import torch

from negprompt import NegPromptError
from negprompt.methods import adaneg, csp, interneg, neglabel, registry, stream, tanl, tins

# On OpenMoji the corpus has names only. The stand-in's captions teach style words (openmoji.STYLES' templates):
# CSP's adjective pool is these, or empty (family.csp.adjectives).
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


def csp_corpus(
    benchmark: str,
    names: list[str],
    corpus: neglabel.Corpus,
    adjectives: str,
    wordnet_dir: str = "",
    corpus_file: str = "",
    exclude_id_names: bool = False,
):
    """CSP's pool: on ImageNet without a word list (neglabel.corpus), WordNet less its excluded lexicographer files;
    otherwise NegLabel's corpus with the stand-in's caption words as adjectives (`captions`) or its own (`none`).
    The ID names stay in the noun pool as in the official code (CSP `multi_modal.py` L102-105, `pos_topk` None),
    where q = 1 keeps them out of the mined labels; `exclude_id_names` removes them first."""
    if benchmark.startswith("imagenet") and not corpus_file:
        wn = csp.wordnet_pools(wordnet_dir)
        return neglabel.make_corpus(wn.parts, names, wn.source, 1, exclude_id_names)
    adj = list(CAPTION_ADJECTIVES) if adjectives == "captions" else list(corpus.parts.get("adj", []))
    pool = neglabel.Corpus({"noun": list(corpus.parts.get("noun", [])), "adj": adj}, corpus.source)
    return neglabel.without(pool, names) if exclude_id_names else pool


def mine(
    model,
    tokenizer,
    names: list[str],
    corpus: neglabel.Corpus,
    csp_pool: neglabel.Corpus,
    family_params,
    neglabel_params,
    prompt_templates: dict,
    noise_feats: torch.Tensor,
) -> tuple[dict[str, torch.Tensor], dict]:
    """Every family method's text features: CSP's mined labels, AdaNeg's negatives (NegLabel's mining with AdaNeg's
    percentile rule) in the family's templates, every candidate with the index of its part (TANL, InterNeg, TINS:
    `cand`, `cand_part`), the ID names in the noun template (`id`), the noise images' features (TANL) and every
    candidate in TINS's inversion template with its last token's position (`tins_tokens`, `tins_slot`:
    `tins.tokenize`; the score stage encodes the selected ones).
    AdaNeg, TANL, InterNeg and TINS draw from `corpus` less the ID names, as their official code does (InterNeg keeps
    OpenOOD-VLM's `clip_for_wordnet_prepare.py`: its L82-132 build the same pool, nouns in "The nice {}.",
    adjectives in "This is a {} photo."; TINS `eval_tins_w_init.py` L698-721, L884-908 the same)."""
    from negprompt.clip.prompts import encode_texts

    with torch.no_grad():
        out, info = {}, {}
        if "csp" in family_params.methods:
            m = csp.mine_corpus(
                model,
                tokenizer,
                names,
                csp_pool,
                family_params.csp.fraction,
                neglabel_params.percentile,
                family_params.csp.near,
                family_params.seed,
                prompt_templates["csp_noun"],
                prompt_templates["csp_adj"],
            )
            out |= {"csp_id": m.id_feats, "csp_neg": m.neg_feats}
            info["csp"] = {"words": m.words, "parts": m.parts}
        # AdaNeg's and TANL's pool has no ID name (clip_for_wordnet_prepare.py L121-122) unless adaneg.exclude_id_names
        pool = neglabel.without(corpus, names) if family_params.adaneg.exclude_id_names else corpus
        if {"adaneg", "tanl"} & set(family_params.methods):
            mined = adaneg.mine_corpus(
                model,
                tokenizer,
                names,
                pool,
                neglabel_params.num_labels,
                neglabel_params.max_fraction,
                neglabel_params.percentile,
                prompt_templates["noun"],
                prompt_templates["adj"],
                index_percentile=family_params.adaneg.index_percentile,
                exclude_id_names=False,  # `pool` is already as adaneg.exclude_id_names asks
            )
            out |= {"id": mined.id_feats, "neg": mined.neg_feats}
            info["adaneg"] = {"words": mined.words, "parts": mined.parts}
        if {"tanl", "interneg", "tins"} & set(family_params.methods):
            parts = [(part, words) for part, words in pool.parts.items() if words]
            cand = [
                encode_texts(
                    model,
                    tokenizer,
                    [(prompt_templates["adj"] if part == "adj" else prompt_templates["noun"]).format(w) for w in words],
                ).cpu()
                for part, words in parts
            ]
            out |= {
                "cand": torch.cat(cand),
                "cand_part": torch.cat([torch.full((len(w),), i, dtype=torch.long) for i, (_, w) in enumerate(parts)]),
            }
        if "tins" in family_params.methods:
            out["tins_tokens"], out["tins_slot"] = tins.tokenize(tokenizer, [w for _, words in parts for w in words])
        if "tanl" in family_params.methods:
            out["noise"] = noise_feats
        if {"interneg", "tins"} & set(family_params.methods) and "id" not in out:
            out["id"] = encode_texts(model, tokenizer, [prompt_templates["noun"].format(n) for n in names]).cpu()
    return out, info


def noise_features(model, count: int, size: int, seed: int) -> torch.Tensor:
    """TANL's noise images through the image tower, un-normalised as the official code feeds them (L747). [count, d]"""
    device = next(model.parameters()).device
    with torch.no_grad():
        f = model.encode_image(tanl.noise_images(count, size, seed).to(device)).float().cpu()
    return torch.nn.functional.normalize(f, dim=-1)


def static_scores(img: torch.Tensor, feats: dict, family_params) -> dict[str, torch.Tensor]:
    """CSP: no memory, one score per image."""
    if "csp_id" not in feats:
        return {}
    m = csp.Mined(feats["csp_id"], feats["csp_neg"], [], [])
    groups = min(family_params.csp.groups, len(m.neg_feats))
    return {
        "csp": csp.score(
            img,
            m,
            1 / family_params.logit_scale,
            groups,
            family_params.seed,
            drop_remainder=family_params.csp.drop_remainder,
        )
    }


def interneg_features(
    feats: dict, shots: torch.Tensor, labels: torch.Tensor, num_labels: int, method: str = "interneg"
) -> dict:
    """InterNeg's fixed texts from the neglabel stage's `id`, `cand` and `cand_part`: the class prototypes of the
    few-shot image features [N, d] with labels [N] (`interneg_protos`) and the negatives the inter-modal rule
    chooses among every candidate (`interneg_neg`, `interneg_index` into `cand`; `interneg.select_negatives`).
    TINS chooses its own by the same rule (`method="tins"`: keys `tins_protos`, `tins_neg`, `tins_index`)."""
    label = registry.label(method)
    if not {"id", "cand", "cand_part"} <= set(feats):
        raise NegPromptError(
            f"models/neglabel/family.safetensors: no {label} candidates (cand, cand_part); "
            f"re-run the neglabel stage with {method} in family.methods"
        )
    protos = interneg.class_prototypes(shots, labels, len(feats["id"]))
    base = interneg.base_distance(feats["id"], protos)
    parts = [str(int(i)) for i in feats["cand_part"]]
    idx = interneg.select_negatives(feats["cand"], protos, base, num_labels, parts)
    if not len(idx):
        raise NegPromptError(
            f"{label}: none of the {len(parts)} candidates is farther from every class prototype than that class's "
            f"own text (its inter-modal test); drop {method} from family.methods or give the corpus more words"
        )
    return {f"{method}_protos": protos, f"{method}_neg": feats["cand"][idx], f"{method}_index": idx}


def tins_features(feats: dict, shots: torch.Tensor, labels: torch.Tensor, num_labels: int, model) -> dict:
    """TINS's fixed texts (`interneg_features(method="tins")`: `tins_protos`, `tins_neg`, `tins_index`) and its init
    candidates, the selected words in "a photo of a {}." through `model`'s text tower (`tins.candidates`:
    `tins_init_tokens`, `_slot`, `_vectors`, `_feats`, `_reg`)."""
    if not {"tins_tokens", "tins_slot"} <= set(feats):
        raise NegPromptError(
            "models/neglabel/family.safetensors: no TINS candidates (tins_tokens, tins_slot); "
            "re-run the neglabel stage with tins in family.methods"
        )
    out = interneg_features(feats, shots, labels, num_labels, method="tins")
    idx = out["tins_index"]
    cand = tins.candidates(model, feats["tins_tokens"][idx], feats["tins_slot"][idx], out["tins_protos"])
    return out | {f"tins_init_{k}": getattr(cand, k) for k in ("tokens", "slot", "vectors", "feats", "reg")}


def steppers(feats: dict, family_params, model=None, tokenizer=None) -> dict:
    """The test-time methods' fresh-memory factories (one call per stream). InterNeg and TINS join when their texts
    are in `feats` (`interneg_features`, `tins_features`) and the CLIP whose text tower inverts the images is given."""
    out = {}
    groups = min(family_params.adaneg.groups, len(feats.get("neg", [])) or 1)
    if "adaneg" in family_params.methods:
        out["adaneg"] = lambda: adaneg.stepper(
            feats["id"],
            feats["neg"],
            family_params.adaneg.slots,
            thres=family_params.adaneg.thres,
            gap=family_params.adaneg.gap,
            lam=family_params.adaneg.lam,
            groups=groups,
            sample_adaptive=family_params.adaneg.sample_adaptive,
            beta=family_params.adaneg.beta,
            logit_scale=family_params.logit_scale,
            seed=family_params.seed,
            drop_remainder=family_params.adaneg.drop_remainder,
        )
    if "tanl" in family_params.methods:
        out["tanl"] = lambda: tanl.stepper(
            feats["id"],
            feats["cand"],
            feats["noise"],
            beta=family_params.tanl.beta,
            memory=family_params.tanl.memory,
            gamma=family_params.tanl.gamma,
            logit_scale=family_params.logit_scale,
            seed=family_params.seed,
            gap=family_params.tanl.gap,
            score_queue=family_params.tanl.score_queue,
            alpha=family_params.tanl.alpha,
            loop_to_beta=family_params.tanl.loop_to_beta,
        )
    if "interneg" in family_params.methods and "interneg_neg" in feats:
        if model is None:
            raise NegPromptError("family.methods has interneg: its stream needs the CLIP model (steppers(model=...))")
        interneg_params = family_params.interneg
        out["interneg"] = lambda: interneg.stepper(
            model,
            tokenizer,
            feats["id"],
            feats["interneg_neg"],
            feats["interneg_protos"],
            thres=interneg_params.thres,
            bank_size=interneg_params.bank_size,
            groups=max(1, min(interneg_params.groups, len(feats["interneg_neg"]))),
            steps=interneg_params.steps,
            lr=interneg_params.lr,
            seed=family_params.seed,
            weight_decay=interneg_params.weight_decay,
            init_std=interneg_params.init_std,
            logit_scale=family_params.logit_scale,
        )
    if "tins" in family_params.methods and "tins_neg" in feats:
        if model is None:
            raise NegPromptError("family.methods has tins: its stream needs the CLIP model (steppers(model=...))")
        tins_params = family_params.tins
        cand = tins.Candidates(*(feats[f"tins_init_{k}"] for k in ("tokens", "slot", "vectors", "feats", "reg")))
        out["tins"] = lambda: tins.stepper(
            model,
            feats["id"],
            feats["tins_neg"],
            feats["tins_protos"],
            cand,
            thres=tins_params.thres,
            bank_size=tins_params.bank_size,
            buffer=tins_params.buffer,
            buffer_size=tins_params.buffer_size,
            groups=max(1, min(tins_params.groups, len(feats["tins_neg"]))),
            steps=tins_params.steps,
            lr=tins_params.lr,
            weight_decay=tins_params.weight_decay,
            reg_lambda=tins_params.reg_lambda,
            logit_scale=family_params.logit_scale,
            seed=family_params.seed,
        )
    return out


def stream_column(method: str, ood_set: str, order: int) -> str:
    return f"{method}@{ood_set}@o{order}"


def stream_scores(
    img: torch.Tensor, sets: np.ndarray, feats: dict, family_params, model=None, tokenizer=None
) -> dict[str, np.ndarray]:
    """Each test-time method on each OOD set's stream (ID + that set), for each order: column
    `method@set@oR` holds the scores of the ID images and of that set's images, NaN elsewhere."""
    out, threads = {}, torch.get_num_threads()
    torch.set_num_threads(1)  # batches of 256 against a few hundred labels: threads cost more than they give
    try:
        _streams(img, sets, steppers(feats, family_params, model, tokenizer), family_params, out)
    finally:
        torch.set_num_threads(threads)
    return out


def _streams(img, sets, makers, family_params, out) -> None:
    is_id = sets == "id"
    for method, make in makers.items():
        for s in [x for x in dict.fromkeys(sets) if x != "id"]:
            is_s = sets == s
            for r in family_params.stream_orders:
                id_s, ood_s = stream.run(img[is_id], img[is_s], make, r, family_params.stream_batch_size)
                col = np.full(len(sets), np.nan, dtype=np.float32)
                col[is_id], col[is_s] = id_s.numpy(), ood_s.numpy()
                out[stream_column(method, s, r)] = col
