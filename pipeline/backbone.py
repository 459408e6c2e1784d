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


def pretrain_miniworld(backbone_params, data_params, device, path) -> None:
    """The colour x shape mini-world's tiny CLIP, pretrained here on its captioned renders and saved to `path`."""
    if data_params.benchmark != "miniworld" or backbone_params.model != backbone.TINY_MODEL:
        raise NegPromptError(
            f"backbone.pretrained is empty: only the mini-world's {backbone.TINY_MODEL} is pretrained here; "
            f"for {backbone_params.model} give an open_clip tag (e.g. laion2b_s34b_b88k) or a checkpoint file "
            f"(the OpenMoji stand-in: weights/{backbone.STANDIN_MODEL}.safetensors)"
        )
    world = miniworld.build_world(data_params.seed)
    images, captions, _ = miniworld.pretraining_pool(
        world, backbone_params.pretrain_images, backbone_params.seed + 1, data_params.image_size
    )
    model = contrastive.pretrain_clip(
        backbone_params.model,
        images,
        captions,
        backbone_params.steps,
        backbone_params.batch_size,
        backbone_params.lr,
        backbone_params.seed,
        device,
    )
    save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, str(path))


def main():
    params = load_params()
    backbone_params, data_params = params.backbone, params.data
    device = backbone.resolve_device(backbone_params.device)
    with atomic_path(BACKBONE, directory=True) as out:
        if backbone_params.pretrained == backbone.RANDOM:  # a scale test: the architecture's cost, no learned weights
            checkpoint = BACKBONE / f"{backbone_params.model}.random.safetensors"
            local = out / checkpoint.name
            save_file(backbone.random_weights(backbone_params.model, backbone_params.seed), str(local))
            print(
                f"{backbone_params.model} with random weights (seed {backbone_params.seed}): a scale test; "
                "its figures are not results"
            )
        elif backbone_params.pretrained:
            checkpoint = backbone.resolve_weights(
                backbone_params.model, backbone_params.pretrained, backbone_params.cache_dir
            )
            backbone.check_shipped(checkpoint)
            local = checkpoint
        else:
            checkpoint = BACKBONE / f"{backbone_params.model}.safetensors"
            local = out / checkpoint.name
            pretrain_miniworld(backbone_params, data_params, device, local)
        sha = backbone.sha256(local)
        loaded = backbone.load_backbone(backbone_params.model, local, "cpu", sha)  # fail here, not three stages later
        quality = {}
        if data_params.benchmark in ("openmoji", "miniworld"):
            quality = regime.world_diagnostics(
                loaded.model,
                backbone_params.model,
                data_params.benchmark,
                data_params.seed,
                data_params.image_size,
                data_params.font,
                params.score.zero_shot_template,
                params.neglabel,
            )
            print(f"{backbone_params.model} zero-shot on held-out renders: {regime.summary_line(quality)}")
        write_json(
            {
                "model": backbone_params.model,
                "pretrained": backbone_params.pretrained,
                "checkpoint": str(checkpoint),
                "weights_sha256": sha,
            },
            out / "manifest.json",
        )
    write_json(quality, REPORTS / "backbone.json")


if __name__ == "__main__":
    run(main)
