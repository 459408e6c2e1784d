"""Batched encoding of image files into L2-normalised CLIP features (done once, then cached)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms as T

from negprompt import NegPromptError, progress


class ImageFiles(Dataset):
    """Images by path; an unreadable file yields a zero tensor and its error instead of raising,
    so the caller decides: the pipeline stops naming the file, `detect` reports and skips it."""

    def __init__(self, paths: list[Path], transform):
        self.paths, self.transform = paths, transform

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        try:
            with Image.open(self.paths[i]) as im:
                return self.transform(im.convert("RGB")), ""
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
            return (
                None,
                f"{self.paths[i]}: not a readable image "
                f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else 'corrupt'})",
            )


def _collate(batch):
    ok = [x for x, err in batch if not err]
    shape = ok[0].shape if ok else (3, 1, 1)
    return torch.stack([x if x is not None else torch.zeros(shape) for x, _ in batch]) if ok else None, [
        err for _, err in batch
    ]


def augmented_view(preprocess, image_size: int):
    """The official code's train view: RandomCrop(size, padding=4) + horizontal flip, then the
    model's own resize/normalise."""
    steps = list(preprocess.transforms)
    resize, rest = steps[:2], steps[2:]  # Resize, CenterCrop | (RGB), ToTensor, Normalize
    return T.Compose([*resize, T.RandomCrop(image_size, padding=4), T.RandomHorizontalFlip(), *rest])


def encode_with_patches(model: torch.nn.Module, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(global [B, d], local [B, P, d]) unnormalised: the patch tokens after `ln_post`, projected
    by the same `proj` as the pooled token (GL-MCM's and LoCoOp's local features). ViT towers only."""
    visual = model.visual
    if (
        not hasattr(visual, "_pool")
        or getattr(visual, "attn_pool", None) is not None
        or getattr(visual, "proj", None) is None
    ):
        raise NegPromptError(
            f"{type(visual).__name__}: local (patch) features need an open_clip ViT image tower with a "
            "projection (features.local: true is not supported for ResNet/attention-pool towers)"
        )
    x = visual.transformer(visual._embeds(images))
    pooled, tokens = visual._pool(x)
    if visual.final_ln_after_pool:  # tokens were not normalised by _pool in this configuration
        tokens = visual.ln_post(tokens)
    return pooled @ visual.proj, tokens @ visual.proj


def patch_shape(model: torch.nn.Module, image_size: int) -> tuple[int, int]:
    """(patches P, feature size d) of `encode_with_patches` for this model."""
    with torch.inference_mode():
        device = next(model.parameters()).device
        return tuple(encode_with_patches(model, torch.zeros(1, 3, image_size, image_size, device=device))[1].shape[1:])


@torch.inference_mode()
def encode_images(
    model: torch.nn.Module,
    transform,
    paths: list[Path],
    batch_size: int = 256,
    num_workers: int = 0,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    strict: bool = True,
    desc: str = "encode images",
    local_out: np.ndarray | None = None,
) -> tuple[np.ndarray, list[str]]:
    """Features [N, d] float32 (L2-normalised) and per-image error strings ("" when fine).

    `local_out` [N, P, d] (e.g. a float16 `np.lib.format.open_memmap`) receives the L2-normalised
    patch features batch by batch, so ImageNet-scale patch caches never sit in memory.
    strict=True raises on the first unreadable image, naming the file; otherwise an unreadable image's
    row (global and local) is zero and its error string says why, so the caller can drop it.
    """
    device = torch.device(device)
    loader = DataLoader(
        ImageFiles(paths, transform),
        batch_size=batch_size,
        num_workers=num_workers,
        collate_fn=_collate,
        pin_memory=device.type == "cuda",
    )
    feats, errors = [], []
    autocast = torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32)
    for images, errs in progress(loader, desc, "batch"):
        if strict and any(errs):
            raise NegPromptError(next(e for e in errs if e))
        if images is None:
            feats.append(np.zeros((len(errs), 0), np.float32))
        else:
            with autocast:
                if local_out is not None:
                    f, tokens = encode_with_patches(model, images.to(device, non_blocking=True))
                    tokens = F.normalize(tokens.float(), dim=-1)
                    tokens[torch.tensor([bool(e) for e in errs], device=tokens.device)] = 0.0
                    local_out[len(errors) : len(errors) + len(errs)] = tokens.cpu().numpy()
                else:
                    f = model.encode_image(images.to(device, non_blocking=True))
            feats.append(F.normalize(f.float(), dim=-1).cpu().numpy())
        errors.extend(errs)
    dim = max(f.shape[1] for f in feats) if feats else 0
    out = (
        np.concatenate([f if f.shape[1] == dim else np.zeros((len(f), dim), np.float32) for f in feats])
        if feats
        else np.zeros((0, dim), np.float32)
    )
    out[np.array([bool(e) for e in errors], dtype=bool)] = 0.0
    return out, errors
