"""Stage `train_pos` (CoOp, Eqs. 1-2): learn the shared positive context on one seed's few shots."""
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
    feats, labels, names = fewshot_features(seed, params.open_vocab, params.subset.open_vocab_fraction)
    ctx0 = init_context(TextTower(bb.model), bb.tokenizer, p.ctx_init, p.n_ctx, torch.Generator().manual_seed(seed))
    encoder = PromptEncoder(bb.model, bb.tokenizer, names, n_ctx=len(ctx0))
    curve = []
    ctx = train_positive(encoder, ctx0, feats, labels, bb.model.logit_scale.exp().item(), p.epochs, p.batch_size,
                         p.optimizer, p.lr, p.momentum, seed, on_epoch=lambda e, m: curve.append({"epoch": e, **m}))
    save_tensors({"ctx": ctx, "ctx_init": ctx0}, POS / f"seed{seed}.safetensors", {"backbone": bb.identity, "classnames": names})
    write_curve(curve, REPORTS / "train" / f"pos_seed{seed}.csv")
    print(f"seed {seed}: {len(names)} classes, final loss {curve[-1]['loss']:.4f}, train acc {curve[-1]['acc']:.3f}")


if __name__ == "__main__":
    run(main)
