import open_clip
import pytest
import torch

from negprompt.backbone import TINY_MODEL


@pytest.fixture(scope="session")
def tiny_clip():
    """The mini-world architecture at random init, and its tokenizer (no download)."""
    torch.manual_seed(0)
    model = open_clip.create_model(TINY_MODEL).eval()
    return model, open_clip.get_tokenizer(TINY_MODEL)
