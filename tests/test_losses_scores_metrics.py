import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from negprompt import NegPromptError, metrics
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
    assert metrics.fpr95_ood_positive(id_s, ood_s, id_w, ood_w) == pytest.approx(
        metrics.fpr95_ood_positive(id_rep, ood_rep)
    )
    assert metrics.auroc(id_s, ood_s, id_w, ood_w) != pytest.approx(metrics.auroc(id_s, ood_s))


def test_the_two_fpr95_conventions_differ_by_construction():
    """ID 1..20; OOD eighteen at 0.5, one at 5 and one at 15.5. ID positive: the threshold keeping 19 of 20 ID is 2,
    and 2 of 20 OOD (5, 15.5) score >= 2: 10%. OOD positive (OpenOOD): 19 of 20 OOD score <= 5, and 5 of 20 ID
    (1..5, the tie at 5 included) score <= 5: 25%. AUROC is one number: 1 - (18 * 0 + 4.5 + 15) / 400."""
    id_s = np.arange(1.0, 21.0)
    ood_s = np.array([0.5] * 18 + [5.0, 15.5])
    assert metrics.fpr_at_95_tpr(id_s, ood_s) == pytest.approx(0.10)
    assert metrics.fpr95_ood_positive(id_s, ood_s) == pytest.approx(0.25)
    assert metrics.auroc(id_s, ood_s) == pytest.approx(1 - (4.5 + 15) / 400)
    assert metrics.detection_figures(id_s, ood_s) == pytest.approx(
        {"auroc": 100 * (1 - 19.5 / 400), "fpr95": 10.0, "fpr95_openood": 25.0}
    )
    assert set(metrics.FIGURES) == set(metrics.detection_figures(id_s, ood_s))
    # swapping the roles and the sign of the scores swaps the conventions
    assert metrics.fpr95_ood_positive(-ood_s, -id_s) == pytest.approx(metrics.fpr_at_95_tpr(id_s, ood_s))


def test_openood_fpr95_keeps_sklearns_dropped_points():
    """ID and OOD tied pairwise (1..20 each): every threshold adds one ID and one OOD image, the ROC is one straight
    line and roc_curve's default drop_intermediate keeps only its ends, so OpenOOD reads 100%, not the 95% that the
    point at 95% OOD recall would give. The ID-positive figure keeps every point: 95%."""
    s = np.arange(1.0, 21.0)
    assert metrics.fpr95_ood_positive(s, s) == 1.0
    assert metrics.fpr_at_95_tpr(s, s) == pytest.approx(0.95)


def _openood_fpr_and_auroc(conf, label, tpr_th=0.95):
    """OpenOOD's own steps, transcribed: openood/evaluators/metrics.py:40-57, `auc_and_fpr_recall` (Jingkang50/OpenOOD
    at 3c35632; the same lines in YBZh/OpenOOD-VLM at 4d888ff), which compute_all_metrics (:8) reports; `label` is -1
    for OOD images, the class index otherwise."""
    from sklearn import metrics as skm

    ood_indicator = np.zeros_like(label)  # :42
    ood_indicator[label == -1] = 1  # :43
    fpr_list, tpr_list, thresholds = skm.roc_curve(ood_indicator, -conf)  # :48
    fpr = fpr_list[np.argmax(tpr_list >= tpr_th)]  # :49
    auroc = skm.auc(fpr_list, tpr_list)  # :57
    return fpr, auroc


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_openood_fpr95_equals_openoods_own_steps(seed):
    rng = np.random.default_rng(seed)
    id_s = np.round(rng.normal(1, 1, 200), 1)  # ties on purpose, within and across ID and OOD
    ood_s = np.round(rng.normal(0, 1, 150), 1)
    conf = np.concatenate([id_s, ood_s])
    label = np.concatenate([rng.integers(0, 10, len(id_s)), -np.ones(len(ood_s), dtype=np.int64)])
    fpr, auroc = _openood_fpr_and_auroc(conf, label)
    assert metrics.fpr95_ood_positive(id_s, ood_s) == fpr
    assert metrics.auroc(id_s, ood_s) == pytest.approx(auroc)
    thr = np.sort(ood_s)[int(np.ceil(0.95 * len(ood_s))) - 1]  # by hand: the lowest score keeping 95% of OOD below
    assert fpr == pytest.approx((id_s <= thr).mean())  # no collinear run across 95% OOD recall on these draws


@pytest.mark.parametrize("bad", [[], [1.0, np.nan], [[1.0, 2.0]]])
def test_metrics_bad_scores_name_the_argument(bad):
    with pytest.raises(NegPromptError, match="ood_scores: expected a non-empty 1-d array of finite scores"):
        metrics.fpr95_ood_positive([1.0, 2.0], bad)
    with pytest.raises(NegPromptError, match="id_scores"):
        metrics.fpr_at_95_tpr(bad, [1.0, 2.0])


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
