"""Stage `score`: every method's score for every test image (ID and each OOD set) of one seed."""

import pandas as pd
import torch
import typer

from negprompt import NegPromptError
from negprompt.benchmarks.tables import read_classes
from negprompt.clip.prompts import PromptEncoder, encode_texts
from negprompt.io import load_tensors, save_tensors, write_table
from negprompt.methods import family, neglabel, registry
from negprompt.methods.scores import local_scores, score_images
from negprompt.workspace import (
    BENCHMARK,
    NEG,
    NEGLABEL,
    POS,
    SCORES,
    check_backbone,
    fewshot_features,
    load_params,
    local_features,
    read_features,
    stage_backbone,
)
from pipeline.common import run


def neglabel_scores(img: torch.Tensor, neglabel_params) -> dict[str, torch.Tensor]:
    """NegLabel's score (seed-independent: nothing is trained) and, per image, its most similar negative label
    and whether that label beats every ID label (the report shows which labels win OOD images)."""
    path = NEGLABEL / "features.safetensors"
    mined, meta = load_tensors(path)
    check_backbone(meta, path, "mined with another backbone; re-run the neglabel stage")
    s, id_sim, neg_sim = neglabel.score_features(
        img,
        neglabel.Mined(mined["id"], mined["neg"], [], [], [], 0),
        neglabel_params.temperature,
        neglabel_params.groups,
        neglabel_params.seed,
        neglabel_params.drop_remainder,
    )
    best = neg_sim.max(1)
    return {"neglabel": s, "neglabel_top": best.indices, "neglabel_wins": best.values > id_sim.max(1).values}


def family_scores(img: torch.Tensor, sets, params, streams: bool, backbone=None) -> dict[str, torch.Tensor]:
    """CSP's score and, when `streams`, AdaNeg's, TANL's, InterNeg's and TINS's (opt-in) on each OOD set's stream
    for each order (`method@set@oR` columns: the ID images' and that set's scores; negprompt.methods.family).
    Nothing here depends on the training seed, so the streams are scored in the first seed's table only (the report
    reads them there). InterNeg's and TINS's class prototypes are the first subset seed's few-shot features (every
    view, every ID class: their official 16-shot train list) and their inversions run `backbone`'s text tower."""
    family_params = params.family
    if not family_params.methods:
        return {}
    path = NEGLABEL / "family.safetensors"
    feats, meta = load_tensors(path)
    check_backbone(meta, path, "mined with another backbone; re-run the neglabel stage")
    out = family.static_scores(img, feats, family_params)
    if not streams:
        return out
    model, tok = (backbone.model, backbone.tokenizer) if backbone is not None else (None, None)
    if {"interneg", "tins"} & set(family_params.methods):
        shots, labels, _, _ = fewshot_features(params.subset.seeds[0], False, params.subset.open_vocab_fraction)
    if "interneg" in family_params.methods:
        feats |= family.interneg_features(feats, shots, labels, family_params.interneg.num_labels)
        print(f"InterNeg: {len(feats['interneg_neg'])} negatives of {len(feats['cand'])} candidates")
    if "tins" in family_params.methods:
        if model is None:
            raise NegPromptError("family.methods has tins: its init candidates need the backbone's text tower")
        feats |= family.tins_features(feats, shots, labels, family_params.tins.num_labels, model)
        print(f"TINS: {len(feats['tins_neg'])} negatives of {len(feats['cand'])} candidates")
    out |= {
        k: torch.from_numpy(v) for k, v in family.stream_scores(img, sets, feats, family_params, model, tok).items()
    }
    return out


def registered_scores(img: torch.Tensor, backbone, names: list[str], zero_shot: torch.Tensor, params) -> dict:
    """The scores of every method registered by family.plugins (negprompt.methods.registry; docs/add-a-method.md)."""
    registry.load_plugins(params.family.plugins)
    ctx = registry.Context(
        backbone.model,
        backbone.tokenizer,
        names,
        zero_shot,
        backbone.model.logit_scale.exp().item(),
        params.score.zero_shot_template,
    )
    return {registry.PLUGIN + k: v for k, v in registry.score_all(img, ctx).items()}


def check_contexts(seed: int, pos_state: dict, neg_state: dict, local: bool) -> None:
    """The two stages' contexts belong together (same length; LoCoOp's when features.local is on)."""
    if len(pos_state["ctx"]) != len(neg_state["pos_ctx"]):
        raise NegPromptError(
            f"{NEG / f'seed{seed}.safetensors'}: {len(neg_state['pos_ctx'])} context tokens, "
            f"{POS / f'seed{seed}.safetensors'} has "
            f"{len(pos_state['ctx'])}; re-run train_neg"
        )
    if local and "locoop_ctx" not in pos_state:
        raise NegPromptError(
            f"{POS / f'seed{seed}.safetensors'}: no LoCoOp context; re-run train_pos with features.local: true"
        )


def prompt_texts(backbone, names, pos_state: dict, neg_state: dict, template: str, local: bool) -> dict:
    """Every text feature the scores use, on the CPU: zero-shot prompts, CoOp's, NegPrompt's positives [k, d] and
    negatives [k, p, d] (trained and at initialisation) and, with `local`, LoCoOp's."""
    device = backbone.model.logit_scale.device
    enc = PromptEncoder(backbone.model, backbone.tokenizer, names, len(neg_state["pos_ctx"]))
    text = {
        "zero_shot": encode_texts(backbone.model, backbone.tokenizer, [template.format(n) for n in names]),
        "coop": enc(pos_state["ctx"].to(device)),
    }
    text["pos"], text["neg"] = enc.pos_neg(neg_state["pos_ctx"].to(device), neg_state["neg_ctx"].to(device))
    text["neg_init"] = enc(neg_state["neg_ctx_init"].to(device)).transpose(0, 1)
    if local:
        text["locoop"] = enc(pos_state["locoop_ctx"].to(device))
    return {k: v.cpu() for k, v in text.items()}


def main(seed: int = typer.Option(..., help="subset seed (one of subset.seeds)")):
    params = load_params()
    score_params = params.score
    backbone = stage_backbone(params.neg.device)
    names = read_classes(BENCHMARK / "classes.tsv").name.tolist()  # all ID classes, also in open vocabulary
    test, img = read_features("test")
    neg_state = load_tensors(NEG / f"seed{seed}.safetensors")[0]
    pos_state = load_tensors(POS / f"seed{seed}.safetensors")[0]
    local = params.features.local
    check_contexts(seed, pos_state, neg_state, local)
    with torch.no_grad():
        text = prompt_texts(backbone, names, pos_state, neg_state, score_params.zero_shot_template, local)
        img = torch.from_numpy(img)
        out = score_images(
            img,
            text["zero_shot"],
            text["coop"],
            text["pos"],
            text["neg"],
            text["neg_init"],
            backbone.model.logit_scale.exp().item(),
            score_params.temperature,
        )
        out |= neglabel_scores(img, params.neglabel)
        out |= family_scores(
            img, test.set.to_numpy(), params, streams=seed == params.subset.seeds[0], backbone=backbone
        )
        out |= registered_scores(img, backbone, names, text["zero_shot"], params)
        if local:
            out |= local_scores(
                img, local_features("test"), text["zero_shot"], text["locoop"], score_params.temperature
            )
    table = pd.concat([test.reset_index(drop=True), pd.DataFrame({k: v.numpy() for k, v in out.items()})], axis=1)
    write_table(table, SCORES / f"seed{seed}.parquet", metadata={"backbone": backbone.identity, "seed": seed})
    save_tensors(text, SCORES / f"seed{seed}.text.safetensors")
    ident = table.set == "id"
    print(
        f"seed {seed}: ID top-1 {(table.negprompt_pred[ident] == table.label[ident]).mean():.3f} "
        f"on {int(ident.sum())} images"
    )


if __name__ == "__main__":
    run(main)
