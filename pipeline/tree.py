"""Stage `tree` (always run): the listing of the image tree under data.root, the `data` stage's dependency.

DVC reruns `data` only when this listing changes, so a re-extracted or repaired tree is read again and an
unchanged one reruns nothing. Generated benchmarks have no tree: their listing is empty.
"""

from pathlib import Path

from negprompt import NegPromptError
from negprompt.benchmarks import inventory
from negprompt.io import atomic_path
from negprompt.workspace import TREE, load_params
from pipeline.common import run


def main():
    data_params = load_params().data
    listing = ""
    if data_params.benchmark in inventory.REAL:
        if not data_params.root:
            raise NegPromptError(
                f"data.root is empty: {data_params.benchmark} needs the directory holding train/ and val/"
            )
        root = Path(data_params.root).expanduser().resolve()
        if not root.is_dir():
            raise NegPromptError(
                f"data.root {data_params.root!r} does not exist or is not a directory "
                "(expected ImageNet train/ and val/)"
            )
        listing = inventory.tree_listing(root, inventory.listed_folders(data_params.benchmark))
    with atomic_path(TREE) as tmp:
        tmp.write_text(listing)
    print(f"{TREE}: {listing.count(chr(10)):,} files listed")


if __name__ == "__main__":
    run(main, uses_torch=False)
