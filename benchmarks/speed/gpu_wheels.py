"""The wheels gpu_check.sh installs on a GPU machine without network: `make gpu-wheels`.

That machine's Python 3.12 already has torch and the scientific stack (PROVIDED) but not open_clip, pydantic,
dvc or dvclive (the training stages log curves with DVCLive, which imports dvc). The set is the dependency closure
of ROOTS, read from this environment's installed metadata with its pinned versions, less the closure of PROVIDED,
downloaded for CPython 3.12 manylinux x86_64 (binary wheels only), plus the project's own wheel; its total must fit
the 64 MiB that travel with the working tree.
"""

from __future__ import annotations

import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import typer

REPO = Path(__file__).resolve().parents[2]
# what the GPU machine's Python has (the device tool's description), by distribution name
PROVIDED = (
    "torch torchvision numpy pandas pyarrow scikit-learn scipy safetensors typer matplotlib tqdm pyyaml pillow "
    "regex timm huggingface_hub"
).split()
# what the stages import there that it lacks (nltk: NegLabel's WordNet corpus, when --wordnet-dir is given)
ROOTS = "open_clip_torch ftfy pydantic dvc dvclive nltk".split()
# what it is known to lack, with all they need, even where this environment's newer PROVIDED require them
# (typer 0.2x here requires pydantic; the machine's does not)
ABSENT = "open_clip_torch ftfy wcwidth pydantic dvc dvclive".split()
# pure-Python distributions published as source only (hydra-core pins antlr 4.9.*): built into wheels here
SDIST_ONLY = {"antlr4-python3-runtime"}
LIMIT_MIB = 64


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirements(dist: str) -> list[str]:
    """The distributions `dist` needs unconditionally (extras and other platforms' markers dropped)."""
    out = []
    for req in metadata.requires(dist) or []:
        name, _, marker = req.partition(";")
        if "extra ==" in marker or "extra==" in marker:
            continue
        if marker.strip():
            from packaging.markers import Marker

            env = {"python_version": "3.12", "python_full_version": "3.12.0", "sys_platform": "linux"}
            env |= {"platform_system": "Linux", "platform_machine": "x86_64", "implementation_name": "cpython"}
            if not Marker(marker.strip()).evaluate(env):
                continue
        out.append(canonical(re.split(r"[\s\[<>=!~(]", name.strip(), maxsplit=1)[0]))
    return out


def closure(roots: list[str], stop: set[str] = frozenset()) -> set[str]:
    """Every installed distribution reachable from `roots`, not through `stop` (a missing one is an error)."""
    seen, todo = set(), [canonical(r) for r in roots]
    while todo:
        name = todo.pop()
        if name in seen or name in stop:
            continue
        try:
            metadata.version(name)
        except metadata.PackageNotFoundError:
            raise SystemExit(f"error: {name} is not installed in {sys.prefix} (needed for the wheel set)") from None
        seen.add(name)
        todo += requirements(name)
    return seen


def wheel_set() -> dict[str, str]:
    """name -> pinned version: the roots' closure less what the GPU machine provides."""
    provided = {canonical(p) for p in PROVIDED}
    have = (closure(PROVIDED) - closure(ABSENT, stop=provided)) | provided
    need = closure(ROOTS, stop=have)
    return {n: metadata.version(n) for n in sorted(need)}


def main(
    dest: Path = typer.Option(REPO / "benchmarks/speed/wheels", help="the wheel folder (git-ignored)"),
    python_version: str = typer.Option("3.12", help="the GPU machine's Python"),
    dry_run: bool = typer.Option(False, help="print the pinned set only"),
):
    """Download the wheel set for the GPU machine and build the project's wheel into DEST."""
    pins = wheel_set()
    print(f"{len(pins)} distributions: " + " ".join(f"{n}=={v}" for n, v in pins.items()))
    if dry_run:
        return
    dest.mkdir(parents=True, exist_ok=True)
    for old in [*dest.glob("*.whl"), dest / "requirements.txt"]:
        old.unlink(missing_ok=True)
    platform = ["--platform", "manylinux2014_x86_64", "--platform", "manylinux_2_17_x86_64"]
    platform += ["--platform", "manylinux_2_28_x86_64", "--platform", "any"]
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "-d", str(dest)]
    cmd += ["--python-version", python_version, "--implementation", "cp", *platform]
    subprocess.run(cmd + [f"{n}=={v}" for n, v in pins.items() if n not in SDIST_ONLY], check=True)
    build = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dest)]
    subprocess.run(build + [f"{n}=={v}" for n, v in pins.items() if n in SDIST_ONLY] + [str(REPO)], check=True)
    have = {canonical(f.name.split("-")[0]) for f in dest.glob("*.whl")}
    if missing := sorted(set(pins) - have):
        raise SystemExit(f"error: no wheel in {dest} for {', '.join(missing)}")
    # what gpu_check.sh asks pip for: the roots only, so a dependency the machine already has at a version
    # that fits stays as it is (its typer may pin click lower than ours), and the set's wheel is the fallback
    (dest / "requirements.txt").write_text("".join(f"{n}=={pins[canonical(n)]}\n" for n in ROOTS))
    total = sum(f.stat().st_size for f in dest.glob("*.whl")) / 2**20
    print(f"{len(list(dest.glob('*.whl')))} wheels, {total:.1f} MiB in {dest}")
    if total > LIMIT_MIB:
        raise SystemExit(f"error: the wheel set is {total:.1f} MiB, over the {LIMIT_MIB} MiB that travel with the tree")


if __name__ == "__main__":
    typer.run(main)
