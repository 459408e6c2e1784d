"""The trained methods as objectives of negprompt.methods.runner: how each trains, and how one epoch's contexts
are evaluated (per-epoch curves, the `select` criterion's column).

CoOp (stage 1, Eqs. 1-2) is evaluated on the held-out ID images' accuracy, the test ID accuracy and, per OOD set,
the AUROC / FPR95 of its MCM score. NegPrompt's stage 2 (Eqs. 3-7) on the stage-2 loss of the held-out ID images
and the AUROC / FPR95 of its score (Eq. 3). LoCoOp, a baseline run as its paper does, keeps its last epoch and is
not evaluated per epoch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from negprompt.clip.prompts import PromptEncoder, TextTower, init_context, init_negative_context
from negprompt.config import NegParams, PosParams
from negprompt.methods.checkpoint import Checkpoint
from negprompt.methods.runner import StageInputs
from negprompt.methods.scores import mcm, negprompt
from negprompt.methods.selection import Criterion, accuracy, ood_figures
from negprompt.methods.train import EpochHook, Trained, stage2_loss, train_negative, train_positive

SCORE_BATCH = 8192  # test images scored at once by NegPrompt: [B, k, p] similarities (ImageNet: k = 1000)


@dataclass
class CoOp:
    """Stage 1: the shared positive context, from `pos.ctx_init` (or N(0, 0.02^2) with `pos.n_ctx` tokens)."""

    inputs: StageInputs
    config: PosParams
    criterion: Criterion | None
    stage: str = "train_pos"
    curves: str | None = "pos"
    ctx0: torch.Tensor = field(init=False)
    encoder: PromptEncoder = field(init=False)
    test_encoder: PromptEncoder = field(init=False)

    def __post_init__(self):
        backbone, c = self.inputs.backbone, self.config
        gen = torch.Generator().manual_seed(self.inputs.seed)
        self.ctx0 = init_context(TextTower(backbone.model), backbone.tokenizer, c.ctx_init, c.n_ctx, gen)
        self.encoder, self.test_encoder = self.inputs.encoders(len(self.ctx0))

    @property
    def log_params(self) -> dict:
        return {"select": self.config.select, "schedule": self.config.schedule}

    def train(self, *, checkpoint: Checkpoint, on_epoch: EpochHook | None) -> Trained:
        i = self.inputs
        loop = {"seed": i.seed, "criterion": self.criterion, "checkpoint": checkpoint, "on_epoch": on_epoch}
        return train_positive(self.encoder, self.ctx0, i.feats, i.labels, i.logit_scale, self.config, **loop)

    @torch.no_grad()
    def evaluate(self, state: dict[str, torch.Tensor]) -> dict:
        i, chunk = self.inputs, self.config.chunk
        ctx = state["ctx"].to(i.device)
        out = {}
        if i.held is not None:
            out["calib/id_acc"] = accuracy(i.held.feats @ self.encoder(ctx, chunk=chunk).T, i.held.labels)
        sim = i.test.feats @ self.test_encoder(ctx, chunk=chunk).T  # [N, k] cosine
        ident = i.id_mask
        out["test/id_acc"] = accuracy(sim[ident], i.test.labels[ident])
        return out | ood_figures(mcm(sim, i.params.score.temperature).cpu(), i.test.sets, i.test.ood)


@dataclass
class LoCoOp:
    """LoCoOp (Miyai et al. 2023): CoOp's initialisation and optimiser + λ · entropy of the patches whose top-k
    classes miss the label; its last epoch is kept."""

    coop: CoOp
    stage: str = "train_pos_locoop"
    curves: str | None = None
    log_params: dict = field(default_factory=dict)

    def train(self, *, checkpoint: Checkpoint, on_epoch: EpochHook | None) -> Trained:
        i, locoop = self.coop.inputs, self.coop.inputs.params.locoop
        return train_positive(
            self.coop.encoder,
            self.coop.ctx0,
            i.feats,
            i.labels,
            i.logit_scale,
            self.coop.config,
            seed=i.seed,
            local=i.patches,
            locoop_lambda=locoop.lam,
            locoop_top_k=max(1, round(locoop.top_fraction * len(i.names))),
            checkpoint=checkpoint,
        )

    def evaluate(self, state: dict[str, torch.Tensor]) -> dict:
        return {}


@dataclass
class NegPromptStage2:
    """Stage 2: `neg.num_prompts` negative contexts shared across classes, the positive one frozen (`pos_ctx`, stage
    1's); with `neg.one_stage` (Table 5 ablation) both from their initialisation, trained together."""

    inputs: StageInputs
    config: NegParams
    criterion: Criterion | None
    pos_ctx: torch.Tensor | None  # stage 1's context; None with one_stage
    select_set: str = ""
    stage: str = "train_neg"
    curves: str | None = "neg"
    neg0: torch.Tensor = field(init=False)
    encoder: PromptEncoder = field(init=False)
    test_encoder: PromptEncoder = field(init=False)

    def __post_init__(self):
        i, c = self.inputs, self.config
        gen = torch.Generator().manual_seed(i.seed)
        if c.one_stage:
            pos_params = i.params.pos
            self.pos_ctx = init_context(
                TextTower(i.backbone.model), i.backbone.tokenizer, pos_params.ctx_init, pos_params.n_ctx, gen
            )
            self.config = c.model_copy(update={"epochs": pos_params.epochs})
        self.encoder, self.test_encoder = i.encoders(len(self.pos_ctx))
        self.neg0 = init_negative_context(self.pos_ctx, c.num_prompts, c.init, gen)

    @property
    def log_params(self) -> dict:
        c = self.config
        return {"select": c.select, "schedule": c.schedule, "select_set": self.select_set}

    def train(self, *, checkpoint: Checkpoint, on_epoch: EpochHook | None) -> Trained:
        i = self.inputs
        loop = {"seed": i.seed, "criterion": self.criterion, "checkpoint": checkpoint, "on_epoch": on_epoch}
        return train_negative(
            self.encoder, self.pos_ctx, self.neg0, i.feats, i.labels, i.logit_scale, self.config, **loop
        )

    @torch.no_grad()
    def evaluate(self, state: dict[str, torch.Tensor]) -> dict:
        i, c = self.inputs, self.config
        pos_c, neg_c = state["pos_ctx"].to(i.device), state["neg_ctx"].to(i.device)
        out = {}
        if i.held is not None:  # select: id_val's criterion, the training loss on held-out ID images
            pos_f, neg_f = self.encoder.pos_neg(pos_c, neg_c, chunk=c.chunk)
            loss = stage2_loss(
                c.loss_variant, i.held.feats, i.held.labels, pos_f, neg_f, i.logit_scale, c.beta, c.gamma
            )
            if c.one_stage:
                loss = loss + F.cross_entropy(i.logit_scale * i.held.feats @ pos_f.T, i.held.labels)
            out["calib/loss"] = loss.item()
        pos_t, neg_t = self.test_encoder.pos_neg(pos_c, neg_c, chunk=c.chunk)  # [k, d], [k, p, d]
        score, pred = [], []
        for img in i.test.feats.split(SCORE_BATCH):
            s, pos_sim, _ = negprompt(img, pos_t, neg_t, i.params.score.temperature)
            score.append(s)
            pred.append(pos_sim.argmax(1))
        pred, ident = torch.cat(pred), i.id_mask
        out["test/id_acc"] = float((pred[ident] == i.test.labels[ident]).double().mean())
        return out | ood_figures(torch.cat(score).cpu(), i.test.sets, i.test.ood)
