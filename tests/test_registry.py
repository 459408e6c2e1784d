"""The method registry is the one list of methods: the report's labels, score table, leaderboard and the family's
params sections all come from its records, and a plugin's record (label included) reaches the report."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import yaml

from negprompt import NegPromptError
from negprompt.config import Params, family_methods
from negprompt.methods import registry
from negprompt.report import leaderboard, narrative
from negprompt.report import tables as report
from tests.helpers import REPO, TINY, dvc, make_repo, tiny_params


def section(params: Params, dotted: str):
    node = params
    for part in dotted.split("."):
        node = getattr(node, part)
    return node


def test_every_built_in_record_is_complete_and_its_params_section_exists():
    specs = registry.methods()
    assert list(specs)[:4] == ["mcm", "msp", "maxlogit", "energy"] and len(registry.builtin_names()) == 13
    for name, spec in specs.items():
        assert spec.kind in registry.KINDS and spec.label and spec.cost != "—", name
        assert spec.published is not None and spec.published.source, name
        assert spec.params is None or section(Params(), spec.params) is not None, (name, spec.params)
    assert list(registry.methods(kind="stream")) == ["adaneg", "tanl", "interneg"]
    assert registry.family() == family_methods() == ["csp", "adaneg", "tanl", "interneg"]  # family.methods' choice


def test_a_built_in_name_is_taken_and_a_plugin_replaces_itself():
    with pytest.raises(NegPromptError, match="taken by a built-in method"):
        registry.register("negprompt", lambda img, ctx: img[:, 0], label="Mine")
    try:
        registry.register("twice", lambda img, ctx: img[:, 0], label="First")
        registry.register("twice", lambda img, ctx: img[:, 1], label="Second")
        assert registry.label("twice") == "Second" and "twice" in registry.registered()
    finally:
        registry.unregister("twice")
    assert registry.label("twice") == "twice"
    registry.unregister("mcm")  # a built-in cannot be removed
    assert "mcm" in registry.methods()


def scores(seed: int) -> pd.DataFrame:
    r = np.random.default_rng(seed)
    sets = ["id"] * 30 + ["near"] * 15 + ["far"] * 15
    shift = np.array([1.0 if s == "id" else 0.0 for s in sets])
    cols = {"set": sets, "label": r.integers(0, 3, 60)}
    for m in ("mcm", "coop", "negprompt", "method:cosine_gap"):
        cols[m] = r.normal(size=60) + shift
    cols["zero_shot_pred"] = r.integers(0, 3, 60)
    return pd.DataFrame(cols)


def test_a_plugins_label_is_what_the_report_and_the_leaderboard_show():
    tables = [scores(1), scores(2)]
    try:
        registry.register("cosine_gap", lambda img, ctx: img[:, 0], label="Cosine gap")
        assert report.methods_in(tables[0]) == ["mcm", "coop", "negprompt", "cosine_gap"]
        agg = report.aggregate(tables)
        assert "cosine_gap" in agg["average"] and list(agg["id_top1"]) == ["mcm"]
        assert "| Cosine gap |" in report.metrics_table(agg)
        board = leaderboard.table(agg)
        row = next(line for line in board.splitlines() if line.startswith("| Cosine gap |"))
        assert row.endswith("| — / — | your method (registry) | — |")
        assert "| NegPrompt |" in board and "NegPrompt paper, Table 2 | as MCM × (1 + p) |" in board
        note = narrative.ranking_note(agg["average"], {})
        assert "cosine_gap" not in note and "Cosine gap" in note
    finally:
        registry.unregister("cosine_gap")
    assert "| cosine_gap |" in report.metrics_table(agg)  # unregistered: the table shows its key


@pytest.mark.slow
def test_a_new_method_reaches_the_report_the_leaderboard_and_metrics_json(tmp_path):
    """docs/add-a-method.md end to end: one file + family.plugins, in a throwaway copy, the smallest pipeline."""
    params = tiny_params({**TINY, "subset": {**TINY["subset"], "seeds": [1]}})
    params["family"].update({"methods": [], "plugins": ["plugins/generic_neg.py"]})
    work = make_repo(tmp_path, params)
    (work / "plugins").mkdir()
    shutil.copy(REPO / "docs/examples/generic_neg.py", work / "plugins/generic_neg.py")
    dvc(work, "repro")
    metrics = json.loads((work / "reports/metrics.json").read_text())["openmoji"]
    assert set(metrics["ood"]) == {"near", "plant", "place", "texture"}
    assert all("generic_neg" in metrics["ood"][s] for s in metrics["ood"]) and "generic_neg" in metrics["average"]
    md = (work / "reports/report.md").read_text()
    board = md.split("## Leaderboard")[1].split("\n## ")[0]
    assert "| Generic negatives |" in board and "your method (registry)" in board
    table = md.split("## OOD detection")[1].split("\n## ")[0]
    assert "| Generic negatives |" in table and "generic_neg" not in table
    assert yaml.safe_load((work / "params.yaml").read_text())["family"]["plugins"] == ["plugins/generic_neg.py"]
