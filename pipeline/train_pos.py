"""Stage `train_pos` (CoOp, Eqs. 1-2): learn the shared positive context on one seed's few shots.
With features.local it also trains the LoCoOp baseline (same init and optimiser, + patch entropy).

After every epoch CoOp is evaluated (pipeline/curves.py): accuracy on the held-out ID images
(calib split), test ID accuracy and, per OOD set, the AUROC / FPR95 of its MCM score; `pos.select`
keeps the epoch that is best on one of those curves (negprompt.methods.selection). LoCoOp, a baseline
run as its paper does, keeps its last epoch.
"""

import time

import torch
import typer

from negprompt.benchmarks.tables import read_classes
from negprompt.clip.prompts import PromptEncoder, TextTower, init_context
from negprompt.io import save_tensors
from negprompt.methods import curves
from negprompt.methods.checkpoint import stage_checkpoint
from negprompt.methods.scores import mcm
from negprompt.methods.selection import accuracy, criterion, ood_figures
from negprompt.methods.train import train_positive
from negprompt.workspace import (
    BACKBONE,
    BENCHMARK,
    FEATURES,
    POS,
    REPORTS,
    SUBSETS,
    fewshot_features,
    heldout_images,
    load_params,
    stage_backbone,
    test_images,
    write_curve,
)
from pipeline.common import run


def main(seed: int = typer.Option(..., help="subset seed (one of subset.seeds)")):
    start = time.perf_counter()
    params = load_params()
    p = params.pos
    curves.check_select("pos", p.select, params.subset.calib_per_class)
    bb = stage_backbone(p.device)
    local = params.features.local
    feats, labels, names, patches = fewshot_features(seed, params.open_vocab, params.subset.open_vocab_fraction, local)
    held = heldout_images(seed, params.subset.calib_per_class, params.open_vocab, params.subset.open_vocab_fraction)
    test = test_images()
    ctx0 = init_context(TextTower(bb.model), bb.tokenizer, p.ctx_init, p.n_ctx, torch.Generator().manual_seed(seed))
    encoder = PromptEncoder(bb.model, bb.tokenizer, names, n_ctx=len(ctx0))
    all_names = read_classes(BENCHMARK / "classes.tsv").name.tolist()  # test: every ID class, also in open vocabulary
    test_encoder = encoder if all_names == names else PromptEncoder(bb.model, bb.tokenizer, all_names, n_ctx=len(ctx0))
    scale = bb.model.logit_scale.exp().item()
    device = encoder.prefix.device
    held, test = held and held.to(device), test.to(device)
    ident = torch.from_numpy(test.sets == "id").to(device)
    crit = criterion("pos", p.select)
    timer = curves.Timer()

    @torch.no_grad()
    def evaluate(live, epoch: int, state: dict, record: dict) -> dict:
        with timer:
            ctx = state["ctx"].to(device)
            out = {}
            if held is not None:
                out["calib/id_acc"] = accuracy(held.feats @ encoder(ctx, chunk=p.chunk).T, held.labels)
            sim = test.feats @ test_encoder(ctx, chunk=p.chunk).T  # [N, k] cosine
            out["test/id_acc"] = accuracy(sim[ident], test.labels[ident])
            out |= ood_figures(mcm(sim, params.score.temperature).cpu(), test.sets, test.ood)
        curves.log_epoch(live, record | out)
        return out

    # a killed run continues from its last finished epoch (negprompt.methods.checkpoint), its curves replayed
    inputs = [
        FEATURES / "train.parquet",
        FEATURES / "test.parquet",
        SUBSETS / f"seed{seed}.parquet",
        BENCHMARK / "classes.tsv",
        BACKBONE / "manifest.json",
    ]
    ckpt = stage_checkpoint("train_pos", seed, params.model_dump(mode="json"), inputs)
    with curves.open_curves(f"pos_seed{seed}") as live:
        live.log_params({"select": p.select, "schedule": p.schedule})
        for record in ckpt.curve:
            curves.log_epoch(live, record)
        trained = train_positive(
            encoder,
            ctx0,
            feats,
            labels,
            scale,
            p,
            seed=seed,
            criterion=crit,
            checkpoint=ckpt,
            on_epoch=lambda e, s, r: evaluate(live, e, s, r),
        )
        curves.keep_summary(live, trained)
    tensors = {"ctx_init": ctx0, "ctx": trained.state["ctx"]}
    if local:
        top_k = max(1, round(params.locoop.top_fraction * len(names)))
        locoop = stage_checkpoint("train_pos_locoop", seed, params.model_dump(mode="json"), inputs)
        tensors["locoop_ctx"] = train_positive(
            encoder,
            ctx0,
            feats,
            labels,
            scale,
            p,
            seed=seed,
            local=patches,
            locoop_lambda=params.locoop.lam,
            locoop_top_k=top_k,
            checkpoint=locoop,
        ).state["ctx"]
    save_tensors(
        tensors,
        POS / f"seed{seed}.safetensors",
        {
            "backbone": bb.identity,
            "classnames": names,
            **curves.selection_metadata(p.select, p.schedule, trained, crit),
        },
    )
    curve = trained.curve
    write_curve(
        [{"epoch": r["epoch"], "loss": r["train/loss"], "acc": r["train/acc"]} for r in curve],
        REPORTS / "train" / f"pos_seed{seed}.csv",
    )
    ckpt.remove()  # every output is written: nothing to resume
    if local:
        locoop.remove()
    print(
        f"seed {seed}: {len(names)} classes, final loss {curve[-1]['train/loss']:.4f}, "
        f"train acc {curve[-1]['train/acc']:.3f}" + (", LoCoOp trained too" if local else "")
    )
    print(
        f"seed {seed}: kept epoch {trained.kept + 1} of {len(curve)} (pos.select: {p.select}, schedule: {p.schedule}); "
        + curves.cost_line(timer, time.perf_counter() - start)
    )


if __name__ == "__main__":
    run(main)
