"""One registry of scoring methods on cached features: register a function once and the score stage writes its
column, the report and metrics.json show it (docs/add-a-method.md).

A method is `fn(img, ctx) -> scores`: L2-normalised image features img [N, d] (one batch: the whole test set)
and a `Context` (the text tower, the ID class names and their zero-shot features), returning one score per image
(higher = more ID). OpenOOD keeps one postprocessor per file behind one interface; this is that interface.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from negprompt import NegPromptError

BUILT_IN = (
    "mcm",
    "msp",
    "maxlogit",
    "energy",
    "neglabel",
    "csp",
    "adaneg",
    "tanl",
    "glmcm",
    "coop",
    "locoop",
    "negprompt",
)
FAMILY = ("csp", "adaneg", "tanl")  # issue 38's methods, chosen by family.methods
STREAM = ("adaneg", "tanl")  # test-time: scored on the fixed stream (negprompt.methods.stream)


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
class Method:
    name: str
    fn: Callable[[torch.Tensor, Context], torch.Tensor]
    label: str


_METHODS: dict[str, Method] = {}


def register(name: str, fn: Callable[[torch.Tensor, Context], torch.Tensor], label: str = "") -> None:
    """Add a scoring method; `name` becomes its score column and its key in metrics.json."""
    if not re.fullmatch(r"[a-z][a-z0-9_]*", name or ""):
        raise NegPromptError(f"method name {name!r}: use lower-case letters, digits and _ (it names a column)")
    if name in BUILT_IN:
        raise NegPromptError(f"method name {name!r}: taken by a built-in method ({', '.join(BUILT_IN)})")
    if not callable(fn):
        raise NegPromptError(f"method {name!r}: {fn!r} is not callable (expected fn(img, ctx) -> scores)")
    _METHODS[name] = Method(name, fn, label or name)


def registered() -> dict[str, Method]:
    return dict(_METHODS)


def unregister(name: str) -> None:
    _METHODS.pop(name, None)


def check_family(names) -> list[str]:
    """family.methods: a subset of CSP, AdaNeg, TANL; an unknown name is an error naming the parameter."""
    names = list(names)
    unknown = [n for n in names if n not in FAMILY]
    if unknown:
        raise NegPromptError(f"family.methods: unknown method {unknown[0]!r} (known: {', '.join(FAMILY)})")
    return names


def load_plugins(paths, root: Path = Path(".")) -> list[str]:
    """Import each Python file of `family.plugins` (its `register(...)` calls run); returns the names it added."""
    before = set(_METHODS)
    for p in paths:
        path = root / p
        if not path.is_file():
            raise NegPromptError(f"family.plugins: {path} not found (a Python file that calls registry.register)")
        spec = importlib.util.spec_from_file_location(f"negprompt_plugin_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    return [n for n in _METHODS if n not in before]


def score_all(img: torch.Tensor, ctx: Context) -> dict[str, torch.Tensor]:
    """Every registered method's scores [N], checked for shape and finiteness."""
    out = {}
    for name, m in _METHODS.items():
        with torch.no_grad():
            s = torch.as_tensor(m.fn(img, ctx)).float().reshape(-1).cpu()
        if len(s) != len(img) or not torch.isfinite(s).all():
            raise NegPromptError(f"method {name!r}: returned {len(s)} scores for {len(img)} images or a non-finite one")
        out[name] = s
    return out
