"""The stand-in CLIP's zero-shot regime, one drawing style at a time (held-out renders, never the test files).

Separates the two things the mixed-style diagnostic (`reports/backbone.json`) adds up: how well the
backbone separates ID from OOD on clean images, and what the styles' shared offset does to max
cosine (MaxLogit's ranking) and to MCM. Prints one row per style and writes a JSON.

    python benchmarks/regime_by_style.py [--weights weights/openmoji-tiny.safetensors] [--json out.json]
"""
from __future__ import annotations

import argparse
import json

import open_clip

from negprompt import backbone, openmoji, regime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", default=f"weights/{backbone.STANDIN_MODEL}.safetensors")
    ap.add_argument("--per-class", type=int, default=4, help="ID renders per class and style")
    ap.add_argument("--per-set", type=int, default=200, help="renders per OOD set and style")
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--json", default="")
    args = ap.parse_args()
    net = backbone.load_backbone(backbone.STANDIN_MODEL, args.weights).model.eval()
    tokenizer = open_clip.get_tokenizer(backbone.STANDIN_MODEL)
    world, font = openmoji.build_world(0), str(openmoji.default_font())
    names = [c.name for c in world.id_classes]
    out = {"weights": args.weights, "sha256": backbone.sha256(args.weights), "styles": {}}
    print(f"{'style':10} top-1  own/other   ID max        ID mean       corr  ID z  MCM / MaxLogit AUROC: " + "  ".join(openmoji.OOD_SETS) + "  average")
    for style in openmoji.STYLE_NAMES:
        ids, labels, ood = openmoji.validation_renders(world, args.seed, 32, args.per_class, args.per_set, font, style)
        d = out["styles"][style] = regime.diagnose_model(net, tokenizer, names, ids, labels, ood)
        i = d["sets"]["id"]
        print(f"{style:10} {100 * d['zero_shot_top1']:5.1f}  {d['cos_own'][0]:.3f}/{d['cos_other'][0]:.3f}  "
              f"{i['max_cos'][0]:.3f}±{i['max_cos'][1]:.3f}  {i['mean_cos'][0]:.3f}±{i['mean_cos'][1]:.3f}  {i['corr_max_mean']:+.2f}  {i['max_z'][0]:.2f}  "
              + "  ".join(f"{v['mcm']['auroc']:.0f}/{v['maxlogit']['auroc']:.0f}" for v in d["ood"].values())
              + f"  {d['average']['mcm']['auroc']:.1f}/{d['average']['maxlogit']['auroc']:.1f}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
