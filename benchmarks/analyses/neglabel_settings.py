"""NegLabel's zero-shot settings on the stand-in CLIP, on the backbone stage's held-out renders (never the test files).

Which of NegLabel's choices matter on this backbone: the prompt template (the paper's "the nice {}" against
the captions the stand-in was pretrained with, "a photo of a {}."), the corpus (the whole font vocabulary
against only the names the stand-in was pretrained on) and M (the paper's 15% rule against every word).
One row per setting, beside zero-shot MCM on the same renders; writes a JSON.

    python benchmarks/analyses/neglabel_settings.py [--json benchmarks/results/neglabel_settings.json]
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import typer
import yaml

from negprompt import commands
from negprompt.benchmarks import openmoji
from negprompt.clip import backbone
from negprompt.config import validate
from negprompt_standin import regime


def main(
    params_file: str = typer.Option("params.yaml", "--params", help="the pipeline's parameters"),
    json_out: str = typer.Option("benchmarks/results/neglabel_settings.json", "--json", help="where to write the rows"),
) -> None:
    """NegLabel's zero-shot settings on the stand-in CLIP, on the backbone stage's held-out renders."""
    params = validate(yaml.safe_load(Path(params_file).read_text()), params_file)
    p, d = params.backbone, params.data
    checkpoint = backbone.resolve_weights(p.model, p.pretrained, p.cache_dir)
    model = backbone.load_backbone(p.model, checkpoint, "cpu", backbone.sha256(checkpoint)).model
    ids = {c.name for c in openmoji.build_world(d.seed).id_classes}
    known = [n for _, n, role in openmoji.read_vocabulary() if role != "vocabulary" and n not in ids]
    with tempfile.TemporaryDirectory() as tmp:
        known_list = Path(tmp) / "pretrained_names.txt"
        known_list.write_text("\n".join(known), encoding="utf-8")
        settings = {
            "paper (the nice {}, 15% of the vocabulary)": {},
            "a photo of a {}.": {"template": "a photo of a {}."},
            "every vocabulary word": {"max_fraction": 1.0},
            "pretrained names only (all of them)": {"corpus": str(known_list), "max_fraction": 1.0},
            "pretrained names only, a photo of a {}.": {
                "corpus": str(known_list),
                "max_fraction": 1.0,
                "template": "a photo of a {}.",
            },
        }
        rows, renders = {}, regime.world_renders(d.benchmark, d.seed, d.image_size, d.font)
        for name, change in settings.items():
            nl = params.neglabel.model_copy(update=change)
            diag = regime.world_diagnostics(
                model, p.model, d.benchmark, d.seed, d.image_size, d.font, params.score.zero_shot_template, nl, renders
            )
            a = diag["average"]
            rows[name] = {
                "settings": change | {"corpus": "pretrained names" if "corpus" in change else "vocabulary"},
                "neglabel": a["neglabel"],
                "mcm": a["mcm"],
                "per_set": {s: v["neglabel"] for s, v in diag["ood"].items()},
            }
            print(
                f"{name:45s} NegLabel {a['neglabel']['auroc']:5.1f} / {a['neglabel']['fpr95']:5.1f}   "
                f"MCM {a['mcm']['auroc']:5.1f} / {a['mcm']['fpr95']:5.1f}",
                flush=True,
            )
    Path(json_out).parent.mkdir(parents=True, exist_ok=True)
    Path(json_out).write_text(
        json.dumps({"weights_sha256": backbone.sha256(checkpoint), "rows": rows}, indent=1) + "\n"
    )


if __name__ == "__main__":
    commands.run(main)
