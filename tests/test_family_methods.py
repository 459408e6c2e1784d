"""CSP, AdaNeg, TANL and the test stream: hand-computed cases and the official code's behaviour (docs/methods.md)."""

import math
import random

import pytest
import torch
import torch.nn.functional as F

from negprompt import NegPromptError
from negprompt.methods import adaneg, csp, neglabel, stream, tanl

E = torch.eye(6)


# ---------- the stream ----------


def test_stream_order_is_a_seeded_permutation_and_scores_come_back_in_input_order():
    idf, oodf = torch.randn(300, 4), torch.randn(200, 4)
    p = stream.order(300, 200, seed=1)
    assert sorted(p.tolist()) == list(range(500)) and torch.equal(p, stream.order(300, 200, seed=1))
    assert not torch.equal(p, stream.order(300, 200, seed=2))
    id_s, ood_s = stream.run(idf, oodf, lambda: lambda x: x[:, 0], seed=3)  # a memoryless score: order-free
    assert torch.equal(id_s, idf[:, 0]) and torch.equal(ood_s, oodf[:, 0])


def test_stream_batches_of_256_last_one_partial_and_a_fresh_memory_per_run():
    sizes, made = [], []

    def make():
        made.append(1)
        return lambda x: (sizes.append(len(x)), torch.zeros(len(x)))[1]

    stream.run(torch.zeros(600, 2), torch.zeros(100, 2), make, seed=0)
    assert sizes == [256, 256, 188] and len(made) == 1
    stream.run(torch.zeros(600, 2), torch.zeros(100, 2), make, seed=0)
    assert len(made) == 2  # memory reset for each OOD set (fsood_evaluator_clip.py L366)


@pytest.mark.parametrize("bad", [0, -3])
def test_stream_batch_size_must_be_positive(bad):
    with pytest.raises(NegPromptError, match="stream.batch_size"):
        stream.run(torch.zeros(3, 2), torch.zeros(2, 2), lambda: lambda x: x[:, 0], seed=0, batch_size=bad)


def test_stream_spread_over_orders():
    g = torch.Generator().manual_seed(0)
    idf, oodf = torch.randn(50, 3, generator=g) + 1, torch.randn(40, 3, generator=g)
    sp = stream.spread(idf, oodf, lambda: lambda x: x.sum(1), seeds=(0, 1, 2), batch_size=16)
    ms = sp.mean_std()
    assert sp.seeds == (0, 1, 2) and ms["auroc_std"] == 0.0 and 50 < ms["auroc"] <= 100  # memoryless: no spread


# ---------- AdaNeg ----------


def test_adaneg_thresholds_are_075_and_025_of_the_neglabel_score():
    p = adaneg.PAPER
    assert p["thres"] + p["gap"] * (1 - p["thres"]) == 0.75 and p["thres"] - p["gap"] * p["thres"] == 0.25
    mem = adaneg.new_memory(E[:2], E[2:4], slots=3)
    x = torch.stack([E[0], E[3], F.normalize(E[0] + E[2], dim=0)])  # confident ID, confident OOD, S = 0.5
    adaneg.step(mem, x, groups=1)
    assert mem.count.tolist() == [2, 1, 1, 2]  # class 0 and negative 1 (row 3) got one image, the tie none
    assert torch.equal(mem.feats[0, 1], E[0]) and torch.equal(mem.feats[3, 1], E[3])


def test_adaneg_memory_fills_l_minus_1_slots_then_replaces_the_highest_entropy():
    mem = adaneg.new_memory(E[:1], E[1:2], slots=3)
    feats = [F.normalize(torch.rand(6), dim=0) for _ in range(4)]
    adaneg.write(mem, 0, feats[0], 0.5)
    adaneg.write(mem, 0, feats[1], 0.9)
    assert mem.count[0] == 3 and torch.equal(mem.feats[0, 3], torch.zeros(6))  # full: slot 3 stays empty (L825)
    adaneg.write(mem, 0, feats[2], 0.95)  # higher than every stored entropy: dropped
    assert torch.equal(mem.feats[0, 2], feats[1])
    adaneg.write(mem, 0, feats[3], 0.7)  # lower than 0.9: replaces the 0.9 slot
    assert torch.equal(mem.feats[0, 2], feats[3]) and mem.entropy[0].tolist() == pytest.approx([0, 0.5, 0.7, 0])
    assert torch.equal(mem.feats[0, 0], E[0])  # the text feature is never replaced (entropy 0)


def test_adaneg_score_by_hand():
    """One ID label e0, one negative e1, s = 10, one group, λ = 0.1: an image x = (0.8, 0, 0.6) is confident ID,
    so class 0's proxy becomes normalise(e0 + x) before the batch is scored."""
    x = torch.tensor([[0.8, 0.0, 0.6, 0, 0, 0]])
    mem = adaneg.new_memory(E[:1], E[1:2], slots=10)
    got = adaneg.step(mem, x, groups=1, logit_scale=10.0)
    s_vanilla = math.exp(8) / (math.exp(8) + 1)
    p0 = F.normalize(E[0] + x[0], dim=0)
    cos_p0 = float(x[0] @ p0)
    s_ada = math.exp(10 * cos_p0) / (math.exp(10 * cos_p0) + 1)
    assert got.item() == pytest.approx(s_ada + 0.1 * s_vanilla, rel=1e-6)


def test_adaneg_sample_adaptive_proxies_match_the_official_construction():
    g = torch.Generator().manual_seed(0)
    mem = adaneg.new_memory(
        F.normalize(torch.randn(3, 6, generator=g), dim=1), F.normalize(torch.randn(4, 6, generator=g), dim=1), slots=4
    )
    for k in range(7):
        for _ in range(2):
            adaneg.write(mem, k, F.normalize(torch.randn(6, generator=g), dim=0), 0.3)
    img = F.normalize(torch.randn(5, 6, generator=g), dim=1)
    w = torch.exp(-5 * (1 - torch.einsum("nd,kjd->nkj", img, mem.feats)))  # L873
    sa = F.normalize((w[..., None] * mem.feats[None]).sum(2), dim=-1)  # L881-883: [N, K, d]
    expected = 100 * (img[:, None] * sa).sum(-1)  # L900
    assert torch.allclose(adaneg.sample_adaptive_logits(img, mem, 5, 100.0), expected, atol=1e-4)


def test_adaneg_uses_neglabels_grouped_score():
    g = torch.Generator().manual_seed(1)
    idf, neg = F.normalize(torch.randn(4, 8, generator=g), dim=1), F.normalize(torch.randn(10, 8, generator=g), dim=1)
    img = F.normalize(torch.randn(6, 8, generator=g), dim=1)
    mem = adaneg.new_memory(idf, neg)
    got = adaneg.step(mem, img, thres=0.5, gap=1.0)  # gap 1: thresholds 1 and 0, nothing stored
    s = neglabel.score(img @ idf.T, img @ neg.T, 0.01, 5)
    assert mem.count.eq(1).all() and torch.allclose(got, 1.1 * s, atol=1e-6)


# ---------- TANL ----------


def test_tanl_otsu_threshold_middle_of_the_tied_minima():
    assert tanl.otsu_threshold(torch.tensor([0.1, 0.1, 0.9, 0.9])) == pytest.approx(0.51)  # ties at 0.11..0.90
    s = torch.cat([torch.full((30,), 0.2), torch.full((10,), 0.3), torch.full((60,), 0.8)])
    assert tanl.otsu_threshold(s) == pytest.approx(0.56)  # the same split for 0.31..0.80: the middle one
    assert tanl.otsu_threshold(torch.full((5,), 0.4)) == pytest.approx(0.5)  # one class at every th: all infinite


def test_tanl_activation_aware_score_by_hand():
    z = torch.tensor([[1.0, 0.0, 2.0]])  # one ID logit, two negatives
    e = [math.exp(v) for v in (1.0, 0.0, 2.0)]
    assert tanl.activation_aware(z, 1, 0).item() == pytest.approx(e[0] / sum(e))
    both = (e[0] / (e[0] + e[1]) + e[0] / sum(e)) / 2  # j = 1, 2
    assert tanl.activation_aware(z, 1, 1).item() == pytest.approx(both)
    assert tanl.activation_aware(z, 1, 2).item() == pytest.approx(e[0] / sum(e))  # j = 2 only


def test_tanl_activates_the_batchs_negatives():
    """ID e0; candidates e1, e2, e3; β = 1; noise e1, so the queue's negative is e1. The batch has an ID image e0, an
    OOD-like image mostly e3 and an image x3 ID-like against e1 but mostly e3: the batch's OOD-like image activates
    e3, and x3 drops from ≈1 to ≈0."""
    x = torch.stack([E[0], 0.6 * E[1] + 0.8 * E[3], 0.6 * E[0] + 0.8 * E[3]])
    st = tanl.new_state(E[:1], E[1:4], E[1:2], beta=1)
    assert tanl.top_negatives(st.q_neg.mean(0) - st.q_pos.mean(0), 1).tolist() == [0]  # e1 first
    r_with_e1 = tanl.activation_aware(100 * x @ torch.stack([E[0], E[1]]).T, 1)
    assert r_with_e1[2] > 0.99
    got = tanl.step(st, x, beta=1)
    assert got[0] > 0.99 and got[1] < 1e-6 and got[2] < 1e-6
    assert len(st.q_pos) == 1 + 2 and len(st.q_neg) == 1 + 1 and len(st.scores) == 2 + 3  # queues grew


def test_tanl_step_follows_the_official_rule_on_random_features():
    g = torch.Generator().manual_seed(0)
    idf = F.normalize(torch.randn(5, 16, generator=g), dim=1)
    cand = F.normalize(torch.randn(40, 16, generator=g), dim=1)
    noise = F.normalize(torch.randn(15, 16, generator=g), dim=1)
    img = F.normalize(torch.randn(32, 16, generator=g), dim=1)
    st = tanl.new_state(idf, cand, noise, beta=10, memory=8)
    assert len(st.q_pos) == 5 and len(st.q_neg) == 8 and len(st.scores) == 20  # noise queue cut to memory (L430)
    before = (st.q_pos.clone(), st.q_neg.clone(), st.scores.clone())
    got = tanl.step(st, img, beta=10, memory=8)
    labels = torch.cat([idf, cand])
    act = torch.softmax(100 * img @ labels.T, 1)[:, 5:]
    n0 = torch.sort(-(before[1].mean(0) - before[0].mean(0)), stable=True).indices[:10]
    r = torch.softmax(100 * img @ torch.cat([idf, cand[n0]]).T, 1)[:, :5].sum(1)
    th = tanl.otsu_threshold(torch.cat([before[2], r]))
    is_id, is_ood = r > th + 0.5 * (1 - th), r < th - 0.5 * th
    pos = act[is_id].mean(0) if is_id.any() else before[0].mean(0)
    neg = act[is_ood].mean(0) if is_ood.any() else before[1].mean(0)
    nb = torch.sort(-(neg - pos), stable=True).indices[:10]
    expected = torch.softmax(100 * img @ torch.cat([idf, cand[nb]]).T, 1)[:, :5].sum(1)
    assert torch.allclose(got, expected, atol=1e-6)


def test_tanl_noise_images_and_their_count():
    x = tanl.noise_images(15, size=8, seed=0)
    assert x.shape == (15, 3, 8, 8) and x.min() >= 0 and x.max() <= 1
    assert set(x[12:].unique().tolist()) <= {0.0, 1.0}  # salt and pepper
    assert torch.equal(x, tanl.noise_images(15, size=8, seed=0))
    assert tanl.noise_images(7, size=4).shape[0] == 7
    for bad in (0, -1):
        with pytest.raises(NegPromptError, match="tanl.noise_images"):
            tanl.noise_images(bad)
    with pytest.raises(NegPromptError, match="tanl.noise_images"):
        tanl.new_state(E[:1], E[1:3], torch.empty(0, 6))


# ---------- CSP ----------


def test_csp_conjugates_with_pythons_random_seed_0():
    adjs = ["red", "quiet", "wooden", "vast", "striped"]
    random.seed(0)  # as the official code does (multi_modal.py L88, L111)
    expected = [random.choice(csp.CONJUGATES).format(a) for a in adjs]
    assert csp.conjugate(adjs, seed=0) == expected and len(csp.CONJUGATES) == 14
    assert all(p.startswith(a + " ") for p, a in zip(expected, adjs))


def test_csp_closeness_is_one_above_095_else_the_95th_percentile():
    idf = E[:3]
    cand = F.normalize(
        torch.tensor(
            [
                [1.0, 0, 0, 0.1, 0, 0],  # cos 0.995 to ID 0: q = 1
                [0, 0, 0, 1.0, 0, 0],
                [0.3, 0.2, 0.1, 1.0, 0, 0],
            ]
        ),
        dim=1,
    )
    q = csp.closeness(cand, idf)
    assert q[0] == 1.0 and q[1] == 0.0
    assert q[2].item() == pytest.approx(torch.quantile(cand[2] @ idf.T, 0.95).item())


def test_csp_keeps_the_lowest_15_percent_of_each_part_separately():
    g = torch.Generator().manual_seed(0)
    idf = F.normalize(torch.randn(4, 8, generator=g), dim=1)
    nouns = F.normalize(torch.randn(20, 8, generator=g), dim=1)
    adjs = F.normalize(torch.randn(7, 8, generator=g) + 2 * idf[0], dim=1)  # every phrase near ID: still 1 kept
    m = csp.mine(idf, nouns, adjs, [f"n{i}" for i in range(20)], [f"a{i}" for i in range(7)])
    assert m.parts == ["noun"] * 3 + ["adj"] * 1  # int(20 * 0.15), int(7 * 0.15)
    qn = csp.closeness(nouns, idf)
    assert m.words[:3] == [f"n{i}" for i in torch.sort(qn, stable=True).indices[:3].tolist()]
    assert m.words[3] == f"a{int(torch.argmin(csp.closeness(adjs, idf)))}"
    img = F.normalize(torch.randn(5, 8, generator=g), dim=1)
    assert torch.allclose(csp.score(img, m, groups=2), neglabel.score(img @ idf.T, img @ m.neg_feats.T, 0.01, 2))


def test_csp_empty_corpus_is_an_error():
    with pytest.raises(NegPromptError, match="empty corpus for CSP .neglabel.corpus"):
        csp.mine_corpus(None, None, ["a"], neglabel.Corpus({"noun": [], "adj": []}, "x.txt"))


# ---------- the family on one benchmark, the registry, the leaderboard ----------


def test_stream_scores_fill_id_and_one_set_per_column():
    import numpy as np

    from negprompt.config import FamilyParams
    from negprompt.methods import family

    g = torch.Generator().manual_seed(0)
    idf, neg = F.normalize(torch.randn(3, 8, generator=g), dim=1), F.normalize(torch.randn(10, 8, generator=g), dim=1)
    img = F.normalize(torch.randn(30, 8, generator=g), dim=1)
    sets = np.array(["id"] * 20 + ["a"] * 6 + ["b"] * 4)
    fp = FamilyParams(methods=["adaneg"], stream_orders=[0, 1], stream_batch_size=8)
    cols = family.stream_scores(img, sets, {"id": idf, "neg": neg}, fp)
    assert sorted(cols) == ["adaneg@a@o0", "adaneg@a@o1", "adaneg@b@o0", "adaneg@b@o1"]
    c = cols["adaneg@a@o0"]
    assert np.isfinite(c[:26]).all() and np.isnan(c[26:]).all()


def test_leaderboard_stream_entries_kendall_and_disagreeing_pairs():
    import pandas as pd

    from negprompt.report import leaderboard

    t = pd.DataFrame(
        {"set": ["id"] * 4 + ["x"] * 2, "adaneg@x@o0": [1, 2, 3, 4, 0, 0.5], "adaneg@x@o1": [1, 2, 3, 4, 0, 3.5]}
    )
    e = leaderboard.stream_entries(t, "adaneg")
    assert e["orders"] == [0, 1] and e["ood"]["x"]["auroc"] == pytest.approx((100 + 62.5) / 2)
    assert e["ood"]["x"]["auroc_std"] == pytest.approx(18.75)
    # order 0 separates ID from OOD: both FPR95s are 0; order 1's OOD 3.5 sits between ID 3 and 4: 50% of OOD
    # accepted at 95% ID recall, and 95% OOD recall needs the threshold at 3.5, rejecting 3 of 4 ID images
    assert e["ood"]["x"]["fpr95"] == pytest.approx(25) and e["ood"]["x"]["fpr95_openood"] == pytest.approx(37.5)
    assert e["average"]["fpr95_openood_std"] == pytest.approx(37.5)
    avg = {"mcm": {"auroc": 80.0}, "neglabel": {"auroc": 78.0}, "csp": {"auroc": 90.0}, "msp": {"auroc": 81.0}}
    r = leaderboard.rank_agreement(avg)  # published: MCM < NegLabel < CSP; MSP has no figure
    assert r["methods"] == ["mcm", "neglabel", "csp"] and r["tau"] == pytest.approx(1 / 3, abs=1e-4)
    assert r["disagree"] == [("mcm", "neglabel")]
    assert leaderboard.published("tanl").auroc is None and leaderboard.published("tanl").fpr95 == 9.8
    assert leaderboard.published("cosine_gap").source == "your method (registry)"


def test_registry_register_score_and_errors(tmp_path):
    from negprompt.methods import registry

    ctx = registry.Context(None, None, ["a", "b"], E[:2], 100.0, "a photo of a {}.")
    plugin = tmp_path / "cosine_gap.py"
    plugin.write_text(
        "from negprompt.methods import registry\n"
        "def gap(img, ctx):\n    s = img @ ctx.zero_shot.T\n    return s.max(1).values - s.mean(1)\n"
        "registry.register('cosine_gap', gap, 'Cosine gap')\n"
    )
    try:
        assert registry.load_plugins([plugin.name], root=tmp_path) == ["cosine_gap"]
        out = registry.score_all(E[:3], ctx)
        assert out["cosine_gap"].tolist() == pytest.approx([0.5, 0.5, 0.0])
    finally:
        registry.unregister("cosine_gap")
    for bad in ("MCM", "", "csp"):
        with pytest.raises(NegPromptError, match="method name"):
            registry.register(bad, lambda img, ctx: img[:, 0])
    with pytest.raises(NegPromptError, match="kind 'online'"):
        registry.register("mine", lambda img, ctx: img[:, 0], kind="online")
    with pytest.raises(NegPromptError, match="family.plugins"):
        registry.load_plugins(["missing.py"], root=tmp_path)


def test_the_docs_example_method_runs_as_written(tmp_path):
    """docs/add-a-method.md's example, on the shipped stand-in's text tower and a few fake image features."""
    import re
    from pathlib import Path

    from negprompt.clip.backbone import load_backbone
    from negprompt.clip.prompts import encode_texts
    from negprompt.methods import registry

    root = Path(__file__).resolve().parents[1]
    blocks = re.findall(r"```python\n(.*?)```", (root / "docs/add-a-method.md").read_text(), re.S)
    example = next(b for b in blocks if 'registry.register("generic_neg"' in b)
    assert example == (root / "docs/examples/generic_neg.py").read_text()  # the page shows the shipped file
    assert 25 <= len(example.strip().splitlines()) <= 35
    (tmp_path / "generic_neg.py").write_text(example)
    bb = load_backbone("openmoji-tiny", root / "weights/openmoji-tiny.safetensors")
    names = ["dog", "cat", "apple"]
    zs = encode_texts(bb.model, bb.tokenizer, [f"a photo of a {n}." for n in names]).cpu()
    try:
        assert registry.load_plugins(["generic_neg.py"], root=tmp_path) == ["generic_neg"]
        ctx = registry.Context(bb.model, bb.tokenizer, names, zs, 100.0, "a photo of a {}.")
        noise = torch.randn(4, zs.shape[1], generator=torch.Generator().manual_seed(0))
        img = torch.cat([zs, F.normalize(noise, dim=1)])
        s = registry.score_all(img, ctx)["generic_neg"]
        assert s.shape == (7,) and ((s > 0) & (s < 1)).all()
        assert s[:3].min() > s[3:].max()  # an ID prompt's own feature is more ID than random directions
    finally:
        registry.unregister("generic_neg")


@pytest.mark.parametrize(
    "key, value, match",
    [
        ("stream_batch_size", 0, "family.stream_batch_size"),
        ("tanl", {"noise_images": 0}, "family.tanl.noise_images"),
        ("adaneg", {"thres": 2}, "family.adaneg.thres"),
        ("tanl_noise_images", 0, "family.tanl_noise_images is now family.tanl.noise_images"),
        ("adaneg_lambda", 0.2, "family.adaneg_lambda is now family.adaneg.lam"),
        ("methods", ["csp", "maxneg"], "family.methods.*unknown method 'maxneg'"),
        ("interneg", {"bank_size": 0}, r"^params.yaml: family.interneg.bank_size = 0: .*greater than 0$"),
        ("interneg", {"steps": -1}, r"^params.yaml: family.interneg.steps = -1: .*greater than 0$"),
        ("interneg", {"lr": 0}, r"^params.yaml: family.interneg.lr = 0: .*greater than 0$"),
        ("interneg", {"num_labels": 0}, r"family.interneg.num_labels = 0"),
        ("interneg", {"thres": 1.5}, r"family.interneg.thres = 1.5"),
    ],
)
def test_family_params_bad_input_names_the_parameter(key, value, match):
    from negprompt.config import validate

    with pytest.raises(NegPromptError, match=match):
        validate({"family": {key: value}})
    assert validate({}).family.methods == ["csp", "adaneg", "tanl", "interneg"]


def test_interneg_is_wired_from_the_mined_candidates_to_its_stream_columns(tiny_clip):
    """The neglabel stage's part of InterNeg (every candidate with its part, the ID texts), the score stage's
    (prototypes, inter-modal selection) and its stream columns, on the tiny random CLIP."""
    import numpy as np

    from negprompt.clip.prompts import encode_texts
    from negprompt.config import FamilyParams, NegLabelParams
    from negprompt.methods import family, interneg

    model, tok = tiny_clip
    names = ["cat", "dog", "fish"]
    corpus = neglabel.Corpus({"noun": ["car", "tree", "cat", "house", "cloud", "boat"], "adj": ["red", "tall"]}, "t")
    fp = FamilyParams(
        methods=["interneg"], stream_orders=[0], stream_batch_size=8, interneg={"num_labels": 4, "steps": 2}
    )
    tpl = family.templates("standin", "a photo of a {}.")
    feats, info = family.mine(model, tok, names, corpus, corpus, fp, NegLabelParams(), tpl, None)
    assert set(feats) == {"id", "cand", "cand_part"} and info == {}
    assert feats["cand"].shape == (7, 128) and feats["cand_part"].tolist() == [0] * 5 + [1] * 2  # "cat" removed
    assert torch.allclose(feats["id"][1], encode_texts(model, tok, ["a photo of a dog."])[0], atol=1e-5)

    # prototypes on the ID texts: cos(T_c, p_c) = 1, so every candidate passes and the count is shared 5 : 2
    shots, labels = feats["id"].repeat(2, 1), torch.tensor([0, 1, 2] * 2)
    got = family.interneg_features(feats, shots, labels, fp.interneg.num_labels)
    base = interneg.base_distance(feats["id"], got["interneg_protos"])
    assert torch.allclose(got["interneg_protos"], feats["id"]) and torch.allclose(base, torch.ones(3))
    want = interneg.select_negatives(feats["cand"], feats["id"], base, 4, ["noun"] * 5 + ["adj"] * 2)
    assert got["interneg_index"].tolist() == want.tolist() and len(want) == 4
    assert (got["interneg_index"] >= 5).sum() == 1  # int(4 · 2/7) = 1 adjective
    feats |= got

    g = torch.Generator().manual_seed(0)
    img = F.normalize(torch.randn(20, 128, generator=g), dim=1)
    sets = np.array(["id"] * 12 + ["a"] * 8)

    def column(thres):
        with torch.no_grad():  # as the score stage runs it: the inversion still gets its gradients
            at = fp.model_copy(update={"interneg": fp.interneg.model_copy(update={"thres": thres})})
            cols = family.stream_scores(img, sets, feats, at, model, tok)
        assert list(cols) == ["interneg@a@o0"] and np.isfinite(cols["interneg@a@o0"]).all()
        return cols["interneg@a@o0"]

    plain = interneg.grouped_score(img, feats["id"], feats["interneg_neg"], groups=4).numpy()  # groups: min(5, 4)
    assert np.allclose(column(0.0), plain, atol=1e-6)  # nothing below 0: no inversion, NegLabel's grouped score
    assert not np.allclose(column(1.0), plain, atol=1e-4)  # every image inverted: the bank joins the negatives
    assert family.stream_scores(img, sets, {k: v for k, v in feats.items() if k != "interneg_neg"}, fp) == {}
    with pytest.raises(NegPromptError, match="needs the CLIP model"):
        family.stream_scores(img, sets, feats, fp)
    with pytest.raises(NegPromptError, match="no InterNeg candidates.*re-run the neglabel stage"):
        family.interneg_features({"id": feats["id"]}, shots, labels, 4)
    far = -feats["cand"][:3]  # prototypes opposite to three candidates: their own texts are the farthest words
    with pytest.raises(NegPromptError, match="none of the 7 candidates .* drop interneg from family.methods"):
        family.interneg_features(feats | {"id": far}, feats["cand"][:3], torch.arange(3), 4)
