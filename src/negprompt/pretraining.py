"""Pieces of the stand-in CLIP's pretraining recipe that only `make pretrain` uses (no DVC stage imports this
module, so a new recipe option does not rerun the pipeline, which only loads the shipped weights)."""
from __future__ import annotations

import numpy as np

from negprompt import NegPromptError
from negprompt.openmoji import Concept, web_batch


def check_vocabulary_share(share: float) -> None:
    if not 0 < share < 1:
        raise NegPromptError(f"--vocabulary-share {share}: expected a share strictly between 0 and 1")


def vocabulary_share_batches(captioned: tuple[Concept, ...], share: float, batch_size: int, **web):
    """A phase-2 batch sampler that gives the pretraining-only vocabulary concepts `share` of each batch and the
    rest to the concepts the benchmark's world captions, so adding 1,000 new names does not dilute the ones the
    world knew (uniform draws give the vocabulary its head count). `web`: `openmoji.web_batch`'s other options."""
    check_vocabulary_share(share)
    vocab = tuple(c for c in captioned if c.kind == "vocabulary")
    known = tuple(c for c in captioned if c.kind != "vocabulary")
    if not vocab or not known:
        raise NegPromptError(f"--vocabulary-share {share}: the concepts need both vocabulary and benchmark ones")
    k = int(round(share * batch_size))

    def sample_batch(rng: np.random.Generator) -> tuple[np.ndarray, list[str]]:
        (a, ca), (b, cb) = web_batch(vocab, rng, k, **web), web_batch(known, rng, batch_size - k, **web)
        return np.concatenate([a, b]), ca + cb
    return sample_batch
