"""Generic negatives: MCM's softmax with five prompts that name no class competing with the ID prompts."""

import torch

from negprompt.clip.prompts import encode_texts
from negprompt.methods import registry

GENERIC = ("a photo.", "an image.", "a picture of something.", "a blurry photo.", "a pattern.")
_text = {}  # the generic prompts' features, encoded once per backbone


def generic_negatives(img: torch.Tensor, ctx: registry.Context) -> torch.Tensor:
    """Share of the softmax mass on the ID prompts (CLIP's logit scale) when generic prompts compete with them.

    img [N, d] and ctx.zero_shot [C, d] are L2-normalised; returns [N], higher = more ID.
    """
    key = id(ctx.model)
    if key not in _text:
        with torch.no_grad():
            _text[key] = encode_texts(ctx.model, ctx.tokenizer, list(GENERIC)).cpu()
    labels = torch.cat([ctx.zero_shot, _text[key]])  # [C + 5, d]
    probs = torch.softmax(ctx.logit_scale * img @ labels.T, dim=1)
    return probs[:, : len(ctx.id_names)].sum(1)


registry.register("generic_neg", generic_negatives, label="Generic negatives")
