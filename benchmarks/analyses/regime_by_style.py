"""The stand-in CLIP's zero-shot regime, one drawing style at a time (held-out renders, never the test files).

Separates the two things the mixed-style diagnostic (`reports/backbone.json`) adds up: how well the
backbone separates ID from OOD on clean images, and what the styles' shared offset does to max
cosine (MaxLogit's ranking) and to MCM. Prints one row per style and writes a JSON.

    python benchmarks/analyses/regime_by_style.py [--weights weights/openmoji-tiny.safetensors] [--json out.json]
"""

from __future__ import annotations

import json

import numpy as np
import open_clip
import typer

from negprompt import commands, metrics
from negprompt.benchmarks import openmoji
from negprompt.clip import backbone
from negprompt_standin import openmoji_render, regime


def mixed(scores: dict, shares) -> dict:
    """AUROC / FPR95 (%) per OOD set and averaged, with every style's renders weighted by its share.
    scores: {style: {set: {method: per-image scores}}}."""
    out = {}
    for m in ("mcm", "maxlogit", "energy"):
        per_set = []
        for o in openmoji.OOD_SETS:
            s, w = {}, {}
            for name in ("id", o):
                s[name] = np.concatenate([scores[style][name][m] for style in openmoji.STYLE_NAMES])
                w[name] = np.concatenate(
                    [
                        np.full(len(scores[style][name][m]), share / len(scores[style][name][m]))
                        for style, share in zip(openmoji.STYLE_NAMES, shares)
                    ]
                )
            per_set.append(
                (
                    100 * metrics.auroc(s["id"], s[o], w["id"], w[o]),
                    100 * metrics.fpr_at_95_tpr(s["id"], s[o], w["id"], w[o]),
                )
            )
        out[m] = {
            "auroc": float(np.mean([a for a, _ in per_set])),
            "fpr95": float(np.mean([f for _, f in per_set])),
            "per_set": dict(zip(openmoji.OOD_SETS, per_set)),
        }
    return out


def main(
    weights: str = typer.Option(f"weights/{backbone.STANDIN_MODEL}.safetensors", help="the stand-in's weights"),
    per_class: int = typer.Option(4, help="ID renders per class and style"),
    per_set: int = typer.Option(200, help="renders per OOD set and style"),
    seed: int = typer.Option(5, help="seed of the held-out renders"),
    json_out: str = typer.Option("", "--json", help="also write the rows to this JSON file"),
) -> None:
    """The stand-in CLIP's zero-shot regime, one drawing style at a time, then the benchmark's mix of styles."""
    net = backbone.load_backbone(backbone.STANDIN_MODEL, weights).model.eval()
    tokenizer = open_clip.get_tokenizer(backbone.STANDIN_MODEL)
    world, font = openmoji.build_world(0), str(openmoji_render.default_font())
    names = [c.name for c in world.id_classes]
    out = {"weights": weights, "sha256": backbone.sha256(weights), "styles": {}}
    print(
        f"{'style':10} top-1  own/other   ID max        ID mean       corr  ID z  MCM / MaxLogit AUROC: "
        + "  ".join(openmoji.OOD_SETS)
        + "  average"
    )
    scale, scores = float(net.logit_scale.exp()), {}
    for style in openmoji.STYLE_NAMES:
        ids, labels, ood = openmoji_render.validation_renders(world, seed, 32, per_class, per_set, font, style)
        cos = regime.cosines(net, tokenizer, names, {"id": ids, **ood})
        scores[style] = {name: regime.zero_shot_scores(c, scale) for name, c in cos.items()}
        d = out["styles"][style] = regime.diagnose(cos.pop("id"), labels, cos, scale)
        i = d["sets"]["id"]
        print(
            f"{style:10} {100 * d['zero_shot_top1']:5.1f}  {d['cos_own'][0]:.3f}/{d['cos_other'][0]:.3f}  "
            f"{i['max_cos'][0]:.3f}±{i['max_cos'][1]:.3f}  {i['mean_cos'][0]:.3f}±{i['mean_cos'][1]:.3f}  "
            f"{i['corr_max_mean']:+.2f}  {i['max_z'][0]:.2f}  "
            + "  ".join(f"{v['mcm']['auroc']:.0f}/{v['maxlogit']['auroc']:.0f}" for v in d["ood"].values())
            + f"  {d['average']['mcm']['auroc']:.1f}/{d['average']['maxlogit']['auroc']:.1f}",
            flush=True,
        )
    mix = out["mixed"] = mixed(scores, openmoji.STYLE_P)
    mix["zero_shot_top1"] = float(
        sum(share * out["styles"][st]["zero_shot_top1"] for st, share in zip(openmoji.STYLE_NAMES, openmoji.STYLE_P))
    )
    print(
        f"{'mixed':10} {100 * mix['zero_shot_top1']:5.1f}  (benchmark's style shares)  AUROC / FPR95: "
        + "  ".join(f"{m} {mix[m]['auroc']:.1f}/{mix[m]['fpr95']:.1f}" for m in ("mcm", "maxlogit", "energy"))
    )
    if json_out:
        with open(json_out, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    commands.run(main)
