"""The stand-in CLIP's pretraining captions: every style's templates per concept, and web-like
(image, caption) samples whose captions are as noisy as the web's."""

from __future__ import annotations

import numpy as np

from negprompt.benchmarks.openmoji import STYLE_NAMES, STYLE_P, STYLES, Concept
from negprompt_standin.openmoji_render import render


def style_captions(concepts: tuple[Concept, ...]) -> list[list[list[str]]]:
    """Every caption of every concept, per style: [concept][style index] -> that style's templates filled in."""
    return [[[t.format(c.caption_name) for t in STYLES[s][1]] for s in STYLE_NAMES] for c in concepts]


GENERIC_CAPTIONS = ("a photo.", "an image.", "a picture of something.", "look at this!", "my photo.")


def web_sample(
    concept: Concept,
    rng: np.random.Generator,
    clutter_from: tuple[Concept, ...],
    noise: float,
    size: int = 32,
    font: str | None = None,
    scenes: tuple[Concept, ...] = (),
    scene: float = 0.0,
) -> tuple[np.ndarray, str]:
    """One freshly rendered image of `concept` and a web-like caption. With probability `noise` the
    image holds a second emoji and the caption names that one instead (captions name what the
    author cared about); with probability noise / 2 the caption names nothing the image shows;
    otherwise it names the concept in the image's style. Textures are never the secondary object.
    With probability `scene` an object stands small in front of a scene from `scenes` (a place or
    a pattern) and the caption names both (half), the scene alone or the object alone (a quarter
    each): how much of an image is the named object then varies, as in web photos."""
    style = STYLE_NAMES[rng.choice(len(STYLE_NAMES), p=STYLE_P)]
    u = rng.random()
    if scene and not concept.is_texture and rng.random() < scene:
        where = scenes[int(rng.integers(len(scenes)))]
        image = render(concept, rng, size, style, font=font, scene=where)
        template, v = STYLES[style][1][int(rng.integers(len(STYLES[style][1])))], rng.random()
        both = f"{concept.caption_name} in front of a {where.caption_name}"
        return image, template.format(both if v < 0.5 else where.caption_name if v < 0.75 else concept.caption_name)
    if u < noise and not concept.is_texture:
        other = clutter_from[int(rng.integers(len(clutter_from)))]
        image = render(concept, rng, size, style, clutter=1.0, others=(other,), font=font)
        named = concept if other == concept else other
    else:
        image = render(concept, rng, size, style, others=clutter_from, font=font)
        named = None if u < 1.5 * noise else concept
    if named is None:
        return image, GENERIC_CAPTIONS[int(rng.integers(len(GENERIC_CAPTIONS)))]
    templates = STYLES[style][1]
    return image, templates[int(rng.integers(len(templates)))].format(named.caption_name)


def web_batch(
    concepts: tuple[Concept, ...],
    rng: np.random.Generator,
    batch_size: int,
    clutter_from: tuple[Concept, ...],
    noise: float,
    size: int = 32,
    font: str | None = None,
    scenes: tuple[Concept, ...] = (),
    scene: float = 0.0,
) -> tuple[np.ndarray, list[str]]:
    """`batch_size` distinct concepts, one `web_sample` each: (uint8 images [B, size, size, 3], B captions)."""
    pairs = [
        web_sample(concepts[i], rng, clutter_from, noise, size, font, scenes, scene)
        for i in rng.choice(len(concepts), batch_size, replace=False)
    ]
    return np.stack([im for im, _ in pairs]), [c for _, c in pairs]
