"""Pieces of the stand-in CLIP's pretraining recipe that only `make pretrain` uses (no DVC stage imports this
module, so a new recipe option does not rerun the pipeline, which only loads the shipped weights)."""

from __future__ import annotations

import functools

import numpy as np
from torch.utils.data import DataLoader, Dataset

from negprompt import NegPromptError
from negprompt.benchmarks.openmoji import STYLE_NAMES, STYLE_P, Concept, World
from negprompt_standin.captions import web_batch
from negprompt_standin.openmoji_render import render


def check_vocabulary_share(share: float) -> None:
    if not 0 < share < 1:
        raise NegPromptError(f"--vocabulary-share {share}: expected a share strictly between 0 and 1")


def _shared_batch(
    vocab: tuple[Concept, ...], known: tuple[Concept, ...], k: int, batch_size: int, rng: np.random.Generator, **web
):
    (a, ca), (b, cb) = web_batch(vocab, rng, k, **web), web_batch(known, rng, batch_size - k, **web)
    return np.concatenate([a, b]), ca + cb


def vocabulary_share_batches(captioned: tuple[Concept, ...], share: float, batch_size: int, **web):
    """A phase-2 batch sampler that gives the pretraining-only vocabulary concepts `share` of each batch and the
    rest to the concepts the benchmark's world captions, so adding 1,000 new names does not dilute the ones the
    world knew (uniform draws give the vocabulary its head count). `web`: `captions.web_batch`'s other options."""
    check_vocabulary_share(share)
    vocab = tuple(c for c in captioned if c.kind == "vocabulary")
    known = tuple(c for c in captioned if c.kind != "vocabulary")
    if not vocab or not known:
        raise NegPromptError(f"--vocabulary-share {share}: the concepts need both vocabulary and benchmark ones")
    return functools.partial(_shared_batch, vocab, known, int(round(share * batch_size)), batch_size, **web)


# --- rendering in worker processes ------------------------------------------------------------------------
# Rendering (Pillow, one core) is what a pretraining step waits on once training runs on a GPU. Each item below
# draws from its own generator, seeded by (seed, index), so the stream is the same for any number of workers.


class _Seeded(Dataset):
    def __init__(self, draw, n: int, seed: int):
        self.draw, self.n, self.seed = draw, n, seed

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        return self.draw(i, np.random.default_rng([self.seed, i]))


def _as_is(item):
    return item


def seeded_stream(draw, n: int, seed: int, workers: int = 0):
    """`draw(i, rng)` for i = 0..n-1 in order, each with rng = default_rng([seed, i]), computed by `workers` processes
    (torch's DataLoader; 0 = in this process) a few items ahead of the consumer."""
    return DataLoader(
        _Seeded(draw, n, seed),
        batch_size=None,
        num_workers=workers,
        collate_fn=_as_is,
        prefetch_factor=8 if workers else None,
    )


def _concept_renders(
    concepts: tuple[Concept, ...], per_concept: int, size: int, font: str | None, i: int, rng: np.random.Generator
):
    styles = rng.choice(len(STYLE_NAMES), size=per_concept, p=STYLE_P)
    return np.stack(
        [render(concepts[i], rng, size, STYLE_NAMES[s], others=concepts, font=font) for s in styles]
    ), styles


def render_pool(
    world: World, per_concept: int, seed: int, size: int = 32, font: str | None = None, workers: int = 0, progress=None
) -> tuple[np.ndarray, np.ndarray]:
    """Phase 1's pool: `per_concept` renders of every captioned concept, images uint8 [C, K, size, size, 3] and their
    style indices [C, K]; concept i is drawn from default_rng([seed, i]), by `workers` processes."""
    concepts = world.all_concepts
    images = np.zeros((len(concepts), per_concept, size, size, 3), np.uint8)
    styles = np.zeros((len(concepts), per_concept), np.int64)
    stream = seeded_stream(
        functools.partial(_concept_renders, concepts, per_concept, size, font), len(concepts), seed, workers
    )
    for i, (im, st) in enumerate(progress(stream) if progress else stream):
        images[i], styles[i] = im, st
    return images, styles


def _step_batch(sample_batch, step: int, rng: np.random.Generator):
    return sample_batch(rng)


def step_batches(sample_batch, steps: int, seed: int, workers: int = 0):
    """Phase 2's stream for `contrastive.continue_pretraining`: batch `step` is
    `sample_batch(default_rng([seed, step]))`, rendered by `workers` processes ahead of training. The returned
    callable takes (and ignores) the trainer's rng, which then draws only the flips."""
    batches = iter(seeded_stream(functools.partial(_step_batch, sample_batch), steps, seed, workers))
    return lambda rng: next(batches)
