"""One runner for the prompt-learning stages (`train_pos`, `train_neg`, and any trained method a user adds).

It loads what a training stage reads (one seed's few-shot features, its held-out and test images, the backbone),
runs an objective's epochs with the per-epoch evaluation logged to DVCLive and the resume checkpoint, and saves
the kept contexts with their curve. The objective (negprompt.methods.objectives: CoOp, LoCoOp, NegPrompt's
stage 2) is its parameter: it knows how to train and how to evaluate one epoch's contexts, nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import torch

from negprompt.benchmarks.tables import read_classes
from negprompt.clip.backbone import Backbone
from negprompt.clip.prompts import PromptEncoder
from negprompt.config import Params
from negprompt.io import save_tensors
from negprompt.methods import curves
from negprompt.methods.checkpoint import Checkpoint, stage_checkpoint
from negprompt.methods.train import EpochHook, Trained
from negprompt.workspace import (
    BACKBONE,
    BENCHMARK,
    FEATURES,
    SUBSETS,
    Images,
    fewshot_features,
    heldout_images,
    stage_backbone,
    test_images,
)


@dataclass
class StageInputs:
    """What a training stage reads, with the test (and held-out) images already on the backbone's device."""

    seed: int
    params: Params
    backbone: Backbone
    feats: torch.Tensor  # [N, d] the seed's few shots (all views), L2-normalised
    labels: torch.Tensor  # [N] in 0..k-1 over `names`
    names: list[str]  # the classes trained on (open vocabulary: a fraction of them)
    patches: torch.Tensor | None  # [N, P, d] patch features (features.local) or None
    held: Images | None  # held-out ID images (subset.calib_per_class > 0)
    test: Images  # every test image: ID then each OOD set
    all_names: list[str]  # every ID class: what the test images are scored against
    files: list[Path] = field(default_factory=list)  # the inputs the resume checkpoint's key covers

    @property
    def device(self) -> torch.device:
        return next(self.backbone.model.parameters()).device

    @property
    def logit_scale(self) -> float:
        return self.backbone.model.logit_scale.exp().item()

    @property
    def id_mask(self) -> torch.Tensor:
        return torch.from_numpy(self.test.sets == "id").to(self.device)

    def encoders(self, n_ctx: int) -> tuple[PromptEncoder, PromptEncoder]:
        """(training encoder over `names`, test encoder over every ID class; the same one when they agree)."""
        backbone = self.backbone
        encoder = PromptEncoder(backbone.model, backbone.tokenizer, self.names, n_ctx=n_ctx)
        if self.all_names == self.names:
            return encoder, encoder
        return encoder, PromptEncoder(backbone.model, backbone.tokenizer, self.all_names, n_ctx=n_ctx)


def load_inputs(seed: int, params: Params, device: str, *, local: bool = False, after: tuple = ()) -> StageInputs:
    """Seed `seed`'s training inputs; `after`: earlier stages' outputs this stage also reads (for the checkpoint)."""
    backbone = stage_backbone(device)
    ov, fraction = params.open_vocab, params.subset.open_vocab_fraction
    feats, labels, names, patches = fewshot_features(seed, ov, fraction, local)
    held = heldout_images(seed, params.subset.calib_per_class, ov, fraction)
    test = test_images()
    run_device = next(backbone.model.parameters()).device
    files = [
        FEATURES / "train.parquet",
        FEATURES / "test.parquet",
        SUBSETS / f"seed{seed}.parquet",
        BENCHMARK / "classes.tsv",
        BACKBONE / "manifest.json",
        *after,
    ]
    return StageInputs(
        seed=seed,
        params=params,
        backbone=backbone,
        feats=feats,
        labels=labels,
        names=names,
        patches=patches,
        held=held and held.to(run_device),
        test=test.to(run_device),
        all_names=read_classes(BENCHMARK / "classes.tsv").name.tolist(),
        files=files,
    )


class Objective(Protocol):
    """A trained method: `train` runs its epochs (resuming from `checkpoint`, calling `on_epoch` after each),
    `evaluate` gives one epoch's held-out and test figures. `stage` names its checkpoint, `curves` its DVCLive
    run (None: no per-epoch evaluation, as LoCoOp's baseline)."""

    stage: str
    curves: str | None
    log_params: dict

    def train(self, *, checkpoint: Checkpoint, on_epoch: EpochHook | None) -> Trained: ...

    def evaluate(self, state: dict[str, torch.Tensor]) -> dict: ...


@dataclass
class Run:
    trained: Trained
    checkpoint: Checkpoint
    timer: curves.Timer


def run_objective(objective: Objective, inputs: StageInputs) -> Run:
    """Train `objective` on `inputs` with its checkpoint (a killed run continues from its last finished epoch,
    its curves replayed) and, when it has curves, the per-epoch evaluation logged to DVCLive."""
    params = inputs.params.model_dump(mode="json")
    ckpt = stage_checkpoint(objective.stage, inputs.seed, params, inputs.files)
    timer = curves.Timer()
    if objective.curves is None:
        return Run(objective.train(checkpoint=ckpt, on_epoch=None), ckpt, timer)
    with curves.open_curves(f"{objective.curves}_seed{inputs.seed}") as live:
        live.log_params(objective.log_params)
        for record in ckpt.curve:
            curves.log_epoch(live, record)

        def on_epoch(epoch: int, state: dict, record: dict) -> dict:
            with timer:
                out = objective.evaluate(state)
            curves.log_epoch(live, record | out)
            return out

        trained = objective.train(checkpoint=ckpt, on_epoch=on_epoch)
        curves.keep_summary(live, trained)
    return Run(trained, ckpt, timer)


def save_outputs(path: Path, tensors: dict[str, torch.Tensor], metadata: dict, runs: list[Run]) -> None:
    """The stage's contexts (its curves are DVCLive's, one file per curve); then its checkpoints go (every output
    is written: nothing to resume)."""
    save_tensors(tensors, path, metadata)
    for run in runs:
        run.checkpoint.remove()


def kept_line(seed: int, section: str, select: str, schedule: str, run: Run, total: float) -> str:
    trained = run.trained
    return (
        f"seed {seed}: kept epoch {trained.kept + 1} of {len(trained.curve)} ({section}.select: {select}, "
        f"schedule: {schedule}); " + curves.cost_line(run.timer, total)
    )
