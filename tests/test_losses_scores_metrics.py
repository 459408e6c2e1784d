import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from negprompt import metrics
from negprompt.methods import losses, scores
from negprompt_standin import regime


def _unit(*shape, seed=0):
    return F.normalize(torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64), dim=-1)


def test_nis_is_cross_entropy_to_uniform_and_shift_invariant():
    z = torch.tensor([[[1.0, 2.0], [0.0, -1.0]]], dtype=torch.float64)  # [B=1, k=2, p=2]
    logs = [math.log(math.exp(v) / sum(math.exp(u) for u in (1, 2, 0, -1))) for v in (1, 2, 0, -1)]
    assert losses.nis(z).item() == pytest.approx(-sum(logs) / 4)
    assert losses.nis(z + 5).item() == pytest.approx(losses.nis(z).item())
    assert losses.nis(torch.zeros(3, 4, 2)).item() == pytest.approx(math.log(8))


def test_npd_and_nnd_against_hand_sums():
    pos, neg = _unit(3, 5), _unit(3, 2, 5, seed=1)
    npd = -sum(float(neg[j, i] @ pos[j]) for j in range(3) for i in range(2)) / 6
    nnd = sum(float(neg[j, i] @ neg[j, m]) for j in range(3) for i in range(2) for m in range(2) if m != i) / (
        3 * 2 * 1
    )
    assert losses.npd(pos, neg).item() == pytest.approx(npd)
    assert losses.nnd(neg).item() == pytest.approx(nnd)


def test_nnd_is_zero_with_one_prompt_and_keeps_the_graph():
    neg = _unit(4, 1, 6).requires_grad_()
    out = losses.nnd(neg)
    assert out.item() == 0.0 and out.requires_grad
    out.backward()
    assert torch.isfinite(neg.grad).all()


def test_official_stage2_against_hand_computation():
    B, k, p = 3, 2, 2
    logits = torch.randn(B, k, 1 + p, generator=torch.Generator().manual_seed(3), dtype=torch.float64) * 5
    labels = torch.tensor([0, 1, 1])
    pos, neg = _unit(k, 4), _unit(k, p, 4, seed=2)
    nis = 0.0
    for b in range(B):
        per = []
        for j in range(k):
            for m in range(1 + p):
                y = 1.0 if j == labels[b] else 0.0
                x = float(logits[b, j, m])
                per.append(-(y * math.log(1 / (1 + math.exp(-x))) + (1 - y) * math.log(1 / (1 + math.exp(x)))))
        nis += sum(per) / len(per) / B
    npd = -sum(sum(1 - float(pos[j] @ neg[j, i]) for i in range(p)) / p for j in range(k)) / k
    nnd = sum(float(neg[j].mean(0).norm()) - 1 for j in range(k)) / k
    got = losses.official_stage2(logits, labels, pos, neg, beta=0.1, gamma=0.05).item()
    assert got == pytest.approx(nis + 0.1 * npd + 0.05 * nnd)


def test_paper_and_official_npd_pull_in_opposite_directions():
    pos = _unit(2, 4)
    neg = _unit(2, 1, 4, seed=5).requires_grad_()
    losses.npd(pos, neg).backward()
    g_paper = neg.grad.clone()
    neg.grad = None
    logits = torch.zeros(1, 2, 2, dtype=torch.float64)
    (losses.official_stage2(logits, torch.tensor([0]), pos, neg, beta=1.0, gamma=0.0)).backward()
    g_official = neg.grad
    # a gradient step along -grad raises cos(pos, neg) for the paper, lowers it for the official code
    assert (-(g_paper * pos.unsqueeze(1)).sum() > 0) and (-(g_official * pos.unsqueeze(1)).sum() < 0)


def test_extended_mcm_against_hand_computation_and_mcm_when_p_is_zero():
    pos = torch.tensor([[0.3, 0.1]])
    neg = torch.tensor([[[0.2], [0.0]]])
    e = [math.exp(v) for v in (0.3, 0.1, 0.2, 0.0)]
    assert scores.extended_mcm(pos, neg).item() == pytest.approx(e[0] / sum(e))
    assert scores.extended_mcm(pos, neg, temperature=0.5).item() == pytest.approx(
        math.exp(0.6) / sum(math.exp(2 * v) for v in (0.3, 0.1, 0.2, 0.0))
    )
    assert torch.allclose(scores.extended_mcm(pos, torch.zeros(1, 2, 0)), scores.mcm(pos))
    logits = torch.tensor([[1.0, 3.0]])
    assert scores.energy(logits).item() == pytest.approx(math.log(math.exp(1) + math.exp(3)))
    assert scores.max_logit(logits).item() == 3.0


def test_gl_mcm_against_hand_computation():
    g = torch.tensor([[0.3, 0.1]])
    local = torch.tensor([[[0.0, 0.5], [0.2, 0.2]]])  # two patches
    best_patch = math.exp(0.5) / (1 + math.exp(0.5))
    assert scores.gl_mcm(g, local).item() == pytest.approx(math.exp(0.3) / (math.exp(0.3) + math.exp(0.1)) + best_patch)
    img = F.normalize(torch.randn(5, 4), dim=-1)
    patches = F.normalize(torch.randn(5, 3, 4), dim=-1).half()
    text = F.normalize(torch.randn(2, 4), dim=-1)
    out = scores.local_scores(img, patches, text, text, batch=2)  # batched = all at once
    assert torch.allclose(out["glmcm"], scores.gl_mcm(img @ text.T, patches.float() @ text.T), atol=1e-6)
    assert torch.equal(out["glmcm"], out["locoop"]) and torch.equal(out["locoop_pred"], (img @ text.T).argmax(1))


def test_locoop_entropy_selects_patches_whose_top_k_misses_the_label():
    logits = torch.tensor([[[5.0, 0.0, 1.0], [0.0, 2.0, 1.0], [0.0, 0.0, 1.0]]])  # top classes 0, 1, 2
    label = torch.tensor([1])
    probs = torch.softmax(logits[0], dim=1)
    entropy = lambda p: -(p * torch.log(p + 1e-5)).sum()  # noqa: E731
    # top-1: patches 0 and 2 miss the label (OOD regions), patch 1 predicts it (kept out)
    assert losses.locoop_entropy(logits, label, top_k=1).item() == pytest.approx(
        -(entropy(probs[0]) + entropy(probs[2])).item() / 2, rel=1e-5
    )
    # top-2 over patches 0 and 1: patch 0's top two {0, 2} miss the label, patch 1's contain it
    assert losses.locoop_entropy(logits[:, :2], label, top_k=2).item() == pytest.approx(
        -entropy(probs[0]).item(), rel=1e-5
    )
    # top-3 contains every class: no OOD patch, the term is zero but keeps the graph
    x = logits.clone().requires_grad_()
    zero = losses.locoop_entropy(x, label, top_k=3)
    assert zero.item() == 0.0 and zero.requires_grad


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metrics_against_brute_force(seed):
    rng = np.random.default_rng(seed)
    id_s = np.round(rng.normal(1, 1, 200), 1)  # ties on purpose
    ood_s = np.round(rng.normal(0, 1, 150), 1)
    pairs = [(1.0 if i > o else 0.5 if i == o else 0.0) for i in id_s for o in ood_s]
    assert metrics.auroc(id_s, ood_s) == pytest.approx(np.mean(pairs))
    thr = np.sort(id_s)[::-1][int(np.ceil(0.95 * len(id_s))) - 1]
    assert (id_s >= thr).mean() >= 0.95
    assert metrics.fpr_at_95_tpr(id_s, ood_s) == pytest.approx((ood_s >= thr).mean())
    assert metrics.id_threshold(id_s) == thr


def test_integer_weights_count_like_repeated_images():
    """A mixture's weights: an image of weight k counts as k copies of it (regime_by_style's style shares)."""
    rng = np.random.default_rng(0)
    id_s, ood_s = np.round(rng.normal(1, 1, 60), 1), np.round(rng.normal(0, 1, 40), 1)
    id_w, ood_w = rng.integers(1, 4, 60), rng.integers(1, 4, 40)
    id_rep, ood_rep = np.repeat(id_s, id_w), np.repeat(ood_s, ood_w)
    assert metrics.auroc(id_s, ood_s, id_w, ood_w) == pytest.approx(metrics.auroc(id_rep, ood_rep))
    assert metrics.fpr_at_95_tpr(id_s, ood_s, id_w, ood_w) == pytest.approx(metrics.fpr_at_95_tpr(id_rep, ood_rep))
    assert metrics.auroc(id_s, ood_s, id_w, ood_w) != pytest.approx(metrics.auroc(id_s, ood_s))


def test_max_z_is_the_max_of_unrelated_prompts_unless_one_prompt_stands_out():
    """200 unrelated prompts: the max sits ~2.7 std above the mean (the floor an ID image must beat);
    one prompt planted 6 std above the rest raises it, and a per-image offset does not move it."""
    rng = np.random.default_rng(0)
    noise = 0.02 * rng.standard_normal((2000, 200))
    floor = regime.set_statistics(0.3 + noise)["max_z"][0]
    assert 2.5 < floor < 2.9
    planted = 0.3 + noise
    planted[:, 0] += 6 * 0.02
    offset = planted + rng.normal(0, 0.1, (2000, 1))
    assert regime.set_statistics(planted)["max_z"][0] > floor + 2
    assert regime.set_statistics(offset)["max_z"][0] == pytest.approx(regime.set_statistics(planted)["max_z"][0])


def test_corr_max_mean_is_pearson_and_sees_the_per_image_offset():
    """A shared per-image offset moves max and mean together (correlation near +1); without it the two are
    nearly independent. The value is Pearson's, computed without BLAS."""
    rng = np.random.default_rng(1)
    noise = 0.02 * rng.standard_normal((2000, 200))
    offset = noise + rng.normal(0, 0.1, (2000, 1))
    for cos in (noise, offset):
        st = regime.set_statistics(cos)
        assert st["corr_max_mean"] == pytest.approx(np.corrcoef(cos.max(1), cos.mean(1))[0, 1], abs=1e-12)
    assert regime.set_statistics(offset)["corr_max_mean"] > 0.95
    assert abs(regime.set_statistics(noise)["corr_max_mean"]) < 0.3
