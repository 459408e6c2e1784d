"""Where does NegPrompt's score gain or lose against CoOp's? Its trained negatives split in two parts.

NegPrompt's score is exp(S+_max) / (P + N) with P = Σ exp(S+) over the positives and N = Σ exp(S-)
over the k·p negatives (τ = 1), CoOp's is exp(S+_max) / P on the same positives. Replacing each
image's N by one constant, the mean N of the seed's few-shot ID *training* images, keeps only the
negatives' average weight: a constant added to the denominator moves MCM's ranking toward the raw
max cosine (c → ∞ ranks by S+_max alone, like MaxLogit), undoing the per-image offset MCM's
softmax cancels. What is left of NegPrompt's difference is the per-image variation of N, the part
the paper's argument is about. AUROC per OOD set and seed, mean over seeds:

    python benchmarks/analyses/negatives_decomposition.py [--json out.json]

Run after `make repro` (reads its features and scores/*.text.safetensors, writes nothing there).
"""

from __future__ import annotations

import json

import numpy as np
import torch
import typer

from negprompt import commands, metrics
from negprompt.io import load_tensors
from negprompt.methods import scores
from negprompt.methods.scores import decomposed_scores
from negprompt.workspace import SCORES, fewshot_features, load_params, read_features


def main(json_out: str = typer.Option("", "--json", help="also write the figures to this JSON file")) -> None:
    """What NegPrompt's negatives add over CoOp, per OOD set: their constant weight against their per-image part."""
    params = load_params()
    test, img = read_features("test")
    img, sets = torch.from_numpy(img), test.set.to_numpy()
    names = [n for n in np.unique(sets) if n != "id"]

    def per_set(x: np.ndarray) -> dict[str, list[float]]:
        return {n: [float(x[sets == n].mean()), float(x[sets == n].std())] for n in ["id", *names]}

    per_seed = {}
    for seed in params.subset.seeds:
        text = load_tensors(SCORES / f"seed{seed}.text.safetensors")[0]
        train = torch.from_numpy(
            np.asarray(
                fewshot_features(seed, params.open_vocab, params.subset.open_vocab_fraction)[0], dtype=np.float32
            )
        )
        _, train_pos, train_neg = scores.negprompt(train, text["pos"], text["neg"])
        n_const = float(torch.exp(train_neg).flatten(1).sum(1).mean())
        _, pos_sim, neg_sim = scores.negprompt(img, text["pos"], text["neg"])
        s = {k: v.numpy() for k, v in decomposed_scores(pos_sim, neg_sim, n_const).items()}
        per_seed[seed] = {
            "N_over_P_train": n_const / float(torch.exp(train_pos).sum(1).mean()),
            "log_N": per_set(torch.logsumexp(neg_sim.flatten(1), 1).numpy()),
            "log_P": per_set(torch.logsumexp(pos_sim, 1).numpy()),
            "auroc": {m: {n: 100 * metrics.auroc(v[sets == "id"], v[sets == n]) for n in names} for m, v in s.items()},
        }
    mean = {
        m: {n: float(np.mean([r["auroc"][m][n] for r in per_seed.values()])) for n in names}
        for m in per_seed[params.subset.seeds[0]]["auroc"]
    }
    print(
        f"N / P on ID training images (the negatives' share of the denominator): "
        f"{np.mean([r['N_over_P_train'] for r in per_seed.values()]):.2f}"
    )
    for key in ("log_N", "log_P"):
        print(
            f"{key} per set, mean ± std (seed {params.subset.seeds[0]}): "
            + "  ".join(f"{k} {m:.3f} ± {sd:.3f}" for k, (m, sd) in per_seed[params.subset.seeds[0]][key].items())
        )
    print(f"{'AUROC, mean over seeds':28s}" + "".join(f"{n:>9s}" for n in names) + "  average")
    for m, row in mean.items():
        print(f"{m:28s}" + "".join(f"{row[n]:9.2f}" for n in names) + f"{np.mean(list(row.values())):9.2f}")
    if json_out:
        with open(json_out, "w") as f:
            json.dump({"per_seed": per_seed, "mean": mean}, f, indent=2)


if __name__ == "__main__":
    commands.run(main)
