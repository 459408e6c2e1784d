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
    # amp: auto is resolved on load (on CUDA only): compare it as declared, the rest as loaded
    from negprompt.config import OptimParams

    defaults |= {k: OptimParams.model_fields["amp"].default for k in ("pos.amp", "neg.amp")}
    differ = {k: (shipped[k], defaults[k]) for k in shipped if shipped[k] != defaults[k]}
    assert not differ, f"params.yaml vs config.py defaults: {differ}"


def test_the_family_sections_of_params_yaml_are_the_pydantic_defaults():
    """One place per default: each method's section (family.csp, .adaneg, .tanl, .interneg, .tins) is mirrored."""
    shipped = yaml.safe_load((REPO / "params.yaml").read_text())["family"]
    defaults = Params().family.model_dump()
    for method in ("csp", "adaneg", "tanl", "interneg", "tins"):
        assert isinstance(shipped[method], dict) and shipped[method] == defaults[method], method
    assert shipped == defaults


def test_an_old_flat_family_key_names_the_new_one():
    with pytest.raises(NegPromptError, match=r"^params.yaml: family.adaneg_thres is now family.adaneg.thres"):
        validate({"family": {"adaneg_thres": 0.3}})
    with pytest.raises(NegPromptError, match=r"family.csp_adjectives is now family.csp.adjectives"):
        validate({"family": {"csp_adjectives": "captions"}})
    assert validate({"family": {"adaneg": {"thres": 0.3}}}).family.adaneg.thres == 0.3


def test_a_changed_default_is_caught():
    shipped = yaml.safe_load((REPO / "params.yaml").read_text())
    shipped["pos"]["epochs"] += 1
    assert validate(shipped) != Params()


def test_unknown_key_names_its_path():
    with pytest.raises(NegPromptError, match=r"neg\.num_promts"):
        validate({"neg": {"num_promts": 3}})
