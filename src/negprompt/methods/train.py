"""The two training loops, on cached image features (CLIP frozen, only prompt contexts learn).

Stage 1 (CoOp, Eqs. 1-2): cross-entropy over the k positive logits (+ LoCoOp's patch entropy
term when local features are given).
Stage 2 (Eqs. 3-7): positive context frozen, p negative contexts shared across classes.
`amp` runs the text encoder in reduced precision (fp16 with loss scaling on CUDA, bf16 on CPU)
while the contexts and their optimiser state stay float32.

Both loops call `on_epoch(epoch, state, record)` after every epoch with a CPU copy of the
contexts (`state`) and the epoch's training figures (`record`: train/loss, train/lr, and
train/acc in stage 1); what it returns (e.g. held-out or test figures) joins the record. The loops
return the per-epoch records and the kept contexts: the last epoch's, or with a `criterion`
(`negprompt.methods.selection`) the arg-max (arg-min) epoch of that column of the records.

With a `checkpoint` (`negprompt.methods.checkpoint`) a loop starts after the checkpoint's finished epochs,
with their state restored, and saves its state after every epoch: a killed run continues bit-identically.
`on_epoch` is called for the new epochs only; the checkpoint's `curve` holds the records of the others.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from negprompt import NegPromptError, progress
from negprompt.clip.prompts import PromptEncoder
from negprompt.config import NegParams, OptimParams, resolve_amp
from negprompt.methods import losses
from negprompt.methods.checkpoint import Checkpoint, LoopState
from negprompt.methods.selection import Criterion, select_epoch

OFFICIAL_T_MAX = 50  # osr_nega_prompt.py L269-270: CosineAnnealingLR(optimizer, 50)

EpochHook = Callable[[int, dict[str, torch.Tensor], dict], "dict | None"]


@dataclass
class Trained:
    state: dict[str, torch.Tensor]  # the kept contexts (CPU): stage 1 {"ctx"}, stage 2 {"pos_ctx", "neg_ctx"}
    curve: list[dict]  # one record per epoch: epoch (0-based), train/*, + what on_epoch returned
    kept: int  # index into `curve` of the kept epoch


def _optimizer(params, name: str, lr: float, momentum: float, total_steps: int, schedule: str = "cosine"):
    """SGD or AdamW with a cosine learning rate stepped after every batch: over all steps
    (`cosine`), or with the official period of 50 steps (`official`; `_epoch_end` steps it once
    more per epoch, core/train_clip.py L336), so that the rate cycles instead of decaying."""
    if name == "sgd":
        opt = torch.optim.SGD(params, lr=lr, momentum=momentum)
    else:
        opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    t_max = max(1, total_steps) if schedule == "cosine" else OFFICIAL_T_MAX
    return opt, torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=t_max)


def _epoch_end(sched, schedule: str) -> None:
    if schedule == "official":  # the official loop's extra per-epoch step (--stepsize 30 > 0)
        sched.step()


def _finish(snapshots: list[dict], curve: list[dict], criterion: Criterion | None, last: dict) -> Trained:
    if criterion is None:
        return Trained(last, curve, len(curve) - 1)
    kept = select_epoch(curve, *criterion)
    return Trained(snapshots[kept], curve, kept)


def _snapshot(**tensors: torch.Tensor) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in tensors.items()}


class Precision:
    """autocast around the forward, gradient scaling (fp16 only) around the float32 step."""

    def __init__(self, device: torch.device, amp: bool):
        fp16 = device.type == "cuda"
        self.autocast = torch.autocast(device.type, dtype=torch.float16 if fp16 else torch.bfloat16, enabled=amp)
        self.scaler = torch.amp.GradScaler(device.type, enabled=amp and fp16)

    def step(self, loss: torch.Tensor, opt, sched) -> None:
        opt.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(opt)
        self.scaler.update()
        sched.step()


def _resume(checkpoint: Checkpoint | None, state: LoopState) -> tuple[int, list[dict], list[dict]]:
    """(first epoch to run, records so far, snapshots so far): the checkpoint's, restored into `state`."""
    return checkpoint.restore(state) if checkpoint is not None else (0, [], [])


def _batches(n: int, batch_size: int, gen: torch.Generator):
    order = torch.randperm(n, generator=gen)
    return [order[i : i + batch_size] for i in range(0, n, batch_size)]


def train_positive(
    encoder: PromptEncoder,
    ctx_init: torch.Tensor,
    feats: torch.Tensor,
    labels: torch.Tensor,
    logit_scale: float,
    config: OptimParams,
    *,
    seed: int,
    on_epoch: EpochHook | None = None,
    local: torch.Tensor | None = None,
    locoop_lambda: float = 0.25,
    locoop_top_k: int = 200,
    criterion: Criterion | None = None,
    checkpoint: Checkpoint | None = None,
) -> Trained:
    """CoOp: learn one shared context [n, w]. feats [N, d] L2-normalised, labels [N] in 0..k-1.
    `config` (the `pos` section) gives epochs, batch size, optimiser, schedule, amp and chunk.
    With `local` [N, P, d] patch features this is LoCoOp: + λ · `losses.locoop_entropy`.
    Returns the kept {"ctx"} and the per-epoch records (module docstring)."""
    c = config
    gen = torch.Generator().manual_seed(seed)
    device = encoder.prefix.device
    ctx = torch.nn.Parameter(ctx_init.clone().to(device))
    steps_per_epoch = -(-len(feats) // c.batch_size)
    opt, sched = _optimizer([ctx], c.optimizer, c.lr, c.momentum, c.epochs * steps_per_epoch, c.schedule)
    precision = Precision(device, resolve_amp(c.amp, device.type))
    feats, labels = feats.to(device), labels.to(device)
    desc = "train LoCoOp prompts" if local is not None else "train positive prompts"
    loop = LoopState({"ctx": ctx}, opt, sched, gen, precision.scaler)
    start, curve, snapshots = _resume(checkpoint, loop)
    for epoch in progress(range(start, c.epochs), desc, "epoch", c.epochs, initial=start):
        total, correct = 0.0, 0
        for idx in _batches(len(feats), c.batch_size, gen):
            rate = opt.param_groups[0]["lr"]
            with precision.autocast:
                text = encoder(ctx, chunk=c.chunk)
                logits = logit_scale * feats[idx] @ text.T  # [B, k]  Eq. 1
                loss = F.cross_entropy(logits, labels[idx])  # Eq. 2
                if local is not None:
                    local_logits = logit_scale * local[idx].to(device, text.dtype) @ text.T  # [B, P, k]
                    loss = loss + locoop_lambda * losses.locoop_entropy(local_logits, labels[idx], locoop_top_k)
            precision.step(loss, opt, sched)
            total += loss.item() * len(idx)
            correct += (logits.argmax(1) == labels[idx]).sum().item()
        _epoch_end(sched, c.schedule)
        state = _snapshot(ctx=ctx)
        record = {"epoch": epoch, "train/loss": total / len(feats), "train/acc": correct / len(feats), "train/lr": rate}
        curve.append(record | ((on_epoch(epoch, state, record) or {}) if on_epoch else {}))
        if criterion is not None:
            snapshots.append(state)
        if checkpoint is not None:
            checkpoint.save(loop, epoch + 1, curve, snapshots)
    return _finish(snapshots, curve, criterion, {"ctx": ctx.detach().cpu()})


def _official_stage2(feats, labels, pos_feats, neg_feats, pos_logits, neg_logits, beta, gamma):
    logits = torch.cat([pos_logits.unsqueeze(-1), neg_logits], dim=-1)  # [B, k, 1+p], class-major
    return losses.official_stage2(logits, labels, pos_feats, neg_feats, beta, gamma)


def _paper_stage2(feats, labels, pos_feats, neg_feats, pos_logits, neg_logits, beta, gamma):
    return losses.paper_stage2(neg_logits, pos_feats, neg_feats, beta, gamma)


STAGE2_LOSSES = {"official": _official_stage2, "paper": _paper_stage2}  # neg.loss_variant


def stage2_loss(
    variant: str,
    feats: torch.Tensor,
    labels: torch.Tensor,
    pos_feats: torch.Tensor,
    neg_feats: torch.Tensor,
    logit_scale: float,
    beta: float,
    gamma: float,
) -> torch.Tensor:
    """feats [B, d], pos_feats [k, d], neg_feats [k, p, d] -> the stage-2 loss named by `variant`."""
    if variant not in STAGE2_LOSSES:
        raise NegPromptError(f"neg.loss_variant = {variant!r}: expected one of {', '.join(STAGE2_LOSSES)}")
    pos_logits = logit_scale * feats @ pos_feats.T  # [B, k]
    neg_logits = logit_scale * torch.einsum("bd,kpd->bkp", feats, neg_feats)  # [B, k, p]
    return STAGE2_LOSSES[variant](feats, labels, pos_feats, neg_feats, pos_logits, neg_logits, beta, gamma)


def train_negative(
    encoder: PromptEncoder,
    pos_ctx: torch.Tensor,
    neg_ctx_init: torch.Tensor,
    feats: torch.Tensor,
    labels: torch.Tensor,
    logit_scale: float,
    config: NegParams,
    *,
    seed: int,
    on_epoch: EpochHook | None = None,
    criterion: Criterion | None = None,
    checkpoint: Checkpoint | None = None,
) -> Trained:
    """Learn p negative contexts [p, n, w] shared across classes. `config` (the `neg` section) gives
    the loss (variant, beta, gamma), epochs, batch size, optimiser, schedule, amp and chunk. The
    positive context is frozen and its text features computed once; with `one_stage` (Table 5
    ablation) both are learned together and the positive cross-entropy is added. Returns the kept
    {"pos_ctx", "neg_ctx"} and the per-epoch records (module docstring)."""
    c, one_stage, chunk = config, config.one_stage, config.chunk
    gen = torch.Generator().manual_seed(seed)
    device = encoder.prefix.device
    neg_ctx = torch.nn.Parameter(neg_ctx_init.clone().to(device))
    pos_param = torch.nn.Parameter(pos_ctx.clone().to(device), requires_grad=one_stage)
    trainable = [neg_ctx, pos_param] if one_stage else [neg_ctx]
    steps_per_epoch = -(-len(feats) // c.batch_size)
    opt, sched = _optimizer(trainable, c.optimizer, c.lr, c.momentum, c.epochs * steps_per_epoch, c.schedule)
    precision = Precision(device, resolve_amp(c.amp, device.type))
    feats, labels = feats.to(device), labels.to(device)
    frozen_pos = None
    if not one_stage:
        with torch.no_grad():
            frozen_pos = encoder(pos_param, chunk=chunk)  # [k, d], computed once: the positive prompts do not change
    loop = LoopState({"neg_ctx": neg_ctx, "pos_ctx": pos_param}, opt, sched, gen, precision.scaler)
    start, curve, snapshots = _resume(checkpoint, loop)
    for epoch in progress(range(start, c.epochs), "train negative prompts", "epoch", c.epochs, initial=start):
        total = 0.0
        for idx in _batches(len(feats), c.batch_size, gen):
            rate = opt.param_groups[0]["lr"]
            with precision.autocast:
                pos_feats = frozen_pos if frozen_pos is not None else encoder(pos_param, chunk=chunk)
                neg_feats = encoder(neg_ctx, chunk=chunk).transpose(0, 1)  # [p, k, d] -> [k, p, d]
                loss = stage2_loss(
                    c.loss_variant, feats[idx], labels[idx], pos_feats, neg_feats, logit_scale, c.beta, c.gamma
                )
                if one_stage:
                    loss = loss + F.cross_entropy(logit_scale * feats[idx] @ pos_feats.T, labels[idx])
            precision.step(loss, opt, sched)
            total += loss.item() * len(idx)
        _epoch_end(sched, c.schedule)
        state = _snapshot(pos_ctx=pos_param, neg_ctx=neg_ctx)
        record = {"epoch": epoch, "train/loss": total / len(feats), "train/lr": rate}
        curve.append(record | ((on_epoch(epoch, state, record) or {}) if on_epoch else {}))
        if criterion is not None:
            snapshots.append(state)
        if checkpoint is not None:
            checkpoint.save(loop, epoch + 1, curve, snapshots)
    return _finish(
        snapshots, curve, criterion, {"pos_ctx": pos_param.detach().cpu(), "neg_ctx": neg_ctx.detach().cpu()}
    )
