"""Contrastive pretraining of the stand-in CLIPs: one loop (open_clip's `ClipLoss`, AdamW with warm-up and cosine
decay, as open_clip's trainer) over an iterable of (images, tokens) batches. The three recipes differ only in where
their batches come from and how the logit scale moves: the mini-world's tiny CLIP (`pretrain_clip`, run by the
backbone stage), and the OpenMoji stand-in's phase 1 on a rendered pool and phase 2 on a stream of fresh renders
(`pretrain_on_pool`, `continue_pretraining`, run by `make pretrain` only)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator

import numpy as np
import open_clip
import torch
import torch.nn.functional as F

from negprompt import NegPromptError, progress
from negprompt.clip.backbone import create_untrained, normalize_images
from negprompt.clip.prompts import TextTower

Batch = tuple[np.ndarray | torch.Tensor, torch.Tensor]  # (uint8 images [B, H, W, 3] or normalised [B, 3, H, W], tokens)


def clip_optimizer(model: torch.nn.Module, lr: float, steps: int):
    """open_clip's trainer recipe: AdamW (weight decay 0.1 on matrices other than embeddings, none on
    gains, biases, embeddings), linear warm-up over 5% of the steps, then cosine decay. Frozen
    parameters (e.g. a ramped logit scale) are left out."""
    trained = [(name, param) for name, param in model.named_parameters() if param.requires_grad]
    decay = [param for name, param in trained if param.ndim >= 2 and "embedding" not in name]
    other = [param for name, param in trained if not (param.ndim >= 2 and "embedding" not in name)]
    groups = [{"params": decay, "weight_decay": 0.1}, {"params": other, "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.98), eps=1e-6)
    warmup = max(1, steps // 20)

    def rate(s: int) -> float:
        return (s + 1) / warmup if s < warmup else 0.5 * (1 + math.cos(math.pi * (s - warmup) / max(1, steps - warmup)))

    return opt, torch.optim.lr_scheduler.LambdaLR(opt, rate)


def ramped_logit_scale(step: int, steps: int, start: float = 1 / 0.07, end: float = 100.0, ramp: float = 0.8) -> float:
    """CLIP's scale grows from 1/0.07 to its clamp at 100 during training; a tiny model's learned
    scale stalls near 14, and a fixed 100 from step 0 stalls the loss, so it is ramped (log-linear)."""
    frac = min(1.0, step / max(1e-9, ramp * (steps - 1)))
    return math.exp(math.log(start) + frac * (math.log(end) - math.log(start)))


def contrastive_step(
    model,
    tower: TextTower,
    loss_fn,
    opt,
    sched,
    images: np.ndarray | torch.Tensor,
    tokens: torch.Tensor,
    device: torch.device,
) -> torch.Tensor:
    """One ClipLoss step on a batch of (image, caption) pairs; returns the loss."""
    if not torch.is_tensor(images):
        images = normalize_images(np.ascontiguousarray(images), model)
    img_f = F.normalize(model.encode_image(images.to(device)), dim=-1)
    txt_f = F.normalize(tower.encode_tokens(tokens.to(device)), dim=-1)  # = encode_text, EOT-truncated
    loss = loss_fn(img_f, txt_f, model.logit_scale.exp())
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    sched.step()
    return loss


def train(
    model: torch.nn.Module,
    batches: Iterable[Batch],
    steps: int,
    lr: float,
    device: torch.device,
    *,
    logit_scale: Callable[[int], float] | None = None,
    clamp_scale: bool = False,
    log_every: int = 100,
    desc: str = "pretrain",
) -> list[dict]:
    """The loop: `steps` batches from `batches`, each one `contrastive_step`. `logit_scale(step)` sets a frozen
    scale before each step (None: the model's own); `clamp_scale` keeps a learned one at CLIP's clamp of 100.
    Returns a loss log every `log_every` steps (and at the last)."""
    tower, loss_fn = TextTower(model), open_clip.ClipLoss()
    opt, sched = clip_optimizer(model, lr, steps)
    log = []
    model.train()
    bar = progress(zip(range(steps), batches), desc, "step", total=steps)
    for step, (images, tokens) in bar:
        if logit_scale is not None:
            model.logit_scale.fill_(math.log(logit_scale(step)))
        loss = contrastive_step(model, tower, loss_fn, opt, sched, images, tokens, device)
        if clamp_scale:
            with torch.no_grad():
                model.logit_scale.clamp_(0, math.log(100))  # CLIP's clamp
        if step % log_every == 0 or step == steps - 1:
            scale = logit_scale(step) if logit_scale is not None else float(model.logit_scale.detach().exp())
            log.append({"step": step, "loss": loss.item(), "logit_scale": scale, "lr": sched.get_last_lr()[0]})
            bar.set_postfix(loss=f"{loss.item():.3f}", scale=f"{scale:.0f}")
    model.eval()
    return log


# --- where the batches come from ------------------------------------------------------------------------------


def _indexed_batches(
    inputs: torch.Tensor, tokens: torch.Tensor, batch_size: int, gen: torch.Generator
) -> Iterator[Batch]:
    """Uniform draws with replacement from a captioned pool, random horizontal flips."""
    while True:
        idx = torch.randint(len(inputs), (batch_size,), generator=gen)
        x = inputs[idx]
        flip = torch.rand(batch_size, generator=gen) < 0.5
        yield torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x), tokens[idx]


def pretrain_clip(
    model_name: str,
    images: np.ndarray,
    captions: list[str],
    steps: int,
    batch_size: int,
    lr: float,
    seed: int,
    device: torch.device,
) -> torch.nn.Module:
    """The mini-world's tiny CLIP from scratch on captioned renders; random flips are the only augmentation
    because the generator already varies size, position, rotation and colour."""
    torch.manual_seed(seed)
    model = create_untrained(model_name, device)
    tokens = open_clip.get_tokenizer(model_name)(captions)
    batches = _indexed_batches(normalize_images(images, model), tokens, batch_size, torch.Generator().manual_seed(seed))
    train(model, batches, steps, lr, device, clamp_scale=True, desc="pretrain tiny CLIP")
    return model


def _pool_batches(
    pool: np.ndarray,
    tokens: torch.Tensor,
    index: dict[tuple[int, int], list[int]],
    pool_styles: np.ndarray,
    batch_size: int,
    rng: np.random.Generator,
) -> Iterator[Batch]:
    """Distinct concepts per batch (no false negatives), one render each, a caption of that render's style."""
    C, K = pool.shape[:2]
    while True:
        ci = rng.choice(C, batch_size, replace=False)
        ki = rng.integers(0, K, batch_size)
        x = pool[ci, ki]
        flip = rng.random(batch_size) < 0.5
        x[flip] = x[flip, :, ::-1]
        ti = [index[(c, pool_styles[c, k])][rng.integers(len(index[(c, pool_styles[c, k])]))] for c, k in zip(ci, ki)]
        yield x, tokens[ti]


def pretrain_on_pool(
    model_name: str,
    pool: np.ndarray,
    captions: list[list[list[str]]],
    pool_styles: np.ndarray,
    steps: int,
    batch_size: int,
    lr: float,
    seed: int,
    device: torch.device,
    log_every: int = 100,
) -> tuple[torch.nn.Module, list[dict]]:
    """Phase 1 from scratch on a pool of renders [C, K, H, W, 3] of C captioned concepts; each image's caption is
    drawn from its style's templates, captions[c][style]; the logit scale follows `ramped_logit_scale`.
    Returns the model (eval mode) and a loss log."""
    torch.manual_seed(seed)
    C = pool.shape[0]
    if batch_size > C:
        raise NegPromptError(
            f"batch_size {batch_size} is larger than the {C} captioned concepts (batches hold distinct concepts)"
        )
    model = create_untrained(model_name, device)
    model.logit_scale.requires_grad_(False)
    flat = [(c, s, t) for c in range(C) for s in range(len(captions[c])) for t in captions[c][s]]
    tokens = open_clip.get_tokenizer(model_name)([t for _, _, t in flat])
    index: dict[tuple[int, int], list[int]] = {}
    for i, (c, s, _) in enumerate(flat):
        index.setdefault((c, s), []).append(i)
    batches = _pool_batches(pool, tokens, index, pool_styles, batch_size, np.random.default_rng(seed))
    log = train(
        model,
        batches,
        steps,
        lr,
        device,
        logit_scale=lambda step: ramped_logit_scale(step, steps),
        log_every=log_every,
        desc="pretrain stand-in CLIP",
    )
    return model, log


def _stream_batches(sample_batch, tokenizer, rng: np.random.Generator) -> Iterator[Batch]:
    while True:
        x, captions = sample_batch(rng)
        flip = rng.random(len(x)) < 0.5
        x[flip] = x[flip, :, ::-1]
        yield x, tokenizer(captions)


def continue_pretraining(
    model: torch.nn.Module,
    tokenizer,
    sample_batch,
    steps: int,
    lr: float,
    seed: int,
    device: torch.device,
    log_every: int = 100,
) -> tuple[torch.nn.Module, list[dict]]:
    """Phase 2: further training of a pretrained CLIP on a stream of fresh captioned images, `sample_batch(rng)` ->
    (uint8 images [B, H, W, 3], B captions), at the model's own (final, frozen) logit scale, with random
    horizontal flips. Nothing is seen twice, so the model cannot memorise a pool."""
    torch.manual_seed(seed)
    model = model.to(device).float().train()
    model.requires_grad_(True)
    model.logit_scale.requires_grad_(False)
    batches = _stream_batches(sample_batch, tokenizer, np.random.default_rng(seed))
    log = train(model, batches, steps, lr, device, log_every=log_every, desc="continue pretraining")
    return model, log
