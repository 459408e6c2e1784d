import open_clip
import pytest
import torch

from negprompt.clip.prompts import PromptEncoder, TextTower, init_context
from negprompt.methods.train import stage2_loss

NAMES = ["crimson star", "teal ring", "great white shark", "x"]


def _check_equivalence(model, tokenizer):
    tower = TextTower(model)
    ctx = init_context(tower, tokenizer, "a photo of a", 16)
    assert ctx.shape[0] == 4
    enc = PromptEncoder(model, tokenizer, NAMES, n_ctx=4)
    with torch.no_grad():
        ours = enc(ctx, normalize=False)
        ref = model.encode_text(tokenizer([f"a photo of a {n}." for n in NAMES]))
    assert enc.prefix.shape[1] + 4 + enc.suffix.shape[1] < tokenizer.context_length  # truncated
    assert (ours - ref).abs().max().item() <= 1e-5


def test_features_equal_encode_text_tiny(tiny_clip):
    _check_equivalence(*tiny_clip)


@pytest.mark.parametrize("name", ["ViT-B-16", "RN50"])
def test_features_equal_encode_text_real_architectures(name):
    torch.manual_seed(0)
    model = open_clip.create_model(name).eval()
    _check_equivalence(model, open_clip.get_tokenizer(name))


def test_random_init_and_multiple_contexts(tiny_clip):
    model, tok = tiny_clip
    ctx = init_context(TextTower(model), tok, "", 16, torch.Generator().manual_seed(0))
    assert ctx.shape == (16, 128) and 0.015 < ctx.std().item() < 0.025
    enc = PromptEncoder(model, tok, NAMES, n_ctx=16)
    out = enc(torch.stack([ctx, ctx * 2]))
    assert out.shape == (2, 4, 128) and torch.allclose(out.norm(dim=-1), torch.ones(2, 4))
    assert torch.allclose(out[0], enc(ctx), atol=1e-6)


def test_stage2_gradients_reach_the_negative_context_not_the_tower(tiny_clip):
    model, tok = tiny_clip
    enc = PromptEncoder(model, tok, NAMES, n_ctx=4)
    pos_ctx = init_context(enc.tower, tok, "a photo of a", 4)
    neg_ctx = (pos_ctx.unsqueeze(0).repeat(2, 1, 1) + 0.01 * torch.randn(2, 4, 128)).requires_grad_()
    with torch.no_grad():
        pos = enc(pos_ctx)
    feats = torch.nn.functional.normalize(torch.randn(6, 128), dim=-1)
    labels = torch.tensor([0, 1, 2, 3, 0, 1])
    for variant in ("official", "paper"):
        neg_ctx.grad = None
        stage2_loss(variant, feats, labels, pos, enc(neg_ctx).transpose(0, 1), 100.0, 0.1, 0.05).backward()
        assert neg_ctx.grad is not None and neg_ctx.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.parameters())  # the text tower is frozen by PromptEncoder


def test_prompt_too_long_is_a_clear_error(tiny_clip):
    model, tok = tiny_clip
    from negprompt import NegPromptError

    with pytest.raises(NegPromptError, match="does not fit the text context length"):
        PromptEncoder(model, tok, ["a very long class name " * 5], n_ctx=16)


def test_chunked_encoding_gives_the_same_features_and_gradients(tiny_clip):
    """Length-sorted, checkpointed chunks are a memory option: same numbers, same gradients."""
    model, tok = tiny_clip
    enc = PromptEncoder(model, tok, NAMES * 3, n_ctx=4)  # names of different lengths, 12 classes
    base = init_context(enc.tower, tok, "a photo of a", 4)
    grads = []
    for chunk in (0, 5):
        ctx = (base.unsqueeze(0).repeat(2, 1, 1) + 0.01 * torch.arange(2.0).view(2, 1, 1)).requires_grad_()
        out = enc(ctx, chunk=chunk)
        (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
        grads.append((out.detach(), ctx.grad))
    assert torch.allclose(grads[0][0], grads[1][0], atol=1e-5)
    assert torch.allclose(grads[0][1], grads[1][1], atol=1e-5)
    pos, neg = enc.pos_neg(base, base.unsqueeze(0).repeat(3, 1, 1), chunk=7)
    assert pos.shape == (12, 128) and neg.shape == (12, 3, 128) and torch.allclose(neg[:, 1], pos, atol=1e-5)


def test_patch_features_match_the_pooled_feature_and_resnets_are_refused(tiny_clip):
    from negprompt import NegPromptError
    from negprompt.clip.features import encode_with_patches

    model, _ = tiny_clip
    images = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        pooled, local = encode_with_patches(model, images)
        assert torch.allclose(pooled, model.encode_image(images), atol=1e-5)
    assert local.shape == (3, 16, 128)  # 32 px / patch 8 = 4 x 4 patches, projected to the embedding size
    rn = open_clip.create_model("RN50").eval()
    with pytest.raises(NegPromptError, match="features.local"):
        encode_with_patches(rn, torch.randn(1, 3, 224, 224))


@pytest.fixture(scope="module")
def text_towers(tiny_clip):
    torch.manual_seed(0)
    return {
        "tiny": tiny_clip,
        **{n: (open_clip.create_model(n).eval(), open_clip.get_tokenizer(n)) for n in ("ViT-B-16", "RN50")},
    }


@pytest.mark.parametrize("name", ["tiny", "ViT-B-16", "RN50"])
@pytest.mark.parametrize("n_ctx, chunk", [(4, 0), (16, 0), (4, 5)])
def test_shared_prefix_equals_the_full_sequence(text_towers, name, n_ctx, chunk):
    """The causal prefix [SOS] ctx computed once per context gives the features and context
    gradients of running every (context, class) sequence in full; also chunked (`chunk` prompts at a time,
    recomputed in backward), which splits the classes, not the context (one context length: 26 s of the file's
    time on the real towers for a second)."""
    model, tok = text_towers[name]
    names = NAMES * 2 + ["goldfish", "hot air balloon"]  # 10 classes, names of different lengths
    shared, full = PromptEncoder(model, tok, names, n_ctx), PromptEncoder(model, tok, names, n_ctx, shared_prefix=False)
    assert shared.shared_prefix and not full.shared_prefix
    g = torch.Generator().manual_seed(n_ctx)
    base = torch.randn(3, n_ctx, shared.tower.width, generator=g) * 0.02
    weights = torch.randn(
        3,
        len(names),
        model.text_projection.shape[-1]
        if not isinstance(model.text_projection, torch.nn.Linear)
        else model.text_projection.out_features,
        generator=g,
    )
    results = []
    for enc in (shared, full):
        ctx = base.clone().requires_grad_()
        out = enc(ctx, normalize=False, chunk=chunk)
        (out * weights).sum().backward()
        results.append((out.detach(), ctx.grad))
    assert (results[0][0] - results[1][0]).abs().max().item() <= 1e-5
    assert (results[0][1] - results[1][1]).abs().max().item() <= 1e-5 * max(1.0, results[1][1].abs().max().item())
    single = shared(base[0].detach(), normalize=False)  # [n, w] context -> [k, d]
    assert (single - results[1][0][0]).abs().max().item() <= 1e-5


def test_unknown_stage2_loss_is_an_error_naming_the_parameter():
    from negprompt import NegPromptError

    f = torch.nn.functional.normalize(torch.randn(2, 8), dim=-1)
    with pytest.raises(NegPromptError, match="neg.loss_variant = 'oficial'"):
        stage2_loss("oficial", f, torch.tensor([0, 1]), f, f.unsqueeze(1), 100.0, 0.1, 0.05)


def test_negative_init_official_is_the_positive_context_within_1e5():
    from negprompt import NegPromptError
    from negprompt.clip.prompts import init_negative_context

    pos = torch.randn(4, 16, generator=torch.Generator().manual_seed(1))
    neg = init_negative_context(pos, 3, "positive", torch.Generator().manual_seed(0))
    assert neg.shape == (3, 4, 16) and 0 < (neg - pos).abs().max() <= 1.1e-5  # + float32 rounding
    assert not torch.equal(neg[0], neg[1])  # distinct prompts: the noise breaks their symmetry
    rand = init_negative_context(pos, 2, "random", torch.Generator().manual_seed(0))
    assert rand.shape == (2, 4, 16) and 0.01 < rand.std() < 0.03
    with pytest.raises(NegPromptError, match="neg.init"):
        init_negative_context(pos, 2, "zeros", torch.Generator())
