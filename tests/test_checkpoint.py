"""Resumable training (negprompt.methods.checkpoint): a loop stopped after any epoch and started again from
its checkpoint ends bit-identical to an uninterrupted run; an unusable file gives one notice and a fresh start.
(The SIGKILL of a real stage is tests/test_resume.py.)"""

import json
import random

import numpy as np
import pytest
import torch

from negprompt.clip.prompts import PromptEncoder
from negprompt.config import NegParams, PosParams
from negprompt.methods.checkpoint import Checkpoint, run_key, stage_checkpoint
from negprompt.methods.selection import Criterion
from negprompt.methods.train import train_negative, train_positive

NAMES = ["red star", "blue ring", "gold heart"]


@pytest.fixture(scope="module")
def toy(tiny_clip):
    model, tok = tiny_clip
    enc = PromptEncoder(model, tok, NAMES, n_ctx=4)
    g = torch.Generator().manual_seed(0)
    feats = torch.nn.functional.normalize(torch.randn(24, 128, generator=g), dim=-1)
    return enc, feats, torch.arange(24) % 3, torch.randn(4, enc.tower.width, generator=g) * 0.02


class Killed(Exception):
    pass


def hook(stop_after: int | None = None):
    """An on_epoch hook that reports a value drawn from every global RNG (so a restored RNG state shows in
    the curve) and raises after `stop_after` epochs, as a kill would (the checkpoint then holds the epochs
    before it)."""

    def on_epoch(epoch, state, record):
        if stop_after is not None and epoch == stop_after:
            raise Killed
        return {
            "rng/torch": torch.rand(1).item(),
            "rng/numpy": np.random.rand(),
            "rng/python": random.random(),
            "norm": float(state[next(iter(state))].norm()),
        }

    return on_epoch


def run_twice(tmp_path, train, stop_after: int):
    """The uninterrupted run, then the same run stopped after `stop_after` epochs and resumed."""
    torch.manual_seed(0), np.random.seed(0), random.seed(0)
    plain = train(on_epoch=hook(), checkpoint=None)
    path, notices = tmp_path / "ckpt" / "run.pt", []
    torch.manual_seed(0), np.random.seed(0), random.seed(0)
    with pytest.raises(Killed):
        train(on_epoch=hook(stop_after), checkpoint=Checkpoint(path, "k", notices.append))
    assert json.loads(path.read_bytes().partition(b"\n")[0])["epoch"] == stop_after
    torch.manual_seed(123), np.random.seed(123), random.seed(123)  # a new process: other global RNG states
    ckpt = Checkpoint(path, "k", notices.append)
    assert ckpt.epoch == stop_after and len(ckpt.curve) == stop_after
    resumed = train(on_epoch=hook(), checkpoint=ckpt)
    assert notices == [f"notice: resuming from {path}: {stop_after} epochs done"]
    return plain, resumed, ckpt


@pytest.mark.parametrize("stop_after", [1, 3])
def test_positive_loop_resumed_after_any_epoch_is_bit_identical(toy, tmp_path, stop_after):
    enc, feats, labels, ctx0 = toy
    # momentum and AdamW keep optimiser state; the official schedule's per-epoch step; selection keeps snapshots
    cfg = PosParams(epochs=4, batch_size=10, optimizer="adamw", lr=0.01, schedule="official")

    def train(**kw):
        return train_positive(enc, ctx0, feats, labels, 100.0, cfg, seed=1, criterion=Criterion("norm", "max"), **kw)

    plain, resumed, ckpt = run_twice(tmp_path, train, stop_after)
    assert torch.equal(plain.state["ctx"], resumed.state["ctx"]) and plain.kept == resumed.kept
    assert [r | {} for r in plain.curve] == resumed.curve
    assert ckpt.path.is_file() and (ckpt.path.parent / ".gitignore").read_text().endswith("*\n")
    ckpt.remove()
    assert not ckpt.path.exists()


def test_negative_loop_resumed_is_bit_identical_one_stage_too(toy, tmp_path):
    enc, feats, labels, ctx0 = toy
    noise = torch.randn(2, *ctx0.shape, generator=torch.Generator().manual_seed(2))
    neg0 = ctx0.unsqueeze(0).repeat(2, 1, 1) + 1e-3 * noise
    for one_stage in (False, True):
        cfg = NegParams(epochs=3, batch_size=10, optimizer="sgd", lr=0.1, momentum=0.9, one_stage=one_stage)

        def train(cfg=cfg, **kw):
            return train_negative(enc, ctx0, neg0, feats, labels, 100.0, cfg, seed=1, **kw)

        plain, resumed, _ = run_twice(tmp_path / str(one_stage), train, 2)
        assert torch.equal(plain.state["neg_ctx"], resumed.state["neg_ctx"])
        assert torch.equal(plain.state["pos_ctx"], resumed.state["pos_ctx"])
        assert plain.curve == resumed.curve


def test_a_finished_checkpoint_trains_nothing_more(toy, tmp_path):
    """Killed after the last epoch but before the stage wrote its outputs: the rerun only writes them."""
    enc, feats, labels, ctx0 = toy
    cfg = PosParams(epochs=2, batch_size=12)
    path = tmp_path / "run.pt"
    done = train_positive(enc, ctx0, feats, labels, 100.0, cfg, seed=1, checkpoint=Checkpoint(path, "k", print))
    calls = []
    again = train_positive(
        enc,
        ctx0,
        feats,
        labels,
        100.0,
        cfg,
        seed=1,
        checkpoint=Checkpoint(path, "k", print),
        on_epoch=lambda *a: calls.append(a),
    )
    assert calls == [] and torch.equal(done.state["ctx"], again.state["ctx"]) and done.curve == again.curve


def saved(tmp_path, key="k") -> Checkpoint:
    enc_state = {"x": torch.nn.Parameter(torch.ones(3))}
    opt = torch.optim.SGD(enc_state.values(), lr=0.1)
    from negprompt.methods.checkpoint import LoopState

    loop = LoopState(
        enc_state,
        opt,
        torch.optim.lr_scheduler.CosineAnnealingLR(opt, 5),
        torch.Generator(),
        torch.amp.GradScaler("cpu", enabled=False),
    )
    ckpt = Checkpoint(tmp_path / "c" / "run.pt", key, print)
    ckpt.save(loop, 1, [{"epoch": 0, "train/loss": np.float64(0.5)}], [])
    return ckpt


@pytest.mark.parametrize(
    "damage, says",
    [
        (lambda raw: raw, "checkpoint of a run with other params, inputs or code"),  # read with another key
        (lambda raw: raw[:-10], "does not match its sha256 (truncated or altered)"),
        (lambda raw: raw[:-1] + bytes([raw[-1] ^ 1]), "does not match its sha256 (truncated or altered)"),
        (lambda raw: b"\x00garbage", "unreadable checkpoint"),
    ],
)
def test_an_unusable_checkpoint_is_one_notice_and_a_fresh_start(tmp_path, damage, says):
    ckpt = saved(tmp_path)
    ckpt.path.write_bytes(damage(ckpt.path.read_bytes()))
    notices = []
    key = "other" if "other params" in says else "k"
    again = Checkpoint(ckpt.path, key, notices.append)
    assert again.epoch == 0 and again.curve == []
    assert len(notices) == 1 and notices[0].startswith(f"notice: {ckpt.path}: ") and says in notices[0], notices
    assert notices[0].endswith("ignored, starting from epoch 1") and "\n" not in notices[0]


def test_a_good_checkpoint_round_trips_numpy_scalars_as_numbers(tmp_path):
    ckpt = saved(tmp_path)
    again = Checkpoint(ckpt.path, "k", lambda m: None)
    assert again.epoch == 1 and again.curve == [{"epoch": 0, "train/loss": 0.5}]
    assert type(again.curve[0]["train/loss"]) is float


def test_the_run_key_follows_params_inputs_and_stage(tmp_path):
    f = tmp_path / "features.parquet"
    f.write_bytes(b"a")
    key = run_key({"pos": {"lr": 0.1}}, [f])
    assert key == run_key({"pos": {"lr": 0.1}}, [f]) != run_key({"pos": {"lr": 0.2}}, [f])
    f.write_bytes(b"b")
    assert run_key({"pos": {"lr": 0.1}}, [f]) != key
    a = stage_checkpoint("train_pos", 1, {}, [f], root=tmp_path)
    b = stage_checkpoint("train_neg", 1, {}, [f], root=tmp_path)
    assert a.path == tmp_path / "train_pos_seed1.pt" and a.key != b.key
