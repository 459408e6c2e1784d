"""The README's commands, run as written from a plain shell in a fresh clone.

Every line of the README's ```bash blocks runs, in order, in one bash session whose PATH has a
`python` that is *not* the project's (the system one, without torch), as a user's shell would.
Blocks that start with a `# needs ...` comment (ImageNet, a GPU, an hour of pretraining) and lines
ending in `# (not run by the README test)` are left out. The clone gets a tiny params.yaml and an
environment that reuses this test run's installed packages, so `make install` has nothing to do.
"""
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import yaml

from tests.test_pipeline_e2e import TINY, tiny_params

REPO = Path(__file__).resolve().parents[1]
SKIP_LINE = "# (not run by the README test)"


def readme_commands(text: str) -> list[str]:
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        if block.lstrip().startswith("# needs"):
            continue
        for line in block.splitlines():
            if SKIP_LINE in line or not line.strip() or line.lstrip().startswith("#"):
                continue
            commands.append(line)
    return commands


def test_readme_blocks_are_found():
    cmds = readme_commands((REPO / "README.md").read_text())
    assert "make repro" in " ".join(cmds) and any(c.startswith("source .venv/bin/activate") for c in cmds)
    assert not any(".venv/bin/dvc" in c for c in cmds), "README commands use the activated environment, not .venv/bin paths"


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
    params = tiny_params(TINY)
    params["subset"]["seeds"] = [1]
    (clone / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env_git = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    subprocess.run(["git", "commit", "-qam", "tiny params"], cwd=clone, check=True, env=env_git)
    _clone_env(clone)

    user_bin = tmp_path / "user-bin"  # a user's PATH: `python` is the system one, without the project's packages
    user_bin.mkdir()
    system_python = shutil.which("python3", path="/usr/local/bin:/usr/bin:/bin")
    (user_bin / "python").symlink_to(system_python)
    env = {k: v for k, v in env_git.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
    env["PATH"] = f"{user_bin}:/usr/local/bin:/usr/bin:/bin"
    env["NEGPROMPT_THREADS"] = "2"
    script = "set -e\n" + "\n".join(f"echo '$ {c.strip()}'\n{c}" for c in readme_commands((REPO / "README.md").read_text()))
    out = subprocess.run(["bash", "-c", script], cwd=clone, env=env, capture_output=True, text=True, timeout=1500)
    assert out.returncode == 0, f"a README command failed:\n{out.stdout[-4000:]}\n{out.stderr[-4000:]}"


@pytest.mark.slow
def test_a_stage_run_by_the_wrong_python_says_how_to_fix_it(tmp_path):
    """`python -m pipeline.<stage>` under an interpreter without torch: one line saying what to do."""
    system_python = shutil.which("python3", path="/usr/local/bin:/usr/bin:/bin")
    probe = subprocess.run([system_python, "-c", "import torch"], capture_output=True)
    if probe.returncode == 0:
        pytest.skip("the system python has torch")
    res = subprocess.run([system_python, "-m", "pipeline.subset"], cwd=REPO, capture_output=True, text=True,
                         env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)})
    assert res.returncode == 2 and "source .venv/bin/activate" in res.stderr and len(res.stderr.strip().splitlines()) == 1
