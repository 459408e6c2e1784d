"""The mini-world: a procedurally generated benchmark of coloured shapes and textures.

Every concept has a readable name ("crimson star", "teal stripes") so a text encoder can learn it.
ID classes are colour x shape compositions; the OOD sets are graded:
  near    = unseen colour-shape combinations of seen colours and seen shapes (hardest)
  far     = shapes no ID class has, in colours no ID class has
  empty   = scenes with no object: background gradient and noise only (never captioned: with an
            "empty background" caption in pretraining its MCM AUROC fell from 0.87 to 0.47)
Textures (stripes, checks, dots) are in the world and in pretraining but not an OOD set: zero-shot
MCM ranks them *above* ID images (AUROC 0.29-0.56 over several designs, while MaxLogit separates
them perfectly): their features are anti-aligned with every ID prompt (mean cosine -0.18 vs +0.06
for ID images), so MCM's tau = 1 softmax is peakier for them than for ID images.
The pretraining pool for the tiny CLIP covers every concept, ID and OOD alike, as web-scale
CLIP has seen iNaturalist and SUN concepts. Everything is a pure function of a seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

COLOURS: dict[str, tuple[int, int, int]] = {
    "crimson": (215, 20, 50),
    "orange": (255, 130, 0),
    "gold": (240, 200, 10),
    "lime": (150, 235, 30),
    "green": (20, 120, 40),
    "teal": (0, 125, 125),
    "cyan": (40, 215, 235),
    "blue": (30, 60, 220),
    "violet": (135, 60, 215),
    "magenta": (225, 0, 190),
    "pink": (255, 155, 195),
    "brown": (125, 75, 25),
}
# Colours no ID class has: the far and texture sets use only these, so they share no attribute
# with ID (far = unseen shapes, texture = no shape at all), as iNaturalist and DTD share little with
# ImageNet. With seen colours, zero-shot MCM ranks a one-attribute match (colour only) *above* ID
# images, whose similarity mass spreads over the classes sharing their colour or their shape.
OOD_COLOURS: dict[str, tuple[int, int, int]] = {
    "white": (245, 245, 240),
    "black": (15, 15, 20),
    "olive": (110, 115, 0),
    "navy": (10, 15, 95),
}

ID_SHAPES = ("circle", "square", "triangle", "star", "cross", "heart", "bar", "ring")
FAR_SHAPES = ("crescent", "arrow")
PATTERNS = ("stripes", "checks", "dots")
OOD_SETS = ("near", "far", "empty")
EMPTY = "empty"
SUPERSAMPLE = 2


@dataclass(frozen=True)
class Concept:
    """One nameable thing in the world: a coloured shape or a coloured pattern."""

    colour: str
    form: str  # a shape or a pattern name

    @property
    def name(self) -> str:
        return f"{self.colour} {self.form}"

    @property
    def id(self) -> str:
        return f"{self.colour}_{self.form}"

    @property
    def is_texture(self) -> bool:
        return self.form in PATTERNS

    @property
    def is_empty(self) -> bool:
        return self.colour == EMPTY


@dataclass(frozen=True)
class World:
    id_classes: tuple[Concept, ...]  # in class-index order
    ood: dict[str, tuple[Concept, ...]]
    pretrain_only: tuple[Concept, ...] = ()  # in the pretraining pool, in no test set

    @property
    def all_concepts(self) -> tuple[Concept, ...]:
        """Every captioned concept: the pretraining pool and the zero-shot quality check use these.
        The empty scene has no caption (nothing to name); its parts, backgrounds, are in every image."""
        return self.id_classes + tuple(c for s in OOD_SETS for c in self.ood[s] if not c.is_empty) + self.pretrain_only


def build_world(seed: int) -> World:
    """Split colour x shape combinations into ID classes and near-OOD held-out pairs.

    A pair (colour i, shape j) is held out when (i - j) % 4 == 0, so every shape keeps 9 of its
    12 colours and every colour 6 of its 8 shapes in ID: the near set is made only of seen parts.
    The ID class order is a seeded permutation, so "the first 10%" (open vocabulary) is a mix.
    """
    colours = list(COLOURS)
    id_classes, near = [], []
    for j, shape in enumerate(ID_SHAPES):
        for i, colour in enumerate(colours):
            (near if (i - j) % 4 == 0 else id_classes).append(Concept(colour, shape))
    order = np.random.default_rng(seed).permutation(len(id_classes))
    far = [Concept(c, s) for s in FAR_SHAPES for c in OOD_COLOURS]
    texture = tuple(Concept(c, p) for p in PATTERNS for c in {**COLOURS, **OOD_COLOURS})
    ood = {"near": tuple(near), "far": tuple(far), "empty": (Concept(EMPTY, "background"),)}
    return World(tuple(id_classes[i] for i in order), ood, texture)


def _polygon(n: int, radius: float = 1.0, phase: float = -math.pi / 2) -> list[tuple[float, float]]:
    return [
        (radius * math.cos(phase + 2 * math.pi * i / n), radius * math.sin(phase + 2 * math.pi * i / n))
        for i in range(n)
    ]


def _star() -> list[tuple[float, float]]:
    outer, inner = _polygon(5), _polygon(5, 0.42, -math.pi / 2 + math.pi / 5)
    return [p for pair in zip(outer, inner) for p in pair]


def _heart(n: int = 40) -> list[tuple[float, float]]:
    t = np.linspace(0, 2 * math.pi, n, endpoint=False)
    x, y = 16 * np.sin(t) ** 3, -(13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t))
    return list(zip(x / 17, (y + 2.5) / 17))


_W = 0.34  # half-width of the cross arms
SHAPE_POLYGONS = {
    "square": _polygon(4, 1.0, math.pi / 4),
    "triangle": _polygon(3, 1.05, -math.pi / 2),
    "star": _star(),
    "cross": [
        (-_W, -1),
        (_W, -1),
        (_W, -_W),
        (1, -_W),
        (1, _W),
        (_W, _W),
        (_W, 1),
        (-_W, 1),
        (-_W, _W),
        (-1, _W),
        (-1, -_W),
        (-_W, -_W),
    ],
    "heart": _heart(),
    "bar": [(-1, -0.3), (1, -0.3), (1, 0.3), (-1, 0.3)],
    "arrow": [(-1, -0.28), (0.15, -0.28), (0.15, -0.7), (1, 0), (0.15, 0.7), (0.15, 0.28), (-1, 0.28)],
}


def _jitter(rgb: tuple[int, int, int], rng: np.random.Generator, amount: int = 18) -> tuple[int, ...]:
    return tuple(int(np.clip(v + rng.integers(-amount, amount + 1), 0, 255)) for v in rgb)


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A low-saturation gradient: never a class colour, always a distractor."""
    a, b = rng.uniform(30, 225, size=2)
    tint = rng.uniform(-12, 12, size=3)
    t = np.linspace(0, 1, size)
    angle = rng.uniform(0, 2 * math.pi)
    ramp = np.cos(angle) * t[None, :] + np.sin(angle) * t[:, None]
    ramp = (ramp - ramp.min()) / max(np.ptp(ramp), 1e-6)
    img = (a + (b - a) * ramp)[..., None] + tint
    return np.clip(img, 0, 255)


def _draw_shape(img: Image.Image, shape: str, fill: tuple, bg: tuple, rng: np.random.Generator) -> None:
    s = img.size[0]
    radius = s * rng.uniform(0.24, 0.42)
    cx, cy = s / 2 + rng.uniform(-0.12, 0.12, size=2) * s
    rot = rng.uniform(0, 2 * math.pi)
    draw = ImageDraw.Draw(img)

    def place(points, r=radius, x=cx, y=cy):
        c, sn = math.cos(rot), math.sin(rot)
        return [(x + r * (px * c - py * sn), y + r * (px * sn + py * c)) for px, py in points]

    def disc(x, y, r, colour):
        draw.ellipse([x - r, y - r, x + r, y + r], fill=colour)

    if shape == "circle":
        disc(cx, cy, radius * 0.9, fill)
    elif shape == "ring":
        disc(cx, cy, radius * 0.95, fill)
        disc(cx, cy, radius * 0.55, bg)
    elif shape == "crescent":
        disc(cx, cy, radius * 0.95, fill)
        dx, dy = place([(0.45, -0.2)], r=radius, x=0, y=0)[0]
        disc(cx + dx, cy + dy, radius * 0.8, bg)
    else:
        draw.polygon(place(SHAPE_POLYGONS[shape]), fill=fill)


def _pattern(pattern: str, fill: np.ndarray, bg: np.ndarray, rng: np.random.Generator, size: int) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    angle = rng.uniform(0, math.pi)
    u = xx * math.cos(angle) + yy * math.sin(angle)
    v = -xx * math.sin(angle) + yy * math.cos(angle)
    period = size * rng.uniform(0.18, 0.32)
    phase = rng.uniform(0, period, size=2)
    if pattern == "stripes":
        mask = ((u + phase[0]) % period) < period / 2
    elif pattern == "checks":
        mask = (((u + phase[0]) // (period / 1.4)) + ((v + phase[1]) // (period / 1.4))) % 2 == 0
    else:  # dots
        du = ((u + phase[0]) % period) - period / 2
        dv = ((v + phase[1]) % period) - period / 2
        mask = du**2 + dv**2 < (period * 0.28) ** 2
    return np.where(mask[..., None], fill, bg)


def render(concept: Concept, rng: np.random.Generator, size: int = 32) -> np.ndarray:
    """One image of `concept` as uint8 [size, size, 3], with random size, position, rotation,
    background, colour jitter and pixel noise. Drawn at 2x and downsampled (anti-aliasing)."""
    big = size * SUPERSAMPLE
    bg = _background(rng, big)
    fill = np.array(_jitter({**COLOURS, **OOD_COLOURS}.get(concept.colour, (0, 0, 0)), rng), dtype=np.float64)
    if concept.is_empty:
        arr = bg
    elif concept.is_texture:
        arr = _pattern(concept.form, fill, bg, rng, big)
    else:
        img = Image.fromarray(bg.astype(np.uint8))
        bg_mean = tuple(int(v) for v in bg.reshape(-1, 3).mean(0))
        _draw_shape(img, concept.form, tuple(int(v) for v in fill), bg_mean, rng)
        arr = np.asarray(img, dtype=np.float64)
    small = np.asarray(
        Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).resize((size, size), Image.BOX), dtype=np.float64
    )
    small += rng.normal(0, rng.uniform(2, 10), size=small.shape)
    return np.clip(small, 0, 255).astype(np.uint8)


CAPTION_TEMPLATES = (
    "a photo of a {}.",
    "a {}.",
    "a picture of a {}.",
    "an image of the {}.",
    "a small {}.",
    "a drawing of a {}.",
)


def caption(concept: Concept, rng: np.random.Generator) -> str:
    return CAPTION_TEMPLATES[rng.integers(len(CAPTION_TEMPLATES))].format(concept.name)


def pretraining_pool(
    world: World, n_images: int, seed: int, size: int = 32
) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Captioned images of every concept in the world (uniform over concepts).

    Returns (images uint8 [N, size, size, 3], captions, concept index into `world.all_concepts`).
    """
    rng = np.random.default_rng(seed)
    concepts = world.all_concepts
    idx = rng.integers(len(concepts), size=n_images)
    images = np.stack([render(concepts[i], rng, size) for i in idx])
    return images, [caption(concepts[i], rng) for i in idx], idx


def validation_renders(world: World, seed: int, size: int = 32, id_per_class: int = 10, ood_per_set: int = 300):
    """Fresh held-out renders (own seed): ID images with labels and each OOD set's images."""
    rng = np.random.default_rng([seed, 777])
    ids = np.stack([render(c, rng, size) for c in world.id_classes for _ in range(id_per_class)])
    labels = np.repeat(np.arange(len(world.id_classes)), id_per_class)
    ood = {
        name: np.stack([render(world.ood[name][i % len(world.ood[name])], rng, size) for i in range(ood_per_set)])
        for name in OOD_SETS
    }
    return ids, labels, ood
