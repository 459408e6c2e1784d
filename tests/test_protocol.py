"""The report's Protocol section from per-epoch curves (negprompt.methods.protocol)."""

import pandas as pd

from negprompt.methods import protocol
from negprompt.methods.selection import TEST_LABEL

SETS = ["near", "texture"]


def curve(texture: list[float], near: list[float], acc: list[float], calib: list[float], key: str) -> pd.DataFrame:
    df = pd.DataFrame({"test/texture/auroc": texture, "test/near/auroc": near, "test/id_acc": acc, key: calib})
    for s in SETS:
        df[f"test/{s}/fpr95"] = 100 - df[f"test/{s}/auroc"]
    return df


def runs(select: str) -> dict:
    neg = [
        curve([70, 80, 75], [60, 50, 65], [0.5] * 3, [2.0, 1.0, 1.5], "calib/loss"),
        curve([72, 71, 78], [61, 62, 60], [0.5] * 3, [1.0, 2.0, 3.0], "calib/loss"),
    ]
    pos = [curve([70, 71, 72], [60, 61, 62], [0.4, 0.6, 0.5], [0.3, 0.2, 0.1], "calib/id_acc")] * 2
    pick = {"last": [2, 2], "test": [1, 2], "id_val": [1, 0]}[select]
    return {
        "pos": protocol.StageRuns("last", "cosine", pos, [2, 2]),
        "neg": protocol.StageRuns(select, "official", neg, pick, "texture"),
    }


def test_rules_pick_their_arg_max_and_test_is_never_below_last():
    stages = runs("test")
    picks = protocol.rule_epochs("neg", stages["neg"])
    assert picks == {"last": [2, 2], "id_val": [1, 0], "test": [1, 2]}
    assert protocol.rule_epochs("pos", stages["pos"]) == {"last": [2, 2], "id_val": [0, 0], "test": [1, 1]}
    test = protocol.figures(stages["neg"], picks["test"], SETS)
    last = protocol.figures(stages["neg"], picks["last"], SETS)
    assert test["texture"]["auroc"] == 79 and last["texture"]["auroc"] == 76.5  # (80 + 78) / 2 vs (75 + 78) / 2
    assert test["average"]["auroc"] == (80 + 50 + 78 + 60) / 4


def test_summary_records_settings_kept_epochs_and_optimism():
    s = protocol.summary(runs("test"), SETS)
    assert s["neg"] == {
        "select": "test",
        "schedule": "official",
        "epochs": 3,
        "kept_epochs": [2, 3],
        "select_set": "texture",
        "kept_minus_last": {"auroc": -2.5, "fpr95": 2.5},
    }  # average: texture +2.5, near -7.5
    assert s["pos"]["kept_minus_last"] == {"auroc": 0.0, "fpr95": 0.0} and s["pos"]["select"] == "last"


def test_section_labels_test_selection_and_shows_delta_and_epochs():
    md = protocol.section(runs("test"), SETS, paper=(94.81, 23.01))
    assert TEST_LABEL in md and "| **average** |" in md and "Δ test − last" in md
    assert "`test` (kept): best test AUROC on texture" in md and "epochs kept (per seed)" in md
    assert "| texture | 76.50 | 76.00 | 79.00 | +2.50 |" in md  # last, id_val, test, Δ
    assert "94.81 / 23.01" in md and "**CoOp**" in md and "**NegPrompt**" in md
    assert "| epochs kept (per seed) | 3, 3 | 2, 1 | 2, 3 |" in md


def test_header_sentences():
    assert (
        protocol.kept_sentence("last", "last")
        == "The last epoch is kept: unlike the official code, nothing is selected on test data."
    )
    s = protocol.kept_sentence("test", "test", "texture")
    assert s.count(TEST_LABEL) == 2 and "test AUROC on texture" in s
    assert protocol.test_label("last", "last") == ""
    assert TEST_LABEL in protocol.test_label("last", "test") and "NegPrompt" in protocol.test_label("last", "test")
    assert "whose positive prompts are CoOp's" in protocol.test_label("test", "last")
    assert "held-out ID" in protocol.kept_sentence("id_val", "last")
