"""Stage `train_neg` (Eqs. 3-7): learn p negative contexts shared across classes, positive frozen.

Each epoch is evaluated (negprompt.methods.objectives.NegPromptStage2) and `neg.select` keeps one epoch
(negprompt.methods.selection); a killed run resumes from its last finished epoch (negprompt.methods.runner).
"""

import time

import typer

from negprompt.config import check_select
from negprompt.io import load_tensors
from negprompt.methods import curves
from negprompt.methods.objectives import NegPromptStage2
from negprompt.methods.runner import kept_line, load_inputs, run_objective, save_outputs
from negprompt.methods.selection import criterion, resolve_select_set
from negprompt.workspace import NEG, POS, load_params
from pipeline.common import run


def main(seed: int = typer.Option(..., help="subset seed (one of subset.seeds)")):
    start = time.perf_counter()
    params = load_params()
    neg_params = params.neg
    check_select("neg", neg_params.select, params.subset.calib_per_class)
    pos_path = POS / f"seed{seed}.safetensors"
    inputs = load_inputs(seed, params, neg_params.device, after=(pos_path,))
    select_set = resolve_select_set(
        neg_params.select_set, params.data.benchmark, list(inputs.test.ood), neg_params.select == "test"
    )
    pos_ctx = None if neg_params.one_stage else load_tensors(pos_path)[0]["ctx"]
    stage2 = NegPromptStage2(inputs, neg_params, criterion("neg", neg_params.select, select_set), pos_ctx, select_set)
    result = run_objective(stage2, inputs)
    trained = result.trained
    meta = curves.selection_metadata(neg_params.select, neg_params.schedule, trained, stage2.criterion)
    meta |= {"select_set": select_set} if neg_params.select == "test" else {}
    tensors = {"pos_ctx": trained.state["pos_ctx"], "neg_ctx": trained.state["neg_ctx"], "neg_ctx_init": stage2.neg0}
    identity = dict(backbone=inputs.backbone.identity, classnames=inputs.names, loss_variant=neg_params.loss_variant)
    save_outputs(NEG / f"seed{seed}.safetensors", tensors, identity | meta, [result])
    print(
        f"seed {seed}: {neg_params.num_prompts} negative prompts x {len(inputs.names)} classes, "
        f"final loss {trained.curve[-1]['train/loss']:.4f}"
    )
    print(kept_line(seed, "neg", neg_params.select, neg_params.schedule, result, time.perf_counter() - start))


if __name__ == "__main__":
    run(main)
