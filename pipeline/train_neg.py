"""Stage `train_neg` (Eqs. 3-7): learn p negative contexts shared across classes, positive frozen.

After every epoch NegPrompt is evaluated (pipeline/curves.py): the stage-2 loss on the held-out ID
images (calib split) and, per OOD set, the test AUROC / FPR95 of its score (Eq. 3); `neg.select`
keeps the epoch that is best on one of those curves (negprompt.methods.selection).
"""

import time

import torch
import torch.nn.functional as F
import typer

from negprompt.benchmarks.tables import read_classes
from negprompt.clip.prompts import PromptEncoder, TextTower, init_context, init_negative_context
from negprompt.io import load_tensors, save_tensors
from negprompt.methods import curves
from negprompt.methods.checkpoint import stage_checkpoint
from negprompt.methods.scores import negprompt
from negprompt.methods.selection import criterion, ood_figures, resolve_select_set
from negprompt.methods.train import stage2_loss, train_negative
from negprompt.workspace import (
    BACKBONE,
    BENCHMARK,
    FEATURES,
    NEG,
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

SCORE_BATCH = 8192  # test images scored at once: [B, k, p] similarities (ImageNet: k = 1000)


def main(seed: int = typer.Option(..., help="subset seed (one of subset.seeds)")):
    start = time.perf_counter()
    params = load_params()
    p, pos = params.neg, params.pos
    curves.check_select("neg", p.select, params.subset.calib_per_class)
    test = test_images()
    select_set = resolve_select_set(p.select_set, params.data.benchmark, list(test.ood), needed=p.select == "test")
    bb = stage_backbone(p.device)
    feats, labels, names, _ = fewshot_features(seed, params.open_vocab, params.subset.open_vocab_fraction)
    held = heldout_images(seed, params.subset.calib_per_class, params.open_vocab, params.subset.open_vocab_fraction)
    gen = torch.Generator().manual_seed(seed)
    if p.one_stage:  # Table 5 ablation: both contexts from their initialisation, trained together
        pos_ctx = init_context(TextTower(bb.model), bb.tokenizer, pos.ctx_init, pos.n_ctx, gen)
        config = p.model_copy(update={"epochs": pos.epochs})
    else:
        pos_ctx = load_tensors(POS / f"seed{seed}.safetensors")[0]["ctx"]
        config = p
    n = len(pos_ctx)
    encoder = PromptEncoder(bb.model, bb.tokenizer, names, n_ctx=n)
    all_names = read_classes(BENCHMARK / "classes.tsv").name.tolist()  # test: every ID class, also in open vocabulary
    test_encoder = encoder if all_names == names else PromptEncoder(bb.model, bb.tokenizer, all_names, n_ctx=n)
    neg0 = init_negative_context(pos_ctx, p.num_prompts, p.init, gen)
    scale = bb.model.logit_scale.exp().item()
    device = encoder.prefix.device
    held, test = held and held.to(device), test.to(device)
    ident = torch.from_numpy(test.sets == "id").to(device)
    crit = criterion("neg", p.select, select_set)
    timer = curves.Timer()

    @torch.no_grad()
    def evaluate(live, epoch: int, state: dict, record: dict) -> dict:
        with timer:
            pos_c, neg_c = state["pos_ctx"].to(device), state["neg_ctx"].to(device)
            out = {}
            if held is not None:  # select: id_val's criterion, the training loss on held-out ID images
                pos_f, neg_f = encoder.pos_neg(pos_c, neg_c, chunk=p.chunk)
                loss = stage2_loss(p.loss_variant, held.feats, held.labels, pos_f, neg_f, scale, p.beta, p.gamma)
                if p.one_stage:
                    loss = loss + F.cross_entropy(scale * held.feats @ pos_f.T, held.labels)
                out["calib/loss"] = loss.item()
            pos_t, neg_t = test_encoder.pos_neg(pos_c, neg_c, chunk=p.chunk)  # [k, d], [k, p, d]
            score, pred = [], []
            for img in test.feats.split(SCORE_BATCH):
                s, pos_sim, _ = negprompt(img, pos_t, neg_t, params.score.temperature)
                score.append(s)
                pred.append(pos_sim.argmax(1))
            pred = torch.cat(pred)
            out["test/id_acc"] = float((pred[ident] == test.labels[ident]).double().mean())
            out |= ood_figures(torch.cat(score).cpu(), test.sets, test.ood)
        curves.log_epoch(live, record | out)
        return out

    # a killed run continues from its last finished epoch (negprompt.methods.checkpoint), its curves replayed
    inputs = [
        FEATURES / "train.parquet",
        FEATURES / "test.parquet",
        SUBSETS / f"seed{seed}.parquet",
        BENCHMARK / "classes.tsv",
        BACKBONE / "manifest.json",
        POS / f"seed{seed}.safetensors",
    ]
    ckpt = stage_checkpoint("train_neg", seed, params.model_dump(mode="json"), inputs)
    with curves.open_curves(f"neg_seed{seed}") as live:
        live.log_params({"select": p.select, "schedule": p.schedule, "select_set": select_set})
        for record in ckpt.curve:
            curves.log_epoch(live, record)
        trained = train_negative(
            encoder,
            pos_ctx,
            neg0,
            feats,
            labels,
            scale,
            config,
            seed=seed,
            criterion=crit,
            checkpoint=ckpt,
            on_epoch=lambda e, s, r: evaluate(live, e, s, r),
        )
        curves.keep_summary(live, trained)
    meta = curves.selection_metadata(p.select, p.schedule, trained, crit) | (
        {"select_set": select_set} if p.select == "test" else {}
    )
    save_tensors(
        {"pos_ctx": trained.state["pos_ctx"], "neg_ctx": trained.state["neg_ctx"], "neg_ctx_init": neg0},
        NEG / f"seed{seed}.safetensors",
        {"backbone": bb.identity, "classnames": names, "loss_variant": p.loss_variant, **meta},
    )
    curve = trained.curve
    write_curve(
        [{"epoch": r["epoch"], "loss": r["train/loss"]} for r in curve], REPORTS / "train" / f"neg_seed{seed}.csv"
    )
    ckpt.remove()  # every output is written: nothing to resume
    print(
        f"seed {seed}: {p.num_prompts} negative prompts x {len(names)} classes, "
        f"final loss {curve[-1]['train/loss']:.4f}"
    )
    print(
        f"seed {seed}: kept epoch {trained.kept + 1} of {len(curve)} (neg.select: {p.select}, schedule: {p.schedule}); "
        + curves.cost_line(timer, time.perf_counter() - start)
    )


if __name__ == "__main__":
    run(main)
