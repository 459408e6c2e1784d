"""params.yaml and the config's defaults are one source: they must agree key for key."""

from pathlib import Path

import pytest
import yaml

from negprompt import NegPromptError
from negprompt.config import Params, validate

REPO = Path(__file__).resolve().parents[1]


def flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        out |= flatten(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v}
    return out


def test_config_defaults_are_params_yaml():
    shipped = flatten(yaml.safe_load((REPO / "params.yaml").read_text()))
    defaults = flatten(Params().model_dump())
    assert set(shipped) == set(defaults), (
        f"keys only in params.yaml: {set(shipped) - set(defaults)}, only in config.py: {set(defaults) - set(shipped)}"
    )
    differ = {k: (shipped[k], defaults[k]) for k in shipped if shipped[k] != defaults[k]}
    assert not differ, f"params.yaml vs config.py defaults: {differ}"


def test_a_changed_default_is_caught():
    shipped = yaml.safe_load((REPO / "params.yaml").read_text())
    shipped["pos"]["epochs"] += 1
    assert validate(shipped) != Params()


def test_unknown_key_names_its_path():
    with pytest.raises(NegPromptError, match=r"neg\.num_promts"):
        validate({"neg": {"num_promts": 3}})
