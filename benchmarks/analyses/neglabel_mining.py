"""Which names NegLabel's mining picks on the OpenMoji stand-in, by role, and which of them win the OOD images:
one row per checkpoint, on the backbone stage's held-out renders with params.yaml's NegLabel settings.

    python benchmarks/analyses/neglabel_mining.py weights/openmoji-tiny.safetensors [more.safetensors ...] [--json FILE]

Mining keeps the corpus names farthest from every ID name. Whether those are names of what OOD images show
(the benchmark's near, plant and place concepts) or names no test image shows (the vocabulary's other
concepts) decides whether NegLabel can beat MCM.
"""

from __future__ import annotations

import collections
import json
from pathlib import Path

import open_clip
import typer

from negprompt import commands
from negprompt.benchmarks import openmoji
from negprompt.clip import backbone
from negprompt.methods import neglabel
from negprompt.workspace import load_params
from negprompt_standin import regime


def mining_by_role(checkpoint: str, renders, nl, template: str) -> dict:
    names, _, _, ood = renders
    role = {name: r for _, name, r in openmoji.read_vocabulary()}
    corpus = neglabel.benchmark_corpus("openmoji", names, nl.corpus, nl.wordnet_dir, nl.groups)
    net = backbone.load_backbone(backbone.STANDIN_MODEL, checkpoint).model
    mined = neglabel.mine_corpus(
        net,
        open_clip.get_tokenizer(backbone.STANDIN_MODEL),
        names,
        corpus,
        nl.num_labels,
        nl.max_fraction,
        nl.percentile,
        template,
        nl.adj_template,
    )
    sets = {}
    for name, feats in regime.image_features(net, ood).items():
        _, id_sim, neg_sim = neglabel.score_features(feats, mined, nl.temperature, nl.groups)
        won = (neg_sim.max(1).values > id_sim.max(1).values).float().mean().item()
        sets[name] = {"won_by_a_negative": round(won, 3), "top": neglabel.top_winners(neg_sim, mined.words, id_sim, 3)}
    return {
        "checkpoint": checkpoint,
        "template": template,
        "mined": len(mined.words),
        "corpus_by_role": dict(collections.Counter(role[w] for w in corpus.parts["noun"])),
        "mined_by_role": dict(collections.Counter(role[w] for w in mined.words)),
        "ood": sets,
    }


def main(
    checkpoints: list[str] = typer.Argument(..., help="stand-in weights (.safetensors), one row each"),
    template: str = typer.Option("", help="NegLabel's template ('' = params.yaml's neglabel.template)"),
    json_out: str = typer.Option("", "--json", help="also write the rows to this JSON file"),
) -> None:
    """Which names NegLabel mines on the stand-in, by role, and which of them win the OOD images."""
    p = load_params()
    renders = regime.world_renders("openmoji", p.data.seed, p.data.image_size)
    rows = [mining_by_role(c, renders, p.neglabel, template or p.neglabel.template) for c in checkpoints]
    for r in rows:
        print(
            f"{Path(r['checkpoint']).name}: {r['mined']} mined by role {r['mined_by_role']} "
            f"(corpus {r['corpus_by_role']})"
        )
        for s, v in r["ood"].items():
            print(
                f"  {s:8s} won by a negative label {v['won_by_a_negative']:.0%}; "
                f"most: {', '.join(f'{w} ({n})' for w, n in v['top'])}"
            )
    if json_out:
        Path(json_out).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    commands.run(main)
