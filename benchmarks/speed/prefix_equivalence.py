"""Does the shared causal prefix change the default pipeline's results? Both paths, same run.

1. scoring: the pipeline's trained contexts (models/pos, models/neg) encoded with and without the
   shared prefix; max |difference| of the prompt features and of every method's score on the
   cached test features;
2. training: stage 2 retrained for one seed from the same initialisation with each path (params.yaml's
   `neg` section), then scored; max |difference| of the learned contexts and of the scores.

    python benchmarks/speed/prefix_equivalence.py [--train-seed 1] [--json out.json]

Run after `make repro` (it reads the pipeline's outputs, writes nothing there).
"""

from __future__ import annotations

import json
import time

import torch
import typer

from negprompt import commands, metrics
from negprompt.benchmarks.tables import read_classes
from negprompt.clip.prompts import PromptEncoder, encode_texts
from negprompt.io import load_tensors
from negprompt.methods.scores import score_images
from negprompt.methods.train import train_negative
from negprompt.workspace import BENCHMARK, NEG, POS, fewshot_features, load_params, read_features, stage_backbone


def _max_diff(a: dict, b: dict) -> dict[str, float]:
    return {k: float((a[k].double() - b[k].double()).abs().max()) for k in a}


def encode_all(enc: PromptEncoder, pos_ctx, neg_ctx, coop_ctx) -> dict[str, torch.Tensor]:
    with torch.no_grad():
        pos, neg = enc.pos_neg(pos_ctx, neg_ctx)
        return {"coop": enc(coop_ctx), "pos": pos, "neg": neg}


def scores(text: dict, zero_shot, img, neg_init, scale, temperature) -> dict[str, torch.Tensor]:
    return score_images(img, zero_shot, text["coop"], text["pos"], text["neg"], neg_init, scale, temperature)


def main(
    train_seed: int = typer.Option(1, help="the seed whose stage 2 is retrained both ways"),
    json_out: str = typer.Option("", "--json", help="also write the figures to this JSON file"),
) -> None:
    """Does the shared causal prefix change the default pipeline's results? Both paths, same run."""
    params = load_params()
    bb = stage_backbone("cpu")
    names = read_classes(BENCHMARK / "classes.tsv").name.tolist()
    test, img = read_features("test")
    img, is_id = torch.from_numpy(img), (test.set == "id").to_numpy()
    scale = bb.model.logit_scale.exp().item()
    zero_shot = encode_texts(bb.model, bb.tokenizer, [params.score.zero_shot_template.format(n) for n in names])
    result = {"model": bb.name, "classes": len(names), "test_images": len(img), "scoring": {}}
    for seed in params.subset.seeds:
        neg = load_tensors(NEG / f"seed{seed}.safetensors")[0]
        coop = load_tensors(POS / f"seed{seed}.safetensors")[0]["ctx"]
        n = len(neg["pos_ctx"])
        shared = PromptEncoder(bb.model, bb.tokenizer, names, n)
        full = PromptEncoder(bb.model, bb.tokenizer, names, n, shared_prefix=False)
        ts, tf = (
            encode_all(shared, neg["pos_ctx"], neg["neg_ctx"], coop),
            encode_all(full, neg["pos_ctx"], neg["neg_ctx"], coop),
        )
        neg_init = full(neg["neg_ctx_init"]).transpose(0, 1).detach()
        ss = scores(ts, zero_shot, img, neg_init, scale, params.score.temperature)
        sf = scores(tf, zero_shot, img, neg_init, scale, params.score.temperature)
        diff = result["scoring"][f"seed{seed}"] = {"features": _max_diff(ts, tf), "scores": _max_diff(ss, sf)}
        print(
            f"seed {seed} scoring: features max|diff| {max(diff['features'].values()):.2e}, "
            f"scores max|diff| {max(diff['scores'].values()):.2e}"
        )

    seed, p = train_seed, params.neg
    feats, labels, train_names, _ = fewshot_features(seed, params.open_vocab, params.subset.open_vocab_fraction)
    neg = load_tensors(NEG / f"seed{seed}.safetensors")[0]
    trained, seconds = {}, {}
    for name, flag in (("shared_prefix", True), ("full", False)):
        enc = PromptEncoder(bb.model, bb.tokenizer, train_names, len(neg["pos_ctx"]), shared_prefix=flag)
        t0 = time.perf_counter()
        trained[name] = train_negative(
            enc, neg["pos_ctx"].clone(), neg["neg_ctx_init"].clone(), feats, labels, scale, p, seed=seed
        ).state["neg_ctx"]
        seconds[name] = time.perf_counter() - t0
    full = PromptEncoder(bb.model, bb.tokenizer, names, len(neg["pos_ctx"]), shared_prefix=False)
    coop = load_tensors(POS / f"seed{seed}.safetensors")[0]["ctx"]
    neg_init = full(neg["neg_ctx_init"]).transpose(0, 1).detach()
    s = {
        k: scores(
            encode_all(full, neg["pos_ctx"], ctx, coop), zero_shot, img, neg_init, scale, params.score.temperature
        )
        for k, ctx in trained.items()
    }
    ctx_diff = float((trained["shared_prefix"] - trained["full"]).abs().max())
    auroc = {
        k: 100 * metrics.auroc(v["negprompt"].numpy()[is_id], v["negprompt"].numpy()[~is_id]) for k, v in s.items()
    }
    result["training"] = {
        "seed": seed,
        "epochs": p.epochs,
        "neg_ctx_max_abs_diff": ctx_diff,
        "scores": _max_diff(s["shared_prefix"], s["full"]),
        "negprompt_auroc_all_ood": auroc,
        "seconds": seconds,
        "speedup": seconds["full"] / seconds["shared_prefix"],
    }
    print(
        f"seed {seed} training ({p.epochs} epochs): contexts max|diff| {ctx_diff:.2e}, scores max|diff| "
        f"{max(result['training']['scores'].values()):.2e}, "
        f"NegPrompt AUROC (all OOD sets) {auroc['shared_prefix']:.3f} vs "
        f"{auroc['full']:.3f}; {seconds['shared_prefix']:.1f} s vs {seconds['full']:.1f} s without the shared prefix"
    )
    if json_out:
        with open(json_out, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    commands.run(main)
