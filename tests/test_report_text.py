"""The report says in words when a baseline beats NegPrompt, and why when the backbone explains it."""

import pytest

from negprompt.report.narrative import ranking_note


def test_ranking_note_names_the_methods_that_beat_negprompt_and_the_backbone_cause():
    avg = {"negprompt": {"auroc": 61.0}, "mcm": {"auroc": 56.0}, "maxlogit": {"auroc": 64.5}, "coop": {"auroc": 52.5}}
    inverted = {"average": {"mcm": {"auroc": 57.0}, "maxlogit": {"auroc": 64.8}}}
    note = ranking_note(avg, inverted)
    assert "is beaten by MaxLogit (64.50)" in note and "beats MCM, CoOp" in note and "not in real CLIP's regime" in note
    assert "not in real CLIP's regime" not in ranking_note(avg, {})
    assert ranking_note({"negprompt": {"auroc": 90.0}, "mcm": {"auroc": 80.0}}, inverted).startswith(
        "**NegPrompt has the best"
    )


def test_similarity_summary_has_one_row_per_set_in_table_order():
    import pandas as pd

    from negprompt.report.tables import similarity_summary

    t = pd.DataFrame(
        {
            "set": ["id", "id", "plant", "texture"],
            "pos_sim_max": [0.5, 0.7, 0.4, 0.3],
            "neg_sim_max": 0.0,
            "neg_init_sim_mean": 0.4,
            "neg_sim_mean": [-0.2, 0.0, -0.3, 0.1],
        }
    )
    s = similarity_summary([t, t])
    assert list(s.index) == ["ID", "plant", "texture"]
    assert s.loc["ID", "positive (max)"] == 0.6 and s.loc["texture", "negative after training (mean)"] == 0.1


def test_negatives_note_gives_each_sets_gain_over_coop_and_its_cosine_to_the_negatives():
    import pandas as pd

    from negprompt.report.narrative import negatives_note
    from negprompt.report.results import Results

    results = Results(
        average={"coop": {}, "negprompt": {}},
        ood={
            "plant": {"coop": {"auroc": 70.0}, "negprompt": {"auroc": 54.0}},
            "texture": {"coop": {"auroc": 55.0}, "negprompt": {"auroc": 83.0}},
        },
    )
    sim = pd.DataFrame({"negative after training (mean)": [-0.142, -0.161, -0.069]}, index=["ID", "plant", "texture"])
    note = negatives_note(results, sim)
    assert (
        "ID's is -0.142" in note and "plant -16.0 (cosine -0.161)" in note and "texture +28.0 (cosine -0.069)" in note
    )
    assert negatives_note(Results(average={"negprompt": {}}, ood={}), sim) == ""


def test_text_space_rows_and_fig3_check():
    import pandas as pd
    import torch
    import torch.nn.functional as F

    from negprompt.report import tables as report

    names = ["cat", "dog", "moon"]
    name_feats = F.normalize(torch.eye(4)[:3], dim=1)
    on = name_feats[[0, 1]]  # two classes' prompts exactly on "cat" and "dog"
    off = F.normalize(
        torch.tensor([[-1.0, 0, 0, 1], [-1.0, 0, 0, 1]]), dim=1
    )  # off every name, nearest "dog"/"moon" at 0
    rows = report.text_space_rows({"on": on, "off": off}, name_feats, names)
    assert rows.loc["on", "highest cosine to a name (mean over classes)"] == pytest.approx(1.0)
    assert rows.loc["off", "highest cosine to a name (mean over classes)"] == pytest.approx(0.0, abs=1e-6)
    assert rows.loc["on", "nearest names (classes)"] in ("cat (1), dog (1)", "dog (1), cat (1)")
    t = pd.DataFrame({"set": ["id", "id", "a", "b"], "neg_sim_max": [0.1, 0.3, 0.5, 0.1]})
    means, not_closer = report.fig3_check([t])
    assert means["id"] == pytest.approx(0.2) and not_closer == ["b"]


def test_markdown_table_writes_cells_as_given_and_a_none_as_a_bare_cell():
    from negprompt import NegPromptError
    from negprompt.report.markdown import table

    md = table([["**average**", None, "1.00 ± 0.10"], ["id", "", "+0.86"]], ["set", "n", "Δ"])
    assert md == "| set | n | Δ |\n|---|---|---|\n| **average** | | 1.00 ± 0.10 |\n| id |  | +0.86 |"
    assert table([], ["a", "a"]) == "| a | a |\n|---|---|"
    with pytest.raises(NegPromptError, match="every row needs 2 cells"):
        table([["x"]], ["a", "b"])


def test_regime_table_leaves_the_average_rows_statistics_bare():
    from negprompt.report.tables import regime_table

    stats = {"n": 3, "max_cos": (0.1, 0.01), "mean_cos": (0.1, 0.01), "corr_max_mean": 0.2, "max_z": (1, 0.1)}
    diag = {
        "sets": {"id": stats},
        "ood": {},
        "average": {"mcm": {"auroc": 61.04, "fpr95": 2.0}},
    }
    lines = regime_table(diag).splitlines()
    assert lines[0] == "| set | n | max cosine | mean cosine | corr(max, mean) | max − mean (std) | MCM |"
    assert lines[2] == "| id | 3 | 0.100 ± 0.010 | 0.100 ± 0.010 | +0.20 | 1.00 ± 0.10 |  |"
    assert lines[3] == "| **average** | | | | | | **61.0 / 2.0** |"


def test_metrics_json_puts_the_figures_and_the_protocol_under_the_benchmark():
    """metrics.json's entry is the figures and the protocol summary; `stream_orders` and `rank_agreement` appear
    only when set, as the dict `aggregate` returned had them."""
    from negprompt.report.results import Results
    from negprompt.report.tables import metrics_json

    results = Results(ood={}, average={"mcm": {"auroc": 60.0}}, id_top1={})
    out = metrics_json("openmoji", results, {"neg": {"select_set": "near"}})
    assert out == {
        "openmoji": {
            "ood": {},
            "average": {"mcm": {"auroc": 60.0}},
            "id_top1": {},
            "protocol": {"neg": {"select_set": "near"}},
        }
    }
    assert list(out["openmoji"]) == ["ood", "average", "id_top1", "protocol"]
    results.rank_agreement = {"kendall_tau": 0.5, "methods": 3, "disagreeing_pairs": 1}
    results.stream_orders = [0, 1]
    out = metrics_json("openmoji", results, {})["openmoji"]
    assert list(out) == ["ood", "average", "id_top1", "stream_orders", "rank_agreement", "protocol"]
    assert out["stream_orders"] == [0, 1] and out["rank_agreement"]["kendall_tau"] == 0.5


def test_report_template_is_packaged_and_a_missing_figure_is_an_error():
    from importlib.resources import files

    import jinja2

    from negprompt.report.markdown import render

    assert files("negprompt.report").joinpath("templates/report.md.j2").is_file()
    with pytest.raises(jinja2.UndefinedError):
        render("report.md.j2", name="openmoji")
