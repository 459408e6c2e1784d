"""Contact sheets: a benchmark's images in a grid with their names, for review by eye (stage `sheets`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

CELL = 90  # px per image and its name
NAME_HEIGHT = 14


def contact_sheet(images: list[np.ndarray], labels: list[str], path: Path, cols: int = 12) -> None:
    """A grid of images with their names (first 14 characters), each image enlarged by a whole factor with nearest
    neighbours so its pixels stay as the encoder saw them. Pasted with PIL into one image: a matplotlib axis per image
    made this the slowest part of the stage."""
    rows = -(-len(images) // cols)
    sheet = Image.new("RGB", (cols * CELL, rows * CELL), "white")
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(size=10)
    for i, (image, label) in enumerate(zip(images, labels)):
        top, left = divmod(i, cols)
        x, y = left * CELL, top * CELL
        thumb = Image.fromarray(np.asarray(image)).convert("RGB")
        factor = max(1, (CELL - NAME_HEIGHT - 4) // max(thumb.size))
        thumb = thumb.resize((thumb.width * factor, thumb.height * factor), Image.Resampling.NEAREST)
        thumb.thumbnail((CELL - 4, CELL - NAME_HEIGHT - 4))  # larger than the cell even at factor 1: shrunk
        sheet.paste(thumb, (x + (CELL - thumb.width) // 2, y + NAME_HEIGHT + (CELL - NAME_HEIGHT - thumb.height) // 2))
        draw.text((x + CELL // 2, y + 2), label[:14], fill="black", font=font, anchor="mt")
    sheet.save(path)
