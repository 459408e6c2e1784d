"""What the two training stages share for their per-epoch evaluation: the check of `select` before any work,
the DVCLive curves, the kept epoch's metadata and the evaluation's cost.

Each run's curves go to reports/train/{pos,neg}_seed{N}/ (DVCLive: metrics.json holds the last
epoch's figures plus `kept`, the kept epoch's; plots/metrics/**.tsv one file per curve, `step` =
epoch - 1). Units: accuracies are fractions (as train/acc always was), AUROC and FPR95 in %.
"""

from __future__ import annotations

import time
from pathlib import Path

from negprompt.methods.selection import TEST_LABEL, Criterion
from negprompt.methods.train import Trained
from negprompt.workspace import REPORTS

CURVES = REPORTS / "train"


class Timer:
    """Seconds spent in `with timer:` blocks (the per-epoch evaluation's cost, printed by the stage)."""

    def __init__(self):
        self.seconds, self.calls = 0.0, 0

    def __enter__(self):
        self._start = time.perf_counter()

    def __exit__(self, *exc):
        self.seconds += time.perf_counter() - self._start
        self.calls += 1


def open_curves(name: str):
    """DVCLive for one run, writing under reports/train/<name>/ only (dvc.yaml declares its files)."""
    from dvclive import Live

    return Live(dir=str(CURVES / name), save_dvc_exp=False, dvcyaml=None, report=None)


def log_epoch(live, record: dict) -> None:
    for key, value in record.items():
        if key != "epoch":
            live.log_metric(key, value)
    live.next_step()


def keep_summary(live, trained: Trained) -> None:
    """metrics.json's `kept`: the kept epoch (1-based) and its figures, beside DVCLive's last ones."""
    record = trained.curve[trained.kept]
    kept: dict = {"epoch": trained.kept + 1}
    for key, value in record.items():
        if key != "epoch":
            node = kept
            *parents, leaf = key.split("/")
            for part in parents:
                node = node.setdefault(part, {})
            node[leaf] = value
    live.summary["kept"] = kept


def selection_metadata(select: str, schedule: str, trained: Trained, crit: Criterion | None) -> dict:
    """What the stage's safetensors metadata records about the kept epoch (the report reads it)."""
    meta = {
        "select": select,
        "schedule": schedule,
        "epoch": trained.kept + 1,
        "epochs": len(trained.curve),
        "criterion": f"{crit.mode} {crit.key}" if crit else "last epoch",
    }
    if select == "test":
        meta["select_note"] = TEST_LABEL
    return meta


def cost_line(timer: Timer, total: float) -> str:
    return (
        f"per-epoch evaluation: {timer.seconds:.1f} s over {timer.calls} epochs "
        f"({100 * timer.seconds / max(total, 1e-9):.0f}% of the stage's {total:.1f} s)"
    )


def curve_path(stage: str, seed: int) -> Path:
    return CURVES / f"{stage}_seed{seed}"
