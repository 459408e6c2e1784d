"""Checkpoint selection and the learning-rate schedules of the training loops (negprompt.methods.selection, train)."""

import numpy as np
import pytest
import torch

from negprompt import NegPromptError
from negprompt.clip.prompts import PromptEncoder
from negprompt.config import NegParams, PosParams
from negprompt.methods.selection import Criterion, criterion, ood_figures, resolve_select_set, select_epoch
from negprompt.methods.train import OFFICIAL_T_MAX, train_negative, train_positive

NAMES = ["red star", "blue ring", "gold heart"]


@pytest.fixture(scope="module")
def toy(tiny_clip):
    """A 3-class prompt learner and 24 random unit features (2 batches of 12 per epoch)."""
    model, tok = tiny_clip
    enc = PromptEncoder(model, tok, NAMES, n_ctx=4)
    g = torch.Generator().manual_seed(0)
    feats = torch.nn.functional.normalize(torch.randn(24, 128, generator=g), dim=-1)
    return enc, feats, torch.arange(24) % 3, torch.randn(4, enc.tower.width, generator=g) * 0.02


def pos_cfg(**kw) -> PosParams:
    return PosParams(**dict(epochs=3, batch_size=12, optimizer="sgd", lr=0.1, momentum=0.0) | kw)


def neg_cfg(**kw) -> NegParams:
    return NegParams(
        **dict(
            epochs=3,
            batch_size=12,
            optimizer="sgd",
            lr=0.1,
            momentum=0.0,
            loss_variant="official",
            beta=0.1,
            gamma=0.05,
        )
        | kw
    )


def test_select_epoch_is_the_first_arg_max_or_arg_min():
    curve = [{"a": 0.2, "l": 3.0}, {"a": 0.7, "l": 1.0}, {"a": 0.7, "l": 1.0}, {"a": 0.5, "l": 2.0}]
    assert select_epoch(curve, "a", "max") == 1  # ties: the earliest (the official code keeps a strict improvement)
    assert select_epoch(curve, "l", "min") == 1
    with pytest.raises(NegPromptError, match="NaN"):
        select_epoch([{"a": float("nan")}], "a")


def test_criteria_per_stage_and_rule():
    assert criterion("pos", "last") is None and criterion("neg", "last", "texture") is None
    assert criterion("pos", "id_val") == Criterion("calib/id_acc", "max")
    assert criterion("pos", "test") == Criterion("test/id_acc", "max")
    assert criterion("neg", "id_val") == Criterion("calib/loss", "min")
    assert criterion("neg", "test", "texture") == Criterion("test/texture/auroc", "max")


def test_select_set_defaults_to_the_texture_role_and_must_exist():
    assert resolve_select_set("", "openmoji", ["near", "plant", "place", "texture"], needed=True) == "texture"
    assert (
        resolve_select_set("", "imagenet_conventional", ["iNaturalist", "SUN", "Places", "Textures"], needed=True)
        == "Textures"
    )
    assert resolve_select_set("near", "openmoji", ["near"], needed=True) == "near"
    assert resolve_select_set("", "imagenet_hard", ["ood"], needed=False) == "ood"
    with pytest.raises(
        NegPromptError, match=r"neg.select_set 'Textures' \(neg.select: test\) is not an OOD set .*sets: ood"
    ):
        resolve_select_set("Textures", "imagenet_hard", ["ood"], needed=True)


def test_ood_figures_per_set_and_average():
    score = torch.tensor([0.9, 0.8, 0.1, 0.2, 0.85, 0.95])
    sets = np.array(["id", "id", "a", "a", "b", "b"])
    out = ood_figures(score, sets, ["a", "b"])
    assert out["test/a/auroc"] == 100 and out["test/b/auroc"] == 25
    assert out["test/average/auroc"] == 62.5 and out["test/a/fpr95"] == 0 and out["test/b/fpr95"] == 100


def test_the_hook_sees_every_epoch_and_changes_nothing(toy):
    enc, feats, labels, ctx0 = toy
    seen = []
    plain = train_positive(enc, ctx0, feats, labels, 100.0, pos_cfg(), seed=1)
    hooked = train_positive(
        enc,
        ctx0,
        feats,
        labels,
        100.0,
        pos_cfg(),
        seed=1,
        on_epoch=lambda e, s, r: seen.append((e, s["ctx"].clone(), dict(r))) or {"x/y": float(e)},
    )
    assert torch.equal(plain.state["ctx"], hooked.state["ctx"]) and plain.kept == hooked.kept == 2
    assert [e for e, _, _ in seen] == [0, 1, 2] and torch.equal(seen[-1][1], hooked.state["ctx"])
    assert [r["x/y"] for r in hooked.curve] == [0.0, 1.0, 2.0]  # what the hook returns joins the record
    assert {"epoch", "train/loss", "train/acc", "train/lr"} <= set(hooked.curve[0])


def test_kept_context_is_the_arg_max_epoch_of_the_curve(toy):
    """With a criterion, the returned context is the one the hook saw at the curve's arg-max."""
    enc, feats, labels, ctx0 = toy
    seen, fake = {}, [0.1, 0.9, 0.4, 0.9]  # a made-up held-out curve: epoch 1 is best (first of the ties)

    def hook(epoch, state, record):
        seen[epoch] = state["ctx"].clone()
        return {"calib/id_acc": fake[epoch]}

    run = train_positive(
        enc, ctx0, feats, labels, 100.0, pos_cfg(epochs=4), seed=1, on_epoch=hook, criterion=criterion("pos", "id_val")
    )
    assert run.kept == select_epoch(run.curve, "calib/id_acc", "max") == 1
    assert torch.equal(run.state["ctx"], seen[1]) and not torch.equal(run.state["ctx"], seen[3])
    neg0 = ctx0.unsqueeze(0).repeat(2, 1, 1) + 1e-5
    losses = [3.0, 2.0, 2.5]  # stage 2 keeps the lowest held-out loss: epoch 1
    args = (enc, run.state["ctx"], neg0, feats, labels, 100.0)
    kept = train_negative(
        *args,
        neg_cfg(schedule="official"),
        seed=1,
        on_epoch=lambda e, s, r: {"calib/loss": losses[e]},
        criterion=criterion("neg", "id_val"),
    )
    # the official schedule does not depend on the number of epochs: the kept context is a 2-epoch run's last
    short = train_negative(*args, neg_cfg(epochs=2, schedule="official"), seed=1)
    assert kept.kept == 1 and set(kept.state) == {"pos_ctx", "neg_ctx"}
    assert torch.equal(kept.state["neg_ctx"], short.state["neg_ctx"]) and not torch.equal(short.state["neg_ctx"], neg0)
    assert torch.equal(kept.state["pos_ctx"], run.state["ctx"])  # two-stage: the positive context is frozen


def test_official_schedule_is_cosine_t50_stepped_per_batch_and_per_epoch(toy, monkeypatch):
    """The learning rate of every optimiser step equals torch's CosineAnnealingLR(T_max=50) stepped
    after every batch and once more after every epoch (official core/train_clip.py L162, L336)."""
    enc, feats, labels, ctx0 = toy
    epochs, per_epoch = 27, 2  # 27 x (2 + 1) = 81 scheduler steps: past T_max = 50, where the rate climbs again
    ref_opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    ref = torch.optim.lr_scheduler.CosineAnnealingLR(ref_opt, T_max=OFFICIAL_T_MAX)
    expected = []
    for _ in range(epochs):
        for _ in range(per_epoch):
            expected.append(ref_opt.param_groups[0]["lr"])
            ref_opt.step()
            ref.step()
        ref.step()
    used = []
    step = torch.optim.SGD.step

    def recording_step(self, *a, **kw):
        used.append(self.param_groups[0]["lr"])
        return step(self, *a, **kw)

    monkeypatch.setattr(torch.optim.SGD, "step", recording_step)
    run = train_positive(enc, ctx0, feats, labels, 100.0, pos_cfg(epochs=epochs, lr=0.1, schedule="official"), seed=1)
    assert used == pytest.approx(expected, rel=0, abs=1e-12) and len(used) == epochs * per_epoch
    assert min(used) < 1e-3 and used[-1] > 0.05  # it cycles (period 100 steps) instead of decaying
    assert [r["train/lr"] for r in run.curve] == pytest.approx(expected[per_epoch - 1 :: per_epoch], abs=1e-12)
    used.clear()
    train_positive(enc, ctx0, feats, labels, 100.0, pos_cfg(epochs=2), seed=1)  # default: one cosine over all 4 steps
    assert used[0] == 0.1 and used == pytest.approx([0.05 * (1 + np.cos(np.pi * t / 4)) for t in range(4)], abs=1e-12)


def test_two_stage_freezes_the_positive_context_one_stage_trains_both(toy):
    """neg.one_stage (Table 5): both contexts learn together, + the positive cross-entropy;
    otherwise the positive context comes back bit for bit."""
    enc, feats, labels, ctx0 = toy
    neg0 = ctx0.unsqueeze(0).repeat(2, 1, 1) + 1e-3
    two = train_negative(enc, ctx0, neg0, feats, labels, 100.0, neg_cfg(epochs=1), seed=1)
    one = train_negative(enc, ctx0, neg0, feats, labels, 100.0, neg_cfg(epochs=1, one_stage=True), seed=1)
    assert torch.equal(two.state["pos_ctx"], ctx0) and not torch.equal(two.state["neg_ctx"], neg0)
    assert not torch.equal(one.state["pos_ctx"], ctx0) and not torch.equal(one.state["neg_ctx"], two.state["neg_ctx"])
    assert one.curve[0]["train/loss"] > two.curve[0]["train/loss"]  # the added cross-entropy is positive
