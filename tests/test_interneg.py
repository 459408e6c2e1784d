"""InterNeg: the inter-modal selection rule on hand-made vectors, the inversion through the tiny random CLIP's text
tower, the bank's cap and ranking, the official grouping, and the stream stepper."""

import math

import pytest
import torch
import torch.nn.functional as F

from negprompt import NegPromptError
from negprompt.methods import interneg, neglabel, stream

R = 1 / math.sqrt(2)


def unit(*v):
    return F.normalize(torch.tensor(v, dtype=torch.float32), dim=-1)


@pytest.fixture()
def two_classes():
    """p_1 = e1, p_2 = e2; T_c = (p_c + e3)/√2, so cos(T_c, p_c) = 1/√2 for both classes."""
    protos = torch.stack([unit(1, 0, 0), unit(0, 1, 0)])
    id_feats = torch.stack([unit(1, 0, 1), unit(0, 1, 1)])
    return id_feats, protos, interneg.base_distance(id_feats, protos)


def test_base_distance_and_prototypes():
    feats = torch.tensor([[2.0, 0.0], [0.0, 3.0], [0.0, 1.0], [0.0, -1.0]])  # class 1: e2, e2, -e2 -> mean e2/3
    protos = interneg.class_prototypes(feats, torch.tensor([0, 1, 1, 1]), 2)
    assert torch.allclose(protos, torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    assert torch.allclose(interneg.base_distance(unit(1, 1)[None], unit(1, 0)[None]), torch.tensor([R]))
    with pytest.raises(NegPromptError, match=r"no image for \[2\]"):
        interneg.class_prototypes(feats, torch.tensor([0, 1, 1, 1]), 3)


def test_selection_keeps_only_words_closer_to_no_prototype_than_its_text_and_ranks_by_mean_margin(two_classes):
    id_feats, protos, base = two_classes
    cand = torch.stack(
        [
            unit(0, 0, 1),  # cos 0, 0: margins R, R -> mean R
            unit(1, 0, 0),  # cos(p_1) = 1 > R: out
            unit(1, 0, 2),  # cos(p_1) = 1/√5 < R, cos(p_2) = 0: mean (R - 1/√5 + R)/2
            unit(-1, 0, 0),  # cos -1, 0: mean (R + 1 + R)/2, the largest
            unit(0, 1, 0.5),  # cos(p_2) = 2/√5 > R: out
        ]
    )
    keep, margin = interneg.inter_modal_margin(cand, protos, base)
    assert keep.tolist() == [True, False, True, True, False]
    assert margin[0] == pytest.approx(R) and margin[3] == pytest.approx(R + 0.5)
    assert margin[2] == pytest.approx(R - 0.5 / math.sqrt(5))
    assert interneg.select_negatives(cand, protos, base, 2).tolist() == [3, 0]
    assert interneg.select_negatives(cand, protos, base, 10).tolist() == [3, 0, 2]  # only 3 survive


def test_selection_shares_the_count_between_parts_as_the_official_int_split(two_classes):
    _, protos, base = two_classes
    # 3 adjectives and 5 nouns survive (margins rise with the index); count 4: adj int(4·3/8) = 1, nouns 3
    cand = torch.stack([unit(-0.1 * i, 0, 1) for i in range(8)])
    parts = ["adj", "noun", "adj", "noun", "noun", "adj", "noun", "noun"]
    got = interneg.select_negatives(cand, protos, base, 4, parts).tolist()
    assert got == [5, 7, 6, 4]


def test_grouped_score_is_the_official_drop_then_permute_grouping():
    g = torch.Generator().manual_seed(1)
    img, id_feats, negs = (F.normalize(torch.randn(n, 8, generator=g), dim=-1) for n in (4, 3, 11))
    got = interneg.grouped_score(img, id_feats, negs, groups=3, logit_scale=100.0)
    # official L242-266: logits, drop the last 11 mod 3 = 2 negative columns, permute (torch.manual_seed(0)), reshape
    pos, neg = 100 * img @ id_feats.T, (100 * img @ negs.T)[:, :-2]
    torch.manual_seed(0)
    idx = torch.randperm(neg.shape[1])
    neg = neg.T[idx].T.reshape(4, 3, -1)
    want = torch.stack([torch.cat([pos, neg[:, i]], 1).softmax(-1)[:, :3].sum(-1) for i in range(3)], -1).mean(-1)
    assert torch.allclose(got, want, atol=1e-6)


def test_inversion_raises_image_text_cosine_and_leaves_clip_untouched(tiny_clip):
    model, tok = tiny_clip
    before = {k: v.clone() for k, v in model.state_dict().items()}
    img = F.normalize(torch.randn(4, 128, generator=torch.Generator().manual_seed(0)), dim=-1)
    inv = interneg.invert(model, tok, img, steps=10, lr=2e-2, generator=torch.Generator().manual_seed(0))
    assert inv.feats.shape == (4, 128) and torch.allclose(inv.feats.norm(dim=-1), torch.ones(4))
    assert len(inv.losses) == 10 and inv.losses[-1] < inv.losses[0]
    final = 1 - F.cosine_similarity(inv.feats, img).mean()
    assert final < inv.losses[0]
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())


def test_inversion_with_each_templates_words_before_the_pseudo_token_cached_is_the_full_templates(
    tiny_clip, monkeypatch
):
    """The words before "$" run once per template (their keys and values cached); each step runs "$" to EOT. The
    templates put "$" at 8 different places, so the cached prefixes have different lengths: the features, losses
    and gradients equal the whole template's run each step, up to float rounding."""
    from negprompt.clip.prompts import TextTower

    model, tok = tiny_clip
    img = F.normalize(torch.randn(40, 128, generator=torch.Generator().manual_seed(3)), dim=-1)

    def run():
        return interneg.invert(model, tok, img, steps=3, generator=torch.Generator().manual_seed(0))

    assert TextTower(model).supports_shared_prefix()
    cached = run()
    monkeypatch.setattr(TextTower, "supports_shared_prefix", lambda self: False)
    full = run()
    assert torch.allclose(cached.feats, full.feats, atol=1e-5)
    assert cached.losses == pytest.approx(full.losses, abs=1e-6)


def test_inversion_is_deterministic_for_a_seed(tiny_clip):
    model, tok = tiny_clip
    img = F.normalize(torch.randn(3, 128, generator=torch.Generator().manual_seed(2)), dim=-1)

    def run(seed):
        return interneg.invert(model, tok, img, steps=2, generator=torch.Generator().manual_seed(seed)).feats

    assert torch.equal(run(0), run(0))
    assert not torch.equal(run(0), run(1))


def test_bank_keeps_passing_features_best_margin_first_and_respects_its_cap(two_classes):
    _, protos, base = two_classes
    bank = interneg.empty_bank(3)
    first = torch.stack([unit(-0.1, 0, 1), unit(1, 0, 0), unit(-0.3, 0, 1)])  # the middle one fails the test
    bank = interneg.update_bank(bank, first, protos, base, size=3)
    assert len(bank.feats) == 2 and torch.equal(bank.feats[0], first[2])
    second = torch.stack([unit(-0.2, 0, 1), unit(-0.5, 0, 1), unit(0, 0, 1)])
    bank = interneg.update_bank(bank, second, protos, base, size=3)
    assert len(bank.feats) == 3  # 5 pass, the cap keeps 3
    assert torch.equal(bank.feats, torch.stack([second[1], first[2], second[0]]))
    assert (bank.margin[:-1] >= bank.margin[1:]).all()


def stream_inputs(n_id=12, n_ood=12, d=128):
    g = torch.Generator().manual_seed(3)
    id_text = F.normalize(torch.randn(3, d, generator=g), dim=-1)
    protos = F.normalize(id_text + 0.5 * torch.randn(3, d, generator=g), dim=-1)
    negs = F.normalize(torch.randn(10, d, generator=g), dim=-1)
    id_img = F.normalize(id_text.repeat(n_id // 3, 1) + 0.3 * torch.randn(n_id, d, generator=g), dim=-1)
    ood_img = F.normalize(torch.randn(n_ood, d, generator=g), dim=-1)
    return id_text, negs, protos, id_img, ood_img


def test_stepper_without_confident_ood_is_the_grouped_neglabel_score(tiny_clip):
    model, tok = tiny_clip
    id_text, negs, protos, id_img, ood_img = stream_inputs()
    make = lambda: interneg.stepper(model, tok, id_text, negs, protos, thres=0.0, groups=5)  # noqa: E731
    id_s, ood_s = stream.run(id_img, ood_img, make, seed=0, batch_size=8)
    want = neglabel.score(torch.cat([id_img, ood_img]) @ id_text.T, torch.cat([id_img, ood_img]) @ negs.T, 0.01, 5)
    assert torch.allclose(torch.cat([id_s, ood_s]), want, atol=1e-6)


def test_stepper_grows_a_capped_bank_and_is_deterministic(tiny_clip):
    model, tok = tiny_clip
    id_text, negs, protos, id_img, ood_img = stream_inputs()
    states = []

    def make():
        step = interneg.stepper(model, tok, id_text, negs, protos, thres=1.01, bank_size=4, groups=2, steps=2)
        states.append(step)
        return step

    a = stream.run(id_img, ood_img, make, seed=0, batch_size=8)
    b = stream.run(id_img, ood_img, make, seed=0, batch_size=8)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert all(((s >= 0) & (s <= 1)).all() for s in a)
    state, imgs = interneg.new_state(id_text, negs, protos), torch.cat([id_img, ood_img])
    for start in range(0, 24, 8):
        got = interneg.step(state, imgs[start : start + 8], model, tok, 1.01, 4, 2, steps=2)
        # every image was inverted; the batch is scored again with the bank its inversions updated (official L327-355)
        bank = torch.cat([negs, state.bank.feats])
        assert torch.allclose(got, interneg.grouped_score(imgs[start : start + 8], id_text, bank, 2), atol=1e-6)
    assert 0 < len(state.bank.feats) <= 4


def test_the_placeholder_is_the_official_dollar_token(tiny_clip):
    _, tok = tiny_clip
    assert len(interneg.TEMPLATES) == 80 and interneg.TEMPLATES[0] == "a bad photo of a {}."
    assert 259 in tok([interneg.TEMPLATES[1].format(interneg.PLACEHOLDER)])[0].tolist()  # official L164: token 259


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"bank_size": 0}, "bank_size"),
        ({"bank_size": -3}, "bank_size"),
        ({"steps": 0}, "steps"),
        ({"lr": 0.0}, "lr"),
        ({"lr": -1e-3}, "lr"),
        ({"groups": 0}, "groups"),
        ({"groups": 11}, "groups"),
    ],
)
def test_bad_parameters_name_themselves(kwargs, name):
    id_text, negs, protos, _, _ = stream_inputs()
    with pytest.raises(NegPromptError, match=rf"^interneg\.{name} = "):
        interneg.stepper(None, None, id_text, negs, protos, **kwargs)


def test_bad_inversion_and_selection_parameters(tiny_clip, two_classes):
    model, tok = tiny_clip
    img = torch.randn(2, 128)
    for kwargs, name in (({"steps": 0}, "steps"), ({"lr": 0}, "lr"), ({"weight_decay": -1.0}, "weight_decay")):
        with pytest.raises(NegPromptError, match=rf"^interneg\.{name} = "):
            interneg.invert(model, tok, img, **kwargs)
    _, protos, base = two_classes
    with pytest.raises(NegPromptError, match=r"^interneg\.bank_size = 0"):
        interneg.update_bank(interneg.empty_bank(3), torch.zeros(1, 3), protos, base, size=0)
    with pytest.raises(NegPromptError, match=r"^interneg\.num_labels = 0"):
        interneg.select_negatives(torch.zeros(1, 3), protos, base, 0)
