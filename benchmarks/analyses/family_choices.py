"""How the family's stand-in settings were chosen and what their scoring costs, in a pipeline directory after
`dvc repro`: `heldout` scores CSP, AdaNeg and TANL on a generated world's fresh held-out renders (never its test
sets) for each template and CSP adjective pool (docs/methods.md, "On the stand-in"); `timing` measures seconds per
10,000 cached test images (the leaderboard's cost column).

    python benchmarks/analyses/family_choices.py heldout|timing     # no subcommand: timing
"""

import json

import numpy as np
import torch
import typer

from negprompt import commands
from negprompt.methods import neglabel, stream
from negprompt.methods.family import csp_corpus, mine, noise_features, static_scores, steppers, templates
from negprompt.workspace import load_params


def heldout_choice(params, templates_=("paper", "standin"), adjectives=("none", "captions")) -> dict:
    """Average AUROC of CSP, AdaNeg and TANL on a generated world's fresh held-out renders (never its test sets)
    for each template choice and CSP adjective pool: how family.template and family.csp.adjectives were chosen.
    Stream order 0. `python benchmarks/analyses/family_choices.py heldout` in a pipeline directory prints it."""
    from negprompt import metrics
    from negprompt.workspace import stage_backbone
    from negprompt_standin import regime

    d, nl = params.data, params.neglabel
    bb = stage_backbone("cpu")
    names, ids, _, ood = regime.world_renders(d.benchmark, d.seed, d.image_size, d.font)
    feats = regime.image_features(bb.model, {"id": ids, **ood})
    corpus = neglabel.benchmark_corpus(d.benchmark, names, nl.corpus, nl.wordnet_dir, nl.groups, d.seed)
    size = bb.model.visual.image_size
    noise = noise_features(bb.model, params.family.tanl.noise_images, size[0] if isinstance(size, tuple) else size, 0)
    out = {}
    for which in templates_:
        for adj in adjectives:
            fp = params.family.model_copy(
                update={
                    "template": which,
                    "csp": params.family.csp.model_copy(update={"adjectives": adj}),
                    "methods": ["csp"] if adj != adjectives[0] else ["csp", "adaneg", "tanl"],
                }
            )
            tpl = templates(which, params.score.zero_shot_template)
            tens, _ = mine(
                bb.model, bb.tokenizer, names, corpus, csp_corpus(d.benchmark, names, corpus, adj), fp, nl, tpl, noise
            )
            res = {}
            for s in ood:
                both = torch.cat([feats["id"], feats[s]])
                sc = static_scores(both, tens, fp)["csp"].numpy()
                n = len(feats["id"])
                res.setdefault("csp", []).append(100 * metrics.auroc(sc[:n], sc[n:]))
                for m, make in steppers(tens, fp).items():
                    res.setdefault(m, []).append(stream.spread(feats["id"], feats[s], make, seeds=(0,)).auroc[0])
            out[f"{which}/{adj}"] = {m: round(float(np.mean(v)), 2) for m, v in res.items()}
    return out


def timing(params, reps: int = 3) -> dict:
    """Seconds per 10,000 images to score the cached test features, text features ready (one thread): the
    leaderboard's cost. `python benchmarks/analyses/family_choices.py timing` in a pipeline directory prints it."""
    import time

    from negprompt.io import load_tensors
    from negprompt.methods import scores
    from negprompt.workspace import NEGLABEL, read_features

    torch.set_num_threads(1)
    test, img = read_features("test")
    img, sets = torch.from_numpy(np.ascontiguousarray(img)), test.set.to_numpy()
    nl, _ = load_tensors(NEGLABEL / "features.safetensors")
    fam, _ = load_tensors(NEGLABEL / "family.safetensors")
    fp, p = params.family, params.neglabel

    def best(fn):
        t = []
        for _ in range(reps):
            start = time.perf_counter()
            fn()
            t.append(time.perf_counter() - start)
        return min(t) / len(img) * 1e4

    out = {
        "mcm": best(lambda: scores.mcm(img @ nl["id"].T)),
        "neglabel": best(lambda: neglabel.score(img @ nl["id"].T, img @ nl["neg"].T, p.temperature, p.groups)),
        "csp": best(lambda: static_scores(img, fam, fp)),
    }
    is_id = sets == "id"
    for m, make in steppers(fam, fp).items():
        start, n = time.perf_counter(), 0
        for s in [x for x in dict.fromkeys(sets) if x != "id"]:
            stream.run(img[is_id], img[sets == s], make, 0, fp.stream_batch_size)
            n += int(is_id.sum() + (sets == s).sum())
        out[m] = (time.perf_counter() - start) / n * 1e4
    return {m: round(v, 3) for m, v in out.items()}


app = commands.app(help=__doc__.split("\n\n")[0])


@app.callback(invoke_without_command=True)
def main(ctx: typer.Context):
    if ctx.invoked_subcommand is None:  # the script's default before it had subcommands
        timing_command()


@app.command("heldout")
def heldout_command():
    """Average AUROC of CSP, AdaNeg and TANL per template and CSP adjective pool, on fresh held-out renders."""
    print(json.dumps(heldout_choice(load_params()), indent=1))


@app.command("timing")
def timing_command():
    """Seconds per 10,000 cached test images to score each method (one thread)."""
    print(json.dumps(timing(load_params()), indent=1))


if __name__ == "__main__":
    commands.run(app)
