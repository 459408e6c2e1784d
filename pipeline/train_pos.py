"""Stage `train_pos` (CoOp, Eqs. 1-2): learn the shared positive context on one seed's few shots.
With features.local it also trains the LoCoOp baseline (same init and optimiser, + patch entropy)."""
import torch
import typer

from negprompt.backbone import resolve_device
from negprompt.io import save_tensors
from negprompt.prompts import PromptEncoder, TextTower, init_context
from negprompt.train import train_positive
from pipeline.common import POS, REPORTS, fewshot_features, load_backbone, load_params, run, write_curve


def main(seed: int = typer.Option(..., help="subset seed (one of subset.seeds)")):
    params = load_params()
    p = params.pos
    bb = load_backbone(p.device)
    local = params.features.local
    feats, labels, names, patches = fewshot_features(seed, params.open_vocab, params.subset.open_vocab_fraction, local)
    ctx0 = init_context(TextTower(bb.model), bb.tokenizer, p.ctx_init, p.n_ctx, torch.Generator().manual_seed(seed))
    encoder = PromptEncoder(bb.model, bb.tokenizer, names, n_ctx=len(ctx0))
    scale = bb.model.logit_scale.exp().item()
    opt = dict(epochs=p.epochs, batch_size=p.batch_size, optimizer=p.optimizer, lr=p.lr, momentum=p.momentum, seed=seed,
               amp=p.amp, chunk=p.chunk)
    curve, tensors = [], {"ctx_init": ctx0}
    tensors["ctx"] = train_positive(encoder, ctx0, feats, labels, scale, **opt, on_epoch=lambda e, m: curve.append({"epoch": e, **m}))
    if local:
        top_k = max(1, round(params.locoop.top_fraction * len(names)))
        tensors["locoop_ctx"] = train_positive(encoder, ctx0, feats, labels, scale, **opt, local=patches,
                                               locoop_lambda=params.locoop.lam, locoop_top_k=top_k)
    save_tensors(tensors, POS / f"seed{seed}.safetensors", {"backbone": bb.identity, "classnames": names})
    write_curve(curve, REPORTS / "train" / f"pos_seed{seed}.csv")
    print(f"seed {seed}: {len(names)} classes, final loss {curve[-1]['loss']:.4f}, train acc {curve[-1]['acc']:.3f}"
          + (", LoCoOp trained too" if local else ""))


if __name__ == "__main__":
    run(main)
