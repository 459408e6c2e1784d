"""A trained NegPrompt detector as a self-contained bundle, and scoring of arbitrary image files.

Bundle layout (a directory):
  manifest.json          backbone identity, class names, temperature, threshold, format version
  prompts.safetensors    pos_ctx [n, w], neg_ctx [p, n, w]
  backbone.safetensors   the CLIP weights, only when they are a local file (the mini-world's);
                         open_clip tags are resolved through open_clip and checked by sha256
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from negprompt import NegPromptError
from negprompt.benchmarks.tables import IMAGE_EXTENSIONS
from negprompt.clip.backbone import load_backbone, resolve_weights, sha256
from negprompt.clip.features import encode_images
from negprompt.clip.prompts import PromptEncoder
from negprompt.io import atomic_path, load_tensors, read_json, save_tensors, write_json
from negprompt.methods.scores import negprompt

FORMAT = "negprompt-detector/1"


def export_bundle(
    out: Path,
    backbone: dict,
    classnames: list[str],
    pos_ctx: torch.Tensor,
    neg_ctx: torch.Tensor,
    temperature: float,
    threshold: float,
    extra: dict | None = None,
) -> None:
    """Write a bundle atomically. `backbone` is the backbone stage's manifest (model, pretrained,
    checkpoint, weights_sha256)."""
    with atomic_path(out, directory=True) as tmp:
        local = not backbone["pretrained"] or Path(backbone["pretrained"]).is_file()
        if local:
            shutil.copyfile(backbone["checkpoint"], tmp / "backbone.safetensors")
        save_tensors({"pos_ctx": pos_ctx, "neg_ctx": neg_ctx}, tmp / "prompts.safetensors")
        write_json(
            {
                "format": FORMAT,
                "backbone": {
                    "model": backbone["model"],
                    "pretrained": "" if local else backbone["pretrained"],
                    "weights_sha256": backbone["weights_sha256"],
                },
                "classnames": classnames,
                "temperature": temperature,
                "threshold": threshold,
                "num_prompts": int(neg_ctx.shape[0]),
                "n_ctx": int(pos_ctx.shape[0]),
                **(extra or {}),
            },
            tmp / "manifest.json",
        )


def find_images(inputs: list[Path]) -> list[Path]:
    """Files as given, folders recursively (every file, so non-images are reported, not silently dropped)."""
    files = []
    for path in inputs:
        if path.is_dir():
            files += sorted(f for f in path.rglob("*") if f.is_file() and not f.name.startswith("."))
        elif path.is_file():
            files.append(path)
        else:
            raise NegPromptError(f"{path}: no such file or folder")
    return files


class Detector:
    def __init__(self, bundle: Path, checkpoint: Path | None = None, device: str | torch.device = "cpu"):
        bundle = Path(bundle)
        m = read_json(bundle / "manifest.json")
        if m.get("format") != FORMAT:
            raise NegPromptError(
                f"{bundle / 'manifest.json'}: not a negprompt detector bundle "
                f"(format {m.get('format')!r}, expected {FORMAT!r})"
            )
        backbone_manifest = m["backbone"]
        if checkpoint is None:
            checkpoint = (
                bundle / "backbone.safetensors"
                if not backbone_manifest["pretrained"]
                else resolve_weights(backbone_manifest["model"], backbone_manifest["pretrained"])
            )
        got = sha256(checkpoint) if Path(checkpoint).is_file() else None
        if got != backbone_manifest["weights_sha256"]:
            raise NegPromptError(
                f"{checkpoint}: backbone weights sha256 {str(got)[:12]}… "
                f"differ from the bundle's {backbone_manifest['weights_sha256'][:12]}… "
                f"({backbone_manifest['model']} {backbone_manifest['pretrained'] or 'local checkpoint'}): "
                "the prompts were learned on another backbone"
            )
        self.backbone = load_backbone(backbone_manifest["model"], checkpoint, device, got)
        tensors, _ = load_tensors(bundle / "prompts.safetensors")
        self.classnames, self.temperature, self.threshold = (
            m["classnames"],
            float(m["temperature"]),
            float(m["threshold"]),
        )
        enc = PromptEncoder(self.backbone.model, self.backbone.tokenizer, self.classnames, int(m["n_ctx"]))
        dev = self.backbone.model.logit_scale.device
        with torch.no_grad():
            pos, neg = enc.pos_neg(tensors["pos_ctx"].to(dev), tensors["neg_ctx"].to(dev))
        self.pos, self.neg = pos.cpu(), neg.cpu()  # [k, d], [k, p, d]
        self.device = dev

    def score_files(
        self, files: list[Path], batch_size: int = 64, threshold: float | None = None, num_workers: int = 0
    ) -> pd.DataFrame:
        """One row per file: predicted ID class, ID score (Eq. 3), OOD flag, top negative similarity,
        error. A row with an error has <NA> in every verdict column."""
        thr = self.threshold if threshold is None else threshold
        feats, errors = encode_images(
            self.backbone.model,
            self.backbone.preprocess,
            files,
            batch_size,
            num_workers,
            self.device,
            strict=False,
            desc="detect",
        )
        for i, f in enumerate(files):
            if not errors[i] and f.suffix.lower() not in IMAGE_EXTENSIONS and not _is_image(f):
                errors[i] = f"{f}: not an image"
        score, pos_sim, neg_sim = negprompt(torch.from_numpy(feats), self.pos, self.neg, self.temperature)
        score = score.numpy()
        ok = np.array([not e for e in errors])
        pred = pos_sim.argmax(1).numpy()
        # Unreadable files get no verdict: nullable columns hold <NA> (empty in CSV, null in JSON and
        # parquet), so filtering on is_ood == False keeps only images that were actually scored.
        return pd.DataFrame(
            {
                "path": [str(f) for f in files],
                "predicted_class": pd.array(
                    [self.classnames[p] if o else None for p, o in zip(pred, ok)], dtype="string"
                ),
                "id_score": pd.array([float(v) if o else None for v, o in zip(score, ok)], dtype="Float64"),
                "is_ood": pd.array([bool(v) if o else None for v, o in zip(score < thr, ok)], dtype="boolean"),
                "top_negative_similarity": pd.array(
                    [float(v) if o else None for v, o in zip(neg_sim.flatten(1).max(1).values, ok)], dtype="Float64"
                ),
                "error": errors,
            }
        )


def _is_image(path: Path) -> bool:
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.verify()
        return True
    except Exception:
        return False
