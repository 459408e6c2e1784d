"""The README's and docs' commands, run as written from a plain shell in a fresh clone (their links and
figures: tests/test_docs.py).

Every line of the ```bash blocks of README.md and then of docs/*.md (in name order) runs, in order, in
one bash session whose PATH has a `python` that is *not* the project's (the system one, without
torch), as a user's shell would: the README's `source .venv/bin/activate` holds for the docs after
it. A ```python block runs as one script under that session's `python` (the environment's, once
activated). Blocks that start with a `# needs ...` comment (ImageNet, a GPU, an hour of work) and
lines marked `# (not run by the README test)` are left out: `make test` itself, and experiments whose form
ran just before (`dvc exp run -S`, `--temp -n`) and whose stages other end-to-end tests run (features.local:
tests/test_imagenet.py, tests/test_scale.py). The clone gets its own params.yaml
with tiny overrides and an environment that reuses this test run's installed packages, so
`make install` has nothing to do.
"""

import os
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import yaml

from tests.helpers import TINY

REPO = Path(__file__).resolve().parents[1]
SKIP_LINE = "# (not run by the README test)"
DOCS = sorted((REPO / "docs").glob("*.md"))
MAX_README_LINES = 250
RESULTS_TABLE_BY_LINE = 80
TOOK = "[README test] took"


def readme_commands(text: str) -> list[str]:
    """The commands of a Markdown file's ```bash (one per line) and ```python (one per block) blocks, in order."""
    commands = []
    for lang, block in re.findall(r"^```(bash|python)\n(.*?)^```", text, re.S | re.M):
        if block.lstrip().startswith("# needs"):
            continue
        if lang == "python":
            commands.append(f"python - <<'NEGPROMPT_EOF'\n{block}NEGPROMPT_EOF")
            continue
        for line in block.splitlines():
            if SKIP_LINE in line or not line.strip() or line.lstrip().startswith("#"):
                continue
            commands.append(line)
    return commands


def all_commands() -> list[str]:
    return [c for f in [REPO / "README.md", *DOCS] for c in readme_commands(f.read_text())]


def test_readme_blocks_are_found():
    cmds = readme_commands((REPO / "README.md").read_text())
    assert "make repro" in " ".join(cmds) and any(c.startswith("source .venv/bin/activate") for c in cmds)
    assert any(c.startswith("python - <<") and "Detector(" in c for c in cmds), "the README's Python example runs"
    assert DOCS and any(readme_commands(f.read_text()) for f in DOCS), "the docs' commands are found"
    assert not any(".venv/bin/dvc" in c for c in all_commands()), (
        "commands use the activated environment, not .venv/bin paths"
    )


def test_blocks_that_are_not_run_are_left_out():
    text = (
        "```bash\n# needs a GPU\nexit 1\n```\n"
        "```bash\nmake x  # (not run by the README test)\n# a comment\necho ok\n```\n"
        "```python\nprint(1)\n```\n```\nnot a command\n```\n"
    )
    assert readme_commands(text) == ["echo ok", "python - <<'NEGPROMPT_EOF'\nprint(1)\nNEGPROMPT_EOF"]


def test_readme_is_a_front_door():
    lines = (REPO / "README.md").read_text().splitlines()
    assert len(lines) <= MAX_README_LINES, (
        f"README.md has {len(lines)} lines (at most {MAX_README_LINES}): move detail to docs/"
    )
    heading = lines.index("## Results at a glance")
    table = next(i for i in range(heading, len(lines)) if lines[i].startswith("| method"))
    assert table + 1 <= RESULTS_TABLE_BY_LINE, (
        f"the results table starts at line {table + 1} (by {RESULTS_TABLE_BY_LINE})"
    )
    rows = set()
    for line in lines[table + 2 :]:
        if not line.startswith("|"):
            break
        rows.add(line.split("|")[1].strip(" *"))
    assert {"MCM (zero-shot)", "CoOp", "NegPrompt"} <= rows, rows


def _clone_env(clone: Path) -> None:
    """clone/.venv: a venv that sees this run's site-packages and has the clone installed (editable)."""
    subprocess.run([sys._base_executable, "-m", "venv", "--without-pip", str(clone / ".venv")], check=True)
    site = Path(sysconfig.get_paths(vars={"base": str(clone / ".venv"), "platbase": str(clone / ".venv")})["purelib"])
    (site / "_negprompt_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    (site / "_negprompt_clone.pth").write_text(str(clone / "src") + "\n")
    bin_dir = Path(sys.executable).parent
    for tool in ("dvc", "negprompt", "pip"):  # console scripts, pointed at the clone's interpreter
        src = bin_dir / tool
        body = src.read_text().split("\n", 1)[1]
        (clone / ".venv/bin" / tool).write_text(f"#!{clone / '.venv/bin/python'}\n{body}")
        (clone / ".venv/bin" / tool).chmod(0o755)
    (clone / ".venv/bin/.installed").touch()  # newer than requirements.lock and pyproject.toml: nothing to install


@pytest.mark.slow
def test_readme_commands_run_as_written_in_a_fresh_clone(tmp_path):
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
    params = yaml.safe_load((clone / "params.yaml").read_text())  # the clone's own params, made tiny
    for section, values in TINY.items():
        params[section].update(values)
    params["subset"]["seeds"] = [1]
    (clone / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env_git = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
    }
    subprocess.run(["git", "commit", "-qam", "tiny params"], cwd=clone, check=True, env=env_git)
    _clone_env(clone)

    user_bin = tmp_path / "user-bin"  # a user's PATH: `python` is the system one, without the project's packages
    user_bin.mkdir()
    system_python = shutil.which("python3", path="/usr/local/bin:/usr/bin:/bin")
    (user_bin / "python").symlink_to(system_python)
    env = {k: v for k, v in env_git.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
    env["PATH"] = f"{user_bin}:/usr/local/bin:/usr/bin:/bin"
    env["NEGPROMPT_THREADS"] = "1"  # a pytest-xdist worker per core (tests/helpers.py, dvc)
    script = "set -e\n" + "\n".join(
        f'echo {shlex.quote("$ " + c.strip())}\nSTART=$SECONDS\n{c}\necho "{TOOK} $((SECONDS - START)) s"'
        for c in all_commands()
    )
    out = subprocess.run(["bash", "-c", script], cwd=clone, env=env, capture_output=True, text=True, timeout=1500)
    assert out.returncode == 0, f"a README or docs command failed:\n{out.stdout[-4000:]}\n{out.stderr[-4000:]}"
    command, timings = "", []  # seconds per command, shown by `pytest -rP`
    for line in out.stdout.splitlines():
        if line.startswith("$ "):
            command = line[2:80]
        elif line.startswith(TOOK):
            timings.append(f"{line.split()[-2]:>5} s  {command}")
    print("\n".join(timings))


@pytest.mark.slow
def test_a_stage_run_by_the_wrong_python_says_how_to_fix_it(tmp_path):
    """`python -m pipeline.<stage>` under an interpreter without torch: one line saying what to do."""
    system_python = shutil.which("python3", path="/usr/local/bin:/usr/bin:/bin")
    probe = subprocess.run([system_python, "-c", "import torch"], capture_output=True)
    if probe.returncode == 0:
        pytest.skip("the system python has torch")
    res = subprocess.run(
        [system_python, "-m", "pipeline.subset"],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)},
    )
    assert (
        res.returncode == 2 and "source .venv/bin/activate" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    )
