"""Every stage reruns when code it runs changes: each project file a stage's command imports
(transitively, function-level imports included) is among the stage's `deps` in dvc.yaml."""

import ast
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
ROOTS = {"negprompt": REPO / "src", "negprompt_standin": REPO / "src", "pipeline": REPO}


def module_file(name: str) -> Path | None:
    top = name.split(".")[0]
    if top not in ROOTS:
        return None
    base = ROOTS[top].joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def project_imports(path: Path) -> set[str]:
    """Project modules imported anywhere in one file (`from negprompt import x` may name module x)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names |= {f"{node.module}.{a.name}" for a in node.names}
    return {n for n in names if module_file(n)}


def with_packages(name: str) -> list[str]:
    """A module and the packages Python runs first to import it (pipeline.x runs pipeline/__init__.py)."""
    parts = name.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def closure(module: str) -> set[Path]:
    """The project files `python -m module` runs: the module, its packages, what they import, and so on."""
    todo, seen = with_packages(module), set()
    while todo:
        path = module_file(todo.pop())
        if path in seen:
            continue
        seen.add(path)
        todo += [m for name in project_imports(path) for m in with_packages(name)]
    return {p.relative_to(REPO) for p in seen if p.name != "__init__.py" or not docstring_only(p)}


def docstring_only(path: Path) -> bool:
    """A package's `__init__.py` holding nothing but its docstring runs no code: editing it changes no result."""
    body = ast.parse(path.read_text()).body
    return all(isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant) for n in body)


def covered(path: Path, deps: list[str]) -> bool:
    return any(path == Path(d) or Path(d) in path.parents for d in deps)


def missing_deps(dvc_yaml: dict) -> dict[str, list[str]]:
    out = {}
    for name, stage in dvc_yaml["stages"].items():
        module = stage["cmd"].split("python -m ", 1)[1].split()[0]
        miss = sorted(str(p) for p in closure(module) if not covered(p, stage["deps"]))
        if miss:
            out[name] = miss
    return out


STAGES = yaml.safe_load((REPO / "dvc.yaml").read_text())


def test_every_stage_depends_on_the_code_it_imports():
    assert missing_deps(STAGES) == {}


@pytest.mark.parametrize("stage", list(STAGES["stages"]))
def test_the_check_fails_when_an_import_is_dropped_from_deps(stage):
    module = STAGES["stages"][stage]["cmd"].split("python -m ", 1)[1].split()[0]
    dropped = str(sorted(p for p in closure(module) if p.parts[0] == "src")[0])
    broken = yaml.safe_load((REPO / "dvc.yaml").read_text())
    broken["stages"][stage]["deps"] = [d for d in broken["stages"][stage]["deps"] if d != dropped]
    if dropped not in STAGES["stages"][stage]["deps"]:  # covered by a folder: drop the folder instead
        broken["stages"][stage]["deps"] = [
            d for d in broken["stages"][stage]["deps"] if not covered(Path(dropped), [d])
        ]
    assert dropped in missing_deps(broken).get(stage, [])
