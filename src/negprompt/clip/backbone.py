"""open_clip model resolution: real tags, local checkpoint files, and the tiny mini-world CLIP.

The tiny model is an ordinary open_clip architecture registered from a JSON config
(`resources/miniworld-tiny.json`, via `open_clip.add_model_config`) and pretrained by
`negprompt_standin.contrastive` with open_clip's own tokenizer, model classes and `ClipLoss`, so every
later stage loads it exactly as it loads ViT-B-16: `open_clip.create_model_and_transforms(name, pretrained=<file>)`.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import open_clip
import torch
import torch.nn.functional as F

from negprompt import NegPromptError
from negprompt.io import read_json

TINY_CONFIG = Path(__file__).parents[1] / "resources" / "miniworld-tiny.json"
TINY_MODEL = TINY_CONFIG.stem
STANDIN_CONFIG = Path(__file__).parents[1] / "resources" / "openmoji-tiny.json"
STANDIN_MODEL = STANDIN_CONFIG.stem  # the OpenMoji world's stand-in CLIP, shipped pretrained (weights/)
for _config in (TINY_CONFIG, STANDIN_CONFIG):
    open_clip.add_model_config(_config)


def resolve_device(device: str) -> torch.device:
    """The stage's device; on CUDA also TF32 for float32 matrix products (CPU settings are never touched)."""
    if device == "auto":
        dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        try:
            dev = torch.device(device)
        except RuntimeError:
            raise NegPromptError(
                f"device {device!r} is not a torch device (expected auto, cpu, cuda or cuda:N)"
            ) from None
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise NegPromptError(f"device {device!r} requested but CUDA is not available on this machine")
    if dev.type == "cuda":
        allow_tf32()
    return dev


def allow_tf32() -> None:
    """TF32 tensor cores for float32 matmuls and convolutions on CUDA (10-bit mantissa products, float32
    accumulation: what `torch.set_float32_matmul_precision("high")` selects), CUDA backends only, so CPU
    results stay bit-identical. The per-backend API where torch has it (2.9+), else the older flags."""
    if hasattr(torch.backends.cuda.matmul, "fp32_precision"):
        torch.backends.cuda.matmul.fp32_precision = "tf32"
        torch.backends.cudnn.conv.fp32_precision = "tf32"
    else:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


def check_model_name(model: str) -> None:
    if model not in open_clip.list_models():
        close = [m for m in open_clip.list_models() if model.lower().split("-")[0] in m.lower()][:8]
        raise NegPromptError(
            f"backbone.model {model!r} is not an open_clip model (close: {', '.join(close) or 'none'})"
        )


RANDOM = "random"  # backbone.pretrained value: the architecture untrained, for scale tests (never results)


def random_weights(model: str, seed: int) -> dict[str, torch.Tensor]:
    """The state dict of `model` as open_clip initialises it, seeded: what a scale test needs is the
    architecture's shapes and cost (77-token context, 196 patches, width 512/768), not its weights."""
    check_model_name(model)
    torch.manual_seed(seed)
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # open_clip warns that no pretrained weights are loaded: that is the point
    try:
        net = open_clip.create_model(model, device="cpu")
    finally:
        root.setLevel(level)
    return {k: v.detach().contiguous() for k, v in net.state_dict().items()}


def resolve_weights(model: str, pretrained: str, cache_dir: str | None = None) -> Path:
    """A local file for `pretrained`: the path itself, or the open_clip tag downloaded into `cache_dir`."""
    check_model_name(model)
    if Path(pretrained).is_file():
        return Path(pretrained)
    cfg = open_clip.get_pretrained_cfg(model, pretrained)
    if not cfg:
        tags = open_clip.list_pretrained_tags_by_model(model)
        raise NegPromptError(
            f"backbone.pretrained {pretrained!r} is neither a file nor an open_clip tag of {model} "
            f"(tags: {', '.join(tags) or 'none'})"
        )
    try:
        return Path(open_clip.download_pretrained(cfg, cache_dir=cache_dir or None))
    except Exception as e:  # network errors come in many types; the message is what matters
        raise NegPromptError(
            f"could not download {model}/{pretrained} into cache_dir {cache_dir or '(default)'}: {e}"
        ) from None


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


def load_backbone(
    model: str, checkpoint: str | Path, device: torch.device | str = "cpu", weights_sha256: str = ""
) -> Backbone:
    """Load `model` with weights from a local checkpoint file, frozen, in eval mode."""
    check_model_name(model)
    if not Path(checkpoint).is_file():
        raise NegPromptError(f"backbone checkpoint {checkpoint} not found (run the backbone stage)")
    try:
        net, _, preprocess = open_clip.create_model_and_transforms(model, pretrained=str(checkpoint), device=device)
    except RuntimeError as e:
        raise NegPromptError(
            f"backbone checkpoint {checkpoint} does not load into {model}: {str(e).splitlines()[0]}"
        ) from None
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
def encode_arrays(model: torch.nn.Module, images_uint8: np.ndarray, batch_size: int = 512) -> torch.Tensor:
    """L2-normalised image features of uint8 images [N, H, W, 3] (already at the model's size)."""
    device = next(model.parameters()).device
    out = [
        model.encode_image(normalize_images(images_uint8[i : i + batch_size], model).to(device)).float().cpu()
        for i in range(0, len(images_uint8), batch_size)
    ]
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


def check_shipped(checkpoint) -> None:
    """A checkpoint with a manifest beside it (`<name>.json`, as `make pretrain` writes) must match its sha256."""
    manifest = checkpoint.with_suffix(".json")
    if manifest.is_file():
        expected = read_json(manifest).get("sha256")
        actual = sha256(checkpoint)
        if expected and actual != expected:
            raise NegPromptError(
                f"{checkpoint}: sha256 {actual[:12]}… does not match {expected[:12]}… in {manifest} "
                "(corrupt or replaced weights)"
            )
