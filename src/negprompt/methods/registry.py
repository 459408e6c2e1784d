"""One registry of OOD methods: each method is one record (`MethodSpec`) and everything that lists methods (the
score table, the report's labels and leaderboard, grid.py) reads it. The built-in methods are records in
`negprompt.methods.builtin`, registered here by the same `register` a user's method goes through (`family.plugins`,
docs/add-a-method.md).

A plugin's method is `fn(img, ctx) -> scores`: L2-normalised image features img [N, d] (one batch: the whole test
set) and a `Context` (the text tower, the ID class names and their zero-shot features), returning one score per
image (higher = more ID). OpenOOD keeps one postprocessor per file behind one interface; this is that interface.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from negprompt import NegPromptError
from negprompt.methods.builtin import BUILT_IN, PUBLISHED_ONLY, Published

KINDS = ("zero-shot", "trained", "stream")  # stream: test-time, scored on the fixed stream (negprompt.methods.stream)
PLUGIN = "method:"  # score-table column prefix of a method with a `fn` (the built-ins' columns are their names)


@dataclass(frozen=True)
class Context:
    """What a method may use besides the image features."""

    model: torch.nn.Module  # the CLIP (text tower: negprompt.clip.prompts.encode_texts(model, tokenizer, texts))
    tokenizer: Callable
    id_names: list[str]
    zero_shot: torch.Tensor  # [C, d] ID prompts in score.zero_shot_template, L2-normalised
    logit_scale: float
    template: str


@dataclass(frozen=True)
class MethodSpec:
    name: str  # its score column and its key in metrics.json
    label: str  # what the report and the leaderboard show
    kind: str  # one of KINDS
    fn: Callable | None = None  # fn(img, ctx) -> scores; None: the score stage computes it (pipeline/score.py)
    params: str | None = None  # its params.yaml section (e.g. "family.csp"), None if it has no settings
    published: Published | None = None  # ImageNet-1K ViT-B/16 average over the four OOD sets
    cost: str = "—"  # seconds to score 10,000 cached features (a fixed record, docs/methods.md)
    prediction: str = ""  # the score-table column of its ID class prediction (ID top-1), "" if none
    headline: bool = False  # compared side by side: the DVC ROC plots (reports/plots/roc), the experiment grid
    local: bool = False  # needs patch features (features.local)

    @property
    def column(self) -> str:
        return self.name if self.fn is None else PLUGIN + self.name


@dataclass(frozen=True)
class PublishedOnly:
    """A method the leaderboard lists with its published figure only, and what it needs that we cannot run here."""

    label: str
    published: Published
    needs: str  # why it is not scored from cached features


_METHODS: dict[str, MethodSpec] = {}
_PUBLISHED_ONLY: dict[str, PublishedOnly] = {}
_BUILT_IN: list[str] = []  # set once by negprompt.methods.builtin: names a plugin may not take


def register(
    name: str,
    fn: Callable | None,
    label: str = "",
    *,
    kind: str = "zero-shot",
    params: str | None = None,
    published: Published | None = None,
    cost: str = "—",
    prediction: str = "",
    headline: bool = False,
    local: bool = False,
) -> MethodSpec:
    """Add a method; `name` becomes its score column and its key in metrics.json. With `fn` the score stage scores
    it (score_all), without it the stage's own code does. Registering a plugin's name again replaces it (a plugin
    file loaded twice); a built-in's name is taken."""
    if not re.fullmatch(r"[a-z][a-z0-9_]*", name or ""):
        raise NegPromptError(f"method name {name!r}: use lower-case letters, digits and _ (it names a column)")
    if name in _BUILT_IN:
        raise NegPromptError(f"method name {name!r}: taken by a built-in method ({', '.join(builtin_names())})")
    if fn is not None and not callable(fn):
        raise NegPromptError(f"method {name!r}: {fn!r} is not callable (expected fn(img, ctx) -> scores)")
    if kind not in KINDS:
        raise NegPromptError(f"method {name!r}: kind {kind!r} (expected one of {', '.join(KINDS)})")
    spec = MethodSpec(name, label or name, kind, fn, params, published, cost, prediction, headline, local)
    _METHODS[name] = spec
    return spec


def register_published(name: str, label: str, published: Published, needs: str) -> None:
    """List a method by its published figure only (it is not scored: `needs` says what it would take)."""
    _PUBLISHED_ONLY[name] = PublishedOnly(label, published, needs)


def published_only() -> dict[str, PublishedOnly]:
    return dict(_PUBLISHED_ONLY)


def methods(kind: str | None = None) -> dict[str, MethodSpec]:
    """Every registered method in registration order (built-ins first), or those of one kind."""
    return {n: m for n, m in _METHODS.items() if kind is None or m.kind == kind}


def registered() -> dict[str, MethodSpec]:
    """The methods with a scoring function (plugins): the ones `score_all` scores."""
    return {n: m for n, m in _METHODS.items() if m.fn is not None}


def builtin_names() -> list[str]:
    return list(_BUILT_IN)


def seal_builtins() -> None:
    """Called once, after the built-in registrations: from here on their names are taken."""
    _BUILT_IN[:] = list(_METHODS)


def family() -> list[str]:
    """The methods `family.methods` chooses from: those with a `family.<name>` params section."""
    return [n for n, m in _METHODS.items() if m.params == f"family.{n}"]


def label(name: str) -> str:
    """The method's label, or its name when nothing registered it."""
    return _METHODS[name].label if name in _METHODS else name


def labels() -> dict[str, str]:
    return {n: m.label for n, m in _METHODS.items()}


def unregister(name: str) -> None:
    if name not in _BUILT_IN:
        _METHODS.pop(name, None)


def load_plugins(paths, root: Path = Path(".")) -> list[str]:
    """Import each Python file of `family.plugins` (its `register(...)` calls run); returns the names it added."""
    before = set(_METHODS)
    for relative in paths:
        path = root / relative
        if not path.is_file():
            raise NegPromptError(f"family.plugins: {path} not found (a Python file that calls registry.register)")
        spec = importlib.util.spec_from_file_location(f"negprompt_plugin_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    return [n for n in _METHODS if n not in before]


def score_all(img: torch.Tensor, ctx: Context) -> dict[str, torch.Tensor]:
    """Every plugin method's scores [N], checked for shape and finiteness."""
    out = {}
    for name, m in registered().items():
        with torch.no_grad():
            s = torch.as_tensor(m.fn(img, ctx)).float().reshape(-1).cpu()
        if len(s) != len(img) or not torch.isfinite(s).all():
            raise NegPromptError(f"method {name!r}: returned {len(s)} scores for {len(img)} images or a non-finite one")
        out[name] = s
    return out


for _record in BUILT_IN:  # the built-in methods, registered as a plugin is (negprompt.methods.builtin holds them)
    register(**{"fn": None, **_record})
for _record in PUBLISHED_ONLY:
    register_published(**_record)
seal_builtins()
