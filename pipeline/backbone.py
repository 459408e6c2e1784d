"""Stage `backbone`: resolve the CLIP weights (an open_clip tag, a local file such as the shipped
OpenMoji stand-in, or, for the colour x shape mini-world, a tiny CLIP pretrained here), check them,
and write a manifest with their sha256. For generated worlds it also writes the backbone's zero-shot
diagnostics (reports/backbone.json) on fresh held-out renders, never on the benchmark's test sets.
`pretrained: random` writes the architecture's seeded initial weights: ImageNet-scale timing without a download."""

from safetensors.torch import save_file

from negprompt import NegPromptError
from negprompt.benchmarks import miniworld
from negprompt.clip import backbone
from negprompt.io import atomic_path, write_json
from negprompt.workspace import BACKBONE, REPORTS, load_params
from negprompt_standin import contrastive, regime
from pipeline.common import run


def main():
    params = load_params()
    p, d = params.backbone, params.data
    device = backbone.resolve_device(p.device)
    with atomic_path(BACKBONE, directory=True) as out:
        if p.pretrained == backbone.RANDOM:  # a scale test: the architecture's cost, no learned weights
            checkpoint = BACKBONE / f"{p.model}.random.safetensors"
            local = out / checkpoint.name
            save_file(backbone.random_weights(p.model, p.seed), str(local))
            print(f"{p.model} with random weights (seed {p.seed}): a scale test; its figures are not results")
        elif p.pretrained:
            checkpoint = backbone.resolve_weights(p.model, p.pretrained, p.cache_dir)
            backbone.check_shipped(checkpoint)
            local = checkpoint
        else:
            if d.benchmark != "miniworld" or p.model != backbone.TINY_MODEL:
                raise NegPromptError(
                    f"backbone.pretrained is empty: only the mini-world's {backbone.TINY_MODEL} is pretrained here; "
                    f"for {p.model} give an open_clip tag (e.g. laion2b_s34b_b88k) or a checkpoint file "
                    f"(the OpenMoji stand-in: weights/{backbone.STANDIN_MODEL}.safetensors)"
                )
            world = miniworld.build_world(d.seed)
            images, captions, _ = miniworld.pretraining_pool(world, p.pretrain_images, p.seed + 1, d.image_size)
            model = contrastive.pretrain_clip(p.model, images, captions, p.steps, p.batch_size, p.lr, p.seed, device)
            checkpoint = BACKBONE / f"{p.model}.safetensors"
            local = out / checkpoint.name
            save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, str(local))
        sha = backbone.sha256(local)
        loaded = backbone.load_backbone(p.model, local, "cpu", sha)  # fail here, not three stages later
        quality = {}
        if d.benchmark in ("openmoji", "miniworld"):
            quality = regime.world_diagnostics(
                loaded.model,
                p.model,
                d.benchmark,
                d.seed,
                d.image_size,
                d.font,
                params.score.zero_shot_template,
                params.neglabel,
            )
            print(f"{p.model} zero-shot on held-out renders: {regime.summary_line(quality)}")
        write_json(
            {"model": p.model, "pretrained": p.pretrained, "checkpoint": str(checkpoint), "weights_sha256": sha},
            out / "manifest.json",
        )
    write_json(quality, REPORTS / "backbone.json")


if __name__ == "__main__":
    run(main)
