"""Batched encoding of image files into L2-normalised CLIP features (done once, then cached)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms as T
from tqdm import tqdm

from negprompt import NegPromptError


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
            return None, f"{self.paths[i]}: not a readable image ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else 'corrupt'})"


def _collate(batch):
    ok = [x for x, err in batch if not err]
    shape = ok[0].shape if ok else (3, 1, 1)
    return torch.stack([x if x is not None else torch.zeros(shape) for x, _ in batch]) if ok else None, [err for _, err in batch]


def augmented_view(preprocess, image_size: int):
    """The official code's train view: RandomCrop(size, padding=4) + horizontal flip, then the
    model's own resize/normalise."""
    steps = list(preprocess.transforms)
    resize, rest = steps[:2], steps[2:]  # Resize, CenterCrop | (RGB), ToTensor, Normalize
    return T.Compose([*resize, T.RandomCrop(image_size, padding=4), T.RandomHorizontalFlip(), *rest])


@torch.inference_mode()
def encode_images(model: torch.nn.Module, transform, paths: list[Path], batch_size: int = 256, num_workers: int = 0,
                  device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32, strict: bool = True,
                  desc: str = "encode images") -> tuple[np.ndarray, list[str]]:
    """Features [N, d] float32 (L2-normalised) and per-image error strings ("" when fine).

    strict=True raises on the first unreadable image, naming the file.
    """
    device = torch.device(device)
    loader = DataLoader(ImageFiles(paths, transform), batch_size=batch_size, num_workers=num_workers,
                        collate_fn=_collate, pin_memory=device.type == "cuda")
    feats, errors = [], []
    autocast = torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32)
    for images, errs in tqdm(loader, desc=desc, unit="batch"):
        if strict and any(errs):
            raise NegPromptError(next(e for e in errs if e))
        if images is None:
            feats.append(np.zeros((len(errs), 0), np.float32))
        else:
            with autocast:
                f = model.encode_image(images.to(device, non_blocking=True))
            feats.append(F.normalize(f.float(), dim=-1).cpu().numpy())
        errors.extend(errs)
    dim = max(f.shape[1] for f in feats) if feats else 0
    out = np.concatenate([f if f.shape[1] == dim else np.zeros((len(f), dim), np.float32) for f in feats]) if feats else np.zeros((0, dim), np.float32)
    out[np.array([bool(e) for e in errors], dtype=bool)] = 0.0
    return out, errors
