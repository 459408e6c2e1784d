"""Stage `backbone`: resolve the CLIP weights (an open_clip tag, a local file, or, for the
mini-world, a tiny CLIP pretrained here) and write a manifest with their sha256."""
import numpy as np
import torch
import torch.nn.functional as F

from negprompt import NegPromptError, backbone, metrics, miniworld, prompts, scores
from negprompt.io import atomic_path, write_json
from negprompt.miniworld import build_world
from pipeline.common import BACKBONE, REPORTS, load_params, run


@torch.inference_mode()
def tiny_quality(model, tokenizer, world, seed: int, per_concept: int = 20) -> dict:
    """Zero-shot top-1 over every world concept, and zero-shot MCM AUROC of ID vs each OOD set,
    on freshly rendered images (a held-out seed: neither the pretraining pool nor the test sets)."""
    rng = np.random.default_rng([seed, 12345])
    concepts = world.all_concepts
    images = np.stack([miniworld.render(c, rng) for c in concepts for _ in range(per_concept)])
    feats = F.normalize(model.encode_image(backbone.normalize_images(images, model)), dim=-1)
    text = prompts.encode_texts(model, tokenizer, [f"a photo of a {c.name}." for c in concepts])
    labels = torch.arange(len(concepts)).repeat_interleave(per_concept)
    out = {"zero_shot_top1_all_concepts": float(((feats @ text.T).argmax(1) == labels).float().mean())}
    k = len(world.id_classes)  # ID classes come first in world.all_concepts
    id_scores = scores.mcm(feats[: k * per_concept] @ text[:k].T).numpy()
    for name in miniworld.OOD_SETS:
        ood = list(world.ood[name])
        imgs = np.stack([miniworld.render(c, rng) for c in ood for _ in range(max(per_concept, 240 // len(ood)))])
        f = F.normalize(model.encode_image(backbone.normalize_images(imgs, model)), dim=-1)
        out[f"mcm_auroc_{name}"] = metrics.auroc(id_scores, scores.mcm(f @ text[:k].T).numpy())
    return out


def main():
    params = load_params()
    p, d = params.backbone, params.data
    device = backbone.resolve_device(p.device)
    with atomic_path(BACKBONE, directory=True) as out:
        if p.pretrained:
            checkpoint = backbone.resolve_weights(p.model, p.pretrained, p.cache_dir)
            quality = {}
        else:
            if d.benchmark != "miniworld" or p.model != backbone.TINY_MODEL:
                raise NegPromptError(f"backbone.pretrained is empty: only the mini-world's {backbone.TINY_MODEL} is pretrained here; "
                                     f"for {p.model} give an open_clip tag (e.g. laion2b_s34b_b88k) or a checkpoint file")
            world = build_world(d.seed)
            images, captions, _ = miniworld.pretraining_pool(world, p.pretrain_images, p.seed + 1, d.image_size)
            model = backbone.pretrain_clip(p.model, images, captions, p.steps, p.batch_size, p.lr, p.seed, device)
            checkpoint = BACKBONE / f"{p.model}.safetensors"
            from safetensors.torch import save_file

            save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, str(out / checkpoint.name))
            quality = tiny_quality(model.cpu(), __import__("open_clip").get_tokenizer(p.model), world, p.seed)
            for k, v in quality.items():
                print(f"{k}: {v:.4f}")
        local = out / checkpoint.name if not p.pretrained else checkpoint
        sha = backbone.sha256(local)
        backbone.load_backbone(p.model, local, "cpu", sha)  # fail here, not three stages later
        write_json({"model": p.model, "pretrained": p.pretrained, "checkpoint": str(checkpoint), "weights_sha256": sha}, out / "manifest.json")
    write_json(quality, REPORTS / "backbone.json")


if __name__ == "__main__":
    run(main)
