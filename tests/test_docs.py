"""The docs as a manual that cannot drift: every relative link and `#anchor` in the pages a reader
opens resolves, and the figures the README and docs/results.md quote from the default run equal
`reports/metrics.json` (the pipeline's output) at the digits they show. The manual (README.md, docs/*.md)
names no commit and logs no dated measurement: those go to notes/, CHANGELOG.md and the History of
benchmarks/RESULTS.md, which opens with one table per benchmark. Each check is also run on a broken copy, to
show that it fails. (tests/test_readme.py runs the pages' commands.)"""

import json
import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PAGES = [
    "README.md",
    "CHANGELOG.md",
    "benchmarks/README.md",
    "benchmarks/RESULTS.md",
    "reports/report.md",
    *(f"docs/{f.name}" for f in sorted((REPO / "docs").glob("*.md"))),
    *(f"notes/{f.name}" for f in sorted((REPO / "notes").glob("*.md"))),
]
MANUAL = ["README.md", *(f"docs/{f.name}" for f in sorted((REPO / "docs").glob("*.md")))]
HEX_RUN = re.compile(r"\b[0-9a-f]{7,40}\b")
DATE = re.compile(r"\b20\d\d-\d\d-\d\d\b")
CODE = re.compile(r"^```.*?^```", re.S | re.M)

# README's results table: row label -> metrics.json method; columns -> where the cell's figures live
METHODS = {
    "MCM (zero-shot)": "mcm",
    "MSP": "msp",
    "MaxLogit": "maxlogit",
    "Energy": "energy",
    "NegLabel (zero-shot)": "neglabel",
    "CSP (zero-shot)": "csp",
    "AdaNeg (test-time)": "adaneg",
    "TANL (test-time)": "tanl",
    "InterNeg (test-time)": "interneg",
    "CoOp": "coop",
    "NegPrompt": "negprompt",
}
SETS = ("near", "plant", "place", "texture")


def slug(heading: str) -> str:
    """GitHub's anchor for a Markdown heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(text: str) -> set[str]:
    """Every heading's anchor, with GitHub's -1, -2 ... for repeated headings."""
    seen: dict[str, int] = {}
    out = set()
    for heading in re.findall(r"^#{1,6} (.+?)#*$", CODE.sub("", text), re.M):
        s = slug(heading)
        out.add(f"{s}-{seen[s]}" if s in seen else s)
        seen[s] = seen.get(s, 0) + 1
    return out


def broken_links(path: Path) -> list[str]:
    """The relative links of a Markdown page (outside code blocks) whose file or `#anchor` does not exist."""
    broken = []
    for link in re.findall(r"\]\(([^)\s]+)\)", CODE.sub("", path.read_text())):
        if re.match(r"[a-z][a-z0-9+.-]*:", link):
            continue  # http(s), mailto
        target, _, anchor = link.partition("#")
        dest = (path.parent / target).resolve() if target else path
        if not dest.exists():
            broken.append(f"{link}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest.read_text()):
            broken.append(f"{link}: no heading with that anchor in {dest.name}")
    return broken


def figures(cell: str) -> list[str]:
    """The numbers of a table cell as written ('79.61 ± 0.08 / **74.14** ± 0.93' -> 4 strings)."""
    return re.findall(r"\d+(?:\.\d+)?", cell.replace(",", ""))


def shows(written: str, value: float) -> bool:
    """Whether `written` is `value` rounded to the digits written."""
    digits = len(written.partition(".")[2])
    return abs(float(written) - value) <= 0.5 * 10**-digits + 1e-9


def table(text: str, heading: str) -> list[list[str]]:
    """The first Markdown table after `heading`: its rows (header and rule left out), cells stripped."""
    lines = text.splitlines()
    start = next(i for i in range(lines.index(heading), len(lines)) if lines[i].startswith("|"))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in line.strip().strip("|").split("|")])
    return rows


def results_table_mismatches(readme: str, metrics: dict) -> list[str]:
    """Cells of README's results table that differ from metrics.json at the digits they show."""
    bad = []
    for label, *row in table(readme, "## Results at a glance"):
        method = METHODS[label.strip("* ")]
        cells = row[:6]  # the sets, the average, ID top-1; then the published ImageNet figures and the cost
        expected = [[metrics["ood"][s][method]["auroc"], metrics["ood"][s][method]["fpr95"]] for s in SETS]
        avg = metrics["average"][method]
        expected.append(
            [avg["auroc"], avg["auroc_std"], avg["fpr95"], avg["fpr95_std"]]
            if "±" in cells[4]
            else [avg["auroc"], avg["fpr95"]]
        )
        top1 = metrics["id_top1"].get(method)
        expected.append([] if not cells[5] else [top1["top1"], top1["top1_std"]] if "±" in cells[5] else [top1["top1"]])
        for cell, values in zip(cells, expected, strict=True):
            written = figures(cell)
            if len(written) != len(values) or not all(shows(w, v) for w, v in zip(written, values)):
                bad.append(f"{label}: '{cell}' against {values}")
    return bad


def quoted_default_mismatches(readme: str, results: str, metrics: dict) -> list[str]:
    """NegPrompt's default-run figures quoted outside the results table: README's protocol table
    (average, texture, near) and docs/results.md's ablation table (average)."""
    neg = {s: metrics["ood"][s]["negprompt"] for s in SETS} | {"average": metrics["average"]["negprompt"]}
    quoted = []
    for row in table(readme, "### Official protocol vs honest selection"):
        if row[0].startswith("default"):
            for cell, s in zip(row[1:], ("average", "texture", "near")):
                quoted.append((row[0], cell, [neg[s]["auroc"], neg[s]["fpr95"]]))
    for row in table(results, "## Ablations"):
        if "(default)" in row[0]:
            quoted.append((row[0], row[1], [neg["average"]["auroc"], neg["average"]["fpr95"]]))
    assert len(quoted) == 4, "README's protocol table and results.md's ablation table each have a default row"
    return [
        f"{label}: '{cell}' against {values}"
        for label, cell, values in quoted
        if len(figures(cell)) != len(values) or not all(shows(w, v) for w, v in zip(figures(cell), values))
    ]


@pytest.mark.parametrize("page", PAGES)
def test_relative_links_and_anchors_resolve(page):
    assert (REPO / page).exists(), page
    assert not broken_links(REPO / page), f"{page}: " + "; ".join(broken_links(REPO / page))


def test_the_link_check_fails_on_a_broken_copy(tmp_path):
    (tmp_path / "docs").mkdir()
    twice = "## Plots: `dvc plots show`\n\n"
    (tmp_path / "docs/other.md").write_text("# Other page\n\n" + twice + twice)
    page = tmp_path / "docs/page.md"
    page.write_text(
        "# A page\n\n## Two words\n\n"
        "[ok](other.md#plots-dvc-plots-show-1) [ok](#two-words) [web](https://example.com/x#y)\n"
        "[gone](missing.md) [bad anchor](other.md#real-data) [bad here](#three-words)\n"
        "```bash\n[not a link](nowhere.md)\n```\n"
    )
    assert broken_links(page) == [
        "missing.md: no such file",
        "other.md#real-data: no heading with that anchor in other.md",
        "#three-words: no heading with that anchor in page.md",
    ]


def test_readme_results_table_is_metrics_json_at_the_digits_it_shows():
    metrics = json.loads((REPO / "reports/metrics.json").read_text())["openmoji"]
    readme = (REPO / "README.md").read_text()
    assert len(table(readme, "## Results at a glance")) == len(METHODS)
    assert not results_table_mismatches(readme, metrics), results_table_mismatches(readme, metrics)
    results = (REPO / "docs/results.md").read_text()
    assert not quoted_default_mismatches(readme, results, metrics), quoted_default_mismatches(readme, results, metrics)


def test_the_table_check_fails_on_a_broken_copy():
    metrics = json.loads((REPO / "reports/metrics.json").read_text())["openmoji"]
    readme = (REPO / "README.md").read_text()
    results = (REPO / "docs/results.md").read_text()
    neg = metrics["average"]["negprompt"]
    shown = f"{neg['auroc']:.2f} ± {neg['auroc_std']:.2f}"
    assert shown in readme
    drifted = readme.replace(shown, f"{neg['auroc'] + 0.02:.2f} ± {neg['auroc_std']:.2f}", 1)
    (mismatch,) = results_table_mismatches(drifted, metrics)
    assert mismatch.startswith(f"**NegPrompt**: '{neg['auroc'] + 0.02:.2f} ± "), mismatch
    default = f"{neg['auroc']:.2f} / {neg['fpr95']:.2f}"
    assert default in results
    assert len(quoted_default_mismatches(readme, results.replace(default, "73.62 / 83.56"), metrics)) == 1
    assert shows("69.03", 69.025) and shows("69.0", 69.025) and not shows("69.02", 69.0149)


def commit_hashes(text: str, repo: Path = REPO) -> list[str]:
    """The 7-40 hex-digit runs of `text` that name a commit of `repo` (`git cat-file --batch-check`), so that a
    sha256, a colour code or a number that is no commit is not mistaken for one."""
    runs = sorted(set(HEX_RUN.findall(text)))
    if not runs:
        return []
    out = subprocess.run(
        ["git", "cat-file", "--batch-check"],
        cwd=repo,
        input="".join(f"{r}^{{commit}}\n" for r in runs),
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    return [r for r, line in zip(runs, out, strict=True) if line.split()[1:2] == ["commit"]]


def dated_lines(text: str) -> list[str]:
    """The lines of `text` holding a date (2026-12-06): a dated measurement belongs in notes/ or RESULTS.md."""
    return [line.strip() for line in text.splitlines() if DATE.search(line)]


def first_section_problems(text: str) -> list[str]:
    """What keeps a RESULTS page's first `## ` section from being only tables, one per benchmark under its
    `### ` heading, each with the columns name | command | latest figure(s) | machine, and a `## History` after."""
    lines = CODE.sub("", text).splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("## ")]
    if not starts:
        return ["no `## ` section"]
    end = starts[1] if len(starts) > 1 else len(lines)
    problems, tables, heading = [], 0, None
    for line in lines[starts[0] + 1 : end]:
        if line.startswith("### "):
            heading = line
        elif line.startswith("|"):
            if heading is not None:
                header = [c.strip() for c in line.strip().strip("|").split("|")]
                if header != ["name", "command", "latest figure(s)", "machine"]:
                    problems.append(f"{heading}: header {header}")
                tables, heading = tables + 1, None
        elif line.strip():
            problems.append(f"not a heading or a table row: {line[:60]}")
    if not tables:
        problems.append("no table")
    if "## History" not in lines[end:]:
        problems.append("no `## History` after the first section")
    return problems


@pytest.mark.parametrize("page", MANUAL)
def test_the_manual_names_no_commit_and_logs_no_date(page):
    text = (REPO / page).read_text()
    assert not commit_hashes(text), f"{page} names commits {commit_hashes(text)}: move them to CHANGELOG.md or notes/"
    assert not dated_lines(text), f"{page} has dated lines {dated_lines(text)}: move them to notes/ or RESULTS.md"


def test_results_open_with_one_table_per_benchmark_and_hashes_only_in_history():
    text = (REPO / "benchmarks/RESULTS.md").read_text()
    assert not first_section_problems(text), first_section_problems(text)
    before_history = text.partition("\n## History\n")[0]
    assert not commit_hashes(before_history), commit_hashes(before_history)


def test_the_manual_checks_fail_on_a_broken_copy():
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    sha256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    text = f"Made at {head.strip()[:7]} (colour #a1b2c3, file sha256 {sha256}), measured 2026-12-06.\n"
    assert commit_hashes(text) == [head.strip()[:7]]
    assert commit_hashes(f"colour #a1b2c3, sha256 {sha256}, not a commit: abcdef0123456789abcdef0123") == []
    assert dated_lines(text) == [text.strip()] and dated_lines("version 2026.12, 20 s") == []
    good = "# R\n\nintro\n\n## Latest\n\n### A\n\n| name | command | latest figure(s) | machine |\n|---|---|---|---|\n"
    good += "| a | `x` | 1 s | cpu |\n\n## History\n\nlog\n"
    assert first_section_problems(good) == []
    assert first_section_problems(good.replace("### A\n\n", "### A\n\nprose\n\n")) == [
        "not a heading or a table row: prose"
    ]
    assert first_section_problems(good.replace("## History", "## Older")) == ["no `## History` after the first section"]
    assert first_section_problems(good.replace("| machine |", "| date |", 1)) == [
        "### A: header ['name', 'command', 'latest figure(s)', 'date']"
    ]
