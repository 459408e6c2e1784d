"""Stage `train_pos` (CoOp, Eqs. 1-2): learn the shared positive context on one seed's few shots.
With features.local it also trains the LoCoOp baseline (same init and optimiser, + patch entropy).

Each epoch is evaluated (negprompt.methods.objectives.CoOp) and `pos.select` keeps one epoch
(negprompt.methods.selection); a killed run resumes from its last finished epoch (negprompt.methods.runner).
"""

import time

import typer

from negprompt.config import check_select
from negprompt.methods import curves
from negprompt.methods.objectives import CoOp, LoCoOp
from negprompt.methods.runner import kept_line, load_inputs, run_objective, save_outputs
from negprompt.methods.selection import criterion
from negprompt.workspace import POS, load_params
from pipeline.common import run


def main(seed: int = typer.Option(..., help="subset seed (one of subset.seeds)")):
    start = time.perf_counter()
    params = load_params()
    pos_params, local = params.pos, params.features.local
    check_select("pos", pos_params.select, params.subset.calib_per_class)
    inputs = load_inputs(seed, params, pos_params.device, local=local)
    coop = CoOp(inputs, pos_params, criterion("pos", pos_params.select))
    runs = [run_objective(coop, inputs)]
    tensors = {"ctx_init": coop.ctx0, "ctx": runs[0].trained.state["ctx"]}
    if local:
        runs.append(run_objective(LoCoOp(coop), inputs))
        tensors["locoop_ctx"] = runs[1].trained.state["ctx"]
    curve = runs[0].trained.curve
    meta = curves.selection_metadata(pos_params.select, pos_params.schedule, runs[0].trained, coop.criterion)
    identity = {"backbone": inputs.backbone.identity, "classnames": inputs.names}
    save_outputs(POS / f"seed{seed}.safetensors", tensors, identity | meta, runs)
    print(
        f"seed {seed}: {len(inputs.names)} classes, final loss {curve[-1]['train/loss']:.4f}, "
        f"train acc {curve[-1]['train/acc']:.3f}" + (", LoCoOp trained too" if local else "")
    )
    print(kept_line(seed, "pos", pos_params.select, pos_params.schedule, runs[0], time.perf_counter() - start))


if __name__ == "__main__":
    run(main)
