"""Stage `train_neg` (Eqs. 3-7): learn p negative contexts shared across classes, positive frozen."""
import torch
import typer

from negprompt.io import load_tensors, save_tensors
from negprompt.prompts import PromptEncoder, TextTower, init_context
from negprompt.train import train_negative
from pipeline.common import NEG, POS, REPORTS, fewshot_features, load_backbone, load_params, run, write_curve


def main(seed: int = typer.Option(..., help="subset seed (one of subset.seeds)")):
    params = load_params()
    p, pos = params.neg, params.pos
    bb = load_backbone(p.device)
    feats, labels, names, _ = fewshot_features(seed, params.open_vocab, params.subset.open_vocab_fraction)
    gen = torch.Generator().manual_seed(seed)
    if p.one_stage:  # Table 5 ablation: both contexts from their initialisation, trained together
        pos_ctx = init_context(TextTower(bb.model), bb.tokenizer, pos.ctx_init, pos.n_ctx, gen)
        epochs = pos.epochs
    else:
        pos_ctx = load_tensors(POS / f"seed{seed}.safetensors")[0]["ctx"]
        epochs = p.epochs
    n = len(pos_ctx)
    encoder = PromptEncoder(bb.model, bb.tokenizer, names, n_ctx=n)
    if p.init == "positive":  # official: a copy of the positive context plus U(-1e-5, 1e-5)
        neg0 = pos_ctx.unsqueeze(0).repeat(p.num_prompts, 1, 1) + (torch.rand(p.num_prompts, *pos_ctx.shape, generator=gen) * 2 - 1) * 1e-5
    else:
        neg0 = torch.randn(p.num_prompts, *pos_ctx.shape, generator=gen) * 0.02
    curve = []
    pos_ctx, neg_ctx = train_negative(encoder, pos_ctx, neg0, feats, labels, bb.model.logit_scale.exp().item(), p.loss_variant,
                                      p.beta, p.gamma, epochs, p.batch_size, p.optimizer, p.lr, p.momentum, seed, p.one_stage,
                                      on_epoch=lambda e, m: curve.append({"epoch": e, **m}), amp=p.amp, chunk=p.chunk)
    save_tensors({"pos_ctx": pos_ctx, "neg_ctx": neg_ctx, "neg_ctx_init": neg0}, NEG / f"seed{seed}.safetensors",
                 {"backbone": bb.identity, "classnames": names, "loss_variant": p.loss_variant})
    write_curve(curve, REPORTS / "train" / f"neg_seed{seed}.csv")
    print(f"seed {seed}: {p.num_prompts} negative prompts x {len(names)} classes, final loss {curve[-1]['loss']:.4f}")


if __name__ == "__main__":
    run(main)
