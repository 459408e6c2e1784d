"""open_clip model resolution: real tags, local checkpoint files, and the tiny mini-world CLIP.

The tiny model is an ordinary open_clip architecture registered from a JSON config
(`resources/miniworld-tiny.json`, via `open_clip.add_model_config`) and pretrained here with
open_clip's own tokenizer, model classes and `ClipLoss`, so every later stage loads it exactly
as it loads ViT-B-16: `open_clip.create_model_and_transforms(name, pretrained=<file>)`.
"""
from __future__ import annotations

import hashlib
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import open_clip
import torch
import torch.nn.functional as F
from tqdm import tqdm

from negprompt import NegPromptError
from negprompt.io import read_json
from negprompt.clip.prompts import TextTower

TINY_CONFIG = Path(__file__).parents[1] / "resources" / "miniworld-tiny.json"
TINY_MODEL = TINY_CONFIG.stem
STANDIN_CONFIG = Path(__file__).parents[1] / "resources" / "openmoji-tiny.json"
STANDIN_MODEL = STANDIN_CONFIG.stem  # the OpenMoji world's stand-in CLIP, shipped pretrained (weights/)
for _config in (TINY_CONFIG, STANDIN_CONFIG):
    open_clip.add_model_config(_config)


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise NegPromptError(f"device {device!r} is not a torch device (expected auto, cpu, cuda or cuda:N)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise NegPromptError(f"device {device!r} requested but CUDA is not available on this machine")
    return dev


def check_model_name(model: str) -> None:
    if model not in open_clip.list_models():
        close = [m for m in open_clip.list_models() if model.lower().split("-")[0] in m.lower()][:8]
        raise NegPromptError(f"backbone.model {model!r} is not an open_clip model (close: {', '.join(close) or 'none'})")


def resolve_weights(model: str, pretrained: str, cache_dir: str | None = None) -> Path:
    """A local file for `pretrained`: the path itself, or the open_clip tag downloaded into `cache_dir`."""
    check_model_name(model)
    if Path(pretrained).is_file():
        return Path(pretrained)
    cfg = open_clip.get_pretrained_cfg(model, pretrained)
    if not cfg:
        tags = open_clip.list_pretrained_tags_by_model(model)
        raise NegPromptError(f"backbone.pretrained {pretrained!r} is neither a file nor an open_clip tag of {model} (tags: {', '.join(tags) or 'none'})")
    try:
        return Path(open_clip.download_pretrained(cfg, cache_dir=cache_dir or None))
    except Exception as e:  # network errors come in many types; the message is what matters
        raise NegPromptError(f"could not download {model}/{pretrained} into cache_dir {cache_dir or '(default)'}: {e}") from None


def sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


@dataclass
class Backbone:
    """A frozen CLIP with its eval transform and tokenizer, and the identity it was loaded from."""

    model: torch.nn.Module
    preprocess: object
    tokenizer: object
    name: str
    weights_sha256: str

    @property
    def identity(self) -> dict:
        return {"model": self.name, "weights_sha256": self.weights_sha256}


def load_backbone(model: str, checkpoint: str | Path, device: torch.device | str = "cpu", weights_sha256: str = "") -> Backbone:
    """Load `model` with weights from a local checkpoint file, frozen, in eval mode."""
    check_model_name(model)
    if not Path(checkpoint).is_file():
        raise NegPromptError(f"backbone checkpoint {checkpoint} not found (run the backbone stage)")
    try:
        net, _, preprocess = open_clip.create_model_and_transforms(model, pretrained=str(checkpoint), device=device)
    except RuntimeError as e:
        raise NegPromptError(f"backbone checkpoint {checkpoint} does not load into {model}: {str(e).splitlines()[0]}") from None
    net.eval().requires_grad_(False)
    return Backbone(net, preprocess, open_clip.get_tokenizer(model), model, weights_sha256 or sha256(checkpoint))


def normalize_images(images_uint8: np.ndarray, model: torch.nn.Module) -> torch.Tensor:
    """[N, H, W, 3] uint8 -> the model's normalised float input (same mean/std as its preprocess)."""
    cfg = model.visual.preprocess_cfg if hasattr(model.visual, "preprocess_cfg") else {}
    mean = torch.tensor(cfg.get("mean", open_clip.OPENAI_DATASET_MEAN)).view(1, 3, 1, 1)
    std = torch.tensor(cfg.get("std", open_clip.OPENAI_DATASET_STD)).view(1, 3, 1, 1)
    x = torch.from_numpy(images_uint8).permute(0, 3, 1, 2).float() / 255.0
    return (x - mean) / std


@torch.inference_mode()
def encode_images(model: torch.nn.Module, images_uint8: np.ndarray, batch_size: int = 512) -> torch.Tensor:
    """L2-normalised image features of uint8 images [N, H, W, 3] (already at the model's size)."""
    device = next(model.parameters()).device
    out = [model.encode_image(normalize_images(images_uint8[i : i + batch_size], model).to(device)).float().cpu()
           for i in range(0, len(images_uint8), batch_size)]
    return F.normalize(torch.cat(out), dim=-1)


def create_untrained(model_name: str, device) -> torch.nn.Module:
    """A randomly initialised model to pretrain, without open_clip's "no pretrained weights" warning
    (random init is the point here)."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        return open_clip.create_model(model_name, device=device)
    finally:
        root.setLevel(level)


def clip_optimizer(model: torch.nn.Module, lr: float, steps: int):
    """open_clip's trainer recipe: AdamW (weight decay 0.1 on matrices other than embeddings, none on
    gains, biases, embeddings), linear warm-up over 5% of the steps, then cosine decay. Frozen
    parameters (e.g. a ramped logit scale) are left out."""
    trained = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    decay = [p for n, p in trained if p.ndim >= 2 and "embedding" not in n]
    other = [p for n, p in trained if not (p.ndim >= 2 and "embedding" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": other, "weight_decay": 0.0}], lr=lr, betas=(0.9, 0.98), eps=1e-6)
    warmup = max(1, steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: (s + 1) / warmup if s < warmup else 0.5 * (1 + math.cos(math.pi * (s - warmup) / max(1, steps - warmup))))
    return opt, sched


def pretrain_clip(model_name: str, images: np.ndarray, captions: list[str], steps: int, batch_size: int, lr: float,
                  seed: int, device: torch.device) -> torch.nn.Module:
    """Contrastive pretraining from scratch with open_clip's model, tokenizer and ClipLoss.

    AdamW with linear warm-up then cosine decay (as open_clip's trainer); random flips are the
    only augmentation because the generator already varies size, position, rotation and colour.
    """
    torch.manual_seed(seed)
    model = create_untrained(model_name, device)
    tokenizer = open_clip.get_tokenizer(model_name)
    tokens = tokenizer(captions)
    tower = TextTower(model)
    inputs = normalize_images(images, model)
    loss_fn = open_clip.ClipLoss()
    opt, sched = clip_optimizer(model, lr, steps)
    gen = torch.Generator().manual_seed(seed)
    model.train()
    bar = tqdm(range(steps), desc="pretrain tiny CLIP", unit="step")
    for _ in bar:
        idx = torch.randint(len(inputs), (batch_size,), generator=gen)
        x = inputs[idx]
        flip = torch.rand(batch_size, generator=gen) < 0.5
        x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x).to(device)
        img_f = F.normalize(model.encode_image(x), dim=-1)
        txt_f = F.normalize(tower.encode_tokens(tokens[idx].to(device)), dim=-1)  # = encode_text, EOT-truncated
        loss = loss_fn(img_f, txt_f, model.logit_scale.exp())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))  # CLIP's clamp
        bar.set_postfix(loss=f"{loss.item():.3f}")
    return model.eval()


def ramped_logit_scale(step: int, steps: int, start: float = 1 / 0.07, end: float = 100.0, ramp: float = 0.8) -> float:
    """CLIP's scale grows from 1/0.07 to its clamp at 100 during training; a tiny model's learned
    scale stalls near 14, and a fixed 100 from step 0 stalls the loss, so it is ramped (log-linear)."""
    frac = min(1.0, step / max(1e-9, ramp * (steps - 1)))
    return math.exp(math.log(start) + frac * (math.log(end) - math.log(start)))


def _contrastive_step(model, tower: TextTower, loss_fn, opt, sched, images_uint8: np.ndarray, tokens: torch.Tensor,
                      device: torch.device) -> torch.Tensor:
    """One ClipLoss step on a batch of (image, caption) pairs; returns the loss."""
    img_f = F.normalize(model.encode_image(normalize_images(np.ascontiguousarray(images_uint8), model).to(device)), dim=-1)
    txt_f = F.normalize(tower.encode_tokens(tokens.to(device)), dim=-1)  # = encode_text, EOT-truncated
    loss = loss_fn(img_f, txt_f, model.logit_scale.exp())
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    sched.step()
    return loss


def pretrain_on_pool(model_name: str, pool: np.ndarray, captions: list[list[list[str]]], pool_styles: np.ndarray, steps: int,
                     batch_size: int, lr: float, seed: int, device: torch.device, log_every: int = 100) -> tuple[torch.nn.Module, list[dict]]:
    """Contrastive pretraining from scratch with open_clip's model, tokenizer and `ClipLoss` on a
    pool of renders [C, K, H, W, 3] of C captioned concepts. Each batch holds distinct concepts (no
    false negatives); each image's caption is drawn from its style's templates, captions[c][style].
    AdamW, warm-up then cosine decay; the logit scale follows `ramped_logit_scale`.
    Returns the model (eval mode) and a loss log."""
    torch.manual_seed(seed)
    C, K = pool.shape[:2]
    if batch_size > C:
        raise NegPromptError(f"batch_size {batch_size} is larger than the {C} captioned concepts (batches hold distinct concepts)")
    model = create_untrained(model_name, device)
    model.logit_scale.requires_grad_(False)
    tokenizer = open_clip.get_tokenizer(model_name)
    flat = [(c, s, t) for c in range(C) for s in range(len(captions[c])) for t in captions[c][s]]
    tokens = tokenizer([t for _, _, t in flat])
    index: dict[tuple[int, int], list[int]] = {}
    for i, (c, s, _) in enumerate(flat):
        index.setdefault((c, s), []).append(i)
    tower = TextTower(model)
    loss_fn = open_clip.ClipLoss()
    opt, sched = clip_optimizer(model, lr, steps)
    rng = np.random.default_rng(seed)
    log = []
    model.train()
    bar = tqdm(range(steps), desc="pretrain stand-in CLIP", unit="step")
    for step in bar:
        ci = rng.choice(C, batch_size, replace=False)
        ki = rng.integers(0, K, batch_size)
        x = pool[ci, ki]
        flip = rng.random(batch_size) < 0.5
        x[flip] = x[flip, :, ::-1]
        ti = [index[(c, pool_styles[c, k])][rng.integers(len(index[(c, pool_styles[c, k])]))] for c, k in zip(ci, ki)]
        scale = ramped_logit_scale(step, steps)
        model.logit_scale.fill_(math.log(scale))
        loss = _contrastive_step(model, tower, loss_fn, opt, sched, x, tokens[ti], device)
        if step % log_every == 0 or step == steps - 1:
            log.append({"step": step, "loss": loss.item(), "logit_scale": scale, "lr": sched.get_last_lr()[0]})
            bar.set_postfix(loss=f"{loss.item():.3f}", scale=f"{scale:.0f}")
    return model.eval(), log


def continue_pretraining(model: torch.nn.Module, tokenizer, sample_batch, steps: int, lr: float, seed: int, device: torch.device,
                         log_every: int = 100) -> tuple[torch.nn.Module, list[dict]]:
    """Further contrastive training of a pretrained CLIP on a stream of fresh captioned images:
    `sample_batch(rng)` returns (uint8 images [B, H, W, 3], B captions). open_clip's ClipLoss at the
    model's own (already final, frozen) logit scale; AdamW with warm-up and cosine decay; random
    horizontal flips. Nothing is seen twice, so the model cannot memorise a pool."""
    torch.manual_seed(seed)
    model = model.to(device).float().train()
    model.requires_grad_(True)
    model.logit_scale.requires_grad_(False)
    tower = TextTower(model)
    loss_fn = open_clip.ClipLoss()
    opt, sched = clip_optimizer(model, lr, steps)
    rng = np.random.default_rng(seed)
    log = []
    bar = tqdm(range(steps), desc="continue pretraining", unit="step")
    for step in bar:
        x, captions = sample_batch(rng)
        flip = rng.random(len(x)) < 0.5
        x[flip] = x[flip, :, ::-1]
        loss = _contrastive_step(model, tower, loss_fn, opt, sched, x, tokenizer(captions), device)
        if step % log_every == 0 or step == steps - 1:
            log.append({"step": step, "loss": loss.item(), "logit_scale": float(model.logit_scale.exp()), "lr": sched.get_last_lr()[0]})
            bar.set_postfix(loss=f"{loss.item():.3f}")
    return model.eval(), log


def check_shipped(checkpoint) -> None:
    """A checkpoint with a manifest beside it (`<name>.json`, as `make pretrain` writes) must match its sha256."""
    manifest = checkpoint.with_suffix(".json")
    if manifest.is_file():
        expected = read_json(manifest).get("sha256")
        actual = sha256(checkpoint)
        if expected and actual != expected:
            raise NegPromptError(f"{checkpoint}: sha256 {actual[:12]}… does not match {expected[:12]}… in {manifest} (corrupt or replaced weights)")
