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
from negprompt.report.results import Results
from tests.helpers import REPO, copy_reproduced, dvc, stages_run


def section(params: Params, dotted: str):
    node = params
    for part in dotted.split("."):
        node = getattr(node, part)
    return node


def test_every_built_in_record_is_complete_and_its_params_section_exists():
    specs = registry.methods()
    assert list(specs)[:4] == ["mcm", "msp", "maxlogit", "energy"] and len(registry.builtin_names()) == 14
    for name, spec in specs.items():
        assert spec.kind in registry.KINDS and spec.label and spec.cost != "—", name
        assert spec.published is not None and spec.published.source, name
        assert spec.params is None or section(Params(), spec.params) is not None, (name, spec.params)
    assert list(registry.methods(kind="stream")) == ["adaneg", "tanl", "interneg", "tins"]
    # family.methods' choice (TINS opt-in: a choice, not a default)
    assert registry.family() == family_methods() == ["csp", "adaneg", "tanl", "interneg", "tins"]


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
        results = report.aggregate(tables)
        assert "cosine_gap" in results.average and list(results.id_top1) == ["mcm"]
        keys = {"auroc", "auroc_std", "fpr95", "fpr95_std", "fpr95_openood", "fpr95_openood_std"}
        for m in results.average:  # both FPR95 conventions for every method, on every set and on average
            assert set(results.average[m]) == keys and all(set(results.ood[s][m]) == keys for s in results.ood), m
        assert "| Cosine gap |" in report.metrics_table(results)
        assert "| near AUROC ↑ | near FPR95 ↓ | near FPR95 OpenOOD ↓ |" in report.metrics_table(results)
        board = leaderboard.table(results)
        row = next(line for line in board.splitlines() if line.startswith("| Cosine gap |"))
        assert row.endswith("| — / — | — | your method (registry) | — |")
        e = results.average["cosine_gap"]
        assert f"| {e['auroc']:.2f} / {e['fpr95']:.2f} / {e['fpr95_openood']:.2f} (± " in row
        assert "| 94.81 / 23.01 | ID positive (`fpr95`) | NegPrompt paper, Table 2 | as MCM × (1 + p) |" in board
        note = narrative.ranking_note(results.average, {})
        assert "cosine_gap" not in note and "Cosine gap" in note
    finally:
        registry.unregister("cosine_gap")
    assert "| cosine_gap |" in report.metrics_table(results)  # unregistered: the table shows its key


def test_the_leaderboard_names_each_published_fpr95s_convention_and_image_list():
    """A published FPR95 is set beside ours in its own convention (registry.Published.fpr95_convention)."""
    e = {"auroc": 80.0, "fpr95": 60.0, "fpr95_openood": 70.0}
    methods = ("mcm", "adaneg", "msp")
    results = Results(ood={"x": {m: e for m in methods}}, average={m: e for m in methods})
    rows = {line.split(" | ")[0]: line for line in leaderboard.table(results).splitlines()[2:]}
    assert rows["| MCM"].endswith(
        "| 90.77 / 42.74 | ID positive (`fpr95`) | NegLabel paper, Table 1 (MCM row) | 0.013 |"
    )
    assert "| 96.66 / 18.92 | OOD positive (`fpr95_openood`) | AdaNeg paper" in rows["| AdaNeg (stream)"]
    assert "| 80.00 / 60.00 / 70.00 | 80.00 / 60.00 / 70.00 | — / — | — |" in rows["| MSP"]  # no figure: no convention
    text = leaderboard.section(results)
    assert "Every published figure is on ImageNet-1K val; iNaturalist, SUN, Places, Textures." in text
    assert "AUROC / FPR95 / FPR95 OpenOOD in %" in text


def test_the_leaderboard_lists_the_record_holders_we_cannot_run_apart_and_outside_tau():
    """ANTS, SUPREME, CLIPScope, NegRefine, LAPT: their published figure and what they need; not in τ. TINS, which
    runs when family.methods asks for it, joins them when this run's family.methods leaves it out."""
    from negprompt.config import Params

    e = {"auroc": 80.0, "fpr95": 60.0, "fpr95_openood": 70.0}
    avg = {"mcm": e, "neglabel": {**e, "auroc": 85.0}}
    results = Results(ood={"x": avg}, average=avg)

    def rows(text):
        only = text.split("Published only")[1]
        return [line.split(" | ")[0] for line in only.splitlines() if line.startswith("| ") and "---" not in line][1:]

    text = leaderboard.section(results)
    assert rows(text) == ["| ANTS", "| SUPREME", "| CLIPScope", "| NegRefine", "| LAPT"]
    assert "| ANTS | 97.75 / 11.20 |" in text and "multimodal LLM" in text
    assert leaderboard.rank_agreement(avg)["methods"] == ["mcm", "neglabel"]
    # the default family.methods (csp, adaneg, tanl, interneg): of the family only TINS is left out
    text = leaderboard.section(results, Params())
    assert rows(text) == ["| ANTS", "| SUPREME", "| CLIPScope", "| NegRefine", "| LAPT", "| TINS"]
    assert "| TINS | — / 6.72 | ID positive (`fpr95`) |" in text and "`family.methods` leaves it out (add tins;" in text
    with_tins = Params.model_validate({"family": {"methods": ["csp", "adaneg", "tanl", "interneg", "tins"]}})
    assert "| TINS" not in leaderboard.section(results, with_tins)
    assert "tins" not in leaderboard.rank_agreement(avg | {"tins": e})["methods"]  # no published AUROC: not in τ


def test_docs_list_each_published_fpr95_under_its_registry_convention():
    """docs/results.md's paragraph on the two conventions says what the registry records."""
    text = " ".join((REPO / "docs/results.md").read_text().split())
    said = {
        "id95": text.split("ID positive (`fpr95`): ")[1].split(".")[0],
        "ood95": text.split("OOD positive (`fpr95_openood`, the OpenOOD-VLM evaluator's): ")[1].split(".")[0],
        "": text.split("Not stated by the source: ")[1].split(".")[0],
    }
    recorded = {c: [] for c in said}
    for spec in registry.methods().values():
        if spec.published.fpr95 is not None:
            recorded[spec.published.fpr95_convention].append(spec.label)
    assert {c: said[c].split(", ") for c in said} == recorded
    images = {spec.published.images for spec in registry.methods().values() if spec.published.fpr95 is not None}
    assert images == {"ImageNet-1K val; iNaturalist, SUN, Places, Textures"}, "docs/results.md names one image list"


@pytest.mark.slow
def test_a_new_method_reaches_the_report_the_leaderboard_and_metrics_json(tmp_path, reproduced_one_seed):
    """docs/add-a-method.md end to end: one file + family.plugins, in a throwaway copy of the smallest pipeline."""
    work = copy_reproduced(reproduced_one_seed, tmp_path / "repo")
    params = yaml.safe_load((work / "params.yaml").read_text())
    params["family"].update({"methods": [], "plugins": ["plugins/generic_neg.py"]})
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (work / "plugins").mkdir()
    shutil.copy(REPO / "docs/examples/generic_neg.py", work / "plugins/generic_neg.py")
    ran = stages_run(dvc(work, "repro").stdout)
    assert "score@1" in ran and "report" in ran and "train_pos@1" not in ran, ran
    metrics = json.loads((work / "reports/metrics.json").read_text())["openmoji"]
    assert set(metrics["ood"]) == {"near", "plant", "place", "texture"}
    assert all("generic_neg" in metrics["ood"][s] for s in metrics["ood"]) and "generic_neg" in metrics["average"]
    md = (work / "reports/report.md").read_text()
    board = md.split("## Leaderboard")[1].split("\n## ")[0]
    assert "| Generic negatives |" in board and "your method (registry)" in board
    table = md.split("## OOD detection")[1].split("\n## ")[0]
    assert "| Generic negatives |" in table and "generic_neg" not in table
    assert yaml.safe_load((work / "params.yaml").read_text())["family"]["plugins"] == ["plugins/generic_neg.py"]
