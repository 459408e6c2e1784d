"""TINS: per-image stream scores against a reference transcribed from the official code (zxk1212/tins
`eval_tins_w_init.py`, the lines cited), its grouped score, the init choice, bad parameters, and the stepper wired
from the mined candidates through `family.steppers` and `stream.run` on the tiny random CLIP."""

import math

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from negprompt import NegPromptError
from negprompt.methods import neglabel, stream, tins

WORDS = ["car", "zebra crossing", "thermometer", "cloud", "u.s.a", "lighthouse", "red", "fog"]


# ---- the reference: eval_tins_w_init.py, transcribed for open_clip (its text transformer is batch-first, so the
# ---- permutes of L1004 / L1006 go) and fp32 (the `.half()` of the bank, L1224, dropped: our departure).
# ---- `a["same_ops"]`: two lines computed as ours computes the same function (the texts cut at the batch's longest
# ---- EOT, which the causal mask makes invisible; the ID-separation cosines as t @ p.T, both sides unit vectors).
# ---- Without it the transcription is literal, and AdamW's first steps, nearly g / |g| per coordinate, turn the
# ---- float rounding of near-zero gradient coordinates into differences of order lr: see the literal test.


def ref_last_token_positions(tokenized_texts, tokenized_without_period):  # L980-989
    token_counts_no_period = (tokenized_without_period != 0).sum(dim=1)
    target_positions = token_counts_no_period - 2
    assert not torch.any(target_positions < 1)
    token_counts = (tokenized_texts != 0).sum(dim=1)
    assert not torch.any(target_positions >= (token_counts - 1))
    return target_positions.long()


def ref_encode_with_pseudo_tokens(model, tokenized_texts, pseudo_tokens, target_positions):  # L998-1009
    length = tokenized_texts.shape[1]  # the full context, or the cut of `same_ops`
    x = model.token_embedding(tokenized_texts)
    x = x.clone()
    row_indices = torch.arange(tokenized_texts.shape[0])
    x[row_indices, target_positions] = pseudo_tokens.to(x.dtype)
    x = x + model.positional_embedding[:length]
    x = model.transformer(x, attn_mask=model.attn_mask[:length, :length])
    x = model.ln_final(x)
    return x[torch.arange(x.shape[0]), tokenized_texts.argmax(dim=-1)] @ model.text_projection


def ref_init_candidates(model, tok, words, class_prototypes):  # L1035-1063
    tokenized_texts = tok([f"a photo of a {w}." for w in words])
    tokenized_without_period = tok([f"a photo of a {w}" for w in words])
    target_positions = ref_last_token_positions(tokenized_texts, tokenized_without_period)
    with torch.no_grad():
        emb = model.token_embedding(tokenized_texts)
        init_vectors = emb[torch.arange(len(words)), target_positions].float()  # L992-995
        candidate_features = model.encode_text(tokenized_texts).float()
        candidate_features /= candidate_features.norm(dim=-1, keepdim=True)
        candidate_reg_loss = (1 + (candidate_features @ class_prototypes.T)).mean(dim=1)
    return {
        "tokenized_texts": tokenized_texts,
        "target_positions": target_positions,
        "init_vectors": init_vectors,
        "candidate_features": candidate_features,
        "candidate_reg_loss": candidate_reg_loss,
    }


def ref_grouped_score(image_features, positive_features, negative_features, logit_scale, group_num):  # L1107-1140
    pos_logits = logit_scale * (image_features @ positive_features.T)
    neg_logits = logit_scale * (image_features @ negative_features.T)
    drop = neg_logits.shape[1] % group_num
    if drop > 0:
        neg_logits = neg_logits[:, :-drop]
    torch.manual_seed(0)  # L1119: reseeds the global generator that the buffer's draw (L1263) reads
    # L1121 draws on the GPU (torch 2.10: the CUDA generator, not the CPU one); injected: a CPU generator seeded 0
    permutation = torch.randperm(neg_logits.shape[1], generator=torch.Generator().manual_seed(0))
    neg_logits = neg_logits[:, permutation]
    grouped_neg_logits = neg_logits.reshape(pos_logits.shape[0], group_num, -1).contiguous()
    scores = []
    log_class_count = torch.log(torch.tensor(float(pos_logits.shape[1])))
    for group_index in range(group_num):
        group_neg_logits = grouped_neg_logits[:, group_index, :]
        log_pos_mass = torch.logsumexp(pos_logits, dim=-1)
        log_neg_mean_mass = torch.logsumexp(group_neg_logits, dim=-1) - np.log(float(group_neg_logits.shape[1]))
        log_denom = torch.logaddexp(log_pos_mass, log_neg_mean_mass + log_class_count)
        scores.append(torch.exp(log_pos_mass - log_denom).unsqueeze(-1))
    return torch.cat(scores, dim=-1).mean(dim=-1)


def ref_expand(a, model, image_features, current_scores, class_prototypes, base_sim, fixed_text_bank, bank, bscores,
               init, buf, buf_scores):  # fmt: skip
    """maybe_expand_dynamic_bank (L1150-1274), best_neg_word init (L1097-1104)."""
    activate_indicator = current_scores < a["ood_threshold"]
    if not torch.any(activate_indicator):
        return None, bank, bscores, buf, buf_scores
    batch_im_features = image_features[activate_indicator]
    objective = 1.0 - (batch_im_features.float() @ init["candidate_features"].T)
    objective = objective + (a["inversion_reg_lambda"] * init["candidate_reg_loss"].unsqueeze(0))
    best_indices = torch.argmin(objective, dim=1)
    tokenized_texts = init["tokenized_texts"][best_indices]
    target_positions = init["target_positions"][best_indices]
    if a["same_ops"]:
        tokenized_texts = tokenized_texts[:, : int(tokenized_texts.argmax(-1).max()) + 1]
    pseudo_tokens = nn.Parameter(init["init_vectors"][best_indices].clone())
    optimizer = torch.optim.AdamW([pseudo_tokens], lr=a["inversion_lr"], weight_decay=a["inversion_weight_decay"])
    for _ in range(a["inversion_steps"]):
        optimizer.zero_grad(set_to_none=True)
        template_features = ref_encode_with_pseudo_tokens(model, tokenized_texts, pseudo_tokens, target_positions)
        template_features = template_features / template_features.norm(dim=-1, keepdim=True)
        cos_sim = F.cosine_similarity(template_features, batch_im_features.float(), dim=-1)
        loss_align = (1.0 - cos_sim).mean()
        if a["same_ops"]:
            intermodal_sim = template_features @ class_prototypes.T
        else:
            intermodal_sim = F.cosine_similarity(template_features.unsqueeze(1), class_prototypes.unsqueeze(0), dim=-1)
        loss_reg = (1 + intermodal_sim).mean()
        loss = loss_align + (a["inversion_reg_lambda"] * loss_reg)
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        template_features = ref_encode_with_pseudo_tokens(model, tokenized_texts, pseudo_tokens, target_positions)
        template_features = template_features / template_features.norm(dim=-1, keepdim=True)
        intermodal_sim = template_features @ class_prototypes.T
        mask = torch.all(intermodal_sim < base_sim.unsqueeze(0), dim=1)
        if mask.numel() == 0 or not torch.any(mask):
            return None, bank, bscores, buf, buf_scores
        selected_features = template_features[mask]
        selected_scores = (base_sim.unsqueeze(0) - intermodal_sim[mask]).mean(dim=1)
        combined_features = torch.cat([bank, selected_features], dim=0)
        combined_scores = torch.cat([bscores, selected_scores], dim=0)
        sorted_scores, sorted_indices = torch.sort(combined_scores, descending=True)
        sorted_features = combined_features[sorted_indices]
        keep = a["extra_text_length"]
        if sorted_features.shape[0] > keep:
            bank, bscores = sorted_features[:keep], sorted_scores[:keep]
            if a["use_buffer"]:
                buf = torch.cat([buf, sorted_features[keep:]], dim=0)
                buf_scores = torch.cat([buf_scores, sorted_scores[keep:]], dim=0)
        else:
            bank, bscores = sorted_features, sorted_scores
        if a["use_buffer"] and a["bank_buffer_size"] > 0 and buf.shape[0] >= a["bank_buffer_size"]:
            half_size = buf.shape[0] // 2
            if half_size > 0:
                buffer_sorted_scores, buffer_sorted_idx = torch.sort(buf_scores, descending=True)
                top_half_idx = buffer_sorted_idx[:half_size]
                pool_features = torch.cat([bank, buf[top_half_idx]], dim=0)
                pool_scores = torch.cat([bscores, buffer_sorted_scores[:half_size]], dim=0)
            else:
                pool_features, pool_scores = bank, bscores
            sample_size = min(a["extra_text_length"], pool_features.shape[0])
            perm = torch.randperm(pool_features.shape[0])  # L1263: the global generator, reseeded by L1119
            bank, bscores = pool_features[perm[:sample_size]], pool_scores[perm[:sample_size]]
            buf, buf_scores = torch.zeros((0, bank.shape[1])), torch.zeros(0)
        dynamic_features = bank[: a["extra_text_length"]].float()
        return torch.cat([fixed_text_bank, dynamic_features], dim=0), bank, bscores, buf, buf_scores


def ref_scores(a, model, image_features, positive_features, negative_features, init, class_prototypes, base_sim):
    """compute_tins_scores_from_image_features (L1277-1359)."""
    fixed_text_bank = torch.cat([positive_features, negative_features], dim=0)
    d = positive_features.shape[1]
    bank, bscores, buf, buf_scores = torch.zeros((0, d)), torch.zeros(0), torch.zeros((0, d)), torch.zeros(0)
    all_scores = []
    for start in range(0, image_features.shape[0], a["batch_size"]):
        batch = image_features[start : start + a["batch_size"]]
        text_bank = torch.cat([fixed_text_bank, bank[: a["extra_text_length"]]], dim=0)
        negs = text_bank[positive_features.shape[0] :]
        batch_scores = ref_grouped_score(batch, positive_features, negs, a["logit_scale"], a["group_num"])
        updated, bank, bscores, buf, buf_scores = ref_expand(
            a, model, batch, batch_scores, class_prototypes, base_sim, fixed_text_bank, bank, bscores, init, buf,
            buf_scores,
        )  # fmt: skip
        if updated is not None:
            negs = updated[positive_features.shape[0] :]
            batch_scores = ref_grouped_score(batch, positive_features, negs, a["logit_scale"], a["group_num"])
        all_scores.append(batch_scores)
    return torch.cat(all_scores)


def inputs(n=24, d=128, classes=3, negatives=11):
    g = torch.Generator().manual_seed(5)
    id_text = F.normalize(torch.randn(classes, d, generator=g), dim=-1)
    protos = F.normalize(id_text + 0.6 * torch.randn(classes, d, generator=g), dim=-1)
    negs = F.normalize(torch.randn(negatives, d, generator=g), dim=-1)
    mix = torch.cat([id_text.repeat(n // (2 * classes), 1), torch.randn(n // 2, d, generator=g)])
    img = F.normalize(mix + 0.4 * torch.randn(n, d, generator=g), dim=-1)
    return id_text, negs, protos, img


@pytest.mark.parametrize(
    "thres, bank_size, buffer, buffer_size",
    [
        (1.01, 3, True, 4),  # every image inverted: the bank overflows, the buffer fills and is flushed (L1246-1270)
        (0.5, 2, False, 2000),  # some images inverted; overflow dropped
    ],
)
def test_stream_scores_equal_the_official_code(tiny_clip, thres, bank_size, buffer, buffer_size):
    """Per-image scores of one stream, ours (`tins.stepper`) against the transcription, to 1e-6."""
    model, tok = tiny_clip
    id_text, negs, protos, img = inputs(n=18)
    a = {
        "ood_threshold": thres,
        "extra_text_length": bank_size,
        "use_buffer": buffer,
        "bank_buffer_size": buffer_size,
        "group_num": 2,
        "inversion_steps": 3,
        "inversion_lr": 2e-2,
        "inversion_weight_decay": 1e-2,
        "inversion_reg_lambda": 0.3,
        "logit_scale": 100.0,
        "batch_size": 6,
        "same_ops": True,
    }
    base = (id_text * protos).sum(1)  # L1466
    flags = [q.requires_grad for q in model.parameters()]
    model.requires_grad_(False)  # load_official_clip L479-481 (and the shared tiny CLIP gets no gradient)
    try:
        init = ref_init_candidates(model, tok, WORDS, protos)
        want = ref_scores(a, model, img, id_text, negs, init, protos, base)
    finally:
        for q, flag in zip(model.parameters(), flags):
            q.requires_grad_(flag)

    tokens, slot = tins.tokenize(tok, WORDS)
    assert torch.equal(slot, init["target_positions"])
    full, cut = init["tokenized_texts"], tokens.shape[1]
    assert torch.equal(tokens, full[:, :cut]) and (full[:, cut:] == 0).all()
    cand = tins.candidates(model, tokens, slot, protos)
    assert torch.allclose(cand.feats, init["candidate_features"], atol=1e-6)
    step = tins.stepper(model, id_text, negs, protos, cand, thres, bank_size, buffer, buffer_size, groups=2, steps=3)
    got = torch.cat([step(img[i : i + 6]) for i in range(0, len(img), 6)])
    assert torch.allclose(got, want, atol=1e-6, rtol=0), (got - want).abs().max()
    if thres < 1:
        assert 0 < (want < thres).sum() < len(img)


def test_the_literal_transcription_differs_by_float_rounding_only(tiny_clip):
    """The two lines `same_ops` rewrites compute the same function to 1e-6; with the literal ones the scores of the
    buffered stream above still agree to 1e-4 (2e-5 observed): AdamW amplifies rounding, not a rule."""
    model, tok = tiny_clip
    id_text, negs, protos, img = inputs(n=18)
    flags = [q.requires_grad for q in model.parameters()]
    model.requires_grad_(False)
    try:
        init = ref_init_candidates(model, tok, WORDS, protos)
        tokens, pos = init["tokenized_texts"][[1, 2, 5]], init["target_positions"][[1, 2, 5]]
        pseudo = torch.randn(3, model.token_embedding.weight.shape[1], generator=torch.Generator().manual_seed(0))
        cut = tokens[:, : int(tokens.argmax(-1).max()) + 1]
        t = F.normalize(ref_encode_with_pseudo_tokens(model, tokens, pseudo, pos), dim=-1)
        assert cut.shape[1] < tokens.shape[1]
        assert torch.allclose(t, F.normalize(ref_encode_with_pseudo_tokens(model, cut, pseudo, pos), dim=-1), atol=1e-6)
        cos = F.cosine_similarity(t.unsqueeze(1), protos.unsqueeze(0), dim=-1)
        assert torch.allclose(cos, t @ protos.T, atol=1e-6)
        a = {
            "ood_threshold": 1.01,
            "extra_text_length": 3,
            "use_buffer": True,
            "bank_buffer_size": 4,
            "group_num": 2,
            "inversion_steps": 3,
            "inversion_lr": 2e-2,
            "inversion_weight_decay": 1e-2,
            "inversion_reg_lambda": 0.3,
            "logit_scale": 100.0,
            "batch_size": 6,
            "same_ops": False,
        }
        want = ref_scores(a, model, img, id_text, negs, init, protos, (id_text * protos).sum(1))
    finally:
        for q, flag in zip(model.parameters(), flags):
            q.requires_grad_(flag)
    cand = tins.candidates(model, *tins.tokenize(tok, WORDS), protos)
    step = tins.stepper(model, id_text, negs, protos, cand, 1.01, 3, True, 4, groups=2, steps=3)
    got = torch.cat([step(img[i : i + 6]) for i in range(0, len(img), 6)])
    assert torch.allclose(got, want, atol=1e-4, rtol=0), (got - want).abs().max()


def test_grouped_score_scales_each_groups_mean_negative_mass_to_the_class_count():
    g = torch.Generator().manual_seed(1)
    img, id_feats, negs = (F.normalize(torch.randn(n, 8, generator=g), dim=-1) for n in (4, 3, 11))
    got = tins.grouped_score(img, id_feats, negs, groups=3)
    # 11 mod 3 = 2 columns dropped, 9 permuted (seed 0) into 3 groups of 3: softmax with each negative's logit
    # raised by log(C / n) = log(3 / 3) = 0, i.e. NegLabel's score here; with C = 3 and n = 9 (one group) it is not
    assert torch.allclose(got, neglabel.score(img @ id_feats.T, img @ negs[:9].T, 0.01, 3), atol=1e-6)
    one = tins.grouped_score(img, id_feats, negs[:9], groups=1)
    logits = torch.cat([100 * img @ id_feats.T, 100 * img @ negs[:9].T + math.log(3 / 9)], 1)
    assert torch.allclose(one, logits.softmax(-1)[:, :3].sum(-1), atol=1e-6)


def test_the_init_word_minimises_distance_plus_separation(tiny_clip):
    model, tok = tiny_clip
    id_text, _, protos, img = inputs()
    cand = tins.candidates(model, *tins.tokenize(tok, WORDS), protos)
    assert torch.allclose(cand.reg, (1 + cand.feats @ protos.T).mean(1))
    cost = 1 - img @ cand.feats.T + 0.3 * cand.reg
    assert torch.equal(tins.start(img, cand), cost.argmin(1))
    assert torch.equal(tins.start(img, cand, reg_lambda=0.0), (img @ cand.feats.T).argmax(1))


def test_inversion_leaves_clip_untouched_and_its_loss_falls(tiny_clip):
    model, tok = tiny_clip
    before = {k: v.clone() for k, v in model.state_dict().items()}
    _, _, protos, img = inputs()
    cand = tins.candidates(model, *tins.tokenize(tok, WORDS), protos)
    with torch.no_grad():  # as the score stage calls it
        inv = tins.invert(model, img[:4], cand, protos, steps=10)
    assert inv.feats.shape == (4, 128) and torch.allclose(inv.feats.norm(dim=-1), torch.ones(4))
    assert len(inv.losses) == 10 and inv.losses[-1] < inv.losses[0]
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())


def test_memory_buffer_flush_draws_the_bank_from_bank_and_the_buffers_better_half():
    protos, base = torch.eye(3)[:2], torch.ones(2)  # every unit vector in e3's half-plane passes
    feats = F.normalize(torch.tensor([[-0.1 * i, 0.0, 1.0] for i in range(1, 7)]), dim=-1)  # margin rises with i
    mem = tins.update(tins.empty_memory(3), feats[:4], protos, base, bank_size=2, buffer_size=3)
    assert torch.equal(mem.feats, feats[[3, 2]]) and torch.equal(mem.buffer, feats[[1, 0]])
    mem = tins.update(mem, feats[4:5], protos, base, bank_size=2, buffer_size=3)  # buffer 3: flushed
    pool = torch.cat([feats[[4, 3]], feats[[2]]])  # bank, then the better half (1 of 3) of the buffer
    assert torch.equal(mem.feats, pool[torch.randperm(3, generator=torch.Generator().manual_seed(0))[:2]])
    assert len(mem.buffer) == 0 and len(mem.buffer_margin) == 0
    assert tins.update(mem, torch.tensor([[1.0, 0, 0]]), protos, base) is None  # cos(p_1) = 1: fails the test
    dropped = tins.update(tins.empty_memory(3), feats, protos, base, bank_size=2, buffer=False, buffer_size=1)
    assert len(dropped.feats) == 2 and len(dropped.buffer) == 0


def cand_args(negs):
    return torch.zeros(1, 4, dtype=torch.long), torch.ones(1), torch.zeros(1, 8), negs[:1], torch.ones(1)


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"steps": 0}, "steps"),
        ({"steps": -1}, "steps"),
        ({"bank_size": 0}, "bank_size"),
        ({"buffer_size": 0}, "buffer_size"),
        ({"lr": 0.0}, "lr"),
        ({"lr": -1e-3}, "lr"),
        ({"weight_decay": -0.1}, "weight_decay"),
        ({"reg_lambda": -1.0}, "reg_lambda"),
        ({"groups": 0}, "groups"),
        ({"groups": 12}, "groups"),
        ({"thres": float("nan")}, "thres"),
    ],
)
def test_bad_parameters_are_one_line_errors_naming_the_key(kwargs, key):
    id_text, negs, protos, _ = inputs()
    cand = tins.Candidates(*cand_args(negs))
    with pytest.raises(NegPromptError, match=rf"^family\.tins\.{key} = [^\n]*$"):
        tins.stepper(None, id_text, negs, protos, cand, **kwargs)


def test_bad_config_values_name_the_key_and_tins_is_opt_in():
    from negprompt.config import validate

    for value, match in (
        ({"steps": 0}, r"family.tins.steps = 0: .*greater than 0"),
        ({"buffer_size": 0}, r"family.tins.buffer_size = 0"),
        ({"thres": 1.5}, r"family.tins.thres = 1.5"),
        ({"reg_lambda": -1}, r"family.tins.reg_lambda = -1"),
    ):
        with pytest.raises(NegPromptError, match=match):
            validate({"family": {"tins": value}})
    assert "tins" not in validate({}).family.methods
    assert validate({"family": {"methods": ["interneg", "tins"]}}).family.tins.steps == 30


def test_tins_is_wired_from_the_mined_candidates_to_its_stream_columns(tiny_clip):
    """The neglabel stage's part (candidates, their inversion texts), the score stage's (prototypes, selection, init
    candidates) and the stream columns through family.steppers and stream.run."""
    from negprompt.config import FamilyParams, NegLabelParams
    from negprompt.methods import family

    model, tok = tiny_clip
    names = ["cat", "dog", "fish"]
    corpus = neglabel.Corpus({"noun": ["car", "tree", "cat", "house", "cloud", "boat"], "adj": ["red", "tall"]}, "t")
    fp = FamilyParams(methods=["tins"], stream_orders=[0], stream_batch_size=8, tins={"num_labels": 4, "steps": 2})
    tpl = family.templates("standin", "a photo of a {}.")
    feats, _ = family.mine(model, tok, names, corpus, corpus, fp, NegLabelParams(), tpl, None)
    assert set(feats) == {"id", "cand", "cand_part", "tins_tokens", "tins_slot"}
    tokens, slot = tins.tokenize(tok, ["car", "tree", "house", "cloud", "boat", "red", "tall"])  # "cat" removed
    assert torch.equal(feats["tins_tokens"], tokens) and torch.equal(feats["tins_slot"], slot)

    shots, labels = feats["id"].repeat(2, 1), torch.tensor([0, 1, 2] * 2)
    with torch.no_grad():
        got = family.tins_features(feats, shots, labels, fp.tins.num_labels, model)
    want = family.interneg_features(feats, shots, labels, 4)
    assert torch.equal(got["tins_index"], want["interneg_index"]) and torch.equal(got["tins_neg"], want["interneg_neg"])
    assert torch.equal(got["tins_init_tokens"], tokens[want["interneg_index"]])
    feats |= got

    g = torch.Generator().manual_seed(0)
    img = F.normalize(torch.randn(20, 128, generator=g), dim=1)
    sets = np.array(["id"] * 12 + ["a"] * 8)

    def column(thres):
        with torch.no_grad():
            at = fp.model_copy(update={"tins": fp.tins.model_copy(update={"thres": thres})})
            cols = family.stream_scores(img, sets, feats, at, model, tok)
        assert list(cols) == ["tins@a@o0"] and np.isfinite(cols["tins@a@o0"]).all()
        return cols["tins@a@o0"]

    plain = tins.grouped_score(img, feats["id"], feats["tins_neg"], groups=4).numpy()  # groups: min(5, 4)
    assert np.allclose(column(0.0), plain, atol=1e-6)  # nothing below 0: no inversion
    every = column(1.0)
    assert not np.allclose(every, plain, atol=1e-4)  # every image inverted: the bank joins the negatives
    make = family.steppers(feats, fp.model_copy(update={"tins": fp.tins.model_copy(update={"thres": 1.0})}), model)
    id_s, ood_s = stream.run(img[:12], img[12:], make["tins"], 0, 8)
    assert np.allclose(np.concatenate([id_s.numpy(), ood_s.numpy()]), every, atol=1e-6)
    with pytest.raises(NegPromptError, match="tins: its stream needs the CLIP model"):
        family.stream_scores(img, sets, feats, fp)
    with pytest.raises(NegPromptError, match="no TINS candidates.*re-run the neglabel stage with tins"):
        family.tins_features({k: v for k, v in feats.items() if k != "tins_slot"}, shots, labels, 4, model)
