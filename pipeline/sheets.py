"""Stage `sheets`: one test image per concept of each role (ID and every OOD set) and, on OpenMoji, a sample of the
vocabulary, drawn as contact sheets for review by eye. Its own stage: the sheets depend on the images only, so an
experiment that changes training or scoring does not draw them again (the report links them)."""

from pathlib import Path

import numpy as np
from PIL import Image

from negprompt.benchmarks import openmoji
from negprompt.benchmarks.tables import GENERATED
from negprompt.io import atomic_path, read_table
from negprompt.report.sheets import contact_sheet
from negprompt.workspace import BENCHMARK, SHEETS, backbone_manifest, load_params
from negprompt_standin import openmoji_render
from pipeline.common import run


def main():
    params = load_params()
    benchmark = params.data.benchmark
    with atomic_path(SHEETS, directory=True) as out:
        out.mkdir(parents=True, exist_ok=True)
        lines = []
        if benchmark in GENERATED:
            test = read_table(BENCHMARK / "test.parquet")[0]
            test = test.assign(concept=test.path.map(lambda path: Path(path).parent.name)).drop_duplicates("concept")
            for name, group in test.groupby("set", sort=False):
                images = [np.asarray(Image.open(BENCHMARK / "images" / path).convert("RGB")) for path in group.path]
                names = group.concept.str.replace("_", " ").tolist()
                contact_sheet(images, names, out / f"contact_{name}.png")
                lines.append(f"**{name}** ({len(group)} concepts)\n\n![{name}](sheets/contact_{name}.png)\n")
        if benchmark == "openmoji":
            images, names = openmoji_render.vocabulary_sample(
                size=params.data.image_size, font=params.data.font or None
            )
            contact_sheet(images, names, out / "contact_vocabulary.png")
            trained = openmoji.trained_on_vocabulary(Path(backbone_manifest()["checkpoint"]).with_suffix(".json"))
            pretrained = "captioned in the stand-in's pretraining" if trained else "not in the stand-in's pretraining"
            lines.append(
                f"**vocabulary** (a random {len(names)} of the {len(openmoji.vocabulary_concepts())} concepts "
                "in no benchmark "
                f"role: NegLabel's corpus, {pretrained})\n\n![vocabulary](sheets/contact_vocabulary.png)\n"
            )
            lines.append(f"{openmoji.ATTRIBUTION}\n")
        (out / "sheets.md").write_text("\n".join(lines))  # the report's section on the roles (empty on ImageNet)


if __name__ == "__main__":
    run(main, uses_torch=False)
