"""Stage `export`: the first seed's detector bundle, thresholded on held-out ID images (never test)."""

from pathlib import Path

import torch

from negprompt import NegPromptError
from negprompt.benchmarks.tables import read_classes
from negprompt.clip.prompts import PromptEncoder
from negprompt.detector import export_bundle
from negprompt.io import load_tensors, read_table
from negprompt.methods.scores import negprompt
from negprompt.metrics import id_threshold
from negprompt.workspace import BENCHMARK, NEG, SUBSETS, backbone_manifest, load_params, read_features, stage_backbone
from pipeline.common import run

DETECTOR = Path("models/detector")


def main():
    params = load_params()
    manifest = backbone_manifest()
    if manifest.get("pretrained") == "random":  # checked before anything is read or written
        raise NegPromptError(
            f"models/backbone holds {manifest['model']} with random weights (backbone.pretrained: "
            "random, a scale test): a detector from it would detect nothing; use real weights"
        )
    seed = params.subset.seeds[0]
    backbone = stage_backbone(params.neg.device)
    names = read_classes(BENCHMARK / "classes.tsv").name.tolist()
    ctx = load_tensors(NEG / f"seed{seed}.safetensors")[0]
    subset, _, _ = read_table(SUBSETS / f"seed{seed}.parquet")
    table, feats = read_features("train")
    calib = (table.view == 0).to_numpy() & table.path.isin(subset.path[subset.split == "calib"]).to_numpy()
    enc = PromptEncoder(backbone.model, backbone.tokenizer, names, len(ctx["pos_ctx"]))
    with torch.no_grad():
        pos, neg = enc.pos_neg(ctx["pos_ctx"], ctx["neg_ctx"])
        score = negprompt(torch.from_numpy(feats[calib]), pos, neg, params.score.temperature)[0]
    thr = id_threshold(score.numpy(), 0.95)
    export_bundle(
        DETECTOR,
        backbone_manifest(),
        names,
        ctx["pos_ctx"],
        ctx["neg_ctx"],
        params.score.temperature,
        thr,
        {"seed": seed, "calibration_images": int(calib.sum())},
    )
    print(f"detector bundle: {DETECTOR} (threshold {thr:.5f} keeps 95% of {int(calib.sum())} held-out ID images)")


if __name__ == "__main__":
    run(main)
