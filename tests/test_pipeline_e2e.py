"""The real pipeline (`dvc repro`) on a tiny override of params.yaml, in a throwaway git+dvc repo."""

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from negprompt.benchmarks.openmoji import read_vocabulary
from tests.helpers import dvc, make_repo, stages_run, tiny_params, up_to_date


@pytest.fixture(scope="module")
def reproduced(tmp_path_factory):
    """A fresh repository after `dvc repro` on the tiny configuration (shared by this module's tests)."""
    work = make_repo(tmp_path_factory.mktemp("e2e"), tiny_params())
    dvc(work, "repro")
    return work


@pytest.mark.slow
def test_plots_render_offline_in_a_real_browser(reproduced, tmp_path):
    """`dvc plots show` writes a page with Vega inlined (no CDN) and a handful of figures, each
    overlaying the seeds, sets or methods it compares (dvc.yaml's top-level `plots:`): headless
    Chromium draws every one with the network off."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    out = tmp_path / "plots"
    dvc(reproduced, "plots", "show", "-o", str(out))
    page = (out / "index.html").read_text()
    assert "cdn.jsdelivr" not in page and 'src="http' not in page  # nothing loaded from the network
    charts = page.count("vegaEmbed(")
    # ROC per OOD set (4) + per training stage: test AUROC per epoch, loss, rate (2 x 3); not one per file
    assert charts == 4 + 2 * 3, f"{charts} figures on the plots page"
    auroc = next(spec for spec in page.split("vegaEmbed(") if "train_pos (CoOp): test AUROC per epoch" in spec)
    for seed in (1, 2):  # the tiny configuration's seeds, overlaid in one figure, every OOD set in it
        for ood in ("near", "plant", "place", "texture"):
            assert f"pos_seed{seed}/plots/metrics/test/{ood}/auroc.tsv" in auroc, (seed, ood)
    if browser is None:
        pytest.skip("no chromium installed: the page was checked, not drawn")
    dom = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--proxy-server=127.0.0.1:9",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--virtual-time-budget=10000",
            "--dump-dom",
            (out / "index.html").as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    drawn = dom.count("<svg") + dom.count("<canvas")
    assert drawn >= charts, f"{drawn} of {charts} charts drawn"


@pytest.mark.slow
def test_dvc_repro_end_to_end_then_experiment(reproduced):
    work = reproduced
    metrics = json.loads((work / "reports/metrics.json").read_text())["openmoji"]
    assert set(metrics["ood"]) == {"near", "plant", "place", "texture"}
    for method in metrics["average"]:  # both FPR95 conventions for every method, on every set and on average
        for s in [*metrics["ood"].values(), metrics["average"]]:
            assert {"auroc", "fpr95", "fpr95_openood"} <= set(s[method]), (method, s[method])
    for method in ("mcm", "msp", "maxlogit", "energy", "coop", "negprompt"):  # the average is the sets' mean
        for key in ("auroc", "fpr95", "fpr95_openood"):
            per_set = [metrics["ood"][s][method][key] for s in metrics["ood"]]
            mean = sum(per_set) / len(per_set)
            assert metrics["average"][method][key] == pytest.approx(mean, abs=1e-3), (method, key)
    for ood in metrics["ood"]:  # a zero-shot AUROC is the area under the ROC curve the report plots for it
        roc = pd.read_csv(work / f"reports/plots/roc/{ood}.csv")
        for method, name in (("mcm", "MCM"), ("maxlogit", "MaxLogit")):
            curve = roc[roc.method == name]
            area = 100 * float(np.trapezoid(curve.tpr, curve.fpr))
            assert area == pytest.approx(metrics["ood"][ood][method]["auroc"], abs=0.01), (ood, method)
            assert metrics["ood"][ood][method]["auroc_std"] == 0  # zero-shot: the same for every seed
    assert set(metrics["id_top1"]) == {"mcm", "coop", "negprompt"}
    report = (work / "reports/report.md").read_text()
    assert "| **NegPrompt** |" in report and "figures/roc.png" in report
    assert "(ID positive, `fpr95`" in report and "(OOD positive, `fpr95_openood`" in report
    # the text-space section reads the names the neglabel stage encoded once: every concept of the vocabulary
    assert f"prompts among the {len(read_vocabulary())} names of the OpenMoji vocabulary" in report
    backbone = json.loads((work / "reports/backbone.json").read_text())
    assert backbone["logit_scale"] == pytest.approx(100, rel=1e-3) and set(backbone["ood"]) == {
        "near",
        "plant",
        "place",
        "texture",
    }
    assert "## The backbone's zero-shot regime" in report and "CC BY-SA 4.0" in report
    for fig in ("figures/roc.png", "figures/score_histograms.png", "figures/similarity.png", "figures/tsne.png"):
        assert (work / "reports" / fig).stat().st_size > 1000
    for role in ("id", "plant", "vocabulary"):  # the sheets stage's, linked from the report
        assert (work / f"reports/sheets/contact_{role}.png").stat().st_size > 1000
        assert f"](sheets/contact_{role}.png)" in report
    roc = pd.read_csv(work / "reports/plots/roc/near.csv")
    assert list(roc.columns) == ["method", "fpr", "tpr"] and set(roc.method) == {"NegPrompt", "MCM", "CoOp", "MaxLogit"}
    assert stages_run(dvc(work, "repro").stdout) == [] and up_to_date(dvc(work, "status").stdout)

    subprocess.run(["git", "add", "-A"], cwd=work, check=True)  # the baseline the experiment is diffed against
    subprocess.run(["git", "commit", "-qm", "repro"], cwd=work, check=True)
    out = dvc(work, "exp", "run", "-S", "neg.num_prompts=3")
    ran = out.stdout
    assert "Running stage 'train_neg@1'" in ran and "Running stage 'report'" in ran
    assert "Running stage 'train_pos" not in ran and "Running stage 'features'" not in ran
    params = json.loads(dvc(work, "params", "diff", "--json").stdout)["params.yaml"]
    assert params["neg.num_prompts"]["old"] == 2 and params["neg.num_prompts"]["new"] == 3, params
    diff = json.loads(dvc(work, "metrics", "diff", "--json").stdout)["reports/metrics.json"]
    changed = diff["openmoji.average.negprompt.auroc"]
    assert changed["old"] != changed["new"]
    assert changed["diff"] == pytest.approx(changed["new"] - changed["old"], abs=1e-3)
    assert not any(k.startswith("openmoji.average.mcm.") for k in diff), diff  # zero-shot MCM ignores the negatives
    every = json.loads(dvc(work, "metrics", "diff", "--all", "--json").stdout)["reports/metrics.json"]
    for method in metrics["average"]:  # `dvc metrics diff` carries both FPR95 conventions of every method and set
        for s in [*(f"ood.{o}" for o in metrics["ood"]), "average"]:
            assert {f"openmoji.{s}.{method}.{k}" for k in ("fpr95", "fpr95_openood")} <= set(every), (s, method)

    # SIGKILL mid-training leaves the previous complete output; a forced rerun is byte-identical
    neg = work / "models/neg/seed1.safetensors"
    first = {
        p: (work / p).read_bytes()
        for p in ("models/neg/seed1.safetensors", "features/test.parquet", "reports/metrics.json")
    }
    # the thread count of tests/helpers.dvc: the killed run may leave a checkpoint that the rerun resumes from
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "NEGPROMPT_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline.train_neg", "--seed", "1"],
        cwd=work,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    for line in proc.stderr:  # kill once it is training
        if "train negative prompts" in line:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert neg.read_bytes() == first["models/neg/seed1.safetensors"]
    dvc(work, "repro", "-f", "-s", "features")
    dvc(work, "repro", "-f", "-s", "train_neg@1")
    dvc(work, "repro")
    changed = [p for p, b in first.items() if (work / p).read_bytes() != b]
    assert not changed, f"not byte-identical after a forced rerun: {changed}"

    bad = dvc(work, "exp", "run", "-S", "neg.num_prompts=0", check=False)
    assert bad.returncode != 0 and "neg.num_prompts = 0" in bad.stderr + bad.stdout
